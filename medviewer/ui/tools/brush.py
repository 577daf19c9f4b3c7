"""Brush and eraser: paint the label map of the shown segmentation, one undo step a stroke."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medviewer.core.findings import AIResult
from medviewer.core.geometry import PlaneSlice
from medviewer.ui.overlay_items import BrushCursor, PlaneOverlay, stroke_points, stroke_voxels
from medviewer.ui.plane_coords import ViewPoint
from medviewer.ui.tools.base import BaseTool, ToPatient

BRUSH_TOOLS = ("brush", "eraser")


class BrushPainter:
    """Paints disks into the label map of a view's overlay; a stroke is one undo step.

    Parameters
    ----------
    overlay : PlaneOverlay
        The view's overlay (its result is painted).
    plane : callable
        Returns the shown :class:`PlaneSlice` (None while empty).
    fits : callable
        True when the overlay's result lies on the shown volume's grid.
    painted : callable
        Called with the result after a dab changed labels (redraw, tell the other views).
    edited : callable
        Called with the result when a stroke that changed labels ends.

    Attributes
    ----------
    radius_mm : float
        Brush radius.
    """

    def __init__(
        self,
        overlay: PlaneOverlay,
        plane: Callable[[], PlaneSlice | None],
        fits: Callable[[], bool],
        painted: Callable[[AIResult], None],
        edited: Callable[[AIResult], None],
    ) -> None:
        self._overlay = overlay
        self._plane = plane
        self._fits = fits
        self._painted = painted
        self._edited = edited
        self.radius_mm = 3.0
        self._label: int | None = None
        self._last: np.ndarray | None = None  # LPS of the stroke's last dab

    @property
    def label(self) -> int:
        """The label painted (default: the first segment of the overlay, else 1)."""
        if self._label is not None:
            return self._label
        result = self._overlay.result
        return next(iter(result.segments), 1) if result is not None else 1

    @label.setter
    def label(self, label: int | None) -> None:
        self._label = None if label is None else int(label)

    def paint(self, points: list[np.ndarray], erase: bool) -> int:
        """Paint (or erase) a disk at each LPS point; returns how many voxels changed."""
        result = self._segmentation()
        plane_slice = self._plane()
        if result is None or plane_slice is None or not points:
            return 0
        assert result.label_map is not None
        voxels = stroke_voxels(plane_slice, result, points, self.radius_mm)
        changed = result.history.dab(result.label_map, voxels, self.label, erase)
        if changed:
            result.touch()
            self._painted(result)
        return changed

    def start_stroke(self, point: np.ndarray, erase: bool) -> None:
        """Paint the first dab of a dragged stroke."""
        self.paint([point], erase)
        self._last = point

    def stroke_to(self, point: np.ndarray, erase: bool) -> None:
        """Paint dabs from the stroke's last one to `point`, half a radius apart."""
        self.paint(stroke_points(self._last, point, self.radius_mm), erase)
        self._last = point

    def end_stroke(self) -> bool:
        """Close the stroke as one undo step; True (and ``edited``) when it changed labels."""
        self._last = None
        result = self._overlay.result
        if result is None or result.label_map is None:
            return False
        if not result.history.end_stroke(result.label_map):
            return False
        self._edited(result)
        return True

    def _segmentation(self) -> AIResult | None:
        result = self._overlay.result
        if result is None or result.label_map is None or self._plane() is None:
            return None
        return result if self._fits() else None


class BrushTool(BaseTool):
    """The brush (``erase=False``) or the eraser: click for a dab, drag for a stroke.

    Parameters
    ----------
    painter : BrushPainter
        The view's painter (shared by brush and eraser).
    cursor : BrushCursor
        The circle that follows the mouse.
    to_patient : callable
        View ``(x, y)`` -> LPS point.
    erase : bool
    """

    def __init__(self, painter: BrushPainter, cursor: BrushCursor, to_patient: ToPatient,
                 erase: bool) -> None:  # fmt: skip
        self._painter = painter
        self._cursor = cursor
        self._to_patient = to_patient
        self.erase = erase

    def click(self, at: ViewPoint) -> None:
        """One dab, one undo step."""
        self._painter.paint([self._to_patient(*at)], self.erase)
        self._painter.end_stroke()

    def press(self, at: ViewPoint) -> None:
        """The press position is the stroke's first dab."""
        self._painter.start_stroke(self._to_patient(*at), self.erase)

    def drag(self, start: ViewPoint, now: ViewPoint) -> None:
        """Paint the path to `now`."""
        self._painter.stroke_to(self._to_patient(*now), self.erase)

    def release(self, start: ViewPoint, now: ViewPoint) -> None:
        """The stroke ends (one undo step)."""
        self._painter.end_stroke()

    def hover(self, at: ViewPoint) -> None:
        """The brush's outline follows the mouse."""
        self._cursor.show_at(*at, self._painter.radius_mm)
