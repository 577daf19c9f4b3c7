"""Run a model card on a Volume: a generator of Progress that returns a Prediction.

``Runner(card).run(volume)`` checks the series against the card, loads the network once (cached
for the next run), builds the card's model grid, runs 2D models on batches of slices and 3D models
on the volume (MONAI sliding-window inference with Gaussian blending when the card sets a patch
size), and maps every output back onto the volume's own grid. It checks the cancel callable
between batches and windows; a cancelled run raises CancelledError and returns nothing.

This module orchestrates; the parts live beside it: :mod:`~medviewer.ai.applicability` (does the
model suit the series), :mod:`~medviewer.ai.prepare` (the input tensor and its intensity ops),
:mod:`~medviewer.ai.inference` (the network over batches, windows and out-of-memory fallbacks),
:mod:`~medviewer.ai.decisions` (probabilities, labels and classes from the raw output) and
:mod:`~medviewer.ai.statistics` (post-processing and measurements).

The GUI wraps ``run()`` in a worker unchanged; the CLI drains it with :func:`run_to_end`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from medviewer.ai.applicability import check_applicable
from medviewer.ai.cascade import (
    UPSTREAM_RESULTS,
    UPSTREAM_SHARE,
    card_key,
    series_key,
    upstream_card,
)
from medviewer.ai.decisions import (
    activate,
    aggregate,
    averaged_slices,
    check_output,
    decide_classes,
    decide_labels,
    expected_channels,
    explained_slices,
    label_dtype,
    labels_on_cpu,
    target_index,
)
from medviewer.ai.device import available_devices, cap_cpu_threads, describe_device, resolve_device
from medviewer.ai.inference import (
    EXPLAIN_SHARE,
    INFER_END,
    CancelCheck,
    Inference,
    default_batch,
)
from medviewer.ai.label_resampling import labels_on_volume, probabilities_at
from medviewer.ai.model_card import ModelCard
from medviewer.ai.prediction import ModelInfo, Prediction, Progress
from medviewer.ai.prepare import ModelInput, prepare_input
from medviewer.ai.regions import Region, array_spacing, foreground_region, grown_mask_region
from medviewer.ai.statistics import ProbabilityAt, postprocess_labels, segment_statistics
from medviewer.ai.transforms import ModelGrid, model_grid_for
from medviewer.ai.weights import Network, load_network
from medviewer.core.errors import CancelledError, InferenceError
from medviewer.core.findings import Segment, now_iso
from medviewer.core.volume import Volume

if TYPE_CHECKING:
    import torch

    from medviewer.ai.registry import ModelRegistry

RunGenerator = Generator[Progress, None, Prediction]
_T = TypeVar("_T")


class Runner:
    """Runs one model card; keeps its network loaded between runs.

    Parameters
    ----------
    card : ModelCard
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    batch_size : int or None
        Slices per batch for 2D models, windows per batch for sliding windows; None picks a
        default for the device (halved automatically on out-of-memory).
    cpu_threads : int or None
        torch threads on the CPU; None leaves one core free for the GUI.
    registry : ModelRegistry or None
        Where a cascade card (``input.roi``) finds the model its region comes from, by id;
        None: the default registry (bundled and user models), read when such a card runs.
    """

    def __init__(
        self,
        card: ModelCard,
        device: str = "auto",
        batch_size: int | None = None,
        cpu_threads: int | None = None,
        *,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.card = card
        self.device_name = device
        self.batch_size = batch_size
        self.cpu_threads = cpu_threads
        self.registry = registry
        self._device: torch.device | None = None
        self._upstream: dict[str, Runner] = {}

    @property
    def device(self) -> torch.device:
        """The torch device this runner uses (resolved on first use)."""
        if self._device is None:
            self._device = resolve_device(self.device_name)
        return self._device

    def load(self) -> Network:
        """Load (or fetch from the cache) the card's network on this runner's device."""
        if self.device.type == "cpu":
            cap_cpu_threads(self.cpu_threads)
        return load_network(self.card, self.device)

    def find(self, model_id: str) -> ModelCard:
        """The card of the model `model_id` in this runner's registry (id only, never a path)."""
        if self.registry is None:
            from medviewer.ai.registry import ModelRegistry

            self.registry = ModelRegistry()
        return self.registry.find(model_id).card

    def upstream(self) -> Runner | None:
        """The runner of the model this card's ``input.roi`` names (None without one).

        The chain behind it is checked first (:func:`medviewer.ai.cascade.upstream_card`);
        the runner is kept, so its network stays loaded, while the upstream card is the same.

        Raises
        ------
        ModelCardError
            The upstream model is unknown, does not segment or lacks a label, or the models
            name each other in a cycle.
        """
        card = upstream_card(self.card, self.find)
        if card is None:
            return None
        key = card_key(card)
        if key not in self._upstream:
            self._upstream = {key: Runner(card, self.device_name, self.batch_size,
                                          self.cpu_threads, registry=self.registry)}
        return self._upstream[key]

    def check(self, volume: Volume) -> list[str]:
        """Check that `volume` suits the card; returns warnings, raises InferenceError if not.

        See :func:`medviewer.ai.applicability.check_applicable`.
        """
        return check_applicable(self.card, volume)

    def run(
        self,
        volume: Volume,
        *,
        cancel: CancelCheck | None = None,
        target_class: str | int | None = None,
        keep_probabilities: bool = False,
        measure: bool = True,
    ) -> RunGenerator:
        """Run the model on `volume`, yielding Progress; returns the Prediction.

        Parameters
        ----------
        volume : Volume
        cancel : callable, optional
            Polled between batches and windows; when it returns True the run raises
            CancelledError.
        target_class : str or int, optional
            The class Grad-CAM explains (default: the most probable class other than the
            first, reference class; the only class of a one-class model).
        keep_probabilities : bool
            Also return the per-voxel probabilities of a segmentation (large).
        measure : bool
            Measure the segments (volumes, diameters, components); False leaves the
            prediction's statistics empty (a cascade's upstream run needs only its labels).

        Raises
        ------
        InferenceError, ModelCardError, CancelledError

        Notes
        -----
        A cascade card (``input.roi``) first runs the model it names on `volume` (with the same
        device, batch size and `cancel`; its progress is the first 40 % of the bar, its
        messages prefixed with its name), or reuses that model's last result on the same
        series, then runs its own model inside the grown labels' box.
        """
        return _Run(self, volume, cancel, target_class, keep_probabilities, measure).steps()


