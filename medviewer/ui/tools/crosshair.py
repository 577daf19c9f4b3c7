"""The crosshair of a viewport: its two lines on an LPS point, and the navigate tool."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from medviewer.core.geometry import PlaneSlice
from medviewer.ui.plane_coords import ViewPoint, patient_to_view
from medviewer.ui.tools.base import BaseTool, ToPatient

CROSSHAIR_PEN = pg.mkPen(QColor(80, 200, 255, 170), width=1)
CROSSHAIR_Z = 5


class Crosshair:
    """Two lines through an LPS point, drawn on the plane that shows it.

    Parameters
    ----------
    viewbox : pyqtgraph.ViewBox

    Attributes
    ----------
    point : numpy.ndarray or None
        The LPS point (None: no crosshair).
    visible : bool
        False hides the lines whatever the point.
    h_line, v_line : pyqtgraph.InfiniteLine
    """

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self.point: np.ndarray | None = None
        self.visible = True
        self.h_line = pg.InfiniteLine(angle=0, pen=CROSSHAIR_PEN, movable=False)
        self.v_line = pg.InfiniteLine(angle=90, pen=CROSSHAIR_PEN, movable=False)
        for line in (self.h_line, self.v_line):
            line.setVisible(False)
            line.setZValue(CROSSHAIR_Z)
            viewbox.addItem(line, ignoreBounds=True)

    def place(self, plane_slice: PlaneSlice | None) -> None:
        """Draw the lines where the point falls on `plane_slice` (hidden without one)."""
        point = self.point
        shown = self.visible and point is not None and plane_slice is not None
        if shown:
            assert point is not None and plane_slice is not None
            x, y, _ = patient_to_view(plane_slice, point)
            self.v_line.setPos(x)
            self.h_line.setPos(y)
        self.v_line.setVisible(shown)
        self.h_line.setVisible(shown)


class NavigateTool(BaseTool):
    """Clicking or dragging puts the crosshair under the mouse (the linked views follow);
    Alt+drag turns the crosshair lines about their crossing, rotating the other two planes
    about this view's normal (true oblique MPR).

    Parameters
    ----------
    to_patient : callable
        View ``(x, y)`` -> LPS point.
    point_at : callable
        Takes the LPS point the user pointed at.
    rotate : callable, optional
        ``rotate(degrees)``: turn the MPR frame about this view's normal (counter-clockwise
        on screen for positive degrees).
    centre : callable, optional
        The crosshair's crossing in view coordinates (None: no rotation).
    modifiers : callable, optional
        The keyboard modifiers of the mouse event being handled.
    """

    def __init__(self, to_patient: ToPatient, point_at: Callable[[np.ndarray], None],
                 rotate: Callable[[float], None] | None = None,
                 centre: Callable[[], ViewPoint | None] | None = None,
                 modifiers: Callable[[], Qt.KeyboardModifier] | None = None) -> None:
        self._to_patient = to_patient
        self._point_at = point_at
        self._rotate, self._centre, self._modifiers = rotate, centre, modifiers
        self._last: ViewPoint | None = None

    def click(self, at: ViewPoint) -> None:
        """Point at `at`."""
        self._point_at(self._to_patient(*at))

    def drag(self, start: ViewPoint, now: ViewPoint) -> None:
        """Point at `now`, or (Alt) rotate by the angle swept about the crossing."""
        alt = self._modifiers is not None and bool(
            self._modifiers() & Qt.KeyboardModifier.AltModifier)
        centre = self._centre() if self._centre is not None else None
        if alt and self._rotate is not None and centre is not None:
            previous = self._last if self._last is not None else start
            self._rotate(swept_degrees(centre, previous, now))
            self._last = now
            return
        self._point_at(self._to_patient(*now))

    def release(self, start: ViewPoint, now: ViewPoint) -> None:
        """The drag ended."""
        self._last = None


def swept_degrees(centre: ViewPoint, before: ViewPoint, after: ViewPoint) -> float:
    """The angle from `before` to `after` about `centre`, in degrees, counter-clockwise on
    screen (view y grows downwards)."""
    a = np.arctan2(before[1] - centre[1], before[0] - centre[0])
    b = np.arctan2(after[1] - centre[1], after[0] - centre[0])
    turn = (b - a + np.pi) % (2 * np.pi) - np.pi
    return float(-np.degrees(turn))
