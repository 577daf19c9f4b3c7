"""How long a test waits for an event before calling it lost.

Tests wait on events (a signal, a job done, a file written), never on a guess of how long
work takes. The limit is only a guard against an event that never comes, so it is generous:
the suite must pass on a machine whose cores are busy with something else.
"""

from __future__ import annotations

WAIT_MS = 300_000
"""Milliseconds a test waits for an event (a signal, a worker finishing, a widget updating)."""

