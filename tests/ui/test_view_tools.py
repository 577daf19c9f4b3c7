"""The viewport's input handlers on their own: drag routing, measuring tools, keys, cine."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QKeyEvent

from medviewer.core.viewstate import ViewState
from medviewer.ui.cine import Cine
from medviewer.ui.tools.base import BaseTool, route_drag
from medviewer.ui.tools.keys import handle_key
from medviewer.ui.tools.measure import AngleTool, DragMeasureTool, ProbeTool
from tests.waits import WAIT_MS


def lps(x: float, y: float) -> np.ndarray:
    """A stand-in view -> patient mapping: z = 0, x and y doubled."""
    return np.array([2.0 * x, 2.0 * y, 0.0])


class Recorder(BaseTool):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def press(self, at):
        self.calls.append(("press", at))

    def drag(self, start, now):
        self.calls.append(("drag", start, now))

    def release(self, start, now):
        self.calls.append(("release", start, now))


class DragEvent:
    """The part of pyqtgraph's MouseDragEvent the router reads."""

    def __init__(self, down, now, start=False, finish=False) -> None:
        self._down, self._now, self._start, self._finish = down, now, start, finish

    def buttonDownScenePos(self):
        return QPointF(*self._down)

    def scenePos(self):
        return QPointF(*self._now)

    def isStart(self):
        return self._start

    def isFinish(self):
        return self._finish


def test_a_drag_is_press_then_drags_then_release() -> None:
    tool = Recorder()
    for event in (DragEvent((1, 2), (1, 2), start=True), DragEvent((1, 2), (3, 4)),
                  DragEvent((1, 2), (5, 6), finish=True)):  # fmt: skip
        route_drag(tool, event, lambda p: p * 0.5)  # scene -> view: half
    assert tool.calls == [
        ("press", (0.5, 1.0)),
        ("drag", (0.5, 1.0), (0.5, 1.0)),
        ("drag", (0.5, 1.0), (1.5, 2.0)),
        ("drag", (0.5, 1.0), (2.5, 3.0)),
        ("release", (0.5, 1.0), (2.5, 3.0)),
    ]


def test_the_angle_tool_adds_after_three_clicks_and_cancel_forgets() -> None:
    added: list = []
    tool = AngleTool(lps, lambda kind, points: added.append((kind, points)))
    tool.click((1.0, 1.0))
    tool.click((2.0, 2.0))
    tool.cancel()
    for at in ((3.0, 0.0), (0.0, 0.0), (0.0, 3.0)):
        tool.click(at)
    ((kind, points),) = added
    assert kind == "angle"
    assert np.array_equal(points, [lps(3, 0), lps(0, 0), lps(0, 3)])
    assert tool.pending == []


def test_probe_click_adds_one_point() -> None:
    added: list = []
    ProbeTool(lps, lambda kind, points: added.append((kind, points))).click((1.5, 2.5))
    ((kind, (point,)),) = added
    assert kind == "probe" and np.array_equal(point, lps(1.5, 2.5))


def test_a_drag_back_to_its_start_measures_nothing(qapp) -> None:
    class Preview:
        def __init__(self) -> None:
            self.shown: list = []

        def show(self, kind, a, b):
            self.shown.append((kind, a, b))

        def hide(self):
            self.shown.append("hidden")

    preview, added, selected = Preview(), [], []
    def add(kind, points):
        added.append((kind, points))

    tool = DragMeasureTool("distance", preview, lps, add, selected.append)  # type: ignore[arg-type]
    tool.drag((1.0, 1.0), (4.0, 5.0))
    tool.release((1.0, 1.0), (1.0, 1.0))
    assert added == [] and preview.shown[-1] == "hidden"
    tool.release((1.0, 1.0), (4.0, 5.0))
    ((kind, points),) = added
    assert kind == "distance" and np.array_equal(points, [lps(1, 1), lps(4, 5)])
    tool.click((2.0, 2.0))
    assert selected == [""]  # a click on the image clears the selection


class _Recorder:
    def __init__(self, calls: list[tuple], prefix: str = "") -> None:
        self._calls, self._prefix = calls, prefix

    def __getattr__(self, name):
        def record(*args):
            self._calls.append((self._prefix + name, *args))
            return True  # apply_preset: the key has a preset

        return record


class KeyedView:
    def __init__(self, count: int) -> None:
        self.state = ViewState("axial", 3, count, 40.0, 400.0)
        self.calls: list[tuple] = []
        self.pending_slice = _Recorder(self.calls, "pending ")

    def __getattr__(self, name):
        return getattr(_Recorder(self.calls), name)


@pytest.mark.parametrize(
    ("key", "text", "call"),
    [
        # Slice keys aim the pending slice (shown once the event loop is free).
        (Qt.Key.Key_PageUp, "", ("pending scroll", -2)),  # 10 % of 20 slices
        (Qt.Key.Key_Down, "", ("pending scroll", 1)),
        (Qt.Key.Key_End, "", ("pending go_to", 19)),
        (Qt.Key.Key_I, "i", ("set_invert", True)),
        (Qt.Key.Key_Escape, "", ("cancel_pending",)),
        (Qt.Key.Key_Backspace, "", ("delete_selected",)),
        (Qt.Key.Key_4, "4", ("apply_preset", 4)),
    ],
)
def test_the_key_table(qapp, key, text, call) -> None:
    view = KeyedView(20)
    event = QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier, text)
    assert handle_key(view, event)  # type: ignore[arg-type]
    assert view.calls == [call]


def test_keys_without_an_action_are_not_taken(qapp) -> None:
    view = KeyedView(20)
    event = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Q, Qt.KeyboardModifier.NoModifier, "q")
    assert not handle_key(view, event)  # type: ignore[arg-type]
    assert view.calls == []


def test_cine_needs_two_slices_and_wraps(qtbot) -> None:
    from PySide6.QtCore import QObject

    owner, shown = QObject(), []
    state = ViewState("axial", 4, 5, 40.0, 400.0)
    cine = Cine(owner, lambda: state, shown.append)
    cine.play(50)
    assert cine.playing
    qtbot.waitUntil(lambda: len(shown) > 0, timeout=WAIT_MS)
    assert shown[0] == 0  # after the last slice, the first
    cine.stop()
    assert not cine.playing
    state = ViewState("axial", 0, 1, 40.0, 400.0)
    cine.play(10)
    assert not cine.playing
