"""Render benchmark: what scrolling, reslicing, windowing and start-up cost in the viewer.

What it measures, in one run (a JSON object on stdout, progress on stderr), offscreen Qt
(``QT_QPA_PLATFORM=offscreen`` unless already set):

1. ``next_slice_ms``: a visible 800x800 :class:`~medviewer.ui.slice_view.SliceView` shows an
   in-memory 300x512x512 int16 CT-like volume (0.7 x 0.7 x 1.0 mm, window 40/400); one
   frame is ``view.set_index(i)`` followed by ``QApplication.processEvents()``, which
   delivers the paint: the ImageItem converts its array to a QImage (``render``) and draws
   it, and the corner annotations repaint, as the user would see them. Every frame is
   checked to have rendered and painted the image exactly once. Median and p95 of N frames
   after a warm-up.
2. ``reslice_ms``: the same on coronal and sagittal views of the volume (512 x 300 images
   resliced from the axial array), stepping the index.
3. ``window_level_ms``: the same axial slice re-rendered with a new window each frame
   (``view.set_window``), what one mouse move of a right-drag costs.
4. ``startup_s``: from launching ``python -c <snippet>`` (which runs
   ``medviewer.cli.main(["--db", TMP, "--settings", TMP, "--exit-after", MS])``) to the main
   window's first paint being flushed: the viewer's own ``--startup-probe``
   (:class:`medviewer.ui.app.FirstPaintProbe`) notes ``time.monotonic()``, a clock shared
   by the processes of a machine, from a zero-delay timer queued by the window's first
   paint event, then closes the window. Median of R fresh processes; ``--exit-after`` is only
   a safety net. The probe also reports which of
   :data:`medviewer.ui.app.HEAVY_MODULES` (torch, MONAI, SimpleITK...) were imported by then.
5. Peers in the same run: a bare pyqtgraph ``ImageItem.setImage`` of precomputed uint8
   512x512 frames in a same-sized view (the paint floor), with ``levels=(0, 255)`` as
   SliceView passes (Indexed8 QImage) and with ``levels=None`` (Grayscale8);
   ``apply_window`` alone on axial, coronal and sagittal slices, and a plain float32 numpy
   window; ``reslice`` alone; ``set_index`` without the paint; ``python -c pass`` and a
   bare Qt main window in a fresh process (the start-up floor).
6. ``overlay``: next slice with AI overlays on a 200x512x512 CT (the first 200 slices of the
   volume above): an :class:`~medviewer.core.findings.AIResult` with a uint8 label map (lungs on
   most slices, nodules and a vessel-like tube: labels 1-3) and a float32 Grad-CAM-like
   heatmap, both drawn (the label layer and the heatmap layer of
   :class:`~medviewer.ui.overlay_items.PlaneOverlay`). The same axial view steps the index
   without the overlay (the reference), then with it; ``added_median_ms`` is the difference
   of the medians. Also window/level with the overlay on (the overlay must not be resliced:
   ``overlay_reslices_per_frame`` 0) and coronal stepping with the overlay.

7. ``slab``: thick-slab projections (:mod:`medviewer.core.slab`) of 10 mm (11 slices at 1 mm)
   on the axial view of the 300x512x512 CT, each mode stepping the index one slice a frame,
   against the plain slice stepped in the same view just before (``ratio_to_plain``, target
   <= 2.0: the slab is updated incrementally, not recomputed), and a coronal MIP of 10 mm
   (15 slices of 0.7 mm) against the plain coronal slice.

8. ``oblique``: true oblique MPR (:mod:`medviewer.core.oblique`): the axial view of the same CT
   with the MPR frame turned 20 degrees about LR and 10 about AP, stepping the index, against
   the plain axial slice stepped in the same view just before; ``reslice_ms`` is the
   resampling alone (SimpleITK, linear, 512 x 512-ish plane).

9. ``fusion``: a PET-like volume (the CT averaged in blocks of 6 x 6 x 4 voxels: 4.2 x 4.2 x
   4 mm, float32, on the CT's frame of reference) fused over the axial view, stepping the
   index, against the plain slice stepped in the same view just before.

Targets: next slice <= 8 ms, coronal/sagittal <= 15 ms, start-up <= 1.5 s (medians); next slab
frame <= 2x the plain slice at 10 mm; oblique reslice of 512x512 <= 8 ms.

Usage: ``python benchmarks/bench_render.py [--frames N] [--startup-runs R] [--profile]
[--skip-startup] [--skip-overlay] [--skip-slab] [--skip-oblique] [--skip-fusion]``
(``--profile`` prints the top cProfile entries of each frame loop on stderr.)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from machine import machine_info as shared_machine_info

REPO = Path(__file__).resolve().parents[1]
SHAPE = (300, 512, 512)
OVERLAY_SLICES = 200  # the overlay cases use the first 200 slices (a 200x512x512 CT)
SPACING = (0.7, 0.7, 1.0)  # column, row, slice (mm)
WINDOW = (40.0, 400.0)  # center, width
VIEW_SIZE = (800, 800)
TARGETS = {
    "slab_max_ratio_to_plain": 2.0,
    "oblique_reslice_max_ms": 8.0,
    "next_slice_max_ms": 8.0,
    "reslice_max_ms": 15.0,
    "startup_max_s": 1.5,
}

STARTUP_CHILD = """
import json, sys, time
t_start = time.monotonic()
from medviewer.ui.application import application
app = application()
t_app = time.monotonic()
from medviewer.cli import main
probe, argv = sys.argv[1], sys.argv[2:]
# The viewer's own start-up probe: notes the main window's first paint, then closes it.
status = main([*argv, "--startup-probe", probe])
marks = json.loads(open(probe).read())
print(json.dumps({"start": t_start, "app": t_app, "first_paint": marks["painted"],
                  "shown": marks["shown"], "heavy": marks["heavy_modules"],
                  "modules": marks["modules"], "status": status}))
