"""The freeze checks of tests/ui/heartbeat.py catch a frozen event loop (ticks given, no clock)."""

from __future__ import annotations

import threading

import pytest

from tests.ui.heartbeat import Heartbeat, WorkRecorder


def _work(start: float, end: float, thread: int | None = None) -> WorkRecorder:
    work = WorkRecorder("the work")
    work.starts, work.ends = [start], [end]
    work.threads = {threading.get_ident() if thread is None else thread}
    return work


def _beat(*ticks: float) -> Heartbeat:
    beat = Heartbeat()
    beat.ticks = list(ticks)
    return beat


def test_work_in_a_worker_with_ticks_throughout_passes(qapp) -> None:
    work = _work(10.0, 20.0, thread=threading.get_ident() + 1)
    beat = _beat(9.0, *[10.5 + 0.5 * i for i in range(19)], 20.5)
    work.assert_off_the_gui_thread()
    beat.assert_ticked_during(work)
    beat.assert_kept_ticking(work)


def test_work_on_the_gui_thread_fails(qapp) -> None:
    with pytest.raises(AssertionError, match="the work ran on the GUI thread"):
        _work(10.0, 20.0).assert_off_the_gui_thread()


def test_no_tick_while_the_work_ran_fails(qapp) -> None:
    beat, work = _beat(9.0, 10.0, 20.0, 21.0), _work(10.0, 20.0)  # ticks at the edges only
    with pytest.raises(AssertionError, match="never ticked while the work ran: 0 ticks"):
        beat.assert_ticked_during(work)


def test_a_pause_of_a_quarter_of_the_work_fails(qapp) -> None:
    beat, work = _beat(11.0, 12.0, 14.6, 15.0, 19.0), _work(10.0, 20.0)  # 4 s of 10 s: 40 %
    beat.assert_ticked_during(work)
    with pytest.raises(AssertionError, match=r"over 25% of the work .* longest gap 4000 ms"):
        beat.assert_kept_ticking(work)


def test_work_that_never_ran_fails(qapp) -> None:
    with pytest.raises(AssertionError, match="the work never ran"):
        WorkRecorder("the work").assert_off_the_gui_thread()


def test_the_recorder_notes_the_threads_and_span_of_calls_and_generators(qapp) -> None:
    def steps(n: int):
        yield from range(n)
        return "done"

    work = WorkRecorder("the work")
    twice, stepped = work.wrap(lambda x: 2 * x), work.wrap_generator(steps)
    out: list[object] = []

    def run() -> None:
        out.append(twice(4))
        out.append(list(stepped(3)))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert out == [8, [0, 1, 2]]
    assert work.threads == {worker.ident}
    start, end = work.span
    assert len(work.starts) == len(work.ends) == 2 and start <= end
    work.assert_off_the_gui_thread()
