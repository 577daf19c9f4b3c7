"""Render what the viewer shows for a source into a PNG, offscreen, with the viewer's widgets.

With a model, the run goes through the GUI's own job queue and worker while the event loop
runs (and its longest stall is measured), and the result is drawn as the viewer draws it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication

from medviewer.ai.model_card import ModelCard
from medviewer.core.errors import InferenceError
from medviewer.core.findings import AIResult, finding_label, heatmap_peak
from medviewer.core.slab import Slab
from medviewer.core.staging import staged_file
from medviewer.core.volume import Volume
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.viewer_grid import ViewerGrid


def render_grid(
    volume: Volume,
    *,
    layout: str = "1x1",
    index: int | None = None,
    window: tuple[float, float] | None = None,
    size: tuple[int, int] = (768, 768),
    crosshair: bool = False,
    plane: str = "axial",
    slab: Slab | None = None,
    fused: Volume | None = None,
    rotation: np.ndarray | None = None,
) -> ViewerGrid:
    """A laid-out, painted :class:`ViewerGrid` showing `volume` (caller keeps it alive).

    Parameters
    ----------
    volume : Volume
        What to show (slot A).
    layout : str
        ``"1x1"``, ``"1x2"``, ``"1x3"`` or ``"2x2"``.
    index : int, optional
        Slice of the first view's plane to show (default: the middle one); the other planes
        go through the same point.
    window : (center, width), optional
        Window level and width for every view (default: the files' window).
    size : (width, height)
        Pixel size of the image.
    plane : str
        The first view's plane (``"axial"``, ``"coronal"``, ``"sagittal"``); a 1x3 layout
        shows the three planes whatever it is.
    slab : Slab, optional
        A thick-slab projection in every view.
    fused : Volume, optional
        A PET/NM volume on `volume`'s frame of reference, drawn over it (SUV 0-6 for a PET
        with an SUV factor; see :func:`~medviewer.ui.fusion_controller.default_style`).
    rotation : numpy.ndarray, optional
        A 3x3 rotation of the MPR frame (true oblique planes, resampled); `index` is then a
        slice of the rotated plane.
    """
    from medviewer.ui.application import application

    application()
    grid = ViewerGrid()
    grid.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    grid.resize(*size)
    grid.set_layout(layout)
    grid.set_crosshair(crosshair)
    if layout == "1x1":
        grid.views[0].setProperty("plane", plane)
    grid.show()
    QApplication.processEvents()
    grid.show_series(
        OpenSeries(Path(volume.metadata.series_uid or "volume"), volume), grid.views[0]
    )
    if fused is not None:
        from medviewer.ui.fusion_controller import default_style
        from medviewer.ui.fusion_layer import Fusion

        grid.set_fusion("A", Fusion(fused, default_style(fused)))
    if rotation is not None:
        grid.set_rotation("A", rotation)
    first = grid.views[0]
    if index is not None:
        first.set_index(index)
    if first.plane_slice is not None and len(grid.views) > 1:
        centre = first.view_to_patient(*_centre(first))
        grid.link_cursor(first, centre)
    for view in grid.views:
        if window is not None:
            view.set_window(*window)
        if slab is not None:
            view.set_slab(slab)
        view.fit()
    QApplication.processEvents()
    return grid


def _centre(view) -> tuple[float, float]:
    rows, cols = view.plane_slice.image.shape[:2]
    sy, sx = view.plane_slice.pixel_spacing
    return (cols - 1) / 2 * sx, (rows - 1) / 2 * sy


def save_screenshot(grid: ViewerGrid, out: str | os.PathLike[str]) -> Path:
    """Write the grid's pixels to a PNG atomically (no partial file on failure)."""
    out = Path(out)
    image = grid.grab().toImage()
    with staged_file(out) as staging:
        if image.isNull() or not image.save(str(staging), "PNG"):
            raise OSError(f"could not write {out}")
    return out


class StallMeter(QObject):
    """Measures the longest gap between event-loop ticks (how long the GUI froze).

    A timer asks for a tick every `interval_ms`; a tick that comes late by more than that
    shows the event loop was busy. :attr:`max_stall_ms` is the longest delay beyond the
    interval.
    """

    def __init__(self, interval_ms: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.max_stall_ms = 0.0
        self.ticks = 0
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        """Start measuring (resets the maximum)."""
        self.max_stall_ms, self.ticks = 0.0, 0
        self._last = time.perf_counter()
        self._timer.start(self.interval_ms)

    def stop(self) -> float:
        """Stop measuring; returns the longest stall in ms."""
        self._tick()
        self._timer.stop()
        return self.max_stall_ms

    def _tick(self) -> None:
        now = time.perf_counter()
        stall = (now - self._last) * 1000.0 - self.interval_ms
        self.max_stall_ms = max(self.max_stall_ms, stall)
        self._last = now
        self.ticks += 1


@dataclass
class ModelRun:
    """What :func:`run_model` produced: the result, the wall time and the longest GUI stall."""

    result: AIResult
    seconds: float
    max_stall_ms: float


def run_model(volume: Volume, card: ModelCard, device: str = "auto") -> ModelRun:
    """Run `card` on `volume` through the GUI's job queue and worker, with the event loop running.

    torch and MONAI are imported before the run starts (the viewer imports them in a worker
    once its window is up), so the stall measured is the run's own.

    Raises
    ------
    InferenceError
        When the run fails (its message).
    """
    from medviewer.ai.runner import warm_up
    from medviewer.ui.ai_jobs import AIJobQueue

    warm_up()  # imports torch and MONAI first, as the viewer does once its window is up
    queue = AIJobQueue()
    loop = QEventLoop()
    out: dict = {}
    queue.jobFinished.connect(lambda _job, result: out.setdefault("result", result))
    queue.jobEnded.connect(lambda _job: loop.quit())
    meter = StallMeter()
    meter.start()
    started = time.perf_counter()
    job = queue.submit(card, volume, device)
    if job.active:
        loop.exec()
    seconds = time.perf_counter() - started
    stall = meter.stop()
    if "result" not in out:
        raise InferenceError(job.error or job.message)
    return ModelRun(out["result"], seconds, stall)


def finding_point(result: AIResult) -> np.ndarray | None:
    """Where a screenshot of a result looks: a segment's largest component or the heatmap peak.

    For a segmentation: the largest component of the last label of the card that has one
    (cards list anatomy first and findings last, e.g. lungs then nodules). For a heatmap: the
    hottest voxel. None when the result has neither.
    """
    label = finding_label(result)
    if label is not None:
        return np.asarray(result.statistics[label].components[0].centroid_lps, float)
    return heatmap_peak(result)


def show_result(grid: ViewerGrid, result: AIResult, index: int | None = None) -> None:
    """Draw `result` over slot A and move the views to its finding (unless `index` is given)."""
    grid.set_overlay("A", result)
    point = finding_point(result) if index is None else None
    if point is not None:
        for view in grid.views:
            view.set_crosshair(point, move=True)
    QApplication.processEvents()
