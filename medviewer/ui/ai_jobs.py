"""The queue of model runs: one runs at a time, the others wait; each can be cancelled.

A run is the AI engine's Qt-free ``Runner.run`` generator in a worker (:mod:`workers`);
its Progress records reach the GUI thread as :attr:`AIJobQueue.jobChanged` signals and its
result as :attr:`AIJobQueue.jobFinished` (an :class:`~medviewer.core.findings.AIResult` made
in the worker, with the heatmap already quantised for drawing). Networks stay loaded between
runs (one ``Runner`` per model and device). A cancelled run returns nothing; a failed one
reports its message and the queue goes on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from medviewer.ai.model_card import ModelCard
from medviewer.core.findings import AIResult
from medviewer.core.volume import Volume
from medviewer.ui import workers

if TYPE_CHECKING:
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.runner import Runner

_IDS = itertools.count(1)


@dataclass(eq=False)
class AIJob:
    """One requested model run.

    Attributes
    ----------
    state : str
        ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``.
    fraction, message : float, str
        The last progress reported.
    error : str
        Why it failed.
    """

    card: ModelCard
    volume: Volume
    device: str = "auto"
    target_class: str | None = None
    id: int = field(default_factory=lambda: next(_IDS))
    state: str = "queued"
    fraction: float = 0.0
    message: str = "queued"
    error: str = ""
    worker_job: workers.Job | None = field(default=None, repr=False)

    @property
    def series_uid(self) -> str:
        """SeriesInstanceUID of the input."""
        return self.volume.metadata.series_uid

    @property
    def active(self) -> bool:
        """True while queued or running."""
        return self.state in ("queued", "running")


class AIJobQueue(QObject):
    """Runs AI jobs one after the other in a worker thread.

    Signals
    -------
    jobAdded(AIJob), jobChanged(AIJob)
        A job was queued; its state or progress changed.
    jobFinished(AIJob, AIResult)
        A job's result (not emitted for cancelled or failed jobs).
    jobEnded(AIJob)
        A job left the queue, whatever the outcome (after jobFinished).
    """

    jobAdded = Signal(object)
    jobChanged = Signal(object)
    jobFinished = Signal(object, object)
    jobEnded = Signal(object)

    def __init__(
        self, parent: QObject | None = None, registry: ModelRegistry | None = None
    ) -> None:
        super().__init__(parent)
        self.registry = registry  # where a cascade card's upstream model is found (None: default)
        self.jobs: list[AIJob] = []
        self._runners: dict[tuple[str, str, str, str], Runner] = {}

    @property
    def running(self) -> AIJob | None:
        """The job that runs now, if any."""
        return next((job for job in self.jobs if job.state == "running"), None)

    def submit(
        self, card: ModelCard, volume: Volume, device: str = "auto", target_class: str | None = None
    ) -> AIJob:
        """Queue a run of `card` on `volume`; it starts when the running job ends."""
        job = AIJob(card, volume, device, target_class)
        self.jobs.append(job)
        self.jobAdded.emit(job)
        self._start_next()
        return job

    def cancel(self, job: AIJob) -> None:
        """Cancel a queued or running job (a running one stops at its next batch)."""
        if job.state == "queued":
            self._end(job, "cancelled", "cancelled")
            self._start_next()
        elif job.state == "running" and job.worker_job is not None:
            job.message = "cancelling…"
            self.jobChanged.emit(job)
            job.worker_job.cancel()

    def cancel_all(self) -> None:
        """Cancel every queued and running job."""
        for job in list(self.jobs):
            self.cancel(job)

    def _start_next(self) -> None:
        if self.running is not None:
            return
        job = next((j for j in self.jobs if j.state == "queued"), None)
        if job is None:
            return
        job.state, job.message = "running", "starting"
        self.jobChanged.emit(job)
        try:
            job.worker_job = self._launch(job)
        except Exception as exc:  # noqa: BLE001 (a job that cannot start must not block the queue)
            self._failed(job, exc)
            self._end(job, job.state, job.message)
            self._start_next()

    def _launch(self, job: AIJob) -> workers.Job:
        runner = self._runner(job)

        def task(cancel):
            steps = runner.run(job.volume, cancel=cancel, target_class=job.target_class)
            result = AIResult.of((yield from steps))
            result.heatmap_u8()  # quantised here, not on the GUI thread (0.4 s for a CT)
            return result

        return workers.start(
            task,
            name=f"AI {job.card.id}",
            yielded=lambda progress: self._progress(job, progress),
            returned=lambda result: self._finished(job, result),
            errored=lambda exc: self._failed(job, exc),
            finished=lambda: self._worker_done(job),
        )

    def _runner(self, job: AIJob) -> Runner:
        from medviewer.ai.runner import Runner

        card = job.card
        key = (card.id, card.version, card.weights.sha256, job.device)
        if key not in self._runners:
            self._runners[key] = Runner(card, device=job.device, registry=self.registry)
        return self._runners[key]

    def _progress(self, job: AIJob, progress: Any) -> None:
        if job.state != "running" or job.message == "cancelling…":
            return
        job.fraction, job.message = float(progress.fraction), str(progress.message)
        self.jobChanged.emit(job)

    def _finished(self, job: AIJob, result: AIResult | None) -> None:
        if result is None or job.state != "running":
            return  # cancelled inside the run
        job.state, job.fraction, job.message = "done", 1.0, "done"
        self.jobFinished.emit(job, result)

    def _failed(self, job: AIJob, exc: BaseException) -> None:
        job.state, job.error = "failed", _message(exc)
        job.message = f"failed: {job.error}"

    def _worker_done(self, job: AIJob) -> None:
        if job.state == "running":
            job.state, job.message = "cancelled", "cancelled"
        self._end(job, job.state, job.message)
        self._start_next()

    def _end(self, job: AIJob, state: str, message: str) -> None:
        job.state, job.message = state, message
        if job in self.jobs:
            self.jobs.remove(job)
        self.jobChanged.emit(job)
        self.jobEnded.emit(job)


def _message(exc: BaseException) -> str:
    """A one-line reason for the panel (out of memory, bad model, wrong input...)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "out of memory" in text.lower():
        return f"out of memory: {text}"
    return text
