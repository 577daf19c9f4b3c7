"""What a left-button tool of a viewport is: small handlers of clicks, drags and hovers.

The viewport routes pyqtgraph's mouse events to the current tool by name, in view
coordinates (mm on the displayed plane, see :mod:`medviewer.ui.plane_coords`): a click calls
:meth:`Tool.click`; a drag calls :meth:`Tool.press` at its start, :meth:`Tool.drag` for every
move (the start included) and :meth:`Tool.release` at its end (see :func:`route_drag`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from PySide6.QtCore import QPointF

from medviewer.ui.plane_coords import ViewPoint, xy

ToPatient = Callable[[float, float], np.ndarray]  # view (x, y) -> LPS point


class Tool(Protocol):
    """The handlers a left-button tool has (all in view coordinates)."""

    def click(self, at: ViewPoint) -> None:
        """A press and release without moving at `at`."""

    def press(self, at: ViewPoint) -> None:
        """A drag starts at `at`."""

    def drag(self, start: ViewPoint, now: ViewPoint) -> None:
        """A drag from `start` is at `now` (also called for the first and last positions)."""

    def release(self, start: ViewPoint, now: ViewPoint) -> None:
        """A drag from `start` ends at `now`."""

    def hover(self, at: ViewPoint) -> None:
        """The mouse moves over the image at `at`."""

    def cancel(self) -> None:
        """Forget a half-made input (points clicked so far)."""


class BaseTool:
    """A tool that ignores every event; tools override the handlers they need."""

    def click(self, at: ViewPoint) -> None:
        """Ignored."""

    def press(self, at: ViewPoint) -> None:
        """Ignored."""

    def drag(self, start: ViewPoint, now: ViewPoint) -> None:
        """Ignored."""

    def release(self, start: ViewPoint, now: ViewPoint) -> None:
        """Ignored."""

    def hover(self, at: ViewPoint) -> None:
        """Ignored."""

    def cancel(self) -> None:
        """Ignored."""


def route_drag(tool: Tool, ev, to_view: Callable[[QPointF], QPointF]) -> None:
    """Give one pyqtgraph drag event `ev` to `tool` as press/drag/release.

    Parameters
    ----------
    tool : Tool
    ev : pyqtgraph.GraphicsScene.mouseEvents.MouseDragEvent
    to_view : callable
        Scene position -> view coordinates (the ViewBox's ``mapSceneToView``).
    """
    start = xy(to_view(ev.buttonDownScenePos()))
    now = xy(to_view(ev.scenePos()))
    if ev.isStart():
        tool.press(start)
    tool.drag(start, now)
    if ev.isFinish():
        tool.release(start, now)