"""

BARE_QT_CHILD = """
import json, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow
app = QApplication([])
marks = {}

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if not marks and event.type() == QEvent.Type.Paint:
            marks["paint"] = time.monotonic()
            QTimer.singleShot(0, lambda: (marks.update(shown=time.monotonic()), app.quit()))
        return False

watcher = FirstPaint()
app.installEventFilter(watcher)
window = QMainWindow()
window.setCentralWidget(QLabel("bare"))
window.resize(1200, 800)
window.show()
app.exec()
print(json.dumps({"shown": marks["shown"]}))
"""


# -- helpers ------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the JSON)."""
    print(f"[bench_render] {message}", file=sys.stderr, flush=True)


def ms_summary(seconds: list[float]) -> dict[str, float]:
    """Median, p95, min and max in milliseconds (rounded to microseconds)."""
    values = np.asarray(seconds) * 1e3
    return {
        "median": round(float(np.median(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "min": round(float(values.min()), 3),
        "max": round(float(values.max()), 3),
    }


def time_calls(fn: Callable[[int], object], frames: int, warmup: int) -> list[float]:
    """Wall time of ``fn(i)`` for `frames` values of i after `warmup` untimed calls."""
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(warmup, warmup + frames):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times


# -- data ---------------------------------------------------------------------------------


def ct_volume() -> Any:
    """A 300x512x512 int16 CT-like volume: air, a body of soft tissue with noise, lungs, bone."""
    from medviewer.core.volume import Volume, VolumeMetadata
    from medviewer.core.windowing import WindowPreset

    slices, rows, cols = SHAPE
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y, x = (y - rows / 2) / (rows / 2), (x - cols / 2) / (cols / 2)
    array = np.empty(SHAPE, np.int16)
    noise_bank = rng.normal(0.0, 20.0, size=(16, rows, cols)).astype(np.int16)
    for k in range(slices):
        z = k / slices
        scale = 0.85 + 0.1 * np.sin(np.pi * z)
        body = (x / (0.9 * scale)) ** 2 + (y / (0.7 * scale)) ** 2
        lungs = ((np.abs(x) - 0.35) / 0.22) ** 2 + (y / 0.4) ** 2
        plane = np.full((rows, cols), -1000.0, np.float32)
        plane[body < 1.0] = 40.0
        plane[(body > 0.88) & (body < 1.0)] = 900.0 + 300.0 * z  # ribs/skin ring
        plane[(lungs < 1.0) & (body < 0.85)] = -850.0
        plane[(x**2 + (y - 0.45) ** 2) < 0.006] = 1200.0  # spine
        array[k] = plane.astype(np.int16) + noise_bank[k % 16]
    affine = np.diag([*SPACING, 1.0])
    metadata = VolumeMetadata(
        modality="CT",
        units="HU",
        series_uid="1.2.826.0.1.3680043.8.498.1",
        series_description="bench_render synthetic CT",
        window_presets=(WindowPreset("Soft tissue", *WINDOW),),
    )
    return Volume(array, affine, metadata)


def overlay_result(volume: Any) -> Any:
    """An AIResult on `volume`'s grid: labels (1 nodules, 2 a tube, 3 lungs) and a heatmap."""
    from medviewer.core.findings import AIResult, ModelInfo, Prediction, Segment

    slices, rows, cols = volume.shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y, x = (y - rows / 2) / (rows / 2), (x - cols / 2) / (cols / 2)
    lungs = (((np.abs(x) - 0.35) / 0.22) ** 2 + (y / 0.4) ** 2) < 0.9
    labels = np.zeros(volume.shape, np.uint8)
    labels[slices // 20 : slices - slices // 20] = lungs * np.uint8(3)
    tube = (x - 0.1) ** 2 + (y + 0.1) ** 2 < 0.002
    labels[:, tube] = 2
    rng = np.random.default_rng(1)
    for _ in range(12):  # nodules: balls of 3-12 mm radius (0.7 mm pixels, 1 mm slices)
        _ball(labels, rng.uniform((20, 150, 100), (slices - 20, 360, 412)), rng.uniform(3, 12))
    centre = np.exp(-((x - 0.3) ** 2 + (y + 0.05) ** 2) / 0.02).astype(np.float32)
    profile = 0.6 + 0.4 * np.exp(-(((np.arange(slices) - slices / 2) / (slices / 4)) ** 2))
    heatmap = np.empty(volume.shape, np.float32)
    np.multiply(profile.astype(np.float32)[:, None, None], centre[None], out=heatmap)
    model = ModelInfo("bench", "bench model", "1", "0" * 64, "segmentation", "benchmark")
    segments = {1: Segment(1, "nodule", "#ff3030"), 2: Segment(2, "vessel", "#30a0ff"),
                3: Segment(3, "lung", "#40ff40")}  # fmt: skip
    prediction = Prediction(
        model=model, task="segmentation", device="CPU", seconds=0.0, created="",
        series_uid=volume.metadata.series_uid, affine=volume.affine, shape=volume.shape,
        label_map=labels, segments=segments, heatmap=heatmap,
    )  # fmt: skip
    return AIResult.of(prediction)


def _ball(labels: np.ndarray, centre: np.ndarray, radius_mm: float) -> None:
    """Set a ball of label 1 (voxels 0.7 x 0.7 x 1.0 mm) around `centre` (slice, row, col)."""
    half = np.array([radius_mm / SPACING[2], radius_mm / SPACING[1], radius_mm / SPACING[0]])
    lo = np.maximum(np.floor(centre - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre + half).astype(int) + 1, labels.shape)
    s, r, c = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    inside = (
        ((s - centre[0]) * SPACING[2]) ** 2 + ((r - centre[1]) * SPACING[1]) ** 2
        + ((c - centre[2]) * SPACING[0]) ** 2 <= radius_mm**2
    )  # fmt: skip
    labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][inside] = 1


# -- frame loops --------------------------------------------------------------------------


class PaintCounter:
    """Counts ``render`` (array -> QImage) and ``paint`` calls of one pyqtgraph ImageItem."""

    def __init__(self, item: Any) -> None:
        self.renders = self.paints = 0
        render, paint = item.render, item.paint

        def counted_render() -> None:
            self.renders += 1
            render()

        def counted_paint(painter: Any, *args: Any) -> None:
            self.paints += 1
            paint(painter, *args)

        item.render, item.paint = counted_render, counted_paint


def make_view(app: Any, series: Any, plane: str) -> Any:
    """A shown, exposed 800x800 SliceView on `plane` of `series`."""
    from PySide6.QtTest import QTest

    from medviewer.ui.slice_view import SliceView

    view = SliceView()
    view.resize(*VIEW_SIZE)
    view.show()
    if not QTest.qWaitForWindowExposed(view, 5000):
        raise RuntimeError("the SliceView was never exposed")
    view.set_series(series, plane)
    for _ in range(3):
        app.processEvents()
    return view


def frame_loop(
    app: Any, view: Any, step: Callable[[int], None], frames: int, warmup: int, profile: bool
) -> dict[str, Any]:
    """Time ``step(i)`` + processEvents per frame; check one render and one paint per frame."""
    counter = PaintCounter(view.image_item)

    def frame(i: int) -> None:
        step(i)
        app.processEvents()

    for i in range(warmup):
        frame(i)
    renders, paints = counter.renders, counter.paints
    times = time_calls(frame, frames, 0) if not profile else _profiled(frame, frames)
    result: dict[str, Any] = ms_summary(times)
    result["frames"] = frames
    result["renders_per_frame"] = round((counter.renders - renders) / frames, 3)
    result["paints_per_frame"] = round((counter.paints - paints) / frames, 3)
    result["image_shape"] = list(view.plane_slice.image.shape)
    result["zoom"] = round(view.zoom, 3)
    return result


def unpainted_loop(app: Any, view: Any, frames: int, warmup: int) -> dict[str, float]:
    """``set_index`` alone (reslice, window, setImage, annotations), paint not timed."""
    count = view.state.count
    times = []
    for i in range(warmup + frames):
        start = time.perf_counter()
        view.set_index(i % count)
        if i >= warmup:
            times.append(time.perf_counter() - start)
        app.processEvents()
    return ms_summary(times)


def _profiled(frame: Callable[[int], None], frames: int) -> list[float]:
    profiler = cProfile.Profile()
    times = []
    profiler.enable()
    for i in range(frames):
        start = time.perf_counter()
        frame(1000 + i)
        times.append(time.perf_counter() - start)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    log("cProfile, by own time:\n" + out.getvalue())
    return times


def bench_views(app: Any, volume: Any, frames: int, warmup: int, profile: bool) -> dict[str, Any]:
    """next slice (axial), coronal/sagittal reslice, window/level: SliceView frame times."""
    from medviewer.ui.open_series import OpenSeries

    series = OpenSeries("bench", volume)
    out: dict[str, Any] = {}
    for plane in ("axial", "coronal", "sagittal"):
        view = make_view(app, series, plane)
        count = view.state.count
        log(f"{plane}: {frames} frames stepping the index")
        stats = frame_loop(
            app, view, lambda i, v=view, n=count: v.set_index(i % n), frames, warmup, profile
        )
        if plane == "axial":
            out["next_slice_ms"] = stats
            view.set_index(count // 2)
            app.processEvents()
            log(f"axial: {frames} frames changing the window")
            out["window_level_ms"] = frame_loop(
                app,
                view,
                lambda i, v=view: v.set_window(WINDOW[0] + 0.5 * i, WINDOW[1] + i),
                frames,
                warmup,
                profile,
            )
            out["set_index_without_paint_ms"] = unpainted_loop(app, view, frames, warmup)
        else:
            out.setdefault("reslice_ms", {})[plane] = stats
        view.close()
        view.deleteLater()
        app.processEvents()
    return out


def bench_overlay(app: Any, volume: Any, frames: int, warmup: int, profile: bool) -> dict[str, Any]:
    """Next slice on a 200x512x512 CT without, then with, a label map + heatmap overlay."""
    from medviewer.core.volume import Volume
    from medviewer.ui.open_series import OpenSeries

    small = Volume(volume.array[:OVERLAY_SLICES], volume.affine, volume.metadata)
    log(f"overlay: building a label map and a heatmap on {list(small.shape)}")
    result = overlay_result(small)
    result.heatmap_u8()  # quantised once per result, not per frame
    series = OpenSeries("bench-overlay", small)
    view = make_view(app, series, "axial")
    count = view.state.count

    def step(i: int) -> None:
        view.set_index(i % count)

    log(f"overlay: {frames} frames stepping the index without the overlay")
    without = frame_loop(app, view, step, frames, warmup, profile)
    view.set_overlay(result)
    app.processEvents()
    labels, heat = PaintCounter(view.overlay.label_item), PaintCounter(view.overlay.heatmap_item)
    log(f"overlay: {frames} frames stepping the index with label map + heatmap")
    before = (labels.renders, heat.renders, view.overlay.reslices)
    with_overlay = frame_loop(app, view, step, frames, warmup, profile)
    total = frames + warmup
    with_overlay["label_renders_per_frame"] = round((labels.renders - before[0]) / total, 3)
    with_overlay["heatmap_renders_per_frame"] = round((heat.renders - before[1]) / total, 3)
    with_overlay["overlay_reslices_per_frame"] = round(
        (view.overlay.reslices - before[2]) / total, 3
    )
    view.set_index(count // 2)
    app.processEvents()
    log(f"overlay: {frames} frames changing the window with the overlay on")
    reslices = view.overlay.reslices

    def window_step(i: int) -> None:
        view.set_window(WINDOW[0] + 0.5 * i, WINDOW[1] + i)

    window = frame_loop(app, view, window_step, frames, warmup, profile)
    window["overlay_reslices_per_frame"] = round((view.overlay.reslices - reslices) / total, 3)
    view.close()
    view.deleteLater()
    coronal = make_view(app, series, "coronal")
    coronal.set_overlay(result)
    rows = coronal.state.count
    log(f"overlay: {frames} frames stepping the coronal index with the overlay")
    coronal_stats = frame_loop(
        app, coronal, lambda i: coronal.set_index(i % rows), frames, warmup, profile
    )
    coronal.close()
    coronal.deleteLater()
    app.processEvents()
    return {
        "volume_shape": list(small.shape),
        "labels": sorted(result.segments),
        "labelled_voxels_fraction": round(float(np.mean(result.label_map != 0)), 4),
        "heatmap": True,
        "next_slice_without_overlay_ms": without,
        "next_slice_with_overlay_ms": with_overlay,
        "added_median_ms": round(with_overlay["median"] - without["median"], 3),
        "window_level_with_overlay_ms": window,
        "coronal_next_slice_with_overlay_ms": coronal_stats,
    }


def bench_floor(
    app: Any, volume: Any, frames: int, warmup: int, levels: tuple[int, int] | None
) -> dict[str, Any]:
    """Bare pyqtgraph: setImage of precomputed uint8 512x512 frames + processEvents.

    ``levels=(0, 255)`` (what SliceView passes) makes pyqtgraph build an Indexed8 QImage
    with a 256-entry colour table each frame; ``levels=None`` gives a Grayscale8 QImage.
    """
    import pyqtgraph as pg
    from PySide6.QtTest import QTest

    from medviewer.core.windowing import apply_window

    images = [apply_window(volume.array[k], *WINDOW) for k in range(0, SHAPE[0], SHAPE[0] // 16)]
    graphics = pg.GraphicsView(background="k")
    box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
    graphics.setCentralItem(box)
    item = pg.ImageItem(axisOrder="row-major")
    box.addItem(item)
    item.setImage(images[0], autoLevels=False, levels=levels)
    graphics.resize(*VIEW_SIZE)
    graphics.show()
    QTest.qWaitForWindowExposed(graphics, 5000)
    box.autoRange(items=[item], padding=0.02)
    app.processEvents()
    counter = PaintCounter(item)

    def frame(i: int) -> None:
        item.setImage(images[i % len(images)], autoLevels=False, levels=levels)
        app.processEvents()

    for i in range(warmup):
        frame(i)
    before = counter.paints
    result: dict[str, Any] = ms_summary(time_calls(frame, frames, 0))
    result["paints_per_frame"] = round((counter.paints - before) / frames, 3)
    result["qimage_format"] = item.qimage.format().name
    graphics.close()
    graphics.deleteLater()
    app.processEvents()
    return result


def bench_numpy(volume: Any, frames: int, warmup: int) -> dict[str, Any]:
    """apply_window (axial, coronal, sagittal), a plain float32 window, and reslice alone.

    Slices are taken in order, as scrolling does. The coronal slice is a strided view (rows
    512 KiB apart, columns contiguous); the sagittal one has its columns 1 KiB apart, so
    every pixel is a cache line of its own, shared with the next sagittal slices (scrolling
    finds them cached). ``apply_window_sagittal_jump_ms`` steps 37 sagittal slices at a
    time (74 bytes, a new cache line per pixel), like a crosshair jump.
    """
    from medviewer.core.geometry import reslice
    from medviewer.core.windowing import apply_window

    array, affine = volume.array, volume.affine
    center, width = WINDOW
    axial_out = np.empty(SHAPE[1:], np.uint8)
    coronal_out = np.empty((SHAPE[0], SHAPE[2]), np.uint8)
    coronal = [reslice(array, affine, "coronal", k).image for k in range(SHAPE[1])]
    sagittal = [reslice(array, affine, "sagittal", k).image for k in range(SHAPE[2])]
    jumps = [sagittal[(37 * k) % SHAPE[2]] for k in range(SHAPE[2])]

    def plain_window(i: int) -> None:
        x = array[i % SHAPE[0]].astype(np.float32)
        x -= center - width / 2
        x *= 255.0 / width
        np.clip(x, 0, 255, out=x)
        np.copyto(axial_out, x, casting="unsafe")

    return {
        "apply_window_axial_ms": ms_summary(
            time_calls(
                lambda i: apply_window(array[i % SHAPE[0]], center, width, out=axial_out),
                frames,
                warmup,
            )
        ),
        "apply_window_coronal_ms": ms_summary(
            time_calls(
                lambda i: apply_window(coronal[i % len(coronal)], center, width, out=coronal_out),
                frames,
                warmup,
            )
        ),
        "apply_window_sagittal_ms": ms_summary(
            time_calls(
                lambda i: apply_window(sagittal[i % len(sagittal)], center, width, out=coronal_out),
                frames,
                warmup,
            )
        ),
        "apply_window_sagittal_jump_ms": ms_summary(
            time_calls(
                lambda i: apply_window(jumps[i % len(jumps)], center, width, out=coronal_out),
                frames,
                warmup,
            )
        ),
        "numpy_float32_window_axial_ms": ms_summary(time_calls(plain_window, frames, warmup)),
        "reslice_call_ms": ms_summary(
            time_calls(lambda i: reslice(array, affine, "coronal", i % 512), frames, warmup)
        ),
    }


# -- start-up -----------------------------------------------------------------------------


def run_timed(args: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, Any]]:
    """(launch time.monotonic, wall seconds, parsed last stdout line) of a child process."""
    launched = time.monotonic()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    wall = time.monotonic() - launched
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
    lines = done.stdout.strip().splitlines()
    return launched, wall, (json.loads(lines[-1]) if lines else {})


def bench_startup(runs: int) -> dict[str, Any]:
    """Process launch -> main window painted, R fresh processes; floors beside it."""
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ["QT_QPA_PLATFORM"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    shown, first_paint, interp, app_ready, walls, heavy, modules = [], [], [], [], [], [], []
    bare, python_pass = [], []
    with tempfile.TemporaryDirectory(prefix="bench_render-") as tmp:
        for run in range(runs):
            db, ini = Path(tmp) / f"db{run}.sqlite", Path(tmp) / f"settings{run}.ini"
            probe = Path(tmp) / f"probe{run}.json"
            argv = [str(probe), "--db", str(db), "--settings", str(ini), "--exit-after", "20000"]
            launched, wall, marks = run_timed([sys.executable, "-c", STARTUP_CHILD, *argv], env)
            if marks.get("shown") is None:
                raise RuntimeError("the main window was never painted")
            shown.append(marks["shown"] - launched)
            first_paint.append(marks["first_paint"] - launched)
            interp.append(marks["start"] - launched)
            app_ready.append(marks["app"] - launched)
            walls.append(wall)
            heavy.append(marks["heavy"])
            modules.append(marks["modules"])
            launched, _, bare_marks = run_timed([sys.executable, "-c", BARE_QT_CHILD], env)
            bare.append(bare_marks["shown"] - launched)
            python_pass.append(run_timed([sys.executable, "-c", "pass"], env)[1])
            log(
                f"start-up run {run + 1}/{runs}: window shown at {shown[-1]:.3f} s "
                f"(bare Qt window {bare[-1]:.3f} s, python -c pass {python_pass[-1]:.3f} s)"
            )
    present = sorted({m for names in heavy for m in names})
    return {
        "startup_s": round(statistics.median(shown), 4),
        "runs_s": [round(v, 4) for v in shown],
        "interpreter_ready_s": round(statistics.median(interp), 4),
        "qapplication_ready_s": round(statistics.median(app_ready), 4),
        "first_paint_event_s": round(statistics.median(first_paint), 4),
        "process_wall_incl_exit_s": round(statistics.median(walls), 4),
        "modules_loaded_at_show": int(statistics.median(modules)),
        "heavy_modules_at_show": present,
        "import_torch_in_startup": any(m in present for m in ("torch", "monai", "SimpleITK")),
        "peer_bare_qt_window_s": round(statistics.median(bare), 4),
        "peer_python_pass_s": round(statistics.median(python_pass), 4),
    }


# -- report -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Processor, cores, Python, Qt and library versions, date."""
    import pyqtgraph
    import PySide6
    from PySide6.QtCore import qVersion

    return shared_machine_info(
        pyside6=PySide6.__version__,
        qt=qVersion(),
        pyqtgraph=pyqtgraph.__version__,
        qt_qpa_platform=os.environ.get("QT_QPA_PLATFORM"),
    )


def bench_slab(app: Any, volume: Any, frames: int, warmup: int, profile: bool) -> dict[str, Any]:
    """Next slice with a 10 mm MIP/MinIP/average slab, against the plain slice, same view."""
    from medviewer.core.slab import Slab
    from medviewer.ui.open_series import OpenSeries

    series = OpenSeries("bench-slab", volume)
    out: dict[str, Any] = {"thickness_mm": 10.0}
    for plane, modes in (("axial", ("mip", "minip", "avg")), ("coronal", ("mip",))):
        view = make_view(app, series, plane)
        count = view.state.count

        def step(i: int, v: Any = view, n: int = count) -> None:
            v.set_index(i % n)

        log(f"slab: {plane}, {frames} plain frames")
        plain = frame_loop(app, view, step, frames, warmup, profile)
        cases: dict[str, Any] = {"plain_ms": plain}
        for mode in modes:
            view.set_slab(Slab(mode, 10.0))  # type: ignore[arg-type]
            log(f"slab: {plane} {mode} 10 mm, {frames} frames")
            stats = frame_loop(app, view, step, frames, warmup, profile)
            stats["ratio_to_plain"] = round(stats["median"] / plain["median"], 3)
            cases[f"{mode}_ms"] = stats
        view.close()
        view.deleteLater()
        app.processEvents()
        out[plane] = cases
    return out


def bench_oblique(app: Any, volume: Any, frames: int, warmup: int, profile: bool) -> dict[str, Any]:
    """Next frame of a rotated axial plane against the plain axial slice, same view."""
    from medviewer.core.oblique import rotation_about
    from medviewer.ui.open_series import OpenSeries

    series = OpenSeries("bench-oblique", volume)
    view = make_view(app, series, "axial")
    count = view.state.count

    def step(i: int) -> None:
        view.set_index(100 + i % (count - 200))

    log(f"oblique: {frames} plain axial frames")
    plain = frame_loop(app, view, step, frames, warmup, profile)
    rotation = rotation_about(np.array([0.0, 1.0, 0.0]), 10.0) @ rotation_about(
        np.array([1.0, 0.0, 0.0]), 20.0)
    view.set_rotation(tuple(rotation.ravel()))
    grid = view.oblique_grid()
    assert grid is not None
    log(f"oblique: {frames} rotated axial frames ({grid.shape[0]} x {grid.shape[1]})")
    rotated = frame_loop(app, view, step, frames, warmup, profile)
    rotated["ratio_to_plain"] = round(rotated["median"] / plain["median"], 3)
    sampler = view._sampler
    assert sampler is not None
    reslice = ms_summary(time_calls(
        lambda i: sampler.sample(grid.affine(100 + i % 50), grid.shape), frames, warmup))
    view.close()
    view.deleteLater()
    app.processEvents()
    return {"rotation_deg": {"about_lr": 20.0, "about_ap": 10.0}, "plane_shape": list(grid.shape),
            "plain_ms": plain, "rotated_ms": rotated, "reslice_ms": reslice}


def bench_fusion(app: Any, volume: Any, frames: int, warmup: int, profile: bool) -> dict[str, Any]:
    """Next axial frame with a PET-like volume fused over it, against the plain frame."""
    from dataclasses import replace

    from medviewer.core.fusion import FusionStyle
    from medviewer.core.volume import Volume
    from medviewer.ui.fusion_layer import Fusion
    from medviewer.ui.open_series import OpenSeries

    frame = "1.2.826.0.1.3680043.8.498.2"
    ct = Volume(volume.array, volume.affine, replace(volume.metadata, frame_of_reference_uid=frame))
    k, r, c = (n // b for n, b in zip(ct.shape, (4, 6, 6), strict=True))
    blocks = ct.array[: k * 4, : r * 6, : c * 6].reshape(k, 4, r, 6, c, 6).mean(axis=(1, 3, 5))
    affine = np.array(ct.affine, float)
    affine[:3, :3] = ct.affine[:3, :3] @ np.diag([6.0, 6.0, 4.0])
    affine[:3, 3] = ct.affine[:3, 3] + ct.affine[:3, :3] @ np.array([2.5, 2.5, 1.5])
    meta = replace(ct.metadata, modality="PT", series_uid="1.2.826.0.1.3680043.8.498.3")
    pet = Volume(blocks.astype(np.float32), affine, meta)
    view = make_view(app, OpenSeries("bench-fusion", ct), "axial")
    count = view.state.count

    def step(i: int) -> None:
        view.set_index(i % count)

    log(f"fusion: {frames} plain frames")
    plain = frame_loop(app, view, step, frames, warmup, profile)
    assert view.set_fusion(Fusion(pet, FusionStyle(-200.0, 400.0)))
    log(f"fusion: {frames} fused frames (PET-like {list(pet.shape)})")
    fused = frame_loop(app, view, step, frames, warmup, profile)
    fused["ratio_to_plain"] = round(fused["median"] / plain["median"], 3)
    fused["sampling_step_px"] = view.fusion_layer.step
    view.close()
    view.deleteLater()
    app.processEvents()
    return {"fused_shape": list(pet.shape), "plain_ms": plain, "fused_ms": fused}


def verdicts(report: dict[str, Any]) -> dict[str, bool]:
    """Which targets the measured medians meet (only those measured)."""
    out: dict[str, bool] = {}
    if "next_slice_ms" in report:
        out["next_slice"] = report["next_slice_ms"]["median"] <= TARGETS["next_slice_max_ms"]
    for plane, stats in report.get("reslice_ms", {}).items():
        out[f"reslice_{plane}"] = stats["median"] <= TARGETS["reslice_max_ms"]
    if "startup" in report:
        out["startup"] = report["startup"]["startup_s"] <= TARGETS["startup_max_s"]
    if "oblique" in report:
        out["oblique_reslice"] = (report["oblique"]["reslice_ms"]["median"]
                                  <= TARGETS["oblique_reslice_max_ms"])
    for plane, cases in report.get("slab", {}).items():
        for name, stats in cases.items() if isinstance(cases, dict) else ():
            if "ratio_to_plain" in stats:
                out[f"slab_{plane}_{name[:-3]}"] = (
                    stats["ratio_to_plain"] <= TARGETS["slab_max_ratio_to_plain"]
                )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """--frames N, --warmup W, --startup-runs R, --profile, --skip-startup, --skip-overlay,
    --skip-slab, --skip-oblique, --skip-fusion."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="timed frames per loop (200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames first (20)")
    parser.add_argument("--startup-runs", type=int, default=5, help="fresh processes (5)")
    parser.add_argument("--skip-startup", action="store_true", help="no start-up section")
    parser.add_argument("--skip-overlay", action="store_true", help="no AI overlay section")
    parser.add_argument("--skip-slab", action="store_true", help="no thick-slab section")
    parser.add_argument("--skip-oblique", action="store_true", help="no oblique MPR section")
    parser.add_argument("--skip-fusion", action="store_true", help="no fusion section")
    parser.add_argument("--profile", action="store_true", help="cProfile the frame loops")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 1 or args.startup_runs < 1:
        parser.error("--frames, --warmup and --startup-runs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every section and print the JSON report."""
    args = parse_args(argv)
    started = time.perf_counter()
    from medviewer.ui.application import application

    app = application()
    log("building the synthetic CT volume")
    volume = ct_volume()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "volume": {
            "shape": list(SHAPE),
            "dtype": str(volume.array.dtype),
            "spacing_mm": list(SPACING),
            "window": {"center": WINDOW[0], "width": WINDOW[1]},
        },
        "view_size": list(VIEW_SIZE),
    }
    report.update(bench_views(app, volume, args.frames, args.warmup, args.profile))
    if not args.skip_overlay:
        report["overlay"] = bench_overlay(app, volume, args.frames, args.warmup, args.profile)
    if not args.skip_slab:
        report["slab"] = bench_slab(app, volume, args.frames, args.warmup, args.profile)
    if not args.skip_oblique:
        report["oblique"] = bench_oblique(app, volume, args.frames, args.warmup, args.profile)
    if not args.skip_fusion:
        report["fusion"] = bench_fusion(app, volume, args.frames, args.warmup, args.profile)
    log("peers: bare pyqtgraph ImageItem, numpy windowing, reslice")
    report["peer"] = {
        "bare_imageitem_uint8_ms": bench_floor(app, volume, args.frames, args.warmup, (0, 255)),
        "bare_imageitem_uint8_levels_none_ms": bench_floor(
            app, volume, args.frames, args.warmup, None
        ),
    }
    report["peer"].update(bench_numpy(volume, args.frames, args.warmup))
    if not args.skip_startup:
        report["startup"] = bench_startup(args.startup_runs)
    report["targets"] = TARGETS
    report["meets_targets"] = verdicts(report)
    report["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
