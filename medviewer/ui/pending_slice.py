"""Slice changes from the wheel and keys, coalesced: frames that cannot be shown in time drop.

A wheel or a held arrow key can deliver events faster than a viewport reslices and paints.
Each event only moves a pending target index; one zero-delay timer shows the target once
the event loop is free, so a burst of ten notches costs one frame, not ten queued frames
(the idea of pyqtgraph's ``ImageItem``: mark dirty, render when painting).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

from medviewer.core.viewstate import ViewState


class PendingSlice:
    """The slice a viewport will show next, once the event loop gets to it.

    Parameters
    ----------
    state : callable
        The viewport's current :class:`ViewState` (None before a series is shown).
    show : callable
        Shows a slice index (the viewport's ``set_index``).
    parent : QObject, optional
        Owns the timer (the viewport), so that it dies with it.
    """

    def __init__(
        self,
        state: Callable[[], ViewState | None],
        show: Callable[[int], None],
        parent: QObject | None = None,
    ) -> None:
        self._state = state
        self._show = show
        self._target: ViewState | None = None
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.flush)

    @property
    def pending(self) -> bool:
        """Whether a slice change waits to be shown."""
        return self._target is not None

    def scroll(self, step: int) -> None:
        """Move the target `step` slices from where it is (clamped to the plane)."""
        base = self._target or self._state()
        if base is not None:
            self._aim(base.scrolled(step))

    def go_to(self, index: int) -> None:
        """Aim at slice `index` (clamped), forgetting steps not yet shown."""
        base = self._target or self._state()
        if base is not None:
            self._aim(base.at(index))

    def flush(self) -> None:
        """Show the target now (the timer's job; call it to apply at once)."""
        self._timer.stop()
        target, self._target = self._target, None
        if target is not None:
            self._show(target.index)

    def discard(self) -> None:
        """Forget the target (the viewport changed series or plane)."""
        self._timer.stop()
        self._target = None

    def _aim(self, target: ViewState) -> None:
        self._target = target
        if not self._timer.isActive():
            self._timer.start()
