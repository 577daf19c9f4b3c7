"""One viewport: a plane of a volume in a pyqtgraph view, with reading tools and annotations.

View coordinates are millimetres on the displayed plane: pixel ``(col, row)`` of the plane's
:class:`~medviewer.core.geometry.PlaneSlice` has its centre at ``(col * sx, row * sy)`` where
``sx, sy`` are the column and row spacings, so the aspect is physical by construction.
Patient coordinates (LPS) come from the plane's affine. Everything about values and geometry
is computed by ``medviewer.core``; this module only draws and routes input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget

from medviewer.core import formatting as fmt
from medviewer.core import measurements as mm
from medviewer.core.findings import AIResult, OverlayStyle
from medviewer.core.geometry import PlaneSlice, projection_edge_letters, reslice
from medviewer.core.measurements import Measurement
from medviewer.core.viewstate import (
    ViewState,
    drag_sensitivity,
    initial_state,
    nice_scale_length,
    plane_index_of,
    preset_for_key,
    slice_position_mm,
    voi_lut_names,
    voi_luts_of,
)
from medviewer.core.windowing import VoiLut, apply_window
from medviewer.ui.browser import SERIES_MIME
from medviewer.ui.measurement_items import (
    MEASURE_PEN,
    SELECTED_PEN,
    preview_outline,
    roi_for,
    roi_points,
)
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.overlay_items import (
    BrushCursor,
    PlaneOverlay,
    plane_rect,
    stroke_points,
    stroke_voxels,
)

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

TOOLS = ("navigate", "distance", "angle", "ellipse", "rectangle", "probe", "brush", "eraser")
BRUSH_TOOLS = ("brush", "eraser")
CROSSHAIR_PEN = pg.mkPen(QColor(80, 200, 255, 170), width=1)
TEXT_COLOR = QColor(235, 235, 235)


class _ViewBox(pg.ViewBox):
    """A ViewBox whose mouse input goes to the SliceView (reading conventions, not pyqtgraph's)."""

    def __init__(self, owner: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner

    def wheelEvent(self, ev, axis=None) -> None:
        self._owner.on_wheel(ev)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:
        self._owner.on_drag(ev)

    def mouseClickEvent(self, ev) -> None:
        self._owner.on_click(ev)


_ALIGN = Qt.AlignmentFlag
PLACES = {  # where each corner text and edge letter is drawn
    "top_left": _ALIGN.AlignLeft | _ALIGN.AlignTop,
    "top_right": _ALIGN.AlignRight | _ALIGN.AlignTop,
    "bottom_left": _ALIGN.AlignLeft | _ALIGN.AlignBottom,
    "bottom_right": _ALIGN.AlignRight | _ALIGN.AlignBottom,
    "left": _ALIGN.AlignLeft | _ALIGN.AlignVCenter,
    "right": _ALIGN.AlignRight | _ALIGN.AlignVCenter,
    "top": _ALIGN.AlignHCenter | _ALIGN.AlignTop,
    "bottom": _ALIGN.AlignHCenter | _ALIGN.AlignBottom,
}


class _Annotations(QWidget):
    """Corner text, edge letters and the scale bar, painted over the image."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.corners: dict[str, list[str]] = {}
        self.letters: dict[str, str] = {}
        self.scale: tuple[float, str] | None = None  # (length in screen px, label)
        self.message = ""
        self.size_factor = 1.0  # text and scale bar size (> 1 for print-size key images)

    def _font(self, points: float, weight=QFont.Weight.Normal) -> QFont:
        return QFont(self.font().family(), round(points * self.size_factor), weight)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setFont(self._font(9))
        self._paint_corners(painter)
        self._paint_letters(painter)
        self._paint_scale(painter)
        if self.message:
            self._text(painter, self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
        painter.end()

    def _text(self, painter: QPainter, rect, flags, text: str) -> None:
        painter.setPen(QColor(0, 0, 0, 200))
        painter.drawText(rect.translated(1, 1), flags, text)
        painter.setPen(TEXT_COLOR)
        painter.drawText(rect, flags, text)

    def _paint_corners(self, painter: QPainter) -> None:
        texts = {corner: "\n".join(lines) for corner, lines in self.corners.items()}
        self._paint_places(painter, self.rect().adjusted(6, 4, -6, -4), texts)

    def _paint_letters(self, painter: QPainter) -> None:
        painter.setFont(self._font(11, QFont.Weight.Bold))
        self._paint_places(painter, self.rect().adjusted(4, 2, -4, -2), self.letters)
        painter.setFont(self._font(9))

    def _paint_places(self, painter: QPainter, inner, texts: dict[str, str]) -> None:
        for place, text in texts.items():
            if text:
                self._text(painter, inner, PLACES[place], text)

    def _paint_scale(self, painter: QPainter) -> None:
        if self.scale is None:
            return
        length, label = self.scale
        f = self.size_factor
        x0 = (self.width() - length) / 2.0
        y = self.height() - 26.0 * f
        for color, offset in ((QColor(0, 0, 0, 200), f), (TEXT_COLOR, 0.0)):
            painter.setPen(QPen(color, 2 * f))
            painter.drawLine(
                QPointF(x0 + offset, y + offset), QPointF(x0 + length + offset, y + offset)
            )
            for x in (x0, x0 + length):
                painter.drawLine(
                    QPointF(x + offset, y - 4 * f + offset), QPointF(x + offset, y + 4 * f + offset)
                )
        rect = QRectF(x0 - 40 * f, y - 20 * f, length + 80 * f, 16 * f).toRect()
        self._text(
            painter, rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, label
        )


class SliceView(QFrame):
    """A viewport showing one plane of an :class:`OpenSeries`.

    Mouse: wheel scrolls, Ctrl+wheel zooms, middle drag pans, right drag sets window/level,
    left button uses the current tool. Keys: arrows/PageUp/PageDown/Home/End scroll,
    0-9 window presets, I invert, R reset, F fit, Delete removes the selected measurement.

    Signals
    -------
    cursorMoved(object)
        The user put the crosshair on an LPS point (numpy array of 3).
    readout(str)
        Value and coordinates under the mouse, for the status bar.
    activated()
        The user clicked in the view (it becomes the active viewport).
    seriesDropped(int)
        A series from the browser was dropped onto the view.
    stateChanged()
        Slice, window, zoom or series changed.
    labelsPainted(object)
        A brush or eraser dab changed the label map of the overlay's AIResult (given).
    labelsEdited(object)
        A brush or eraser stroke ended having changed the AIResult's label map (one undo
        step); the receiver records the edit (statistics, ``mark_edited``).
    """

    cursorMoved = Signal(object)
    readout = Signal(str)
    activated = Signal()
    seriesDropped = Signal(int)
    stateChanged = Signal()
    labelsPainted = Signal(object)
    labelsEdited = Signal(object)

    def __init__(self, store: MeasurementStore | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store if store is not None else MeasurementStore()
        self.series: OpenSeries | None = None
        self.state: ViewState | None = None
        self.plane_slice: PlaneSlice | None = None
        self.tool = "navigate"
        self.crosshair_visible = True
        self.crosshair_point: np.ndarray | None = None
        self.identifying_text = True  # False for key images: no patient or study in the corners
        self.empty_message = "Drop a series here or double-click one in the browser"
        self._display: np.ndarray | None = None  # reused uint8 frame buffer
        self._gathered = np.empty(0)  # reused contiguous copy of a strided slice
        self._rois: dict[str, tuple[pg.ROI, pg.TextItem]] = {}
        self._labels: dict[Measurement, str] = {}  # results on a fully loaded volume
        self._pending: list[np.ndarray] = []
        self._preview: pg.PlotCurveItem | None = None
        self._drag_state: ViewState | None = None
        self.brush_radius_mm = 3.0
        self._brush_label: int | None = None
        self._brush_last: np.ndarray | None = None  # LPS of the stroke's last dab
        self._cine = QTimer(self)
        self._cine.timeout.connect(self._cine_step)
        self._build()
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.set_active(False)
        self.store.changed.connect(self._on_measurements_changed)
        self.store.selectionChanged.connect(lambda _id: self._sync_measurements())

    # -- construction --------------------------------------------------------------------

    def _build(self) -> None:
        self.graphics = pg.GraphicsView(background="k")
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.graphics.setAcceptDrops(False)
        self.viewbox = _ViewBox(self)
        self.graphics.setCentralItem(self.viewbox)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.image_item)
        self.overlay = PlaneOverlay(self.viewbox)
        self.brush_cursor = BrushCursor(self.viewbox)
        self.h_line = pg.InfiniteLine(angle=0, pen=CROSSHAIR_PEN, movable=False)
        self.v_line = pg.InfiniteLine(angle=90, pen=CROSSHAIR_PEN, movable=False)
        for line in (self.h_line, self.v_line):
            line.setVisible(False)
            line.setZValue(5)
            self.viewbox.addItem(line, ignoreBounds=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.graphics)
        self.annotations = _Annotations(self)
        self.viewbox.sigRangeChanged.connect(lambda *_: self._update_annotations())
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.annotations.setGeometry(self.graphics.geometry())
        self._update_annotations()

    def set_active(self, active: bool) -> None:
        """Draw the border of the active viewport."""
        color = "#3d8fd6" if active else "#202020"
        self.setStyleSheet(f"SliceView {{ border: 1px solid {color}; }}")

    # -- what is shown -------------------------------------------------------------------

    def set_series(self, series: OpenSeries | None, plane: str = "axial") -> None:
        """Show `plane` of `series` (None empties the view)."""
        if self.series is not None:
            self.series.slicesLoaded.disconnect(self._on_slices_loaded)
        self.stop_cine()
        self.end_brush_stroke()
        self.overlay.set_result(None)
        self.series = series
        self._labels.clear()
        self.crosshair_point = None
        if series is None:
            self.state, self.plane_slice = None, None
            self.image_item.clear()
            self._sync_measurements()
            self._update_annotations()
            self.stateChanged.emit()
            return
        state = initial_state_of(series, plane)
        series.slicesLoaded.connect(self._on_slices_loaded)
        self.state = state
        self.render()
        self.fit()
        self.stateChanged.emit()

    @property
    def volume(self):
        """The shown volume, or None."""
        return None if self.series is None else self.series.volume

    def render(self) -> None:
        """Reslice, window and draw the current slice (and its measurements)."""
        if self.series is None or self.state is None:
            return
        volume = self.series.volume
        self.plane_slice = reslice(volume.array, volume.affine, self.state.plane, self.state.index)
        self.image_item.setImage(
            self._display_image(self.plane_slice.image), autoLevels=False, levels=None
        )  # uint8 without levels: drawn as Grayscale8/RGB888, no per-frame colour table
        self.image_item.setRect(plane_rect(self.plane_slice))
        self._draw_overlay()
        self._place_crosshair()
        self._sync_measurements()
        self._update_annotations()

    def _display_image(self, image: np.ndarray) -> np.ndarray:
        state = self.state
        assert state is not None
        if image.ndim == 3:
            rgb = image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
            return 255 - rgb if state.invert else rgb
        if self._display is None or self._display.shape != image.shape:
            self._display = np.empty(image.shape, np.uint8)
            self._gathered = np.empty(image.shape, image.dtype)
        # Always window a private copy: sagittal/coronal views stride through memory (the copy
        # makes one pass), and slices still loading are written by a worker meanwhile (the
        # window's lookup table is sized from the values it sees, so they must not change).
        if self._gathered.dtype != image.dtype or self._gathered.shape != image.shape:
            self._gathered = np.empty(image.shape, image.dtype)
        np.copyto(self._gathered, image)
        lut = self._shown_lut()
        if lut is not None:
            self._display[...] = lut.apply(self._gathered, state.invert)
            return self._display
        return apply_window(
            self._gathered, state.center, state.width, state.invert, out=self._display
        )

    def _shown_lut(self) -> VoiLut | None:
        """The VOI LUT the state shows the image through, or None (linear window)."""
        if self.state is None or self.state.voi_lut is None or self.volume is None:
            return None
        luts = voi_luts_of(self.volume.metadata)
        return luts[self.state.voi_lut] if self.state.voi_lut < len(luts) else None

    def set_state(self, state: ViewState) -> None:
        """Show another slice/window of the same plane."""
        if state == self.state:
            return
        self.state = state
        self.render()
        self.stateChanged.emit()

    def set_index(self, index: int) -> None:
        """Show slice `index` of the plane (clamped)."""
        if self.state is not None:
            self.set_state(self.state.at(index))

    def scroll(self, step: int) -> None:
        """Move `step` slices."""
        if self.state is not None:
            self.set_state(self.state.scrolled(step))

    def set_window(self, center: float, width: float) -> None:
        """Set window level and width (modality units)."""
        if self.state is not None:
            self.set_state(self.state.windowed(center, width))

    def apply_preset(self, key: int) -> bool:
        """Window preset of number key `key`; False when there is none."""
        if self.volume is None or self.state is None:
            return False
        preset = preset_for_key(self.volume, key)
        if preset is None:
            return False
        self.set_window(preset.center, preset.width)
        return True

    def set_voi_lut(self, index: int) -> bool:
        """Show the image through VOI LUT `index` of the series; False when there is none."""
        if self.volume is None or self.state is None or self.volume.is_color:
            return False
        luts = voi_luts_of(self.volume.metadata)
        if not 0 <= index < len(luts):
            return False
        self.set_state(self.state.through_lut(index, luts[index]))
        return True

    def set_invert(self, invert: bool) -> None:
        """Invert grey levels."""
        if self.state is not None:
            self.set_state(replace(self.state, invert=invert))

    def reset(self) -> None:
        """Default window, no inversion unless MONOCHROME1, fit to the window."""
        if self.series is not None and self.state is not None:
            fresh = initial_state_of(self.series, self.state.plane)
            self.set_state(replace(fresh, index=self.state.index))
            self.fit()

    def fit(self) -> None:
        """Zoom so the whole slice fits the viewport."""
        if self.plane_slice is not None:
            self.viewbox.autoRange(items=[self.image_item], padding=0.02)

    def zoom_by(self, factor: float, center: QPointF | None = None) -> None:
        """Zoom in (factor > 1) or out around `center` (view coordinates)."""
        self.viewbox.scaleBy(s=(1.0 / factor, 1.0 / factor), center=center)

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel along the columns."""
        if self.plane_slice is None or self.viewbox.width() <= 0:
            return 1.0
        mm_per_px = self.viewbox.viewRect().width() / self.viewbox.width()
        return self.plane_slice.pixel_spacing[1] / mm_per_px

    # -- coordinates ---------------------------------------------------------------------

    def view_to_patient(self, x: float, y: float) -> np.ndarray:
        """LPS point of view coordinates (mm on the plane)."""
        assert self.plane_slice is not None
        sy, sx = self.plane_slice.pixel_spacing
        return mm.screen_to_patient(self.plane_slice.affine, x / sx, y / sy)

    def patient_to_view(self, xyz: np.ndarray) -> tuple[float, float, float]:
        """View coordinates and slice offset of an LPS point."""
        assert self.plane_slice is not None
        sy, sx = self.plane_slice.pixel_spacing
        col, row, k = mm.patient_to_screen(self.plane_slice.affine, xyz)
        return float(col * sx), float(row * sy), float(k)

    def scene_to_view(self, scene_pos: QPointF) -> QPointF:
        """View coordinates of a scene position."""
        return self.viewbox.mapSceneToView(scene_pos)

    # -- crosshair -----------------------------------------------------------------------

    def set_crosshair(self, xyz: np.ndarray | None, move: bool = True) -> None:
        """Put the crosshair on an LPS point and (with `move`) show the slice that holds it."""
        self.crosshair_point = None if xyz is None else np.asarray(xyz, float)
        if move and xyz is not None and self.volume is not None and self.state is not None:
            index = plane_index_of(self.volume, self.state.plane, xyz)
            if index is not None and index != self.state.index:
                self.set_index(index)
                return
        self._place_crosshair()

    def show_crosshair(self, visible: bool) -> None:
        """Toggle the crosshair lines."""
        self.crosshair_visible = visible
        self._place_crosshair()

    def _place_crosshair(self) -> None:
        point = self.crosshair_point
        visible = self.crosshair_visible and point is not None and self.plane_slice is not None
        if visible:
            x, y, _ = self.patient_to_view(point)
            self.v_line.setPos(x)
            self.h_line.setPos(y)
        self.v_line.setVisible(visible)
        self.h_line.setVisible(visible)

    # -- cine ----------------------------------------------------------------------------

    def play_cine(self, fps: float) -> None:
        """Loop through the slices at `fps` frames per second."""
        if self.state is not None and self.state.count > 1:
            self._cine.start(max(int(1000 / max(fps, 0.5)), 1))

    def stop_cine(self) -> None:
        """Stop the cine loop."""
        self._cine.stop()

    @property
    def playing(self) -> bool:
        """True while the cine loop runs."""
        return self._cine.isActive()

    def _cine_step(self) -> None:
        if self.state is not None:
            self.set_index((self.state.index + 1) % self.state.count)

    # -- loading -------------------------------------------------------------------------

    def _on_slices_loaded(self, indices: np.ndarray) -> None:
        if self.state is None or self.series is None:
            return
        if self.state.plane != "axial" or self.shown_voxel_slice() in set(indices.tolist()):
            self.render()
        else:
            self._update_annotations()

    def shown_voxel_slice(self) -> int:
        """The array slice (first axis) the axial view shows."""
        assert self.plane_slice is not None and self.volume is not None
        origin = mm.patient_to_screen(self.volume.affine, self.plane_slice.affine[:3, 3])
        return round(float(origin[2]))

    # -- AI overlay ----------------------------------------------------------------------

    def set_overlay(self, result: AIResult | None) -> None:
        """Draw `result`'s label map and heatmap over the images (None: no overlay).

        A result on another grid than the shown volume (its ``prediction.shape``) is kept but
        not drawn.
        """
        if result is not self.overlay.result:
            self.end_brush_stroke()
        self.overlay.set_result(result)
        self._draw_overlay()

    def set_overlay_style(self, style: OverlayStyle) -> None:
        """How the overlay is drawn (colours and opacity never reslice; outline does)."""
        self.overlay.set_style(style)
        self._draw_overlay()

    def refresh_overlay(self) -> None:
        """Re-read the overlay's slice (its label map was changed in place)."""
        self.overlay.forget()
        self._draw_overlay()

    def overlay_rgba(self) -> np.ndarray | None:
        """The overlay colours of the shown slice, ``(rows, cols, 4)`` uint8, or None."""
        return self.overlay.overlay_rgba()

    def _overlay_fits(self) -> bool:
        result = self.overlay.result
        return (
            result is not None
            and self.volume is not None
            and tuple(result.prediction.shape) == tuple(self.volume.shape)
        )

    def _draw_overlay(self) -> None:
        if self.state is None or self.plane_slice is None or not self._overlay_fits():
            self.overlay.hide()
            return
        rect = plane_rect(self.plane_slice)
        self.overlay.show_plane(self.state.plane, self.state.index, rect)

    # -- brush and eraser ----------------------------------------------------------------

    @property
    def brush_label(self) -> int:
        """The label the brush paints (default: the first segment of the overlay, else 1)."""
        if self._brush_label is not None:
            return self._brush_label
        result = self.overlay.result
        return next(iter(result.segments), 1) if result is not None else 1

    @brush_label.setter
    def brush_label(self, label: int | None) -> None:
        self._brush_label = None if label is None else int(label)

    def _segmentation(self) -> AIResult | None:
        result = self.overlay.result
        if result is None or result.label_map is None or self.plane_slice is None:
            return None
        return result if self._overlay_fits() else None

    def brush_dab(self, point_lps: np.ndarray, erase: bool | None = None) -> int:
        """Paint (or erase) a disk of ``brush_radius_mm`` at an LPS point of the shown plane.

        Part of the open stroke (see :meth:`end_brush_stroke`). `erase` defaults to the tool
        being the eraser. Returns how many voxels changed (0 without a segmentation overlay).
        """
        return self._paint([np.asarray(point_lps, float)], erase)

    def end_brush_stroke(self) -> bool:
        """Close the stroke as one undo step; emits labelsEdited when it changed labels."""
        self._brush_last = None
        result = self.overlay.result
        if result is None or result.label_map is None:
            return False
        if not result.history.end_stroke(result.label_map):
            return False
        self.labelsEdited.emit(result)
        return True

    def _paint(self, points: list[np.ndarray], erase: bool | None = None) -> int:
        result = self._segmentation()
        if result is None or not points:
            return 0
        assert self.plane_slice is not None and result.label_map is not None
        voxels = stroke_voxels(self.plane_slice, result, points, self.brush_radius_mm)
        erase = self.tool == "eraser" if erase is None else erase
        changed = result.history.dab(result.label_map, voxels, self.brush_label, erase)
        if changed:
            result.touch()
            self._draw_overlay()
            self.labelsPainted.emit(result)
        return changed

    def _brush_drag(self, ev) -> None:
        if ev.isStart():  # the press position, then the path to where the drag began
            pressed = self.view_to_patient(*_xy(self.scene_to_view(ev.buttonDownScenePos())))
            self._paint([pressed])
            self._brush_last = pressed
        now = self.view_to_patient(*_xy(self.scene_to_view(ev.scenePos())))
        self._paint(stroke_points(self._brush_last, now, self.brush_radius_mm))
        self._brush_last = now
        if ev.isFinish():
            self.end_brush_stroke()

    # -- annotations ---------------------------------------------------------------------

    def _update_annotations(self) -> None:
        notes = self.annotations
        if self.series is None or self.state is None or self.plane_slice is None:
            notes.corners, notes.letters, notes.scale = {}, {}, None
            notes.message = self.empty_message
            notes.update()
            return
        meta = self.series.volume.metadata
        notes.message = self.series.error
        notes.corners = corner_text(self)
        notes.letters = edge_letters_of(meta, self.plane_slice)
        notes.scale = self._scale_bar()
        notes.update()

    def _scale_bar(self) -> tuple[float, str] | None:
        width_px = self.viewbox.width()
        if width_px <= 0:
            return None
        mm_per_px = self.viewbox.viewRect().width() / width_px
        if not np.isfinite(mm_per_px) or mm_per_px <= 0:
            return None
        target = min(100.0 * self.annotations.size_factor, width_px / 4)
        length = nice_scale_length(mm_per_px, target_pixels=target)
        label = f"{length:g} mm" if length < 10 or length % 10 else f"{length / 10:g} cm"
        return length / mm_per_px, label

    # -- mouse ---------------------------------------------------------------------------

    def on_wheel(self, ev) -> None:
        """Wheel scrolls slices; Ctrl+wheel zooms around the mouse."""
        steps = ev.delta() / 120.0
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15**steps, self.viewbox.mapSceneToView(ev.scenePos()))
        else:
            self.scroll(-int(np.sign(steps)) * max(1, int(abs(steps))))

    def on_drag(self, ev) -> None:
        """Right: window/level; middle: pan; left: the current tool."""
        ev.accept()
        button = ev.button()
        if button == Qt.MouseButton.RightButton:
            self._drag_window(ev)
        elif button == Qt.MouseButton.MiddleButton:
            delta = self.viewbox.mapSceneToView(ev.scenePos()) - self.viewbox.mapSceneToView(
                ev.lastScenePos()
            )
            self.viewbox.translateBy(x=-delta.x(), y=-delta.y())
        elif button == Qt.MouseButton.LeftButton and self.plane_slice is not None:
            self._tool_drag(ev)

    def _drag_window(self, ev) -> None:
        if self.state is None or self.volume is None:
            return
        if ev.isStart() or self._drag_state is None:
            self._drag_state = self.state
        start = ev.buttonDownScreenPos()
        now = ev.screenPos()
        span = value_span(self.volume)
        dragged = self._drag_state.dragged(
            now.x() - start.x(), now.y() - start.y(), drag_sensitivity(span)
        )
        self.set_state(dragged)
        if ev.isFinish():
            self._drag_state = None

    def on_click(self, ev) -> None:
        """Left click: crosshair (navigate), probe, or the next point of an angle."""
        self.activated.emit()
        self.setFocus()
        if ev.button() != Qt.MouseButton.LeftButton or self.plane_slice is None:
            return
        ev.accept()
        point = self.view_to_patient(*_xy(self.viewbox.mapSceneToView(ev.scenePos())))
        if self.tool == "navigate":
            self.set_crosshair(point, move=False)
            self.cursorMoved.emit(point)
        elif self.tool == "probe":
            self._add_measurement("probe", [point])
        elif self.tool == "angle":
            self._angle_click(point)
        elif self.tool in BRUSH_TOOLS:
            self.brush_dab(point)
            self.end_brush_stroke()
        else:
            self.store.select("")

    def mousePressEvent(self, event) -> None:
        self.activated.emit()
        super().mousePressEvent(event)

    def _tool_drag(self, ev) -> None:
        start = self.viewbox.mapSceneToView(ev.buttonDownScenePos())
        now = self.viewbox.mapSceneToView(ev.scenePos())
        if self.tool == "navigate":
            point = self.view_to_patient(*_xy(now))
            self.set_crosshair(point, move=False)
            self.cursorMoved.emit(point)
            return
        if self.tool in BRUSH_TOOLS:
            self._brush_drag(ev)
            return
        if self.tool not in ("distance", "ellipse", "rectangle"):
            return
        self._show_preview(self.tool, start, now)
        if ev.isFinish():
            self._hide_preview()
            if (now - start).manhattanLength() > 1e-6:
                points = [self.view_to_patient(*_xy(p)) for p in (start, now)]
                self._add_measurement(self.tool, points)

    def _angle_click(self, point: np.ndarray) -> None:
        self._pending.append(point)
        if len(self._pending) == 3:
            points, self._pending = self._pending, []
            self._add_measurement("angle", points)

    def _show_preview(self, kind: str, a: QPointF, b: QPointF) -> None:
        if self._preview is None:
            self._preview = pg.PlotCurveItem(pen=MEASURE_PEN)
            self.viewbox.addItem(self._preview, ignoreBounds=True)
        xs, ys = preview_outline(kind, _xy(a), _xy(b))
        self._preview.setData(xs, ys)

    def _hide_preview(self) -> None:
        if self._preview is not None:
            self.viewbox.removeItem(self._preview)
            self._preview = None

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.plane_slice is None or self.volume is None:
            return
        view = self.viewbox.mapSceneToView(scene_pos)
        point = self.view_to_patient(*_xy(view))
        self.readout.emit(readout_text(self, point))
        if self.tool in BRUSH_TOOLS:
            self.brush_cursor.show_at(*_xy(view), self.brush_radius_mm)

    # -- keys ----------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        action = self._key_actions().get(event.key())
        if action is not None:
            action()
            event.accept()
            return
        text = event.text()
        if text.isdigit() and self.apply_preset(int(text)):
            event.accept()
            return
        super().keyPressEvent(event)

    def _key_actions(self) -> dict[int, Callable[[], None]]:
        key = Qt.Key
        page = max(1, (self.state.count // 10) if self.state else 1)
        last = (self.state.count - 1) if self.state else 0
        return {
            key.Key_Down: lambda: self.scroll(1),
            key.Key_Right: lambda: self.scroll(1),
            key.Key_Up: lambda: self.scroll(-1),
            key.Key_Left: lambda: self.scroll(-1),
            key.Key_PageDown: lambda: self.scroll(page),
            key.Key_PageUp: lambda: self.scroll(-page),
            key.Key_Home: lambda: self.set_index(0),
            key.Key_End: lambda: self.set_index(last),
            key.Key_I: lambda: self.set_invert(not self.state.invert) if self.state else None,
            key.Key_R: self.reset,
            key.Key_F: self.fit,
            key.Key_Delete: self.delete_selected,
            key.Key_Backspace: self.delete_selected,
            key.Key_Escape: self._cancel_pending,
        }

    def _cancel_pending(self) -> None:
        self._pending = []
        self.store.select("")

    def delete_selected(self) -> None:
        """Delete the selected measurement."""
        if self.store.selected:
            self.store.remove(self.store.selected)

    # -- drops ---------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(SERIES_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        data = bytes(event.mimeData().data(SERIES_MIME)).decode("ascii", "replace").strip()
        if data.isdigit():
            event.acceptProposedAction()
            self.seriesDropped.emit(int(data))

    # -- measurements --------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        """Choose what the left button does (one of ``TOOLS``)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
        self.end_brush_stroke()
        self.tool = tool
        self._pending = []
        if tool not in BRUSH_TOOLS:
            self.brush_cursor.hide()

    def _add_measurement(self, kind: str, points: list[np.ndarray]) -> Measurement | None:
        if self.volume is None or self.state is None:
            return None
        measurement = Measurement(
            kind=kind,  # type: ignore[arg-type]
            points=tuple(tuple(float(v) for v in p) for p in points),
            plane=self.state.plane,
            series_uid=self.volume.metadata.series_uid,
        )
        self.store.add(measurement)
        self.store.select(measurement.id)
        return measurement

    def visible_measurements(self) -> list[Measurement]:
        """The measurements of the series drawn on the current slice."""
        if self.volume is None or self.plane_slice is None:
            return []
        return [
            m
            for m in self.store.for_series(self.volume.metadata.series_uid)
            if mm.on_plane(m, self.plane_slice.affine)
        ]

    def measurement_text(self, measurement: Measurement) -> str:
        """The one-line result of a measurement on the current slice."""
        assert self.plane_slice is not None and self.volume is not None
        image = None if self.volume.is_color else self.plane_slice.image
        return mm.summary(measurement, image, self.plane_slice.affine, self.volume.metadata.units)

    def _label_text(self, m: Measurement) -> str:
        """The label of a measurement, computed once per geometry (ROI stats cost ~2 ms)."""
        if self.series is None or not self.series.complete:
            return self.measurement_text(m)  # slices still arriving: values may change
        if m not in self._labels:
            self._labels[m] = self.measurement_text(m)
        return self._labels[m]

    def _on_measurements_changed(self, series_uid: str) -> None:
        if self.volume is not None and self.volume.metadata.series_uid == series_uid:
            self._sync_measurements()

    def _sync_measurements(self) -> None:
        wanted = {m.id: m for m in self.visible_measurements()}
        for mid in list(self._rois):
            if mid not in wanted:
                roi, label = self._rois.pop(mid)
                self.viewbox.removeItem(roi)
                self.viewbox.removeItem(label)
        for mid, measurement in wanted.items():
            if mid not in self._rois:
                self._rois[mid] = self._make_roi(measurement)
            self._refresh_roi(measurement)

    def _make_roi(self, m: Measurement) -> tuple[pg.ROI, pg.TextItem]:
        view_points = [self.patient_to_view(np.asarray(p))[:2] for p in m.points]
        roi = roi_for(m.kind, view_points)
        roi.setZValue(10)
        roi.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        roi.sigClicked.connect(lambda *_: self.store.select(m.id))
        roi.sigRegionChangeFinished.connect(lambda r: self._roi_moved(m.id, r))
        label = pg.TextItem(anchor=(0, 1), color="#ffe9a8", fill=pg.mkBrush(0, 0, 0, 150))
        label.setZValue(11)
        self.viewbox.addItem(roi, ignoreBounds=True)
        self.viewbox.addItem(label, ignoreBounds=True)
        return roi, label

    def _refresh_roi(self, m: Measurement) -> None:
        roi, label = self._rois[m.id]
        roi.setPen(SELECTED_PEN if m.id == self.store.selected else MEASURE_PEN)
        label.setText(self._label_text(m))
        x, y, _ = self.patient_to_view(np.asarray(m.points[-1]))
        label.setPos(x, y)

    def _roi_moved(self, measurement_id: str, roi: pg.ROI) -> None:
        m = self.store.get(measurement_id)
        if m is None or self.plane_slice is None:
            return
        points = [self.view_to_patient(x, y) for x, y in roi_points(m.kind, roi)]
        self.store.update(m.moved(tuple(tuple(float(v) for v in p) for p in points)))
        self.store.select(measurement_id)


# -- helpers (no widget state) -----------------------------------------------------------


def _xy(point: QPointF) -> tuple[float, float]:
    return float(point.x()), float(point.y())


def initial_state_of(series: OpenSeries, plane: str) -> ViewState:
    """The first state of a view: middle slice; the window from the files or loaded slices."""
    volume = series.volume
    sample = None if series.complete else volume.array[series.loaded]
    return initial_state(volume, plane, sample)  # type: ignore[arg-type]


def value_span(volume) -> float:
    """The span of values a window/level drag covers (the file window or 4096)."""
    presets = volume.metadata.window_presets
    if volume.metadata.modality == "CT":
        return 4096.0
    if presets:
        return max(presets[0].width * 2.0, 16.0)
    return 4096.0 if volume.array.dtype.itemsize > 1 else 256.0


def edge_letters_of(meta, plane_slice: PlaneSlice) -> dict[str, str]:
    """The four edges' orientation letters: from the geometry of a positioned volume, from
    Patient Orientation for a projection image shown as stored, else none."""
    if meta.positioned:
        return plane_slice.edge_letters
    right, down = (v / np.linalg.norm(v) for v in plane_slice.affine[:3, :2].T)
    if not (np.allclose(right, (1, 0, 0)) and np.allclose(down, (0, 1, 0))):
        return {}  # another plane of an unpositioned stack: rows/columns are not the image's
    return projection_edge_letters(meta.patient_orientation)


def corner_text(view: SliceView) -> dict[str, list[str]]:
    """The four corners' text lines of a view."""
    assert view.volume is not None and view.state is not None and view.plane_slice is not None
    meta, state = view.volume.metadata, view.state
    loaded = view.series.loaded if view.series is not None else None
    progress = (
        [f"Loading {int(loaded.sum())}/{loaded.size}"]
        if loaded is not None and not loaded.all()
        else []
    )
    series = f"#{meta.series_number} " if meta.series_number is not None else ""
    who = [meta.patient_name.replace("^", " "), meta.patient_id]
    what = [fmt.dicom_date(meta.study_date), meta.study_description,
            f"{series}{meta.series_description}".strip()]
    if not view.identifying_text:
        who, what = [], []
    return {
        "top_left": who,
        "top_right": [*what, f"{meta.modality} {state.plane if meta.positioned else ''}".strip()],
        "bottom_left": [
            *progress,
            f"Im {state.index + 1}/{state.count}",
            # a slice position means nothing on an image without patient position
            *([f"Pos {fmt.length_mm(slice_position_mm(view.plane_slice.affine))} mm"]
              if meta.positioned else []),
        ],
        "bottom_right": [
            display_text(meta, state) + (" inv" if state.invert else ""),
            f"Zoom {view.zoom:.2f}x",
        ],
    }


def display_text(meta, state: ViewState) -> str:
    """How the values are shown: ``"W 400 L 40"`` or the VOI LUT's name."""
    names = voi_lut_names(meta)
    if state.voi_lut is not None and state.voi_lut < len(names):
        return names[state.voi_lut]
    return fmt.window(state.center, state.width)


def readout_text(view: SliceView, point: np.ndarray) -> str:
    """'value units  (col, row, slice)  LPS (x, y, z) mm' under the mouse."""
    assert view.plane_slice is not None and view.volume is not None
    value = mm.probe_value(view.plane_slice.image, view.plane_slice.affine, point)
    if value is None:
        return ""
    voxel = mm.patient_to_screen(view.volume.affine, point)
    shown = (
        "(" + ", ".join(fmt.image_value(v) for v in value) + ")"
        if isinstance(value, tuple)
        else fmt.image_value(value, view.volume.metadata.units)
    )
    ijk = ", ".join(str(round(v)) for v in voxel)
    return f"{shown}   voxel ({ijk})   LPS {fmt.point_lps(point)} mm"
