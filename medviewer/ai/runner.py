"""Run a model card on a Volume: a generator of Progress that returns a Prediction.

``Runner(card).run(volume)`` checks the series against the card, loads the network once (cached
for the next run), builds the card's model grid, runs 2D models on batches of slices and 3D models
on the volume (MONAI sliding-window inference with Gaussian blending when the card sets a patch
size), and maps every output back onto the volume's own grid. It checks the cancel callable
between batches and windows; a cancelled run raises CancelledError and returns nothing.

The GUI wraps ``run()`` in a worker unchanged; the CLI drains it with :func:`run_to_end`.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.ai.applicability import check_applicable
from medviewer.ai.decisions import (
    activate,
    aggregate,
    check_output,
    decide_classes,
    decide_labels,
    expected_channels,
    label_dtype,
    labels_on_cpu,
    target_index,
)
from medviewer.ai.device import (
    autocast_dtype,
    available_devices,
    cap_cpu_threads,
    describe_device,
    is_out_of_memory,
    resolve_device,
)
from medviewer.ai.model_card import IntensityOp, ModelCard
from medviewer.ai.prediction import ModelInfo, Prediction, Progress
from medviewer.ai.statistics import postprocess_labels, segment_statistics
from medviewer.ai.transforms import ModelGrid, apply_intensity, model_grid_for
from medviewer.ai.weights import Network, load_network
from medviewer.core.errors import CancelledError, InferenceError
from medviewer.core.findings import now_iso
from medviewer.core.volume import Volume

if TYPE_CHECKING:
    import torch

CancelCheck = Callable[[], bool]
RunGenerator = Generator[Progress, None, Prediction]

_POINTWISE_OPS = frozenset({"clip", "scale_range", "linear"})
# Fractions of a run: [0, _INFER_START) loading and preparing, then inference, then finishing.
_INFER_START = 0.05
_INFER_END = 0.9


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
    """

    def __init__(
        self,
        card: ModelCard,
        device: str = "auto",
        batch_size: int | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        self.card = card
        self.device_name = device
        self.batch_size = batch_size
        self.cpu_threads = cpu_threads
        self._device: torch.device | None = None

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

        Raises
        ------
        InferenceError, ModelCardError, CancelledError
        """
        return _Run(self, volume, cancel, target_class, keep_probabilities).steps()


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
    """One run's state: the card, the volume, the grid, the network and what it found."""

    def __init__(
        self,
        runner: Runner,
        volume: Volume,
        cancel: CancelCheck | None,
        target_class: str | int | None,
        keep_probabilities: bool,
    ) -> None:
        self.runner = runner
        self.card = runner.card
        self.volume = volume
        self.cancel = cancel
        self.target_class = target_class
        self.keep_probabilities = keep_probabilities
        self.warnings: list[str] = []
        self.network: Network | None = None
        self.batch = 0
        self.grid: ModelGrid | None = None
        self.sample_ops: tuple[IntensityOp, ...] = ()

    # ------------------------------------------------------------------ the steps

    def steps(self) -> RunGenerator:
        started = time.perf_counter()
        self.warnings.extend(self.runner.check(self.volume))
        yield Progress(0.0, f"loading {self.card.name}")
        self.network = self.runner.load()
        self.batch = self.runner.batch_size or _default_batch(self.card, self.network.device)
        self._check_cancel()
        yield Progress(0.02, "preparing the image")
        self.grid = model_grid_for(self.volume.affine, self.volume.shape, self.card.input)
        image = self._input_tensor(self.grid.to_model(self.volume.array))
        self._check_cancel()
        if self.card.task == "segmentation":
            fields = yield from self._segment(image)
        else:
            fields = yield from self._classify(image)
        yield Progress(1.0, "done")
        return self._prediction(fields, time.perf_counter() - started)

    def _prediction(self, fields: dict[str, Any], seconds: float) -> Prediction:
        assert self.network is not None
        return Prediction(
            model=ModelInfo.of(self.card),
            task=self.card.task,
            device=describe_device(self.network.device),
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

    def _segment(self, image: torch.Tensor) -> Generator[Progress, None, dict[str, Any]]:
        assert self.grid is not None
        # Probabilities leave the device only when needed; else labels are decided there.
        need = self.grid.resampled or self.keep_probabilities
        if self.card.input.dims == 2:
            dense = yield from self._slices_dense(image, need)
        else:
            dense = yield from self._volume_dense(image, need)
        yield Progress(_INFER_END, "post-processing")
        if dense.ndim == 4:
            label_map = self._labels_on_volume(dense)
        else:
            label_map = self.grid.to_volume(dense, linear=False)
        label_map = self._postprocess(label_map)
        self._check_cancel()
        fields: dict[str, Any] = {"label_map": label_map, "segments": dict(self.card.output.labels)}
        if self.keep_probabilities:
            fields["probabilities"] = self.grid.to_volume(
                np.ascontiguousarray(np.moveaxis(dense, 0, -1)), linear=True
            )
        del dense
        yield Progress(0.95, "measuring segments")
        fields["statistics"] = segment_statistics(
            label_map,
            self.volume.affine,
            {label: seg.name for label, seg in self.card.output.labels.items()},
            values=None if self.volume.is_color else self.volume.array,
        )
        return fields

    def _labels_on_volume(self, probabilities: np.ndarray) -> np.ndarray:
        """The label map on the volume grid from model-grid probabilities ``[K, d0, d1, d2]``.

        Without resampling the labels are decided on the model grid and permuted back exactly.
        With resampling each probability channel goes back linearly and the labels are decided
        on the volume grid, so edges keep sub-voxel accuracy (nearest on labels would move
        them by up to half a model voxel).
        """
        assert self.grid is not None
        if not self.grid.resampled:
            return self.grid.to_volume(decide_labels(probabilities, self.card), linear=False)
        return decide_labels(self._channels_on_volume(probabilities), self.card)

    def _channels_on_volume(self, probabilities: np.ndarray) -> Iterator[np.ndarray]:
        """Each model-grid probability channel resampled linearly onto the volume grid."""
        assert self.grid is not None
        for channel in probabilities:
            self._check_cancel()
            yield self.grid.to_volume(channel, linear=True)

    def _postprocess(self, labels: np.ndarray) -> np.ndarray:
        ops = self.card.output.postprocess
        return postprocess_labels(labels, ops) if ops else labels

    def _slices_dense(
        self, image: torch.Tensor, probabilities: bool
    ) -> Generator[Progress, None, np.ndarray]:
        """A 2D segmenter's probabilities ``[K, d0, d1, d2]`` (float32), or labels ``[d0, d1, d2]``.

        Labels are decided per batch on the device when `probabilities` is False.
        """
        card = self.card
        spatial = tuple(image.shape[1:])
        shape = (expected_channels(card)[0], *spatial) if probabilities else spatial
        out = np.empty(shape, dtype=np.float32 if probabilities else label_dtype(card))

        def store(k0: int, k1: int, output: torch.Tensor) -> None:
            dense = activate(output, card, dense=True).movedim(0, -1)  # [K, d0, d1, B]
            out[..., k0:k1] = dense.numpy() if probabilities else labels_on_cpu(dense, card)

        yield from self._slice_batches(image, "segmenting", store, keep_on_device=True)
        return out

    def _volume_dense(
        self, image: torch.Tensor, probabilities: bool
    ) -> Generator[Progress, None, np.ndarray]:
        output = yield from self._volume_output(image, "segmenting")
        self._check_output(output, dense=True, spatial=tuple(image.shape[1:]))
        dense = activate(output, self.card, dense=True)[0]
        return dense.cpu().numpy() if probabilities else labels_on_cpu(dense, self.card)

    # ------------------------------------------------------------------ classification

    def _classify(self, image: torch.Tensor) -> Generator[Progress, None, dict[str, Any]]:
        card = self.card
        if card.input.dims == 2:
            parts: list[np.ndarray] = []
            yield from self._slice_batches(
                image, "classifying",
                lambda _k0, _k1, output: parts.append(activate(output, card, dense=False).numpy()),
            )
            per_sample = np.concatenate(parts)  # [d2, K]
        else:
            output = yield from self._volume_output(image, "classifying")
            self._check_output(output, dense=False, spatial=())
            per_sample = activate(output, card, dense=False).cpu().numpy()
        overall = aggregate(per_sample)
        fields: dict[str, Any] = {
            "classes": {name: float(p) for name, p in zip(card.output.classes, overall,
                                                           strict=True)},
            "decision": decide_classes(overall, card),
        }
        if card.input.dims == 2 and per_sample.shape[0] > 1:
            fields.update(self._slice_fields(per_sample))
        if card.explain is not None:
            fields.update((yield from self._heatmap(image, overall)))
        return fields

    def _slice_fields(self, per_sample: np.ndarray) -> dict[str, Any]:
        assert self.grid is not None
        axis = self.grid.reorientation.perm[2]
        rows = per_sample[::-1] if self.grid.reorientation.flip[2] else per_sample
        return {"slice_probabilities": np.ascontiguousarray(rows), "slice_axis": 2 - axis}

    def _heatmap(
        self, image: torch.Tensor, overall: np.ndarray
    ) -> Generator[Progress, None, dict[str, Any]]:
        from medviewer.ai.explain import class_activation_maps

        card = self.card
        assert self.network is not None and self.grid is not None and card.explain is not None
        if self.network.module is None:
            self.warnings.append("no heatmap: Grad-CAM needs an eager network (safetensors)")
            return {}
        target = target_index(card, overall, self.target_class)
        if card.input.dims == 2:
            cams = []
            for _k0, k1, batch in self._batches(image):
                self._check_cancel()
                cams.append(class_activation_maps(self.network.module, batch, card.explain, target))
                yield Progress(_INFER_END - 0.3 * (1 - k1 / image.shape[-1]), "explaining")
            cam = _cat_slices(cams)  # [d0, d1, d2]
        else:
            self._check_cancel()
            cam = class_activation_maps(self.network.module, image[None], card.explain, target)[0]
        heatmap = self.grid.to_volume(cam.cpu().numpy().astype(np.float32), linear=True)
        peak = float(heatmap.max())
        if peak > 0:
            heatmap /= peak
        return {"heatmap": heatmap, "heatmap_class": card.output.classes[target]}

    # ------------------------------------------------------------------ running the network

    def _slice_batches(
        self,
        image: torch.Tensor,
        verb: str,
        consume: Callable[[int, int, Any], Any],
        keep_on_device: bool = False,
    ) -> Generator[Progress, None, None]:
        """Run the network over batches of slices along d2, handing ``consume(k0, k1, output)``."""
        explain_share = 0.3 if self.card.explain is not None else 0.0
        span = _INFER_END - _INFER_START - explain_share
        count = image.shape[-1]
        k0 = 0
        while k0 < count:
            self._check_cancel()
            k1 = min(count, k0 + self.batch)
            output = self._forward_with_fallback(self._slice_batch(image, k0, k1))
            if output is None:
                continue  # batch size was halved: retry the same slices
            self._check_output(output, dense=self.card.task == "segmentation",
                               spatial=tuple(image.shape[1:3]))
            consume(k0, k1, output if keep_on_device else output.cpu())
            yield Progress(_INFER_START + span * k1 / count, f"{verb} slice {k1}/{count}")
            k0 = k1

    def _batches(self, image: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
        count = image.shape[-1]
        for k0 in range(0, count, self.batch):
            k1 = min(count, k0 + self.batch)
            yield k0, k1, self._slice_batch(image, k0, k1)

    def _slice_batch(self, image: torch.Tensor, k0: int, k1: int) -> torch.Tensor:
        """Slices ``k0:k1`` along d2 as a ``[B, C, d0, d1]`` batch with per-slice intensity ops."""
        import torch

        context = self.card.input.context_slices
        count = image.shape[-1]
        indices = torch.arange(k0 - context, k1 + context).clamp(0, count - 1)
        batch = image[..., indices].permute(3, 0, 1, 2)  # [n, C, d0, d1]
        if self.sample_ops:
            batch = torch.stack([_plain(apply_intensity(s, self.sample_ops)) for s in batch])
        if context:
            # 2.5D: slice k sees slices k-c..k+c (edge slices repeated) stacked as channels,
            # in increasing d2 order, each with its image channels together.
            width = 2 * context + 1
            batch = torch.stack([batch[b : b + width].flatten(0, 1) for b in range(k1 - k0)])
        return self._to_device(batch.contiguous())

    def _volume_output(
        self, image: torch.Tensor, verb: str
    ) -> Generator[Progress, None, torch.Tensor]:
        if self.sample_ops:
            image = _plain(apply_intensity(image, self.sample_ops))
        batch = self._to_device(image[None].contiguous())
        if self.card.input.patch_size is None:
            self._check_cancel()
            output = self._forward_with_fallback(batch, whole=True)
            yield Progress(_INFER_END, f"{verb} done")
            return output
        return (yield from self._sliding_window(batch, verb))

    def _sliding_window(
        self, batch: torch.Tensor, verb: str
    ) -> Generator[Progress, None, torch.Tensor]:
        """MONAI sliding-window inference in a helper thread, relaying its progress."""
        events: queue.Queue[int | None] = queue.Queue()
        stop = threading.Event()
        outcome: dict[str, Any] = {}
        total = _window_batches(tuple(batch.shape[2:]), self.card, self.batch)
        thread = threading.Thread(
            target=self._sliding_window_work, args=(batch, events, stop, outcome),
            name="medviewer-sliding-window", daemon=True,
        )
        thread.start()
        try:
            while (done := events.get()) is not None:
                fraction = _INFER_START + (_INFER_END - _INFER_START) * min(1.0, done / total)
                yield Progress(fraction, f"{verb}: window batch {done}/{total}")
        finally:
            stop.set()
            thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["output"]

    def _sliding_window_work(
        self,
        batch: torch.Tensor,
        events: queue.Queue[int | None],
        stop: threading.Event,
        outcome: dict[str, Any],
    ) -> None:
        from monai.inferers import sliding_window_inference

        count = [0]

        def predictor(windows: torch.Tensor) -> torch.Tensor:
            if stop.is_set() or (self.cancel is not None and self.cancel()):
                raise CancelledError("inference cancelled")
            output = self._forward(windows)
            count[0] += 1
            events.put(count[0])
            return output

        import torch

        try:
            with torch.inference_mode():
                outcome["output"] = self._sliding_window_attempts(batch, predictor,
                                                                  sliding_window_inference)
        except BaseException as exc:  # noqa: BLE001 - handed to the generator's thread
            outcome["error"] = exc
        finally:
            events.put(None)

    def _sliding_window_attempts(self, batch: Any, predictor: Any, infer: Any) -> torch.Tensor:
        card = self.card
        while True:
            try:
                return infer(
                    batch, list(card.input.patch_size or ()), self.batch, predictor,
                    overlap=card.input.overlap, mode="gaussian",
                )
            except Exception as exc:  # noqa: BLE001 - sorted below
                if isinstance(exc, CancelledError) or not is_out_of_memory(exc):
                    raise self._wrapped(exc, batch) from None
                batch = self._after_out_of_memory(batch)

    def _forward_with_fallback(self, batch: torch.Tensor, whole: bool = False) -> Any:
        """Forward `batch`; on out-of-memory shrink the batch (None: retry) or move to the CPU."""
        while True:
            try:
                return self._forward(batch)
            except Exception as exc:  # noqa: BLE001 - sorted below
                if not is_out_of_memory(exc):
                    raise self._wrapped(exc, batch) from None
                if self.batch > 1 and not whole:
                    self._halve_batch()
                    return None
                batch = self._after_out_of_memory(batch)

    def _after_out_of_memory(self, batch: torch.Tensor) -> torch.Tensor:
        """Halve the batch if possible, else move to the CPU; returns `batch` on the new device."""
        import torch

        assert self.network is not None
        if self.batch > 1:
            self._halve_batch()
            return batch
        if self.network.device.type == "cpu":
            raise InferenceError("out of memory even at batch size 1 on the CPU")
        previous = self.network.device
        self.network = load_network(self.card, torch.device("cpu"))
        cap_cpu_threads(self.runner.cpu_threads)
        self.warnings.append(f"{describe_device(previous)} ran out of memory at batch size 1; "
                             "the run finished on the CPU")
        if previous.type == "cuda":
            torch.cuda.empty_cache()
        return batch.cpu()

    def _halve_batch(self) -> None:
        import torch

        self.batch = max(1, self.batch // 2)
        self.warnings.append(f"out of memory: batch size lowered to {self.batch}")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        assert self.network is not None
        if batch.device != self.network.device:
            batch = batch.to(self.network.device)
        dtype = autocast_dtype(self.network.device) if self.network.format != "onnx" else None
        autocast = (
            torch.autocast(device_type=self.network.device.type, dtype=dtype)
            if dtype is not None else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            output = self.network(batch)
        return _plain(output).float()

    def _wrapped(self, exc: Exception, batch: torch.Tensor) -> Exception:
        if isinstance(exc, InferenceError | CancelledError):
            return exc
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        text = lines[0] if lines else type(exc).__name__
        if "TorchScript interpreter" in text and len(lines) > 1:
            text = lines[-1]  # the script's own error is its last line
        return InferenceError(
            f"{self.card.name} failed on a {tuple(batch.shape)} input: {text}"
        )

    # ------------------------------------------------------------------ helpers

    def _input_tensor(self, model_array: np.ndarray) -> torch.Tensor:
        """Model-grid array ``[d0, d1, d2(, 3)]`` -> ``[C, d0, d1, d2]``, leading ops applied.

        Pointwise ops (clip, scale_range, linear) before the first statistical op (zscore,
        percentile_scale) commute with slicing and run once on the whole array; the rest run
        per sample (per slice for a 2D model).
        """
        import torch

        tensor = torch.from_numpy(model_array)
        tensor = tensor.movedim(-1, 0) if model_array.ndim == 4 else tensor[None]
        ops = self.card.input.intensity
        leading = 0
        while leading < len(ops) and ops[leading].op in _POINTWISE_OPS:
            leading += 1
        self.sample_ops = tuple(ops[leading:])
        if leading:
            tensor = _plain(apply_intensity(tensor, ops[:leading]))
        return tensor.contiguous()

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        assert self.network is not None
        device = self.network.device
        if device.type == "cuda":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)

    def _check_output(self, output: torch.Tensor, *, dense: bool, spatial: tuple[int, ...]) -> None:
        check_output(self.card, tuple(output.shape), dense=dense, spatial=spatial)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise CancelledError("inference cancelled")


# ---------------------------------------------------------------------- pure helpers


def _plain(tensor: Any) -> Any:
    """A plain torch.Tensor (MONAI transforms may return MetaTensors)."""
    as_tensor = getattr(tensor, "as_tensor", None)
    return as_tensor() if as_tensor is not None else tensor


def _cat_slices(parts: list[torch.Tensor]) -> torch.Tensor:
    """``[B, d0, d1]`` batches -> ``[d0, d1, sum(B)]``."""
    import torch

    return torch.cat(parts).permute(1, 2, 0)


def _default_batch(card: ModelCard, device: torch.device) -> int:
    if card.input.dims == 3:
        return 4 if device.type == "cuda" else 1
    return 32 if device.type == "cuda" else 4


def _window_batches(shape: tuple[int, ...], card: ModelCard, batch: int) -> int:
    """How many predictor calls MONAI's sliding window makes (for the progress bar)."""
    roi = card.input.patch_size or shape
    windows = 1
    for size, patch in zip(shape, roi, strict=True):
        if size <= patch:
            continue
        interval = max(1, int(patch * (1 - card.input.overlap)))
        windows *= math.ceil((size - patch) / interval) + 1
    return max(1, math.ceil(windows / max(1, batch)))


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
