"""Measuring tools: distance, ellipse and rectangle by dragging, probe and angle by clicking.

The tools turn view points into LPS points and hand them to ``add(kind, points)`` (the view's
:meth:`~medviewer.ui.measurement_layer.MeasurementLayer.add`), which stores the measurement.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg

from medviewer.ui.measurement_items import MEASURE_PEN, preview_outline
from medviewer.ui.plane_coords import ViewPoint
from medviewer.ui.tools.base import BaseTool, ToPatient

DRAG_KINDS = ("distance", "ellipse", "rectangle")
AddMeasurement = Callable[[str, list[np.ndarray]], object]


class MeasurePreview:
    """The outline drawn while a measurement is dragged (one per view, shared by its tools)."""

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self._viewbox = viewbox
        self._curve: pg.PlotCurveItem | None = None

    def show(self, kind: str, a: ViewPoint, b: ViewPoint) -> None:
        """Draw the outline of a `kind` measurement dragged from `a` to `b`."""
        if self._curve is None:
            self._curve = pg.PlotCurveItem(pen=MEASURE_PEN)
            self._viewbox.addItem(self._curve, ignoreBounds=True)
        xs, ys = preview_outline(kind, a, b)
        self._curve.setData(xs, ys)

    def hide(self) -> None:
        """Remove the outline."""
        if self._curve is not None:
            self._viewbox.removeItem(self._curve)
            self._curve = None


class DragMeasureTool(BaseTool):
    """Distance, ellipse or rectangle: drag from one point (or corner) to the other.

    Parameters
    ----------
    kind : str
        One of ``DRAG_KINDS``.
    preview : MeasurePreview
    to_patient : callable
        View ``(x, y)`` -> LPS point.
    add : callable
        ``add(kind, points)`` stores a measurement.
    select : callable
        Selects a measurement by id (a click on the image selects none: ``""``).
    """

    def __init__(self, kind: str, preview: MeasurePreview, to_patient: ToPatient,
                 add: AddMeasurement, select: Callable[[str], None]) -> None:  # fmt: skip
        self.kind = kind
        self._preview = preview
        self._to_patient = to_patient
        self._add = add
        self._select = select

    def click(self, at: ViewPoint) -> None:
        """A click on the image clears the selection."""
        self._select("")

    def drag(self, start: ViewPoint, now: ViewPoint) -> None:
        """Show the outline from `start` to `now`."""
        self._preview.show(self.kind, start, now)

    def release(self, start: ViewPoint, now: ViewPoint) -> None:
        """Remove the outline; add the measurement unless the mouse came back to `start`."""
        self._preview.hide()
        if abs(now[0] - start[0]) + abs(now[1] - start[1]) > 1e-6:
            self._add(self.kind, [self._to_patient(*p) for p in (start, now)])


class ProbeTool(BaseTool):
    """A click measures the value under the mouse."""

    def __init__(self, to_patient: ToPatient, add: AddMeasurement) -> None:
        self._to_patient = to_patient
        self._add = add

    def click(self, at: ViewPoint) -> None:
        """Add a probe at `at`."""
        self._add("probe", [self._to_patient(*at)])


class AngleTool(BaseTool):
    """Three clicks, arm end, vertex, arm end, make an angle."""

    def __init__(self, to_patient: ToPatient, add: AddMeasurement) -> None:
        self._to_patient = to_patient
        self._add = add
        self.pending: list[np.ndarray] = []

    def click(self, at: ViewPoint) -> None:
        """The next point; the third one adds the angle."""
        self.pending.append(self._to_patient(*at))
        if len(self.pending) == 3:
            points, self.pending = self.pending, []
            self._add("angle", points)

    def cancel(self) -> None:
        """Forget the points clicked so far."""
        self.pending = []