def run_to_end(
    steps: RunGenerator, on_progress: Callable[[Progress], None] | None = None
) -> Prediction:
    """Drain a ``run()`` generator, passing each Progress to `on_progress`; return the result."""
    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(progress)


class _Run:
    """One run's orchestration: check, load, prepare, infer, decide, measure, report."""

    def __init__(
        self,
        runner: Runner,
        volume: Volume,
        cancel: CancelCheck | None,
        target_class: str | int | None,
        keep_probabilities: bool,
        measure: bool = True,
    ) -> None:
        self.runner = runner
        self.measure = measure
        self.card = runner.card
        self.volume = volume
        self.cancel = cancel
        self.target_class = target_class
        self.keep_probabilities = keep_probabilities
        self.warnings: list[str] = []
        self.inference: Inference | None = None
        self.grid: ModelGrid | None = None
        #: Where the model runs (None: the whole series) and that part as a volume.
        self.region: Region | None = None
        self.work = volume
        #: A cascade's upstream prediction on the series.
        self.upstream: Prediction | None = None

    # ------------------------------------------------------------------ the steps

    def steps(self) -> RunGenerator:
        started = time.perf_counter()
        self.warnings.extend(self.runner.check(self.volume))
        upstream = self.runner.upstream()
        start = 0.0
        if upstream is not None:
            found = yield from self._region_of_interest(upstream)
            if not found:
                yield Progress(1.0, "done")
                return self._prediction(self._empty_fields(), time.perf_counter() - started)
            start = UPSTREAM_SHARE
        else:
            self._crop_foreground()
        fields = yield from _rescaled(self._model_steps(), start, 1.0)
        yield Progress(1.0, "done")
        return self._prediction(fields, time.perf_counter() - started)

    def _model_steps(self) -> Generator[Progress, None, dict[str, Any]]:
        """Load, prepare, infer, decide and measure: this card's model on :attr:`work`."""
        yield Progress(0.0, f"loading {self.card.name}")
        network = self.runner.load()
        batch = self.runner.batch_size or default_batch(self.card, network.device)
        inference = self.inference = Inference(
            self.card, network, batch, cancel=self.cancel, cpu_threads=self.runner.cpu_threads,
            warnings=self.warnings,
        )
        inference.check_cancel()
        yield Progress(0.02, "preparing the image")
        self.grid = model_grid_for(self.work.affine, self.work.shape, self.card.input)
        model_input = prepare_input(self.grid.to_model(self.work.array), self.card)
        inference.check_cancel()
        if self.card.task == "segmentation":
            return (yield from self._segment(model_input))
        return (yield from self._classify(model_input))

    # ------------------------------------------------------------------ the part of the series

    def _crop_foreground(self) -> None:
        """``input.crop_foreground``: the model runs on the foreground box only."""
        spec = self.card.input.crop_foreground
        if spec is None:
            return
        region = foreground_region(self.volume, spec)
        if region is None:
            what = (f"{spec.threshold:g}" if spec.threshold is not None
                    else f"its {spec.percentile:g}th percentile")
            self.warnings.append(f"input.crop_foreground: no voxel of the series is above {what};"
                                 " the model ran on the whole series")
            return
        self._use_region(region)

    def _region_of_interest(self, upstream: Runner) -> Generator[Progress, None, bool]:
        """``input.roi``: the upstream model's labels, grown, are where this model runs.

        Returns False when the upstream model found none of the labels (nothing to run on).
        """
        roi = self.card.input.roi
        assert roi is not None
        name = upstream.card.name
        key = (series_key(self.volume), card_key(upstream.card))
        prediction = UPSTREAM_RESULTS.get(key)
        if prediction is None:
            steps = upstream.run(self.volume, cancel=self.cancel, measure=False)
            prediction = yield from _rescaled(steps, 0.0, UPSTREAM_SHARE, f"{name}: ")
            UPSTREAM_RESULTS.put(key, prediction)
        else:
            yield Progress(UPSTREAM_SHARE, f"{name}: its result on this series reused")
        self.upstream = prediction
        self.warnings.extend(f"{upstream.card.id}: {text}" for text in prediction.warnings)
        if self.cancel is not None and self.cancel():
            raise CancelledError("inference cancelled")
        assert prediction.label_map is not None
        mask = np.isin(prediction.label_map, roi.labels)
        region = grown_mask_region(mask, array_spacing(self.volume), roi.margin_mm)
        del mask
        if region is None:
            names = ", ".join(prediction.segments[k].name for k in roi.labels
                              if k in prediction.segments)
            if self.card.task != "segmentation":
                raise InferenceError(f"{name} found no {names} on this series: there is "
                                     f"nothing for {self.card.name} to classify")
            self.warnings.append(f"{name} found no {names} on this series: {self.card.name} "
                                 "did not run and its result is empty")
            return False
        self._use_region(region)
        return True

    def _empty_fields(self) -> dict[str, Any]:
        """A segmentation with no voxel labelled (the region of interest was empty)."""
        segments = self._segments()
        label_map = np.zeros(self.volume.shape, dtype=_dtype_for(segments))
        return {"label_map": label_map, "segments": segments,
                "statistics": self._statistics(label_map, segments)}

    def _segments(self) -> dict[int, Segment]:
        """This card's segments, and the upstream ones it keeps (``input.roi.keep_labels``)."""
        segments = dict(self.card.output.labels)
        roi = self.card.input.roi
        if roi is not None and roi.keep_labels and self.upstream is not None:
            segments.update({k: self.upstream.segments[k] for k in roi.labels})
        return dict(sorted(segments.items()))

    def _kept_labels(self, label_map: np.ndarray) -> np.ndarray:
        """`label_map` with the upstream labels a cascade keeps where it labels nothing."""
        roi = self.card.input.roi
        if roi is None or not roi.keep_labels or self.upstream is None:
            return label_map
        upstream = self.upstream.label_map
        assert upstream is not None
        kept = np.isin(upstream, roi.labels) & (label_map == 0)
        merged = label_map.astype(_dtype_for(self._segments()))
        merged[kept] = upstream[kept]
        return merged

    def _statistics(self, label_map: np.ndarray, segments: dict[int, Segment]) -> dict[int, Any]:
        return segment_statistics(
            label_map,
            self.volume.affine,
            {label: seg.name for label, seg in segments.items()},
            values=None if self.volume.is_color else self.volume.array,
        )

    def _use_region(self, region: Region) -> None:
        """Run the model on `region` of the series (a 3D model gets at least 2 voxels per axis)."""
        if self.card.input.dims == 3:
            region = region.at_least(2, self.volume.shape)
        if region.mask is None and region.box.is_whole(self.volume.shape):
            return
        self.region = region
        self.work = region.crop(self.volume)

    def _on_series(self, array: np.ndarray, fill: float | np.ndarray) -> np.ndarray:
        """An output on the model's part of the series -> the whole series, `fill` elsewhere."""
        if self.region is None:
            return array
        return self.region.paste(array, self.volume.shape, fill)

    def _prediction(self, fields: dict[str, Any], seconds: float) -> Prediction:
        device = self.inference.network.device if self.inference else self.runner.device
        return Prediction(
            model=ModelInfo.of(self.card),
            task=self.card.task,
            device=describe_device(device),
            seconds=seconds,
            created=now_iso(),
            series_uid=self.volume.metadata.series_uid,
            affine=self.volume.affine.copy(),
            shape=self.volume.shape,
            threshold=self.card.output.threshold,
            warnings=tuple(self.warnings),
            **fields,
        )

    # ------------------------------------------------------------------ segmentation

    def _segment(self, model_input: ModelInput) -> Generator[Progress, None, dict[str, Any]]:
        assert self.grid is not None and self.inference is not None
        # Probabilities leave the device only when needed; else labels are decided there.
        need = self.grid.resampled or self.keep_probabilities or _reads_probabilities(self.card)
        if self.card.input.dims == 2:
            dense = yield from self._slices_dense(model_input, need)
        else:
            dense = yield from self._volume_dense(model_input, need)
        yield Progress(INFER_END, "post-processing")
        if dense.ndim == 4:
            label_map = self._labels_on_volume(dense)
        else:
            label_map = self.grid.to_volume(dense, linear=False)
        label_map = self._kept_labels(self._postprocess(self._on_series(label_map, 0), dense))
        self.inference.check_cancel()
        segments = self._segments()
        fields: dict[str, Any] = {"label_map": label_map, "segments": segments}
        if self.keep_probabilities:
            fields["probabilities"] = self._on_series(
                self.grid.to_volume(np.ascontiguousarray(np.moveaxis(dense, 0, -1)), linear=True),
                self._background_probabilities(),
            )
        del dense
        yield Progress(0.95, "measuring segments")
        fields["statistics"] = self._statistics(label_map, segments) if self.measure else {}
        return fields

    def _background_probabilities(self) -> np.ndarray:
        """The probabilities of a background voxel: channel 0 at 1 (softmax, none), or every
        (sigmoid) channel at 0."""
        background = np.zeros(expected_channels(self.card)[0], dtype=np.float32)
        if self.card.output.activation != "sigmoid":
            background[0] = 1.0
        return background

    def _labels_on_volume(self, probabilities: np.ndarray) -> np.ndarray:
        """The label map on the volume grid from model-grid probabilities ``[K, d0, d1, d2]``.

        Without resampling the labels are decided on the model grid and permuted back exactly.
        With resampling the labels are decided on the volume grid from probabilities
        interpolated linearly, so edges keep sub-voxel accuracy (nearest on labels would move
        them by up to half a model voxel); :func:`labels_on_volume` interpolates only where
        the model grid's labels change.
        """
        assert self.grid is not None and self.inference is not None
        return labels_on_volume(self.grid, probabilities,
                                lambda channels: decide_labels(channels, self.card),
                                self.inference.check_cancel)

    def _postprocess(self, labels: np.ndarray, dense: np.ndarray) -> np.ndarray:
        """The card's post-processing on the series grid; `dense` is the model's output on its
        grid (probabilities ``[K, d0, d1, d2]`` when a step reads them)."""
        ops = self.card.output.postprocess
        if not ops:
            return labels
        values = None if self.volume.is_color else self.volume.array
        probability = self._probability_at(dense) if dense.ndim == 4 else None
        return postprocess_labels(labels, ops, affine=self.volume.affine, values=values,
                                  probability=probability)

    def _probability_at(self, dense: np.ndarray) -> ProbabilityAt:
        """``(label, series index arrays) -> the label's probabilities there``."""
        grid, region = self.grid, self.region
        assert grid is not None
        order = sorted(self.card.output.labels)
        sigmoid = self.card.output.activation == "sigmoid"

        def at(label: int, index: tuple[np.ndarray, ...]) -> np.ndarray:
            if region is not None:  # series -> the region's box, where the model ran
                index = tuple(i - s for i, s in zip(index, region.box.start, strict=True))
            channel = order.index(label) if sigmoid else label
            return probabilities_at(grid, dense[channel], index)  # type: ignore[arg-type]

        return at

    def _slices_dense(
        self, model_input: ModelInput, probabilities: bool
    ) -> Generator[Progress, None, np.ndarray]:
        """A 2D segmenter's probabilities ``[K, d0, d1, d2]`` (float32), or labels ``[d0, d1, d2]``.

        Labels are decided per batch on the device when `probabilities` is False.
        """
        assert self.inference is not None
        card = self.card
        spatial = model_input.spatial
        shape = (expected_channels(card)[0], *spatial) if probabilities else spatial
        out = np.empty(shape, dtype=np.float32 if probabilities else label_dtype(card))

        def store(k0: int, k1: int, output: torch.Tensor) -> None:
            dense = activate(output, card, dense=True).movedim(0, -1)  # [K, d0, d1, B]
            out[..., k0:k1] = dense.cpu().numpy() if probabilities else labels_on_cpu(dense, card)

        yield from self.inference.slice_batches(model_input, "segmenting", store,
                                                keep_on_device=True)
        return out

    def _volume_dense(
        self, model_input: ModelInput, probabilities: bool
    ) -> Generator[Progress, None, np.ndarray]:
        assert self.inference is not None
        output = yield from self.inference.volume_output(model_input, "segmenting")
        check_output(self.card, tuple(output.shape), dense=True, spatial=model_input.spatial)
        dense = activate(output, self.card, dense=True)[0]
        return dense.cpu().numpy() if probabilities else labels_on_cpu(dense, self.card)

    # ------------------------------------------------------------------ classification

    def _classify(self, model_input: ModelInput) -> Generator[Progress, None, dict[str, Any]]:
        assert self.inference is not None
        card = self.card
        if card.input.dims == 2:
            parts: list[np.ndarray] = []
            yield from self.inference.slice_batches(
                model_input, "classifying",
                lambda _k0, _k1, output: parts.append(activate(output, card, dense=False).numpy()),
            )
            per_slice = np.concatenate(parts)  # [d2, K]
            overall = aggregate(per_slice, card.output.series_consecutive)
            per_sample = averaged_slices(per_slice, card.output.slice_average)
        else:
            output = yield from self.inference.volume_output(model_input, "classifying")
            check_output(card, tuple(output.shape), dense=False, spatial=())
            per_sample = activate(output, card, dense=False).cpu().numpy()
            overall = aggregate(per_sample)
        fields: dict[str, Any] = {
            "classes": {name: float(p) for name, p in zip(card.output.classes, overall,
                                                           strict=True)},
            "decision": decide_classes(overall, card),
        }
        if card.input.dims == 2 and self._series_slice_count() > 1:
            fields.update(self._slice_fields(per_sample))
        if card.explain is not None:
            fields.update((yield from self._heatmap(model_input, per_sample, overall)))
        return fields

    def _series_slice_count(self) -> int:
        """Slices of the whole series along the axis a 2D model runs over."""
        assert self.grid is not None
        return int(self.volume.shape[2 - self.grid.reorientation.perm[2]])

    def _slice_fields(self, per_sample: np.ndarray) -> dict[str, Any]:
        """Per-slice probabilities along the series' array axis; slices outside the model's
        box hold the first (reference) class at 1, every other class at 0."""
        assert self.grid is not None
        axis = 2 - self.grid.reorientation.perm[2]
        rows = per_sample[::-1] if self.grid.reorientation.flip[2] else per_sample
        if self.region is not None:
            reference = np.zeros(rows.shape[1], dtype=rows.dtype)
            reference[0] = 1.0
            rows = self.region.paste_rows(rows, axis, self.volume.shape[axis], reference)
        return {"slice_probabilities": np.ascontiguousarray(rows), "slice_axis": axis}

    def _heatmap(
        self, model_input: ModelInput, per_sample: np.ndarray, overall: np.ndarray
    ) -> Generator[Progress, None, dict[str, Any]]:
        card = self.card
        assert self.inference is not None and self.grid is not None
        if self.inference.network.module is None:
            self.warnings.append("no heatmap: Grad-CAM needs an eager network (safetensors)")
            return {}
        target = target_index(card, overall, self.target_class)  # the class decided on
        if card.input.dims == 2:
            spans = _runs(explained_slices(per_sample[:, target], card.output.threshold))
            cam = yield from self._slice_cams(model_input, target, spans)  # [d0, d1, d2]
            heatmap = self.grid.to_volume_on_slices(cam.cpu().numpy().astype(np.float32),
                                                    spans, linear=True)
        else:
            self.inference.check_cancel()
            # What the network classified: per-sample ops applied, on its device.
            cam = self._cams(self.inference.to_device(model_input.whole()), target)[0]
            heatmap = self.grid.to_volume(cam.cpu().numpy().astype(np.float32), linear=True)
        heatmap = self._on_series(heatmap, 0.0)
        peak = float(heatmap.max())
        if peak > 0:  # Grad-CAM is >= 0: the zeros (most of a 2D model's series) stay untouched
            np.divide(heatmap, peak, out=heatmap, where=heatmap > 0)
        return {"heatmap": heatmap, "heatmap_class": card.output.classes[target]}

    def _slice_cams(
        self, model_input: ModelInput, target: int, spans: list[tuple[int, int]]
    ) -> Generator[Progress, None, torch.Tensor]:
        """Grad-CAM of `target` on the slices in `spans` (0 on the others), as
        ``[d0, d1, d2]``; only those slices go through the network, in batches of consecutive
        ones."""
        assert self.inference is not None
        cams: torch.Tensor | None = None
        batches = [(a, min(b, a + self.inference.batch))
                   for a0, b in spans for a in range(a0, b, self.inference.batch)]
        done, total = 0, sum(b - a for a, b in spans)
        for k0, k1 in batches:
            self.inference.check_cancel()
            cam = self._cams(self.inference.to_device(model_input.slices(k0, k1)), target)
            if cams is None:
                cams = cam.new_zeros((model_input.slice_count, *cam.shape[1:]))
            cams[k0:k1] = cam
            done += k1 - k0
            yield Progress(INFER_END - EXPLAIN_SHARE * (1 - done / total), "explaining")
        assert cams is not None  # explained_slices chooses at least one slice
        return cams.permute(1, 2, 0)  # [d2, d0, d1] -> [d0, d1, d2]

    def _cams(self, batch: torch.Tensor, target: int) -> torch.Tensor:
        from medviewer.ai.explain import class_activation_maps

        assert self.inference is not None and self.inference.network.module is not None
        assert self.card.explain is not None
        return class_activation_maps(self.inference.network.module, batch, self.card.explain,
                                     target)


