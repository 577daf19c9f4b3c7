"""Background jobs: the only module that starts threads.

A task is a plain (Qt-free) callable or generator function that takes one keyword argument,
``cancel``: a callable returning True once the job was cancelled. It runs in Qt's global
thread pool through superqt's workers; everything it yields, returns or raises reaches the
GUI thread through signals, so the callbacks given to :func:`start` may touch widgets.

A :class:`~medviewer.core.errors.CancelledError` raised by a cancelled task is not an error:
the job just finishes.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal
from superqt.utils import FunctionWorker, GeneratorWorker, create_worker

from medviewer.core.errors import CancelledError

log = logging.getLogger(__name__)

Callback = Callable[..., Any] | None

_ACTIVE: set[Job] = set()

MIN_THREADS = 8
"""Worker threads at least, whatever the core count. Qt's default (one per core: 2 here)
let two long jobs (a PACS retrieve and the AI engine's warm-up, measured: 1.4 s) hold up
the load of a series the user opens; most jobs wait on disk, network or numpy/torch code
that releases the GIL, so more threads than cores costs little."""


class _ThreadSafeRun:
    """superqt's ``WorkerBase.run`` without its ``warnings.catch_warnings()`` block.

    ``catch_warnings`` swaps the process-wide warning filters and ``showwarning``; from
    several worker threads at once the saves and restores interleave, leaving filters (or a
    dead worker's ``showwarning``) in place for every other thread. Warnings here go through
    the normal machinery of the thread that raises them. A ``RuntimeError`` from a generator
    task is an error like any other (superqt warns and returns without ``finished``).

    It sets superqt's private attributes; tests/ui/test_workers.py checks the copy against
    the installed superqt, and pyproject.toml keeps superqt below its next major version.
    """

    def run(self) -> None:
        self.started.emit()
        self._running = True
        try:
            result = self.work()
            if isinstance(result, Exception):
                raise result
            if not self.abort_requested:
                self.returned.emit(result)
        except Exception as exc:  # noqa: BLE001 (any failure is reported, never lost)
            self.errored.emit(exc)
        self._running = False
        self._forget_task()
        self.finished.emit()
        self._finished.emit(self)

    def _forget_task(self) -> None:
        """Drop the task, its arguments and its generator once it has run: the thread pool
        may keep this runnable alive after ``run`` returns (until its thread's next task), and
        the arguments may be a whole volume."""
        for name in ("_func", "_args", "_kwargs", "_gen"):
            if name in self.__dict__:
                setattr(self, name, None)


class _FunctionWorker(_ThreadSafeRun, FunctionWorker):
    pass


class _GeneratorWorker(_ThreadSafeRun, GeneratorWorker):
    pass


class Job:
    """A running background task.

    Attributes
    ----------
    name : str
        What the job does (for logs and the status bar).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self.worker: Any = None
        self.relay: QObject | None = None

    def cancel(self) -> None:
        """Ask the task to stop at its next cancellation check.

        A generator task is also stopped at its next ``yield``: it is closed there, in the
        worker thread, so its ``finally`` blocks run (superqt's ``quit()`` would leave it
        suspended, holding its buffers).
        """
        self._cancelled.set()

    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called (the task's ``cancel`` argument)."""
        return self._cancelled.is_set()

    @property
    def done(self) -> bool:
        """True once the task finished, failed or was cancelled."""
        return self._done.is_set()

    def _finish(self) -> None:
        self._done.set()
        _ACTIVE.discard(self)
        # The worker's signal connections hold closures that hold this job; dropping the
        # worker breaks that cycle (Qt-held, invisible to gc), so the task, its arguments and
        # whatever it returned are freed - in this (the GUI) thread, see _bury.
        _bury(self.worker)
        self.worker = None
        self.relay = None


_BURIED: list[Any] = []
_SWEEPER: QTimer | None = None


def _bury(worker: Any) -> None:
    """Keep a finished worker until the thread pool has deleted its C++ runnable, then let
    it go from the GUI thread.

    The pool deletes a runnable in its own thread once ``run`` returns. Were the Python
    wrapper's last reference dropped then, its signals QObject (made in the GUI thread,
    whose queued signals may still be delivered) would be destroyed in the pool thread: a
    segfault in ``QObject::~QObject``, measured about once in four runs of tests/ui.
    """
    global _SWEEPER
    if worker is not None:
        _BURIED.append(worker)
    _BURIED[:] = [w for w in _BURIED if shiboken6.isValid(w) and w.autoDelete()]
    if _BURIED:
        if _SWEEPER is None:
            _SWEEPER = QTimer()
            _SWEEPER.setSingleShot(True)
            _SWEEPER.timeout.connect(lambda: _bury(None))
        if not _SWEEPER.isActive():
            _SWEEPER.start(100)


def start(
    task: Callable[..., Any],
    *,
    name: str = "job",
    yielded: Callback = None,
    returned: Callback = None,
    errored: Callback = None,
    finished: Callback = None,
    progress: Callback = None,
) -> Job:
    """Run ``task(cancel=...)`` in a worker thread and return its :class:`Job`.

    Parameters
    ----------
    task : callable
        Called as ``task(cancel=job.is_cancelled)``; a generator function streams its
        yielded values to `yielded`.
    name : str
        Label for logs.
    yielded, returned, errored, finished : callable, optional
        GUI-thread callbacks: each yielded value, the return value, the exception
        (never a CancelledError), and the end of the job whatever its outcome.
        Without `errored`, errors are logged.
    progress : callable, optional
        When given, the task is also passed ``progress=``, a thread-safe callable whose
        arguments reach this GUI-thread callback (for Qt-free code that reports through a
        callback rather than by yielding).
    """
    job = Job(name)
    if progress is not None:
        task = _with_progress(task, job, progress)
    if inspect.isgeneratorfunction(task):

        def run_generator() -> Iterator[Any]:
            return (yield from _cancellable(task(cancel=job.is_cancelled), job.is_cancelled))

        worker = create_worker(
            run_generator,
            _start_thread=False,
            _ignore_errors=True,
            _worker_class=_GeneratorWorker,
        )
        if yielded is not None:
            worker.yielded.connect(yielded)
    else:
        worker = create_worker(
            _call_cancellable,
            task,
            job.is_cancelled,
            _start_thread=False,
            _ignore_errors=True,
            _worker_class=_FunctionWorker,
        )
    job.worker = worker
    _connect(job, worker, returned, errored, finished)
    _ACTIVE.add(job)
    _enough_threads()
    worker.start()
    return job


def _enough_threads() -> None:
    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < MIN_THREADS:
        pool.setMaxThreadCount(MIN_THREADS)


class _Relay(QObject):
    """Carries a worker's progress calls to the GUI thread (queued signal)."""

    called = Signal(tuple)


def _with_progress(task: Callable[..., Any], job: Job, callback: Callable[..., Any]):
    relay = _Relay()
    relay.called.connect(lambda args: callback(*args))
    job.relay = relay  # keep it alive as long as the job

    def emit(*args: Any) -> None:
        relay.called.emit(args)

    if inspect.isgeneratorfunction(task):

        def generator_task(cancel: Callable[[], bool]) -> Iterator[Any]:
            return (yield from task(cancel=cancel, progress=emit))

        return generator_task

    def function_task(cancel: Callable[[], bool]) -> Any:
        return task(cancel=cancel, progress=emit)

    return function_task


def _cancellable(generator: Any, cancelled: Callable[[], bool]) -> Iterator[Any]:
    """Relay `generator`; once cancelled, close it at its next yield (in this thread)."""
    try:
        while True:
            try:
                value = next(generator)
            except StopIteration as stop:
                return stop.value
            if cancelled():
                generator.close()
                return None
            yield value
    except CancelledError:
        return None


def _call_cancellable(task: Callable[..., Any], cancel: Callable[[], bool]) -> Any:
    try:
        return task(cancel=cancel)
    except CancelledError:
        return None


def _connect(job: Job, worker: Any, returned: Callback, errored: Callback, finished: Callback):
    if returned is not None:
        worker.returned.connect(lambda value: None if job.is_cancelled() else returned(value))
    worker.errored.connect(errored if errored is not None else _log_error(job))
    worker.finished.connect(job._finish)
    if finished is not None:
        worker.finished.connect(finished)


def _log_error(job: Job) -> Callable[[BaseException], None]:
    def log_it(exc: BaseException) -> None:
        log.error("%s failed: %s", job.name, exc)

    return log_it


def active_jobs() -> list[Job]:
    """The jobs that have not finished yet."""
    return [job for job in _ACTIVE if not job.done]


def shutdown(timeout_ms: int = 5000) -> bool:
    """Cancel every job and wait for the thread pool to drain; True when it did."""
    for job in list(_ACTIVE):
        job.cancel()
    return QThreadPool.globalInstance().waitForDone(timeout_ms)
