"""Inference benchmark: what a model card run costs through medviewer's Runner, against plain torch.

What it measures, in one run (a JSON object on stdout, progress on stderr):

1. ``infer_2d``: a randomly initialised MONAI 2D ``UNet`` (1 -> 4 channels, channels
   16/32/64/128, 2 residual units), saved as safetensors beside a card (segmentation, PLS,
   softmax, labels 1..3, HU -1000..1000 -> 0..1 clipped), run by
   ``Runner(card, device, batch_size=B, cpu_threads=<all cores>)`` + ``run_to_end`` on an
   N x 512 x 512 float32 CT phantom (0.7 x 0.7 x 1.5 mm). Per batch size B: the per-slice
   latency (run seconds / N, median of R runs after one warm-up run) and, as a peer, the
   plain network forward at the same batch size on the same device (``inference_mode``,
   pre-scaled input already on the device; autocast as the Runner uses it on CUDA), with
   the paired ratio ``runner_over_plain``. ``best_batch`` is the fastest Runner batch size.
2. ``infer_3d``: a randomly initialised MONAI 3D ``UNet`` (1 -> 2 channels, channels
   8/16/32/64, 1 residual unit), card with LPS orientation, 96^3 patches, overlap 0.25,
   softmax, label 1. (a) ``Runner.run`` end to end on a slices x rows x cols phantom
   (default 300 x 512 x 512); (b) the minimal equivalent pipeline: MONAI's
   ``sliding_window_inference(x, (96, 96, 96), sw_batch_size, net, overlap=0.25,
   mode="gaussian")`` under ``inference_mode`` on the same pre-scaled tensor in model order
   (prepared untimed), then ``argmax(dim=1)``. Voxels/s for both, the ratio, the label
   agreement between the two, and a breakdown of the Runner's time taken from the
   timestamps of its Progress messages. Each runs once after a warm-up on a tiny volume.
3. Peak memory after each part: ``ru_maxrss`` of this process (a running maximum) and, on
   CUDA, ``torch.cuda.max_memory_allocated`` (reset at the start of each part).

Targets: 3D Runner / plain sliding window <= 1.05; on CUDA, 300 x 512 x 512 end to end <= 3 s
(issue target for an H100). CUDA is synchronised before every timer read.

Usage: ``python benchmarks/bench_infer.py [--device auto|cpu|cuda] [--slices N]
[--batch-sizes 1,2,4,8] [--repeats R] [--volume S,R,C] [--sw-batch B] [--only 2d|3d]
[--quick]`` (``--quick``: 4 slices, batch sizes 1,2, a 64 x 192 x 192 volume).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
from machine import machine_info as shared_machine_info
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet
from safetensors.torch import save_file

from medviewer.ai.device import autocast_dtype, describe_device, resolve_device
from medviewer.ai.model_card import ModelCard, load_card
from medviewer.ai.prediction import Prediction, Progress
from medviewer.ai.runner import Runner, run_to_end
from medviewer.ai.weights import Network, clear_network_cache, load_network
from medviewer.core.volume import Volume, VolumeMetadata

SPACING = (0.7, 0.7, 1.5)  # column, row, slice (mm)
IMAGE_2D = (512, 512)
UNET_2D: dict[str, Any] = {
    "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
    "channels": [16, 32, 64, 128], "strides": [2, 2, 2], "num_res_units": 2,
}
UNET_3D: dict[str, Any] = {
    "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
    "channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1,
}
LABELS_2D = {"1": {"name": "lung"}, "2": {"name": "soft tissue"}, "3": {"name": "bone"}}
LABELS_3D = {"1": {"name": "body"}}
PATCH = (96, 96, 96)
OVERLAP = 0.25
HU_RANGE = (-1000.0, 1000.0)
INTENSITY = [{"op": "scale_range", "min": HU_RANGE[0], "max": HU_RANGE[1], "to": [0.0, 1.0],
              "clip": True}]
SEED = 0
WARMUP_VOLUME = (64, 128, 128)
FULL_VOLUME = (300, 512, 512)
QUICK = {"slices": 4, "batch_sizes": (1, 2), "volume": (64, 192, 192)}
SLAB = 16  # phantom slices painted at a time (bounds the temporaries)
EDGE = 0.1  # soft edge of the phantom's ellipsoids, in units of r^2
# centre (z, y, x) and radii in [-1, 1] volume coordinates, value in HU; painted in order
ELLIPSOIDS = (
    ((0.0, 0.05, 0.0), (1.4, 0.62, 0.85), 40.0),  # body (soft tissue)
    ((0.15, -0.05, -0.42), (0.75, 0.38, 0.26), -850.0),  # right lung
    ((0.15, -0.05, 0.42), (0.75, 0.38, 0.26), -850.0),  # left lung
    ((0.1, -0.1, 0.08), (0.35, 0.2, 0.18), 50.0),  # heart
    ((-0.6, 0.1, -0.3), (0.5, 0.32, 0.32), 60.0),  # liver
    ((0.0, 0.45, 0.0), (1.4, 0.07, 0.07), 700.0),  # spine
)
TARGETS = {"runner_over_plain_3d_max": 1.05, "cuda_3d_300x512x512_max_s": 3.0}


# -- helpers ------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the JSON)."""
    print(f"[bench_infer] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer read afterwards means something."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast the Runner uses on `device` (none on the CPU)."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_cuda_peak(device: torch.device) -> None:
    """Start a new peak for ``torch.cuda.max_memory_allocated``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def memory(device: torch.device) -> dict[str, float]:
    """Peak RSS, plus the CUDA allocator's peak on CUDA (MiB)."""
    out = {"peak_rss_mib": peak_rss_mib()}
    if device.type == "cuda":
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median of the per-repeat ratios (robust to load drifting between repeats)."""
    return round(statistics.median(a / b for a, b in zip(ours, theirs, strict=True)), 3)


# -- data ---------------------------------------------------------------------------------


def phantom(shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth float32 CT phantom in HU: air, body, lungs, heart, liver, spine (soft edges)."""
    slices, rows, cols = shape
    out = np.empty(shape, np.float32)
    z_all = np.linspace(-1.0, 1.0, slices, dtype=np.float32)
    y = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, cols, dtype=np.float32)[None, :]
    for k0 in range(0, slices, SLAB):
        out[k0 : k0 + SLAB] = _paint(z_all[k0 : k0 + SLAB, None, None], y, x)
    return out


