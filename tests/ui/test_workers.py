"""Background jobs deliver results, errors and cancellation to the GUI thread."""

from __future__ import annotations

import threading
import time

from medviewer.core.errors import CancelledError, LoadError
from medviewer.ui import workers
from tests.waits import WAIT_MS


def test_function_job_returns_in_gui_thread(qtbot) -> None:
    seen: dict = {}
    gui = threading.get_ident()

    def task(cancel):
        seen["thread"] = threading.get_ident()
        return 41 + 1

    def returned(value):
        seen["value"] = value
        seen["callback_thread"] = threading.get_ident()

    job = workers.start(task, returned=returned)
    qtbot.waitUntil(lambda: job.done, timeout=WAIT_MS)
    assert seen["value"] == 42
    assert seen["thread"] != gui
    assert seen["callback_thread"] == gui


def test_generator_job_streams_values(qtbot) -> None:
    got: list[int] = []
    result: list[str] = []

    def task(cancel):
        yield from range(5)
        return "end"

    job = workers.start(task, yielded=got.append, returned=result.append)
    qtbot.waitUntil(lambda: job.done and bool(result), timeout=WAIT_MS)
    assert got == [0, 1, 2, 3, 4]
    assert result == ["end"]


def test_errors_reach_errored_not_returned(qtbot) -> None:
    errors: list[BaseException] = []
    returned: list = []

    def task(cancel):
        raise LoadError("/x/y.dcm: truncated")

    job = workers.start(task, returned=returned.append, errored=errors.append)
    qtbot.waitUntil(lambda: job.done and bool(errors), timeout=WAIT_MS)
    assert isinstance(errors[0], LoadError) and "truncated" in str(errors[0])
    assert returned == []


def test_cancel_stops_a_long_task_without_error(qtbot) -> None:
    errors: list = []
    steps: list[int] = []

    def task(cancel):
        for k in range(10_000):
            if cancel():
                raise CancelledError("stop")
            time.sleep(0.001)
            steps.append(k)

    job = workers.start(task, errored=errors.append)
    qtbot.waitUntil(lambda: len(steps) > 3, timeout=WAIT_MS)
    job.cancel()
    qtbot.waitUntil(lambda: job.done, timeout=WAIT_MS)
    assert errors == []
    assert len(steps) < 10_000
    assert workers.active_jobs() == []


def test_progress_callback_reaches_gui_thread(qtbot) -> None:
    calls: list[tuple[int, int, bool]] = []
    gui = threading.get_ident()

    def task(cancel, progress):
        for k in range(1, 4):
            progress(k, 3)
        return "ok"

    job = workers.start(
        task, progress=lambda done, total: calls.append((done, total, threading.get_ident() == gui))
    )
    qtbot.waitUntil(lambda: job.done and len(calls) == 3, timeout=WAIT_MS)
    assert calls == [(1, 3, True), (2, 3, True), (3, 3, True)]


def test_workers_leave_the_warning_filters_alone(qtbot) -> None:
    import warnings

    before = (list(warnings.filters), warnings.showwarning)
    gate = threading.Event()
    seen: list[str] = []

    def slow(cancel):
        gate.wait(5)
        return 1

    def quick(cancel):
        seen.append(str((list(warnings.filters), warnings.showwarning) == before))
        return 2

    jobs = [workers.start(slow), workers.start(quick)]
    qtbot.waitUntil(lambda: jobs[1].done, timeout=WAIT_MS)
    assert seen == ["True"]  # a running worker did not swap the filters of the others
    assert (list(warnings.filters), warnings.showwarning) == before
    gate.set()
    qtbot.waitUntil(lambda: jobs[0].done, timeout=WAIT_MS)
    assert (list(warnings.filters), warnings.showwarning) == before


def test_a_cancelled_generator_is_closed_in_its_worker_thread(qtbot) -> None:
    """Its ``finally`` runs (buffers freed, helper threads joined) before the job finishes."""
    log: list = []
    gui = threading.get_ident()

    def task(cancel):  # never checks `cancel` itself
        try:
            for i in range(10_000):
                time.sleep(0.005)
                yield i
        finally:
            log.append(threading.get_ident())

    finished: list = []
    steps: list = []
    job = workers.start(task, yielded=steps.append, finished=lambda: finished.append(log[:]))
    qtbot.waitUntil(lambda: bool(steps), timeout=WAIT_MS)  # the generator is running
    job.cancel()
    qtbot.waitUntil(lambda: job.done and bool(finished), timeout=WAIT_MS)
    assert finished == [log] and len(log) == 1 and log[0] != gui


