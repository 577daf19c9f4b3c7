"""The client side of the decoder processes: start them, send them jobs, reuse them.

pydicom's compressed-data plugins and the header parser hold the GIL, so threads cannot
spread JPEG 2000 decoding or a large header scan over the cores. :func:`pool` gives the
process-wide :class:`DecoderPool`, one worker process per core, started on first use. Each
worker is a plain ``python -m medviewer.io.decode_worker`` child (no fork of the GUI process,
no re-import of the caller's ``__main__``; in the desktop bundle, where ``sys.executable`` is
medviewer itself, ``medviewer --medviewer-decode-worker``). A crash of a decoder on a corrupt
file ends that worker only: the caller gets a LoadError and a fresh worker next time. The
worker's side, its loop and its job table, is :mod:`medviewer.io.decode_worker`.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import subprocess
import sys
import threading
from typing import Any

import numpy as np

from medviewer.core.errors import LoadError

WORKER_FLAG = "--medviewer-decode-worker"
"""The argument that makes a frozen medviewer executable serve as a worker (see cli.main)."""


def worker_command() -> list[str]:
    """The command line that starts a worker: ``python -m`` here, the flag when frozen."""
    if getattr(sys, "frozen", False):
        return [sys.executable, WORKER_FLAG]
    return [sys.executable, "-m", "medviewer.io.decode_worker"]


class DecoderProcess:
    """One worker process and the pipes to it."""

    def __init__(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def call(self, job: str, *args: Any) -> Any:
        """Run `job` (a name in the worker's job table); LoadError on failure or crash."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            pickle.dump((job, args), self.proc.stdin, protocol=5)
            self.proc.stdin.flush()
            ok, payload = pickle.load(self.proc.stdout)  # trusted: our own child process
        except (EOFError, BrokenPipeError, pickle.UnpicklingError, OSError):
            self.close()
            where = job_location(args)
            raise LoadError(f"the worker process stopped during {job}{where}") from None
        if not ok:
            raise LoadError(payload)
        return payload

    @property
    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def close(self) -> None:
        """End the worker (it exits when its stdin closes)."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class DecoderPool:
    """A fixed number of decoder processes, started on first use and reused."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: queue.Queue[DecoderProcess] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: list[DecoderProcess] = []

    @property
    def workers(self) -> tuple[DecoderProcess, ...]:
        """The processes started so far that still run (for status and memory figures)."""
        return tuple(w for w in self._all if w.alive)

    def decode(self, path: str, member: str, frames: list[int]) -> np.ndarray:
        """Decode `frames` of one file on an idle worker (blocking while all are busy)."""
        decoded: np.ndarray = self.call("decode_frames", path, member, frames)
        return decoded

    def call(self, job: str, *args: Any) -> Any:
        """Run `job` on an idle worker (blocking while all are busy)."""
        worker = self._acquire()
        try:
            return worker.call(job, *args)
        finally:
            if worker.alive:
                self._idle.put(worker)
            else:
                with self._lock:
                    self._started -= 1

    def _acquire(self) -> DecoderProcess:
        with self._lock:
            if self._idle.empty() and self._started < self.size:
                self._started += 1
                worker = DecoderProcess()
                self._all.append(worker)
                return worker
        return self._idle.get()

    def close(self) -> None:
        """End every worker."""
        for worker in self._all:
            if worker.alive:
                worker.close()
        self._all.clear()


_POOL: DecoderPool | None = None


def pool() -> DecoderPool:
    """The process-wide decoder pool (one worker per core)."""
    global _POOL
    if _POOL is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        _POOL = DecoderPool(max(1, cores or 1))
        atexit.register(_POOL.close)
    return _POOL


def job_location(args: tuple[Any, ...]) -> str:
    """`` of PATH`` when a job's first argument is a path (for messages), else empty.

    Parameters
    ----------
    args : tuple
        The job's arguments.

    Returns
    -------
    str
    """
    return f" of {args[0]}" if args and isinstance(args[0], str) else ""