def _paint(z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One slab of the phantom (z is ``[s, 1, 1]``, y ``[rows, 1]``, x ``[1, cols]``)."""
    slab = np.full((z.shape[0], y.shape[0], x.shape[1]), -1000.0, np.float32)
    for (cz, cy, cx), (rz, ry, rx), hu in ELLIPSOIDS:
        r2 = ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
        weight = np.clip((1.0 - r2) / EDGE, 0.0, 1.0)
        slab += weight * (np.float32(hu) - slab)
    return slab


def ct_volume(shape: tuple[int, int, int]) -> Volume:
    """A float32 phantom Volume, affine diag(0.7, 0.7, 1.5), modality CT."""
    affine = np.diag([*SPACING, 1.0])
    metadata = VolumeMetadata(modality="CT", units="HU", series_uid="1.2.826.0.1.3680043.8.498.2")
    return Volume(phantom(shape), affine, metadata)


def prescaled(array: np.ndarray) -> torch.Tensor:
    """The card's intensity step in plain torch: HU -1000..1000 -> 0..1, clipped (a copy)."""
    low, high = HU_RANGE
    tensor = torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
    return tensor.sub_(low).div_(high - low).clamp_(0.0, 1.0)


# -- models -------------------------------------------------------------------------------


def card_dict(weights: Path, unet: dict[str, Any], **input_fields: Any) -> dict[str, Any]:
    """A segmentation card for safetensors `weights` of a MONAI UNet (sha256 computed)."""
    labels = input_fields.pop("labels")
    return {
        "schema": "medviewer.model/1",
        "id": f"bench-unet-{unet['spatial_dims']}d",
        "name": f"Benchmark UNet {unet['spatial_dims']}D (random weights)",
        "version": "0.0.0",
        "task": "segmentation",
        "intended_use": "Benchmarks only: random weights, meaningless output.",
        "modalities": ["CT"],
        "weights": {
            "file": weights.name,
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "format": "safetensors",
            "architecture": {"name": "monai.networks.nets.UNet", "kwargs": unet},
        },
        "input": {**input_fields, "intensity": INTENSITY},
        "output": {"activation": "softmax", "labels": labels},
    }


def save_model(folder: Path, unet: dict[str, Any], **input_fields: Any) -> ModelCard:
    """Random-init `unet` (fixed seed), save it as safetensors with its card; load the card."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    net = UNet(**unet)
    weights = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    card = card_dict(weights, unet, **input_fields)
    (folder / "model.json").write_text(json.dumps(card, indent=2))
    return load_card(folder)


def parameter_count(network: Network) -> int:
    """Number of parameters of an eager network."""
    return sum(p.numel() for p in network.module.parameters())


# -- the Runner, timed --------------------------------------------------------------------


@dataclass
class RunnerRun:
    """One timed Runner run: seconds, the Prediction and its Progress timestamps."""

    seconds: float
    prediction: Prediction
    start: float
    end: float
    events: list[tuple[float, str]] = field(default_factory=list)


class ProgressLog:
    """Records ``(time, message)`` of every Progress; logs to stderr now and then."""

    def __init__(self, label: str, every_s: float) -> None:
        self.label = label
        self.every_s = every_s
        self.events: list[tuple[float, str]] = []
        self._last_log = time.perf_counter()

    def __call__(self, progress: Progress) -> None:
        """Record one Progress."""
        now = time.perf_counter()
        self.events.append((now, progress.message))
        if self.every_s and now - self._last_log >= self.every_s:
            self._last_log = now
            log(f"{self.label}: {progress.fraction:.0%} {progress.message}")


def time_runner(runner: Runner, volume: Volume, label: str = "", every_s: float = 0.0
                ) -> RunnerRun:
    """Run `runner` on `volume` to the end, timing it (CUDA synchronised at both ends)."""
    progress = ProgressLog(label, every_s)
    sync(runner.device)
    start = time.perf_counter()
    prediction = run_to_end(runner.run(volume), progress)
    sync(runner.device)
    end = time.perf_counter()
    return RunnerRun(end - start, prediction, start, end, progress.events)


def phase_of(message: str) -> str:
    """The Runner phase a Progress message opens."""
    if message.startswith("loading"):
        return "load"
    if message.startswith("preparing"):
        return "prepare"
    if message.startswith(("segmenting", "classifying")):
        return "inference"
    if message.startswith("post-processing"):
        return "labels"
    if message.startswith("measuring"):
        return "statistics"
    return "finish" if message == "done" else message


def breakdown(run: RunnerRun) -> dict[str, Any]:
    """Seconds between Progress messages, by phase.

    ``prepare_and_first_batch``: model grid, intensity, copy to the device and the first
    batch (the first inference message comes after it); ``inference_batches``: the other
    batches; ``after_last_batch``: what follows the last batch before "post-processing"
    (sliding window: its final blend; then softmax and the copy to numpy); ``labels``:
    argmax and mapping back to the volume grid; ``statistics``: segment measurements;
    ``finish``: building the Prediction.
    """
    marks = [(run.start, "check"), *((t, phase_of(m)) for t, m in run.events), (run.end, "end")]
    phases: dict[str, float] = {}
    for (t0, a), (t1, b) in itertools.pairwise(marks):
        key = a
        if a == "prepare":
            key = "prepare_and_first_batch"
        elif a == "inference":
            key = "inference_batches" if b == "inference" else "after_last_batch"
        phases[key] = phases.get(key, 0.0) + (t1 - t0)
    batches = sum(1 for _, b in marks if b == "inference")
    out: dict[str, Any] = {k: round(v, 4) for k, v in phases.items()}
    out["inference_messages"] = batches
    if batches > 1:
        per_batch = phases["inference_batches"] / (batches - 1)
        out["mean_batch_s"] = round(per_batch, 4)
        out["prepare_estimate_s"] = round(phases["prepare_and_first_batch"] - per_batch, 4)
    return out


def label_summary(labels: np.ndarray) -> dict[str, Any]:
    """Fraction of voxels and number of connected components (6-connected) per label.

    A random network still gives structure, but a fragmented one: the component count is
    what the Runner's segment statistics pay for.
    """
    import SimpleITK as sitk

    counts = np.bincount(labels.ravel())
    components = {}
    for k in range(1, counts.size):
        if counts[k]:
            mask = sitk.GetImageFromArray((labels == k).view(np.uint8))
            found = sitk.ConnectedComponent(mask)
            components[str(k)] = int(sitk.GetArrayViewFromImage(found).max())
    return {
        "label_fractions": {str(k): round(float(c / labels.size), 4)
                            for k, c in enumerate(counts) if c},
        "label_components": components,
    }


# -- 2D -----------------------------------------------------------------------------------


def plain_forward_2d(network: Network, images: torch.Tensor, batch: int) -> float:
    """Seconds for the bare network over `images` ``[N, 1, H, W]`` (on its device) by `batch`."""
    device = network.device
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode(), autocast_for(device):
        for k0 in range(0, images.shape[0], batch):
            network(images[k0 : k0 + batch])
    sync(device)
    return time.perf_counter() - start


def bench_batch_2d(card: ModelCard, volume: Volume, images: torch.Tensor, batch: int,
                   settings: argparse.Namespace) -> tuple[dict[str, Any], np.ndarray]:
    """Runner vs plain forward at one batch size: a warm-up each, then paired repeats.

    Returns the figures and the last run's label map.
    """
    runner = Runner(card, settings.device, batch_size=batch, cpu_threads=settings.threads)
    network = load_network(card, runner.device)
    time_runner(runner, volume)
    plain_forward_2d(network, images, batch)
    runs: list[RunnerRun] = []
    theirs: list[float] = []
    for _ in range(settings.repeats):
        runs.append(time_runner(runner, volume))
        theirs.append(plain_forward_2d(network, images, batch))
    ours = [run.seconds for run in runs]
    lean = [run.seconds - breakdown(run).get("statistics", 0.0) for run in runs]
    n = images.shape[0]
    runner_ms, plain_ms = statistics.median(ours) * 1e3 / n, statistics.median(theirs) * 1e3 / n
    log(f"2D batch {batch}: runner {runner_ms:.1f} ms/slice, plain {plain_ms:.1f} ms/slice")
    return {
        "runner_ms_per_slice": round(runner_ms, 3),
        "plain_ms_per_slice": round(plain_ms, 3),
        "runner_over_plain": paired_ratio(ours, theirs),
        "runner_images_per_s": round(1e3 / runner_ms, 2),
        "plain_images_per_s": round(1e3 / plain_ms, 2),
        "runner_ms_per_slice_without_statistics": round(statistics.median(lean) * 1e3 / n, 3),
        "runner_without_statistics_over_plain": paired_ratio(lean, theirs),
        "runner_runs_s": [round(s, 4) for s in ours],
        "plain_runs_s": [round(s, 4) for s in theirs],
        "runner_breakdown_s": breakdown(runs[-1]),
    }, runs[-1].prediction.label_map


def bench_2d(folder: Path, device: torch.device, settings: argparse.Namespace) -> dict[str, Any]:
    """The 2D part: Runner and plain per-slice latency for every batch size."""
    reset_cuda_peak(device)
    card = save_model(folder / "unet2d", UNET_2D, dims=2, orientation="PLS", labels=LABELS_2D)
    shape = (settings.slices, *IMAGE_2D)
    log(f"2D: {shape[0]} slices of {shape[1]}x{shape[2]}, batch sizes {settings.batch_sizes}")
    volume = ct_volume(shape)
    images = prescaled(volume.array)[:, None].to(device)
    network = load_network(card, device)
    batches: dict[str, dict[str, Any]] = {}
    for b in settings.batch_sizes:
        batches[str(b)], labels = bench_batch_2d(card, volume, images, b, settings)
    best = min(batches, key=lambda b: batches[b]["runner_ms_per_slice"])
    return {
        "model": {"class": "monai.networks.nets.UNet", **UNET_2D,
                  "parameters": parameter_count(network)},
        "card": {"orientation": "PLS", "activation": "softmax", "labels": [1, 2, 3],
                 "intensity": INTENSITY},
        "volume_shape": list(shape),
        "slices": shape[0],
        "repeats": settings.repeats,
        "batches": batches,
        "best_batch": int(best),
        "best_runner_ms_per_slice": batches[best]["runner_ms_per_slice"],
        **memory(device),
        **label_summary(labels),
    }


# -- 3D -----------------------------------------------------------------------------------


@dataclass
class PlainRun:
    """One plain sliding-window pass: seconds of its steps and the label map (model order)."""

    sliding_s: float
    argmax_s: float
    network_s: float | None
    windows: int
    labels: torch.Tensor

    @property
    def seconds(self) -> float:
        """Sliding window plus argmax."""
        return self.sliding_s + self.argmax_s


def plain_3d(network: Network, x: torch.Tensor, sw_batch: int, every_s: float = 0.0
             ) -> PlainRun:
    """MONAI sliding window (Gaussian) then argmax on `x` ``[1, 1, d0, d1, d2]`` (on device).

    The predictor is the network itself behind a thin counter (and, on the CPU, a clock:
    on CUDA a clock per window would need a synchronisation, so network time is not kept).
    """
    device = network.device
    counter = {"windows": 0, "network_s": 0.0, "logged": time.perf_counter()}

    def predictor(windows: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        output = network(windows)
        now = time.perf_counter()
        counter["network_s"] += now - start
        counter["windows"] += 1
        if every_s and now - counter["logged"] >= every_s:
            counter["logged"] = now
            log(f"plain sliding window: {counter['windows']} window batches")
        return output

    with torch.inference_mode(), autocast_for(device):
        sync(device)
        start = time.perf_counter()
        logits = sliding_window_inference(x, PATCH, sw_batch, predictor, overlap=OVERLAP,
                                          mode="gaussian")
        sync(device)
        blended = time.perf_counter()
        labels = logits.argmax(dim=1)
        sync(device)
        end = time.perf_counter()
    network_s = counter["network_s"] if device.type == "cpu" else None
    return PlainRun(blended - start, end - blended, network_s, int(counter["windows"]), labels)


def model_order_input(volume: Volume, device: torch.device) -> torch.Tensor:
    """The pre-scaled ``[1, 1, col, row, slice]`` tensor an LPS card sees, on `device`.

    With the identity direction an LPS card's model order is (col, row, slice): the Runner's
    reorientation is a transposed view (no flips); only its contiguous copy costs anything.
    """
    model = np.ascontiguousarray(volume.array.transpose(2, 1, 0))
    return prescaled(model)[None, None].to(device)


def agreement(run: RunnerRun, plain: PlainRun) -> float:
    """Fraction of voxels where the Runner's label map equals the plain argmax."""
    ours = run.prediction.label_map
    theirs = plain.labels[0].to(torch.uint8).cpu().numpy().transpose(2, 1, 0)
    return round(float(np.mean(ours == theirs)), 6)


def warm_up_3d(runner: Runner, network: Network, sw_batch: int) -> None:
    """One Runner run and one plain pass on a tiny volume (allocators, kernels, imports)."""
    log(f"3D warm-up on {WARMUP_VOLUME}")
    volume = ct_volume(WARMUP_VOLUME)
    time_runner(runner, volume)
    plain_3d(network, model_order_input(volume, network.device), sw_batch)


def bench_3d(folder: Path, device: torch.device, settings: argparse.Namespace) -> dict[str, Any]:
    """The 3D part: Runner end to end vs MONAI's sliding window + argmax, once each."""
    reset_cuda_peak(device)
    card = save_model(folder / "unet3d", UNET_3D, dims=3, orientation="LPS",
                      patch_size=list(PATCH), overlap=OVERLAP, labels=LABELS_3D)
    sw_batch = settings.sw_batch or (4 if device.type == "cuda" else 1)
    runner = Runner(card, settings.device, batch_size=sw_batch, cpu_threads=settings.threads)
    network = load_network(card, device)
    warm_up_3d(runner, network, sw_batch)
    shape = settings.volume
    log(f"3D: phantom {shape}")
    volume = ct_volume(shape)
    out: dict[str, Any] = {"memory_after_phantom": memory(device)}
    log("3D: Runner.run end to end")
    run = time_runner(runner, volume, "runner", every_s=20.0)
    log(f"3D: Runner {run.seconds:.2f} s")
    out["memory_after_runner"] = memory(device)
    x = model_order_input(volume, device)
    log("3D: plain sliding_window_inference + argmax")
    plain = plain_3d(network, x, sw_batch, every_s=20.0)
    log(f"3D: plain {plain.seconds:.2f} s")
    out["memory_after_plain"] = memory(device)
    return _result_3d(card, network, shape, sw_batch, run, plain, out)


def _result_3d(card: ModelCard, network: Network, shape: tuple[int, int, int], sw_batch: int,
               run: RunnerRun, plain: PlainRun, extra: dict[str, Any]) -> dict[str, Any]:
    voxels = int(np.prod(shape))
    lean = run.seconds - breakdown(run).get("statistics", 0.0)
    result: dict[str, Any] = {
        "model": {"class": "monai.networks.nets.UNet", **UNET_3D,
                  "parameters": parameter_count(network)},
        "card": {"orientation": card.input.orientation, "patch_size": list(PATCH),
                 "overlap": OVERLAP, "activation": "softmax", "labels": [1],
                 "intensity": INTENSITY},
        "volume_shape": list(shape),
        "voxels": voxels,
        "sw_batch_size": sw_batch,
        "window_batches": plain.windows,
        "runner_s": round(run.seconds, 3),
        "plain_s": round(plain.seconds, 3),
        "plain_sliding_window_s": round(plain.sliding_s, 3),
        "plain_argmax_s": round(plain.argmax_s, 3),
        "plain_network_s": None if plain.network_s is None else round(plain.network_s, 3),
        "runner_over_plain": round(run.seconds / plain.seconds, 3),
        "runner_voxels_per_s": round(voxels / run.seconds),
        "plain_voxels_per_s": round(voxels / plain.seconds),
        "runner_breakdown_s": breakdown(run),
        "runner_s_without_statistics": round(lean, 3),
        "runner_without_statistics_over_plain": round(lean / plain.seconds, 3),
        "label_agreement": agreement(run, plain),
        **label_summary(run.prediction.label_map),
        "runner_warnings": list(run.prediction.warnings),
    }
    result.update(extra)
    return result


# -- report -------------------------------------------------------------------------------


def machine_info(device: torch.device, threads: int) -> dict[str, Any]:
    """Processor, cores, Python, torch and MONAI versions, date, the device and its threads."""
    return shared_machine_info(
        torch=torch.__version__,
        monai=monai.__version__,
        torch_cuda=torch.version.cuda,
        device=describe_device(device),
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        requested_threads=threads,
    )


def verdicts(report: dict[str, Any], device: torch.device) -> dict[str, bool]:
    """Which targets the measured figures meet (only those measured)."""
    out: dict[str, bool] = {}
    part = report.get("infer_3d")
    if part:
        out["runner_over_plain_3d"] = part["runner_over_plain"] <= TARGETS[
            "runner_over_plain_3d_max"]
        if device.type == "cuda" and tuple(part["volume_shape"]) == FULL_VOLUME:
            out["cuda_3d_300x512x512"] = part["runner_s"] <= TARGETS["cuda_3d_300x512x512_max_s"]
    return out


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        message = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """--device, --slices, --batch-sizes, --repeats, --volume, --sw-batch, --only, --quick."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--slices", type=int, help="2D slices (16 on the CPU, 256 on CUDA)")
    parser.add_argument("--batch-sizes", type=_ints, help="2D batch sizes (1,2,4,8)")
    parser.add_argument("--repeats", type=int, default=2, help="2D timed runs per batch (2)")
    parser.add_argument("--volume", type=_ints, help="3D slices,rows,cols (300,512,512)")
    parser.add_argument("--sw-batch", type=int, help="windows per batch (1 CPU, 4 CUDA)")
    parser.add_argument("--only", choices=("2d", "3d"), help="run one part only")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 slices, batch sizes 1,2, a 64x192x192 volume")
    args = parser.parse_args(argv)
    if args.volume is not None and len(args.volume) != 3:
        parser.error("--volume needs 3 numbers: slices,rows,cols")
    if args.repeats < 1 or (args.slices is not None and args.slices < 1):
        parser.error("--repeats and --slices must be >= 1")
    return args


def settle(args: argparse.Namespace, device: torch.device) -> argparse.Namespace:
    """Fill in the defaults that depend on --quick and on the device."""
    cuda = device.type == "cuda"
    if args.slices is None:
        args.slices = QUICK["slices"] if args.quick else (256 if cuda else 16)
    if args.batch_sizes is None:
        args.batch_sizes = QUICK["batch_sizes"] if args.quick else (1, 2, 4, 8)
    if args.volume is None:
        args.volume = QUICK["volume"] if args.quick else FULL_VOLUME
    args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return args


@contextlib.contextmanager
def model_folder() -> Iterator[Path]:
    """A temporary folder for the models; forgets the loaded networks on the way out."""
    with tempfile.TemporaryDirectory(prefix="bench_infer-") as folder:
        try:
            yield Path(folder)
        finally:
            clear_network_cache()


def run_part(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one part, logging how long it took."""
    start = time.perf_counter()
    result = fn()
    result["part_wall_s"] = round(time.perf_counter() - start, 1)
    log(f"{name} done in {result['part_wall_s']} s")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the parts and print the JSON report."""
    args = parse_args(argv)
    started = time.perf_counter()
    device = resolve_device(args.device)
    args = settle(args, device)
    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "machine": machine_info(device, args.threads),
        "device_type": device.type,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "settings": {"slices_2d": args.slices, "batch_sizes_2d": list(args.batch_sizes),
                     "repeats_2d": args.repeats, "volume_3d": list(args.volume),
                     "sw_batch_size": args.sw_batch, "quick": args.quick,
                     "autocast": str(autocast_dtype(device))},
    }
    with model_folder() as folder:
        if args.only in (None, "2d"):
            report["infer_2d"] = run_part("2D", lambda: bench_2d(folder, device, args))
        if args.only in (None, "3d"):
            report["infer_3d"] = run_part("3D", lambda: bench_3d(folder, device, args))
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["targets"] = TARGETS
    report["meets_targets"] = verdicts(report, device)
    report["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
