"""The keyboard of a viewport: a table from keys to view actions, and number-key presets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent

from medviewer.core.viewstate import ViewState
from medviewer.ui.pending_slice import PendingSlice


class KeyedView(Protocol):
    """The view actions keys call (a :class:`~medviewer.ui.slice_view.SliceView`)."""

    state: ViewState | None
    pending_slice: PendingSlice

    def scroll(self, step: int) -> None: ...
    def set_index(self, index: int) -> None: ...
    def set_invert(self, invert: bool) -> None: ...
    def cycle_slab(self) -> None: ...
    def step_slab(self, step: int) -> None: ...
    def apply_preset(self, key: int) -> bool: ...
    def reset(self) -> None: ...
    def fit(self) -> None: ...
    def delete_selected(self) -> None: ...
    def cancel_pending(self) -> None: ...
    def accept_pending(self) -> None: ...


def _page(view: KeyedView) -> int:
    return max(1, (view.state.count // 10) if view.state else 1)  # 10 % of the slices


def _last(view: KeyedView) -> int:
    return (view.state.count - 1) if view.state else 0


def _toggle_invert(view: KeyedView) -> None:
    if view.state:
        view.set_invert(not view.state.invert)


_K = Qt.Key
KEY_ACTIONS: dict[Qt.Key, Callable[[KeyedView], None]] = {
    # Slice keys move a pending target: a held key never queues frames (see pending_slice).
    _K.Key_Down: lambda v: v.pending_slice.scroll(1),
    _K.Key_Right: lambda v: v.pending_slice.scroll(1),
    _K.Key_Up: lambda v: v.pending_slice.scroll(-1),
    _K.Key_Left: lambda v: v.pending_slice.scroll(-1),
    _K.Key_PageDown: lambda v: v.pending_slice.scroll(_page(v)),
    _K.Key_PageUp: lambda v: v.pending_slice.scroll(-_page(v)),
    _K.Key_Home: lambda v: v.pending_slice.go_to(0),
    _K.Key_End: lambda v: v.pending_slice.go_to(_last(v)),
    _K.Key_I: _toggle_invert,
    _K.Key_M: lambda v: v.cycle_slab(),
    _K.Key_BracketRight: lambda v: v.step_slab(1),
    _K.Key_BracketLeft: lambda v: v.step_slab(-1),
    _K.Key_R: lambda v: v.reset(),
    _K.Key_F: lambda v: v.fit(),
    _K.Key_Delete: lambda v: v.delete_selected(),
    _K.Key_Backspace: lambda v: v.delete_selected(),
    _K.Key_Escape: lambda v: v.cancel_pending(),
    _K.Key_Return: lambda v: v.accept_pending(),
    _K.Key_Enter: lambda v: v.accept_pending(),
}


KEY_HELP: list[tuple[tuple[Qt.Key, ...], str]] = [
    ((_K.Key_Down, _K.Key_Right), "next slice (hold to scroll)"),
    ((_K.Key_Up, _K.Key_Left), "previous slice"),
    ((_K.Key_PageDown,), "10 % of the slices forward"),
    ((_K.Key_PageUp,), "10 % of the slices back"),
    ((_K.Key_Home,), "first slice"),
    ((_K.Key_End,), "last slice"),
    ((_K.Key_I,), "invert the grey scale"),
    ((_K.Key_M,), "thick slab: off, MIP, MinIP, average (10 mm)"),
    ((_K.Key_BracketRight,), "thicker slab (a MIP from off)"),
    ((_K.Key_BracketLeft,), "thinner slab (off below 3 mm)"),
    ((_K.Key_R,), "reset the view"),
    ((_K.Key_F,), "fit the image to the view"),
    ((_K.Key_Delete, _K.Key_Backspace), "delete the selected measurement"),
    ((_K.Key_Escape,), "cancel: a slice being scrolled to, the Smart object under way"),
    ((_K.Key_Return, _K.Key_Enter), "accept: the Smart object under way"),
]
"""What each viewport key does, for the shortcut help (every key of :data:`KEY_ACTIONS`)."""


def handle_key(view: KeyedView, event: QKeyEvent) -> bool:
    """Run the action of `event`'s key on `view` (0-9: window presets); False when none."""
    action = KEY_ACTIONS.get(event.key())  # type: ignore[call-overload]
    if action is not None:
        action(view)
        return True
    text = event.text()
    return text.isdigit() and view.apply_preset(int(text))
