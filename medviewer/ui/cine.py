"""Cine playback of a viewport: a timer that steps through the slices and loops.

A QTimer never queues timeouts: while a frame takes longer than the interval, the ticks that
could not be served are dropped, so playback slows down instead of building a backlog.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

from medviewer.core.viewstate import ViewState


class Cine:
    """Loops a view through its slices.

    Parameters
    ----------
    parent : QObject
        Owner of the timer (the view).
    state : callable
        Returns the view's current :class:`ViewState` (None while empty).
    show : callable
        Shows slice ``index`` of the plane.
    """

    def __init__(
        self,
        parent: QObject,
        state: Callable[[], ViewState | None],
        show: Callable[[int], None],
    ) -> None:
        self._state = state
        self._show = show
        self._timer = QTimer(parent)
        self._timer.timeout.connect(self._step)

    def play(self, fps: float) -> None:
        """Loop through the slices at `fps` frames per second (needs two slices or more)."""
        state = self._state()
        if state is not None and state.count > 1:
            self._timer.start(max(int(1000 / max(fps, 0.5)), 1))

    def stop(self) -> None:
        """Stop the loop."""
        self._timer.stop()

    @property
    def playing(self) -> bool:
        """True while the loop runs."""
        return self._timer.isActive()

    def _step(self) -> None:
        state = self._state()
        if state is not None:
            self._show((state.index + 1) % state.count)
