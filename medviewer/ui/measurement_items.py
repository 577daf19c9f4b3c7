"""How measurements are drawn and edited: pyqtgraph ROIs in a view's mm coordinates."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from medviewer.ui.plane_coords import xy

MEASURE_PEN = pg.mkPen("#ffd24a", width=1.5)
SELECTED_PEN = pg.mkPen("#4ae0ff", width=2.5)


def preview_outline(kind: str, a: tuple[float, float], b: tuple[float, float]):
    """Outline (xs, ys) drawn while a distance, ellipse or rectangle is being dragged."""
    (x0, y0), (x1, y1) = a, b
    if kind == "distance":
        return np.array([x0, x1]), np.array([y0, y1])
    if kind == "rectangle":
        return np.array([x0, x1, x1, x0, x0]), np.array([y0, y0, y1, y1, y0])
    t = np.linspace(0, 2 * np.pi, 73)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
    return cx + rx * np.cos(t), cy + ry * np.sin(t)


def roi_for(kind: str, points: list[tuple[float, float]]) -> pg.ROI:
    """The editable pyqtgraph ROI that draws a measurement (points in view coordinates)."""
    if kind == "distance":
        return pg.LineSegmentROI(points, pen=MEASURE_PEN)
    if kind == "angle":
        return pg.PolyLineROI(points, closed=False, pen=MEASURE_PEN, movable=True)
    if kind == "probe":
        (x, y), size = points[0], 2.0
        roi = pg.CircleROI(
            (x - size / 2, y - size / 2), (size, size), pen=MEASURE_PEN, resizable=False
        )
        for handle in list(roi.getHandles()):
            roi.removeHandle(handle)
        return roi
    (x0, y0), (x1, y1) = points
    pos, size = (min(x0, x1), min(y0, y1)), (abs(x1 - x0), abs(y1 - y0))
    roi = (pg.EllipseROI if kind == "ellipse" else pg.RectROI)(pos, size, pen=MEASURE_PEN)
    for handle in list(roi.getHandles()):
        roi.removeHandle(handle)
    roi.addScaleHandle([1, 1], [0, 0])
    roi.addScaleHandle([0, 0], [1, 1])
    return roi


def roi_points(kind: str, roi: pg.ROI) -> list[tuple[float, float]]:
    """A measurement's points (view coordinates) from its edited ROI."""
    if kind in ("distance", "angle"):
        return [xy(roi.mapToParent(handle.pos())) for handle in roi.getHandles()]
    pos, size = roi.pos(), roi.size()
    if kind == "probe":
        return [(pos.x() + size.x() / 2, pos.y() + size.y() / 2)]
    return [(pos.x(), pos.y()), (pos.x() + size.x(), pos.y() + size.y())]