def _runs(chosen: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive True values in `chosen`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], chosen.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _dtype_for(segments: dict[int, Segment]) -> type[np.unsignedinteger]:
    """The smallest unsigned dtype holding every label of `segments`."""
    return np.uint8 if max(segments, default=0) < 256 else np.uint16


def _rescaled(
    steps: Generator[Progress, None, _T], low: float, high: float, prefix: str = ""
) -> Generator[Progress, None, _T]:
    """Relay `steps`' progress mapped from [0, 1] onto [low, high], messages prefixed."""
    if (low, high, prefix) == (0.0, 1.0, ""):
        return (yield from steps)
    try:
        while True:
            try:
                progress = next(steps)
            except StopIteration as stop:
                return stop.value
            yield Progress(low + (high - low) * progress.fraction, prefix + progress.message)
    finally:
        steps.close()


def warm_up() -> list[tuple[str, str]]:
    """Import what a model run needs (torch, MONAI's parts, SimpleITK, the engine's modules).

    Importing torch holds Python's GIL for a few hundred ms at a time (its C extension's
    initialisation), which freezes a GUI thread for as long. The viewer calls this in a worker
    just after its window appears, so that no later model run pays it. The engine's own
    modules are this one's imports.

    Returns
    -------
    list of tuple of (str, str)
        :func:`medviewer.ai.device.available_devices`.
    """
    import monai.inferers
    import monai.networks.nets
    import monai.transforms
    import monai.visualize  # noqa: F401
    import SimpleITK  # noqa: F401

    return available_devices()


def _reads_probabilities(card: ModelCard) -> bool:
    """Whether a post-processing step of the card reads the model's probabilities."""
    return any(step.op == "max_probability"
               for steps in card.output.postprocess.values() for step in steps)
