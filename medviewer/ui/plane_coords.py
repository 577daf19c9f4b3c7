"""View coordinates of a displayed plane: millimetres on the plane, to and from LPS points.

Pixel ``(col, row)`` of a :class:`~medviewer.core.geometry.PlaneSlice` has its centre at
``(col * sx, row * sy)``, where ``sx, sy`` are the column and row spacings, so the aspect is
physical by construction. Patient coordinates (LPS) come from the plane's affine.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF

from medviewer.core import measurements as mm
from medviewer.core.geometry import PlaneSlice

ViewPoint = tuple[float, float]


def xy(point: QPointF) -> ViewPoint:
    """``(x, y)`` floats of a Qt point."""
    return float(point.x()), float(point.y())


def view_to_patient(plane_slice: PlaneSlice, x: float, y: float) -> np.ndarray:
    """LPS point of view coordinates ``(x, y)`` (mm on the plane)."""
    sy, sx = plane_slice.pixel_spacing
    return mm.screen_to_patient(plane_slice.affine, x / sx, y / sy)


def patient_to_view(plane_slice: PlaneSlice, xyz: np.ndarray) -> tuple[float, float, float]:
    """View coordinates and slice offset (in slices) of an LPS point."""
    sy, sx = plane_slice.pixel_spacing
    col, row, k = mm.patient_to_screen(plane_slice.affine, xyz)
    return float(col * sx), float(row * sy), float(k)


class PlaneCoordinates:
    """The coordinate methods of a view showing ``plane_slice`` in ``viewbox`` (a mixin of
    :class:`~medviewer.ui.slice_view.SliceView`)."""

    plane_slice: PlaneSlice | None
    viewbox: pg.ViewBox

    def view_to_patient(self, x: float, y: float) -> np.ndarray:
        """LPS point of view coordinates (mm on the plane)."""
        assert self.plane_slice is not None
        return view_to_patient(self.plane_slice, x, y)

    def patient_to_view(self, xyz: np.ndarray) -> tuple[float, float, float]:
        """View coordinates and slice offset of an LPS point."""
        assert self.plane_slice is not None
        return patient_to_view(self.plane_slice, xyz)
