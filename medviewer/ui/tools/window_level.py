"""Window/level by dragging (the right button): right widens, down raises the level."""

from __future__ import annotations

from collections.abc import Callable

from medviewer.core.viewstate import ViewState, drag_sensitivity
from medviewer.core.volume import Volume


def value_span(volume: Volume) -> float:
    """The span of values a window/level drag covers (the file window or 4096)."""
    presets = volume.metadata.window_presets
    if volume.metadata.modality == "CT":
        return 4096.0
    if presets:
        return max(presets[0].width * 2.0, 16.0)
    return 4096.0 if volume.array.dtype.itemsize > 1 else 256.0


class WindowLevelDrag:
    """Turns a drag in screen pixels into window/level changes of a view.

    Parameters
    ----------
    state : callable
        Returns the view's :class:`ViewState` (None while empty).
    volume : callable
        Returns the shown volume (None while empty).
    set_state : callable
        Shows another state.
    """

    def __init__(
        self,
        state: Callable[[], ViewState | None],
        volume: Callable[[], Volume | None],
        set_state: Callable[[ViewState], None],
    ) -> None:
        self._state = state
        self._volume = volume
        self._set_state = set_state
        self._start: ViewState | None = None  # the state the drag started from

    def drag(self, ev) -> None:
        """Handle one pyqtgraph drag event: the window of the start state, moved by the drag."""
        state, volume = self._state(), self._volume()
        if state is None or volume is None:
            return
        if ev.isStart() or self._start is None:
            self._start = state
        start = ev.buttonDownScreenPos()
        now = ev.screenPos()
        sensitivity = drag_sensitivity(value_span(volume))
        self._set_state(self._start.dragged(now.x() - start.x(), now.y() - start.y(), sensitivity))
        if ev.isFinish():
            self._start = None
