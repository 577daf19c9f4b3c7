"""The batch job table: one row per (series, model, model sha256), in SQLite beside the outputs.

States: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``. A row is claimed in
one immediate transaction (two workers never take the same job). A re-run adds only what is
not there for the same model hash (so it skips what is done, and a changed model hash runs
again); rows left ``running`` by a coordinator that died (``kill -9``) and ``cancelled`` ones
go back to the queue; ``failed`` ones too with ``retry``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    series_uid TEXT NOT NULL, model_id TEXT NOT NULL, model_sha256 TEXT NOT NULL,
    source TEXT NOT NULL, state TEXT NOT NULL, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT, queued REAL, started REAL, finished REAL, seconds REAL, output TEXT,
    PRIMARY KEY (series_uid, model_id, model_sha256));
"""
STATES = ("queued", "running", "done", "failed", "cancelled")
TABLE_NAME = "jobs.sqlite"


@dataclass(frozen=True)
class Job:
    """One claimed job."""

    series_uid: str
    model_id: str
    model_sha256: str
    source: str
    attempts: int


def worker_name() -> str:
    """This process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobTable:
    """The jobs of one batch output folder (``DIR/jobs.sqlite``)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / TABLE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def add(self, series_uid: str, source: str, model_id: str, model_sha256: str) -> bool:
        """Queue a job unless one exists for the same series, model and hash; True if new."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO jobs (series_uid, model_id, model_sha256, source, state, "
            "queued) VALUES (?,?,?,?, 'queued', ?)",
            (series_uid, model_id, model_sha256, source, time.time()),
        )
        return cursor.rowcount == 1

    def requeue(self, retry_failed: bool = False) -> int:
        """Put back in the queue what a dead coordinator left running, what was cancelled,
        and (with `retry_failed`) what failed; returns how many."""
        states = ("running", "cancelled", *(("failed",) if retry_failed else ()))
        marks = ",".join("?" * len(states))
        cursor = self._conn.execute(
            f"UPDATE jobs SET state='queued', worker=NULL, error=NULL WHERE state IN ({marks})",
            states,
        )
        return cursor.rowcount

    def claim(self, worker: str | None = None) -> Job | None:
        """Take the next queued job (atomically), or None when none is left."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT * FROM jobs WHERE state='queued' ORDER BY model_id, queued, series_uid "
                "LIMIT 1").fetchone()  # fmt: skip
            if row is None:
                conn.execute("COMMIT")
                return None
            conn.execute(
                "UPDATE jobs SET state='running', worker=?, attempts=attempts+1, started=? "
                "WHERE series_uid=? AND model_id=? AND model_sha256=?",
                (worker or worker_name(), time.time(), row["series_uid"], row["model_id"],
                 row["model_sha256"]),
            )  # fmt: skip
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Job(row["series_uid"], row["model_id"], row["model_sha256"], row["source"],
                   int(row["attempts"]) + 1)  # fmt: skip

    def _end(self, job: Job, state: str, **fields: Any) -> None:
        names = ", ".join(f"{k}=?" for k in fields)
        self._conn.execute(
            f"UPDATE jobs SET state=?, finished=?{', ' + names if names else ''} "
            "WHERE series_uid=? AND model_id=? AND model_sha256=?",
            (state, time.time(), *fields.values(), job.series_uid, job.model_id,
             job.model_sha256),
        )  # fmt: skip

    def done(self, job: Job, output: str, seconds: float) -> None:
        """The job's outputs are written."""
        self._end(job, "done", output=output, seconds=seconds, error=None)

    def failed(self, job: Job, error: str, seconds: float) -> None:
        """The job failed (nothing was written for it)."""
        self._end(job, "failed", error=error, seconds=seconds)

    def cancelled(self, job: Job) -> None:
        """The job was stopped before it finished (nothing was written for it)."""
        self._end(job, "cancelled")

    def rows(self) -> list[dict[str, Any]]:
        """Every job, as dicts, by model then series."""
        return [dict(row) for row in self._conn.execute(
            "SELECT * FROM jobs ORDER BY model_id, series_uid, model_sha256")]  # fmt: skip

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state (every state present)."""
        counts = dict.fromkeys(STATES, 0)
        for row in self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[row[0]] = int(row[1])
        return counts
