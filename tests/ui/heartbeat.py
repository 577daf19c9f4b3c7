"""Freeze checks a busy machine cannot fail: the event loop's pulse while work runs in a worker.

A 2 ms timer ticks on the GUI thread while some work runs. Work done in a worker thread leaves
the event loop free, so the timer ticks while it runs; work done on the GUI thread (or by a
worker that holds the GIL all along) leaves no tick, one gap as long as the work. The checks
count ticks during the work and, for long work, compare the longest gap with the work's own
duration, never with a number of milliseconds: cores busy elsewhere slow both alike. How long
the gaps are in milliseconds is a speed figure, measured by benchmarks/bench_responsiveness.py
and recorded in docs/benchmarks.md."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import Qt, QTimer

GAP_SHARE = 0.25
"""The longest event-loop gap allowed, as a share of the watched work's duration."""


class Heartbeat:
    """The ticks of a 2 ms GUI-thread timer while the ``with`` block runs."""

    def __init__(self, interval_ms: int = 2) -> None:
        self.ticks: list[float] = []
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def __enter__(self) -> Heartbeat:
        self.ticks.clear()
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.stop()

    def assert_ticked_during(self, work: WorkRecorder) -> None:
        """The event loop ticked while `work` ran (it was neither on the GUI thread nor
        holding the GIL all along)."""
        assert self._during(work), f"the event loop never ticked {self._summary(work)}"

    def assert_kept_ticking(self, work: WorkRecorder, share: float = GAP_SHARE) -> None:
        """The event loop ticked while `work` ran and never paused for `share` of its time.

        Only for work that lasts many times a busy machine's scheduling delays (seconds): a
        single delay can be a large share of shorter work.
        """
        self.assert_ticked_during(work)
        start, end = work.span
        assert self._longest_gap(work) < share * (end - start), (
            f"the event loop paused for over {share:.0%} of the work {self._summary(work)}"
        )

    def _during(self, work: WorkRecorder) -> list[float]:
        start, end = work.span
        return [t for t in self.ticks if start < t < end]

    def _longest_gap(self, work: WorkRecorder) -> float:
        """The longest time without a tick while `work` ran (its start and end count as
        ticks: work with no tick has one gap as long as the work), in seconds."""
        start, end = work.span
        marks = [start, *self._during(work), end]
        return max(b - a for a, b in itertools.pairwise(marks))

    def _summary(self, work: WorkRecorder) -> str:
        start, end = work.span
        return (
            f"while {work.what} ran: {len(self._during(work))} ticks in "
            f"{(end - start) * 1000:.0f} ms, longest gap {self._longest_gap(work) * 1000:.0f} ms"
        )


class WorkRecorder:
    """When and on which threads a function ran: wrap it with :meth:`wrap` or
    :meth:`wrap_generator`."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.gui = threading.get_ident()  # tests run on the GUI thread
        self.threads: set[int] = set()
        self.starts: list[float] = []
        self.ends: list[float] = []

    @property
    def span(self) -> tuple[float, float]:
        """perf_counter() at the first call's start and at the last call's end."""
        assert self.starts and len(self.ends) == len(self.starts), f"{self.what} did not run"
        return self.starts[0], self.ends[-1]

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """`function`, noting its thread, start and end."""

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._started()
            try:
                return function(*args, **kwargs)
            finally:
                self.ends.append(time.perf_counter())

        return recorded

    def wrap_generator(self, function: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        """Generator function `function`, noting the threads of its first and last steps, its
        start and end."""

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._started()
            try:
                value = yield from function(*args, **kwargs)
                self.threads.add(threading.get_ident())
                return value
            finally:
                self.ends.append(time.perf_counter())

        return recorded

    def assert_off_the_gui_thread(self) -> None:
        """The wrapped function ran, and never on the GUI thread."""
        assert self.threads, f"{self.what} never ran"
        assert self.gui not in self.threads, f"{self.what} ran on the GUI thread"

    def _started(self) -> None:
        self.threads.add(threading.get_ident())
        self.starts.append(time.perf_counter())
