"""Running a loaded network over a prepared input, batch by batch.

:class:`Inference` owns what changes while a run goes: the network (which moves to the CPU
when the GPU runs out of memory even at batch size 1), the batch size (halved on
out-of-memory) and the cancel check polled between batches and windows. 2D models run on
batches of slices (:meth:`Inference.slice_batches`), 3D models on the whole volume or through
MONAI's sliding-window inference with Gaussian blending (:meth:`Inference.volume_output`),
which runs in a helper thread whose progress the generator relays.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from medviewer.ai.decisions import check_output
from medviewer.ai.device import autocast_dtype, cap_cpu_threads, describe_device, is_out_of_memory
from medviewer.ai.model_card import ModelCard
from medviewer.ai.prediction import Progress
from medviewer.ai.prepare import ModelInput, plain
from medviewer.ai.weights import Network, load_network
from medviewer.core.errors import CancelledError, InferenceError

if TYPE_CHECKING:
    import torch

CancelCheck = Callable[[], bool]

# Fractions of a run: [0, INFER_START) loading and preparing, then inference, then finishing.
INFER_START = 0.05
INFER_END = 0.9
EXPLAIN_SHARE = 0.3
"""The fraction of a run a 2D classifier's Grad-CAM takes, just before INFER_END."""


def default_batch(card: ModelCard, device: torch.device) -> int:
    """Slices (2D) or windows (3D) per batch when the user sets none."""
    if card.input.dims == 3:
        return 4 if device.type == "cuda" else 1
    return 32 if device.type == "cuda" else 4


def window_batches(shape: tuple[int, ...], card: ModelCard, batch: int) -> int:
    """How many predictor calls MONAI's sliding window makes (for the progress bar)."""
    roi = card.input.patch_size or shape
    windows = 1
    for size, patch in zip(shape, roi, strict=True):
        if size <= patch:
            continue
        interval = max(1, int(patch * (1 - card.input.overlap)))
        windows *= math.ceil((size - patch) / interval) + 1
    return max(1, math.ceil(windows / max(1, batch)))


class Inference:
    """A card's network run over one input, with cancellation and out-of-memory fallbacks.

    Parameters
    ----------
    card : ModelCard
    network : Network
    batch : int
        Slices (2D) or windows (3D) per batch to start with.
    cancel : callable or None
        Polled between batches and windows; True makes the run raise CancelledError.
    cpu_threads : int or None
        torch threads when the run falls back to the CPU.
    warnings : list of str
        The run's warnings, to which fallbacks append theirs.
    """

    def __init__(
        self,
        card: ModelCard,
        network: Network,
        batch: int,
        *,
        cancel: CancelCheck | None = None,
        cpu_threads: int | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.card = card
        self.network = network
        self.batch = batch
        self.cancel = cancel
        self.cpu_threads = cpu_threads
        self.warnings = warnings if warnings is not None else []

    def check_cancel(self) -> None:
        """Raise CancelledError when the cancel callable says so."""
        if self.cancel is not None and self.cancel():
            raise CancelledError("inference cancelled")

    # ------------------------------------------------------------------ 2D: batches of slices

    def slice_batches(
        self,
        model_input: ModelInput,
        verb: str,
        consume: Callable[[int, int, Any], Any],
        keep_on_device: bool = False,
    ) -> Generator[Progress, None, None]:
        """Run the network over batches of slices along d2, handing ``consume(k0, k1, output)``.

        `output` is the raw ``[B, K, ...]`` output, on the CPU unless `keep_on_device`.
        """
        explain_share = EXPLAIN_SHARE if self.card.explain is not None else 0.0
        span = INFER_END - INFER_START - explain_share
        count = model_input.slice_count
        dense = self.card.task == "segmentation"
        spatial = model_input.spatial[:2]
        k0 = 0
        while k0 < count:
            self.check_cancel()
            k1 = min(count, k0 + self.batch)
            output = self._forward_with_fallback(self.to_device(model_input.slices(k0, k1)))
            if output is None:
                continue  # batch size was halved: retry the same slices
            check_output(self.card, tuple(output.shape), dense=dense, spatial=spatial)
            consume(k0, k1, output if keep_on_device else output.cpu())
            yield Progress(INFER_START + span * k1 / count, f"{verb} slice {k1}/{count}")
            k0 = k1

    def batches(self, model_input: ModelInput) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(k0, k1, batch)`` over the slices at the current batch size, on the device."""
        count = model_input.slice_count
        for k0 in range(0, count, self.batch):
            k1 = min(count, k0 + self.batch)
            yield k0, k1, self.to_device(model_input.slices(k0, k1))

    # ------------------------------------------------------------------ 3D: the whole volume

    def volume_output(
        self, model_input: ModelInput, verb: str
    ) -> Generator[Progress, None, torch.Tensor]:
        """The raw output on the whole volume: one forward pass, or sliding windows."""
        batch = self.to_device(model_input.whole())
        if self.card.input.patch_size is None:
            self.check_cancel()
            output = self._forward_with_fallback(batch, whole=True)
            yield Progress(INFER_END, f"{verb} done")
            return output
        return (yield from self._sliding_window(batch, verb))

    def _sliding_window(
        self, batch: torch.Tensor, verb: str
    ) -> Generator[Progress, None, torch.Tensor]:
        """MONAI sliding-window inference in a helper thread, relaying its progress."""
        events: queue.Queue[int | None] = queue.Queue()
        stop = threading.Event()
        outcome: dict[str, Any] = {}
        total = window_batches(tuple(batch.shape[2:]), self.card, self.batch)
        thread = threading.Thread(
            target=self._sliding_window_work, args=(batch, events, stop, outcome),
            name="medviewer-sliding-window", daemon=True,
        )
        thread.start()
        try:
            while (done := events.get()) is not None:
                # here too: on a busy machine the worker may be many windows ahead of its
                # queued progress, and a cancel must not wait for the backlog to drain
                self.check_cancel()
                fraction = INFER_START + (INFER_END - INFER_START) * min(1.0, done / total)
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
            output = self.forward(windows)
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

    # ------------------------------------------------------------------ one forward pass

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The network's raw float output on `batch` (moved to its device; autocast there)."""
        import torch

        if batch.device != self.network.device:
            batch = batch.to(self.network.device)
        dtype = autocast_dtype(self.network.device) if self.network.format != "onnx" else None
        autocast = (
            torch.autocast(device_type=self.network.device.type, dtype=dtype)
            if dtype is not None else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            output = self.network(batch)
        return plain(output).float()

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """`batch` on the network's device (through pinned memory to CUDA)."""
        device = self.network.device
        if device.type == "cuda":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)

    def _forward_with_fallback(self, batch: torch.Tensor, whole: bool = False) -> Any:
        """Forward `batch`; on out-of-memory shrink the batch (None: retry) or move to the CPU."""
        while True:
            try:
                return self.forward(batch)
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

        if self.batch > 1:
            self._halve_batch()
            return batch
        if self.network.device.type == "cpu":
            raise InferenceError("out of memory even at batch size 1 on the CPU")
        previous = self.network.device
        self.network = load_network(self.card, torch.device("cpu"))
        cap_cpu_threads(self.cpu_threads)
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
