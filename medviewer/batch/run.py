"""Running models over many series: the selection, the local worker and the summary.

:func:`select_series` indexes folders (or reads a study database) into the batch folder's
own database and picks the series; :func:`plan` queues a job per (series, model) in the
:class:`~medviewer.batch.jobs.JobTable`; :func:`work` claims jobs until none is left, keeping
each model loaded once (the runner's network cache) and writing each result with the same
all-or-nothing writer as ``medviewer infer`` into ``DIR/<series uid>/<model id>/``;
:func:`write_summary` puts every job's state and findings in ``summary.csv`` and
``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer.ai.model_card import ModelCard
from medviewer.batch.jobs import Job, JobTable, worker_name
from medviewer.core.errors import CancelledError
from medviewer.core.staging import staged_file

INDEX_NAME = "index.sqlite"
Log = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SelectedSeries:
    """A series to run on: its UID, id in the batch database and description."""

    series_uid: str
    series_id: int
    modality: str
    description: str


def select_series(sources: Sequence[str | os.PathLike[str]], out: Path,
                  modality: str | None = None) -> list[SelectedSeries]:  # fmt: skip
    """Index `sources` (folders, files) into ``out/index.sqlite`` and list their series
    (of `modality` when given), in database order."""
    from medviewer.io.database import StudyDatabase

    out.mkdir(parents=True, exist_ok=True)
    db = StudyDatabase(out / INDEX_NAME)
    try:
        db.import_paths([str(s) for s in sources])
        selected = []
        for series_id in db.series_under([str(s) for s in sources]):
            uid, kind, description = db.connection().execute(
                "SELECT series_uid, modality, description FROM series WHERE id=?", (series_id,)
            ).fetchone()
            if modality and (kind or "").upper() != modality.upper():
                continue
            selected.append(SelectedSeries(uid, series_id, kind or "", description or ""))
        return selected
    finally:
        db.close()


def plan(table: JobTable, series: Sequence[SelectedSeries], cards: Sequence[ModelCard],
         retry: bool = False) -> dict[str, int]:  # fmt: skip
    """Queue every (series, model) pair not already there for the same model hash; put back
    what a previous run left running or cancelled (and failed, with `retry`)."""
    requeued = table.requeue(retry_failed=retry)
    added = sum(table.add(s.series_uid, f"db:{s.series_id}", card.id, card.weights.sha256)
                for s in series for card in cards)  # fmt: skip
    return {"added": added, "requeued": requeued}


def work(table: JobTable, cards: Sequence[ModelCard], out: Path, device: str = "cpu",
         cancel: Callable[[], bool] = lambda: False, log: Log = lambda _e: None,
         threads: int | None = None) -> dict[str, int]:  # fmt: skip
    """Claim and run jobs until none is left (or `cancel`); returns what this worker did.

    A job whose model is not among `cards` (another hash) is failed with the reason. A
    KeyboardInterrupt marks the running job cancelled, then propagates.
    """
    from medviewer.ai.runner import Runner

    by_key = {(c.id, c.weights.sha256): c for c in cards}
    runners: dict[tuple[str, str], Runner] = {}
    did = {"done": 0, "failed": 0, "cancelled": 0}
    worker = worker_name()
    while not cancel():
        job = table.claim(worker)
        if job is None:
            break
        started = time.perf_counter()
        try:
            key = (job.model_id, job.model_sha256)
            card = by_key.get(key)
            if card is None:
                raise LookupError(f"model {job.model_id} with sha256 {job.model_sha256[:12]}… "
                                  "is not the one given to this run")
            if key not in runners:
                runners[key] = Runner(card, device, cpu_threads=threads or os.cpu_count())
            output = _run_one(runners[key], job, out, cancel)
        except KeyboardInterrupt:
            table.cancelled(job)
            raise
        except CancelledError:
            table.cancelled(job)
            did["cancelled"] += 1
            log(_event(job, "cancelled", time.perf_counter() - started))
            break
        except Exception as error:  # noqa: BLE001 - one series' failure does not stop the rest
            seconds = time.perf_counter() - started
            table.failed(job, f"{type(error).__name__}: {error}", seconds)
            did["failed"] += 1
            log(_event(job, "failed", seconds, error=str(error)))
            continue
        seconds = time.perf_counter() - started
        table.done(job, str(output), seconds)
        did["done"] += 1
        log(_event(job, "done", seconds, output=str(output)))
    return did


def _run_one(runner: Any, job: Job, out: Path, cancel: Callable[[], bool]) -> Path:
    from medviewer.ai.runner import run_to_end
    from medviewer.io.series import load_series
    from medviewer.report.prediction_files import write_prediction

    series_id = int(job.source.removeprefix("db:"))
    volume = load_series(series_id, db=out / INDEX_NAME)
    def check(_progress: Any) -> None:
        if cancel():
            raise CancelledError("the batch was stopped")

    prediction = run_to_end(runner.run(volume), check)
    target = out / _safe(job.series_uid) / _safe(job.model_id)
    write_prediction(prediction, target)
    return target


def _safe(name: str) -> str:
    """A UID or model id as one folder name (UIDs are digits and dots; ids are checked)."""
    cleaned = "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in name)
    return cleaned.strip(".") or "_"


def _event(job: Job, state: str, seconds: float, **more: Any) -> dict[str, Any]:
    return {"series_uid": job.series_uid, "model": job.model_id, "state": state,
            "attempt": job.attempts, "seconds": round(seconds, 3), **more}  # fmt: skip


SUMMARY_COLUMNS = ("series_uid", "model_id", "model_sha256", "state", "attempts", "seconds",
                   "error", "output", "findings")  # fmt: skip


def summary_rows(table: JobTable) -> list[dict[str, Any]]:
    """Every job with its findings (segment volumes, class probabilities) from result.json."""
    rows = []
    for job in table.rows():
        findings: dict[str, Any] = {}
        output = job.get("output")
        if job["state"] == "done" and output and (Path(output) / "result.json").is_file():
            result = json.loads((Path(output) / "result.json").read_text(encoding="utf-8"))
            findings = {**{f"{name} volume_ml": seg.get("volume_ml")
                           for name, seg in result.get("segments", {}).items()},
                        **{f"p({name})": p for name, p in result.get("classes", {}).items()}}
        rows.append({**{k: job.get(k) for k in SUMMARY_COLUMNS if k != "findings"},
                     "findings": findings})  # fmt: skip
    return rows


def write_summary(table: JobTable, out: Path) -> dict[str, Any]:
    """``summary.csv`` and ``summary.json`` of every job (written whole, or not at all)."""
    rows = summary_rows(table)
    report = {"counts": table.counts(), "jobs": rows}
    with staged_file(out / "summary.json") as staging:
        staging.write_text(json.dumps(report, indent=2), encoding="utf-8")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(SUMMARY_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "findings": json.dumps(row["findings"], sort_keys=True)})
    with staged_file(out / "summary.csv") as staging:
        staging.write_text(text.getvalue(), encoding="utf-8")
    return report