def test_a_finished_job_lets_go_of_its_task_and_result(qtbot) -> None:
    import gc
    import weakref

    class Payload:
        pass

    payload = Payload()
    ref = weakref.ref(payload)
    job = workers.start(lambda cancel, p=payload: p, returned=lambda _value: None)
    del payload
    qtbot.waitUntil(lambda: job.done, timeout=WAIT_MS)
    assert job.worker is None
    # The worker forgets its task before it reports `finished`, so nothing depends on when
    # the thread pool lets go of the runnable itself (its thread's next task, on a busy day).
    gc.collect()
    assert ref() is None, "the finished job still holds its task's arguments"


# superqt's ``WorkerBase.run`` (0.6.0 to 0.9.0, docstring left out), which
# ``workers._ThreadSafeRun.run`` copies without the ``warnings.catch_warnings()`` block.
SUPERQT_WORKERBASE_RUN = """\
self.started.emit()
self._running = True
try:
    with warnings.catch_warnings():
        warnings.filterwarnings('always')
        warnings.showwarning = lambda *w: self.warned.emit(w)
        result = self.work()
    if isinstance(result, Exception):
        if isinstance(result, RuntimeError):
            warnings.warn(f'RuntimeError in aborted thread: {result}', RuntimeWarning, stacklevel=2)
            return
        else:
            raise result
    if not self.abort_requested:
        self.returned.emit(result)
except Exception as exc:
    self.errored.emit(exc)
self._running = False
self.finished.emit()
self._finished.emit(self)"""


def _body(function) -> str:
    """The statements of `function`, docstring left out, as ``ast.unparse`` writes them."""
    import ast
    import inspect
    import textwrap

    (tree,) = ast.parse(textwrap.dedent(inspect.getsource(function))).body
    body = tree.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return "\n".join(ast.unparse(statement) for statement in body)


def _upgrade_message(what: str) -> str:
    from importlib.metadata import version

    return (
        f"superqt {version('superqt')} changed {what}, which medviewer/ui/workers.py relies on "
        "(_ThreadSafeRun copies WorkerBase.run and sets its private attributes): port the "
        "change to _ThreadSafeRun, then update this test's reference."
    )


def test_the_copied_run_matches_the_installed_superqt() -> None:
    import difflib

    from superqt.utils._qthreading import WorkerBase

    installed = _body(WorkerBase.run)
    diff = "\n".join(
        difflib.unified_diff(
            SUPERQT_WORKERBASE_RUN.splitlines(), installed.splitlines(), "copied", "installed"
        )
    )
    assert installed == SUPERQT_WORKERBASE_RUN, f"{_upgrade_message('WorkerBase.run')}\n{diff}"
    assert workers._FunctionWorker.run is workers._ThreadSafeRun.run
    assert workers._GeneratorWorker.run is workers._ThreadSafeRun.run


def test_the_private_attributes_the_copy_uses_exist_in_the_installed_superqt(qtbot) -> None:
    def generator():
        yield 1

    function_worker = workers._FunctionWorker(print, "x")
    generator_worker = workers._GeneratorWorker(generator)
    needed = {
        function_worker: {"_running", "_func", "_args", "_kwargs"},
        generator_worker: {"_running", "_gen"},
    }
    for worker, names in needed.items():
        missing = names - vars(worker).keys()
        assert not missing, _upgrade_message(f"the worker attributes {sorted(missing)}")
        for signal in ("started", "returned", "errored", "finished", "_finished"):
            assert hasattr(worker, signal), _upgrade_message(f"the signal {signal!r}")
        assert worker.abort_requested is False, _upgrade_message("abort_requested")


def test_long_jobs_do_not_hold_up_a_short_one(qtbot) -> None:
    """Jobs that wait (a PACS retrieve, the AI warm-up, one per core and more) leave threads
    for a series load: it finishes while they still wait."""
    release = threading.Event()

    def waits(cancel):
        while not release.wait(0.01):
            if cancel():
                raise CancelledError("stopped")

    long_jobs = [workers.start(waits, name=f"long {i}") for i in range(workers.MIN_THREADS - 1)]
    short = workers.start(lambda cancel: "loaded", name="short")
    try:
        qtbot.waitUntil(lambda: short.done, timeout=WAIT_MS)
        assert not any(job.done for job in long_jobs)
    finally:
        release.set()
        qtbot.waitUntil(lambda: all(job.done for job in long_jobs), timeout=WAIT_MS)
