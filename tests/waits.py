"""How long a test waits for an event before calling it lost.

Tests wait on events (a signal, a job done, a file written), never on a guess of how long
work takes. The limit is only a guard against an event that never comes, so it is generous:
the suite must pass on a machine whose cores are busy with something else.
"""

from __future__ import annotations

WAIT_MS = 300_000
"""Milliseconds a test waits for an event (a signal, a worker finishing, a widget updating)."""


class SchedulingDelay:
    """How late another process's 2 ms timer woke over the same period (ms).

    A GUI freeze check measures how late the event loop's timer ticks. On a machine whose
    cores are busy elsewhere, every process wakes late now and then, frozen GUI or not; a
    separate process (no GIL, no Qt, no share of our threads) measures that delay alone, so a
    check can allow it: ``stall < limit + delay``. A freeze of our own (the GUI thread
    blocked, or starved of the GIL by a worker) does not delay the other process.

    Use as a context manager; :attr:`max_ms` is set on exit.
    """

    _CODE = (
        "import select, sys, time\n"
        "last = time.perf_counter(); worst = 0.0\n"
        "while True:\n"
        "    ready = select.select([sys.stdin], [], [], 0.002)[0]\n"
        "    now = time.perf_counter(); worst = max(worst, now - last - 0.002); last = now\n"
        "    if ready:\n"
        "        break\n"
        "print(worst * 1000.0)\n"
    )

    def __init__(self) -> None:
        self.max_ms = 0.0
        self._process = None

    def __enter__(self) -> SchedulingDelay:
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, "-c", self._CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc_info) -> None:
        out, _ = self._process.communicate(timeout=WAIT_MS / 1000)  # closes stdin: it stops
        self.max_ms = float(out.strip() or 0.0)
