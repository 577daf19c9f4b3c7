"""Which device runs a model, and how: CUDA with autocast, Apple MPS, or a capped CPU."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from medviewer.core.errors import InferenceError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for `name`: ``auto`` picks CUDA, then MPS, then the CPU.

    Raises
    ------
    InferenceError
        When a device is asked for by name but torch cannot use it here.
    """
    import torch

    choice = name.lower()
    if choice not in DEVICE_CHOICES and not choice.startswith("cuda:"):
        raise InferenceError(f"unknown device {name!r}: use one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise InferenceError("CUDA was asked for, but torch sees no CUDA device on this machine")
    if choice == "mps" and not _mps_available():
        raise InferenceError("MPS was asked for, but torch sees no Apple GPU on this machine")
    return torch.device(choice)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe_device(device: torch.device) -> str:
    """A short human description: GPU name and memory, or CPU and its thread count."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"CUDA {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def cap_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: `threads`, or all cores but one (kept for the GUI)."""
    import torch

    threads = max(1, threads or (os.cpu_count() or 1) - 1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for `device`: bf16 where the GPU supports it, else fp16; None on CPU."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an accelerator out-of-memory error."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def available_devices() -> list[tuple[str, str]]:
    """The devices a user can choose here: ``(name for resolve_device, description)``.

    ``auto`` comes first (described as the device it picks), then ``cpu``, then each CUDA
    device and Apple MPS when torch can use them. Imports torch: call it off the GUI thread.
    """
    import torch

    picked = resolve_device("auto")
    cpu = f"CPU ({os.cpu_count() or 1} cores)"
    auto = cpu if picked.type == "cpu" else describe_device(picked)
    choices = [("auto", f"Auto: {auto}"), ("cpu", cpu)]
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        choices.append((f"cuda:{index}", describe_device(torch.device("cuda", index))))
    if _mps_available():
        choices.append(("mps", "Apple MPS"))
    return choices

