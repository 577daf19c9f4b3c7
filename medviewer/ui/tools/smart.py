"""The Smart tool (key S): click to segment. A click is a point inside the object (Shift: a
point outside it), a drag a box around it, a Ctrl-drag a scribble through it (Shift: outside
it). Prompts go out in LPS mm; the window's :class:`~medviewer.ui.smart_controller.
SmartController` runs them."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from medviewer.ai.interactive import Box, Point, Prompt, Scribble
from medviewer.ui.plane_coords import ViewPoint
from medviewer.ui.tools.base import BaseTool, ToPatient


class SmartTool(BaseTool):
    """Turns clicks and drags on a plane into prompts for `send`.

    Parameters
    ----------
    to_patient : callable
        View ``(x, y)`` -> LPS point.
    send : callable
        Receives each finished prompt.
    modifiers : callable, optional
        The keyboard modifiers of the mouse event being handled (default: the application's
        current ones).
    """

    def __init__(self, to_patient: ToPatient, send: Callable[[Prompt], None],
                 modifiers: Callable[[], Qt.KeyboardModifier] | None = None) -> None:
        self._to_patient = to_patient
        self._send = send
        self._modifiers = modifiers or QGuiApplication.keyboardModifiers
        self._scribble: list[tuple[float, float, float]] | None = None

    def _held(self, modifier: Qt.KeyboardModifier) -> bool:
        return bool(self._modifiers() & modifier)

    def _lps(self, at: ViewPoint) -> tuple[float, float, float]:
        x, y, z = (float(v) for v in self._to_patient(*at))
        return (x, y, z)

    def click(self, at: ViewPoint) -> None:
        """A point inside the object, or outside it with Shift."""
        self._send(Point(self._lps(at), positive=not self._held(Qt.KeyboardModifier.ShiftModifier)))

    def press(self, at: ViewPoint) -> None:
        """A drag starts: a scribble with Ctrl, else a box."""
        held = self._held(Qt.KeyboardModifier.ControlModifier)
        self._scribble = [self._lps(at)] if held else None

    def drag(self, start: ViewPoint, now: ViewPoint) -> None:
        """A scribble collects the path."""
        if self._scribble is not None and self._lps(now) != self._scribble[-1]:
            self._scribble.append(self._lps(now))

    def release(self, start: ViewPoint, now: ViewPoint) -> None:
        """The drag's prompt: the scribble, or the box between its corners (on the plane)."""
        if self._scribble is not None:
            points, self._scribble = tuple(self._scribble), None
            self._send(Scribble(points, positive=not self._held(Qt.KeyboardModifier.ShiftModifier)))
            return
        self._send(Box(self._lps(start), self._lps(now)))

    def cancel(self) -> None:
        """Forget a scribble being drawn."""
        self._scribble = None
