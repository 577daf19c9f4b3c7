"""The crosshair of a viewport: its two lines on an LPS point, and the navigate tool."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
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
    """Clicking or dragging puts the crosshair under the mouse (the linked views follow).

    Parameters
    ----------
    to_patient : callable
        View ``(x, y)`` -> LPS point.
    point_at : callable
        Takes the LPS point the user pointed at.
    """

    def __init__(self, to_patient: ToPatient, point_at: Callable[[np.ndarray], None]) -> None:
        self._to_patient = to_patient
        self._point_at = point_at

    def click(self, at: ViewPoint) -> None:
        """Point at `at`."""
        self._point_at(self._to_patient(*at))

    def drag(self, start: ViewPoint, now: ViewPoint) -> None:
        """Point at `now`."""
        self._point_at(self._to_patient(*now))
