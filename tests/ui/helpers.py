"""Mouse and pixel helpers for driving pyqtgraph views like a user would."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medviewer.core.geometry import affine_from_dicom
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.ui.slice_view import SliceView

SPACING = (0.6, 0.8, 2.0)  # row, col, slice (mm)
SHAPE = (20, 60, 80)  # slices, rows, cols
ORIGIN = (-30.0, -20.0, 10.0)
DISK = (12, 40, 25, 6)  # slice, row, col, radius (px): value 1000 (the "spine")


def phantom(orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), positioned: bool = True) -> Volume:
    """Background 0 HU; a uniform 100 HU block; a 1000 HU disk on slices 8..15."""
    s, r, c = SHAPE
    array = np.zeros(SHAPE, np.int16)
    array[:, 5:25, 50:75] = 100
    _, yy, xx = np.ogrid[:s, :r, :c]
    disk = (yy - DISK[1]) ** 2 + (xx - DISK[2]) ** 2 <= DISK[3] ** 2
    array[8:16][np.broadcast_to(disk, (8, r, c))] = 1000
    affine = affine_from_dicom(ORIGIN, orientation, SPACING[:2], None)
    normal = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    affine[:3, 2] = normal * SPACING[2]
    meta = VolumeMetadata(
        modality="CT",
        patient_name="TEST^PHANTOM",
        patient_id="PH001",
        study_date="20260102",
        study_description="phantom study",
        series_uid="1.2.826.0.1.3680043.8.498.999.1",
        series_number=3,
        series_description="phantom",
        frame_of_reference_uid="1.2.826.0.1.3680043.8.498.999.2",
        units="HU",
        positioned=positioned,
    )
    return Volume(array, affine, meta)


def widget_pos(view: SliceView, x_mm: float, y_mm: float) -> QPoint:
    """Viewport pixel of a point in the view's mm coordinates."""
    scene = view.viewbox.mapViewToScene(QPointF(x_mm, y_mm))
    return view.graphics.mapFromScene(scene)


def voxel_widget_pos(view: SliceView, volume: Volume, ijk) -> QPoint:
    """Viewport pixel where voxel (col, row, slice) is drawn."""
    xyz = volume.affine @ np.array([*ijk, 1.0])
    x, y, _ = view.patient_to_view(xyz[:3])
    return widget_pos(view, x, y)


def _send_mouse(
    view: SliceView, kind, pos: QPoint, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier
):
    viewport = view.graphics.viewport()
    local = QPointF(pos)
    event = QMouseEvent(kind, local, QPointF(viewport.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(viewport, event)
    QTest.qWait(MOVE_INTERVAL_MS)  # pyqtgraph drops moves that come faster than the screen rate


MOVE_INTERVAL_MS = 20


def drag(view: SliceView, start: QPoint, end: QPoint, button=Qt.MouseButton.LeftButton, steps=6):
    """Press at `start`, move in steps to `end`, release (a real drag, as pyqtgraph sees it)."""
    none = Qt.MouseButton.NoButton
    move = QMouseEvent.Type.MouseMove
    _send_mouse(view, move, start, none, none)
    _send_mouse(view, QMouseEvent.Type.MouseButtonPress, start, button, button)
    for k in range(1, steps + 1):
        t = k / steps
        p = QPoint(
            round(start.x() + (end.x() - start.x()) * t),
            round(start.y() + (end.y() - start.y()) * t),
        )
        _send_mouse(view, move, p, none, button)
    _send_mouse(view, QMouseEvent.Type.MouseButtonRelease, end, button, none)
    QApplication.processEvents()


def click(view: SliceView, pos: QPoint, button=Qt.MouseButton.LeftButton,
          modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """A press and release at the same place (with `modifiers` held)."""
    none = Qt.MouseButton.NoButton
    _send_mouse(view, QMouseEvent.Type.MouseMove, pos, none, none, modifiers)
    _send_mouse(view, QMouseEvent.Type.MouseButtonPress, pos, button, button, modifiers)
    _send_mouse(view, QMouseEvent.Type.MouseButtonRelease, pos, button, none, modifiers)
    QApplication.processEvents()


def wheel(view: SliceView, pos: QPoint, steps: int, modifiers=Qt.KeyboardModifier.NoModifier):
    """Turn the wheel `steps` notches (positive: away from the user)."""
    viewport = view.graphics.viewport()
    event = QWheelEvent(
        QPointF(pos),
        QPointF(viewport.mapToGlobal(pos)),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(viewport, event)
    QApplication.processEvents()


def grab_rgb(widget) -> np.ndarray:
    """The widget's pixels as an (h, w, 3) uint8 array."""
    image = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    w, h = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h)
    return data.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()
