"""How much memory a model needs, estimated before it is built, and the limits medviewer keeps.

A card that names an architecture (safetensors and state-dict weights) could ask for a network
of any size. Before building it for real, the network is built on PyTorch's ``meta`` device
(shapes only, no memory), its parameters counted, and a forward pass run on a ``meta`` tensor
of the card's input size to find the largest layer's input plus output (a lower bound of what
a run needs at batch size 1). A model is refused when:

- it has more than :data:`MAX_PARAMETERS` parameters, or builds more than :data:`MAX_MODULES`
  layers (checked while it is built, so the estimate itself stays small);
- its parameters plus that activation estimate exceed :func:`memory_limit`,
  :data:`MEMORY_FRACTION` of this computer's physical memory;
- its weights file alone is larger than :func:`memory_limit` (so are a zip archive's members
  together and an ONNX model with its external data: :mod:`medviewer.ai.safe_archive`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.core.errors import ModelCardError

if TYPE_CHECKING:
    import torch

    from medviewer.ai.model_card import ModelCard

#: At most this many parameters (4 GB in float32; the largest MONAI networks have ~0.2e9).
MAX_PARAMETERS = 1_000_000_000
#: At most this many layers (modules); counted while the network is built.
MAX_MODULES = 100_000
#: A model may use at most this fraction of the computer's physical memory.
MEMORY_FRACTION = 0.5
#: When the card fixes no input grid: the smallest image the estimate assumes, per ``dims``.
NOMINAL_GRID = {2: (256, 256), 3: (64, 64, 64)}
_UNKNOWN_MEMORY = 8 << 30


@dataclass(frozen=True)
class SizeEstimate:
    """What a network needs: parameter count and bytes, and a lower bound of one run's activations.

    ``activation_bytes`` is ``None`` when the forward pass could not be traced on ``meta``.
    """

    parameters: int
    parameter_bytes: int
    activation_bytes: int | None
    input_shape: tuple[int, ...]

    @property
    def total_bytes(self) -> int:
        """Parameters plus activations (activations count 0 when unknown)."""
        return self.parameter_bytes + (self.activation_bytes or 0)


def physical_memory() -> int | None:
    """This computer's physical memory in bytes, or ``None`` when the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit() -> int:
    """The most memory a model may need: :data:`MEMORY_FRACTION` of the physical memory.

    Returns
    -------
    int
        Bytes; 8 GiB times the fraction when the physical memory is unknown.
    """
    return int((physical_memory() or _UNKNOWN_MEMORY) * MEMORY_FRACTION)


def check_file_size(path: Path) -> None:
    """Refuse a weights file larger than :func:`memory_limit` (loading it would exhaust memory).

    Raises
    ------
    ModelCardError
        ``"<path>: refused: the weights file is 20.0 GB; ..."``.
    """
    check_memory_use(path, path.stat().st_size, "the weights file is")


def check_memory_use(path: Path, size: int, what: str) -> None:
    """Refuse `size` bytes of a model beyond :func:`memory_limit`.

    Parameters
    ----------
    path : Path
        The file the bytes belong to (named in the message).
    size : int
        Bytes the model would hold in memory.
    what : str
        The start of the reason, e.g. ``"the weights file is"``.

    Raises
    ------
    ModelCardError
        ``"<path>: refused: <what> 20.0 GB, more than the 8.0 GB a model may use ..."``.
    """
    limit = memory_limit()
    if size > limit:
        raise ModelCardError(
            f"{path}: refused: {what} {gigabytes(size)}, more than the "
            f"{gigabytes(limit)} a model may use on this computer ({_limit_reason()})"
        )


def check_network_size(card: ModelCard, cls: type) -> SizeEstimate:
    """Estimate the card's network on the ``meta`` device and refuse it beyond the limits.

    Parameters
    ----------
    card : ModelCard
        A card whose weights name an architecture.
    cls : type
        The architecture's ``nn.Module`` class, already resolved from the allowed modules.

    Returns
    -------
    SizeEstimate

    Raises
    ------
    ModelCardError
        When the constructor refuses the kwargs, or the network is over a limit; the message
        says how much it would need.
    """
    estimate = estimate_network(card, cls)
    where = f"{card.path or card.id}: weights.architecture"
    name = card.weights.architecture.name if card.weights.architecture else cls.__name__
    if estimate.parameters > MAX_PARAMETERS:
        raise ModelCardError(
            f"{where}: {name} with these kwargs would have {estimate.parameters:,} parameters "
            f"({gigabytes(estimate.parameter_bytes)}); medviewer loads at most "
            f"{MAX_PARAMETERS:,}, so the model is refused"
        )
    if estimate.total_bytes > memory_limit():
        raise ModelCardError(
            f"{where}: {name} with these kwargs would need about "
            f"{gigabytes(estimate.total_bytes)} of memory ({_breakdown(estimate)}); a model may "
            f"use at most {gigabytes(memory_limit())} on this computer ({_limit_reason()}), "
            "so the model is refused"
        )
    return estimate


def estimate_network(card: ModelCard, cls: type) -> SizeEstimate:
    """Build the card's network on ``meta`` (no memory) and measure it; see the module notes."""
    import torch

    module = _build_on_meta(card, cls)
    tensors = [*module.parameters(), *module.buffers()]
    shape = input_shape(card)
    return SizeEstimate(
        parameters=sum(p.numel() for p in module.parameters()),
        parameter_bytes=sum(t.numel() * t.element_size() for t in tensors),
        activation_bytes=_activation_bytes(module, torch.empty(shape, device="meta")),
        input_shape=shape,
    )


def input_shape(card: ModelCard) -> tuple[int, ...]:
    """``(1, channels, *grid)``: the card's fixed grid (patch, else size; a promptable model's
    cube), else the nominal one."""
    spec = card.input
    channels = spec.channels * (2 * spec.context_slices + 1)
    grid = (spec.patch_size if spec.dims == 3 else None) or spec.size or _cube(card) \
        or NOMINAL_GRID[spec.dims]
    return (1, channels, *grid)


def _cube(card: ModelCard) -> tuple[int, ...] | None:
    from medviewer.ai.prompt_region import roi_grid

    if card.input.prompts is None:
        return None
    return roi_grid((0.0, 0.0, 0.0), card.input).shape


class _TooLarge(Exception):
    """Raised from a registration hook to stop building a network over a limit."""


class _Counter:
    """Registration hooks counting modules and parameters built by one thread."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.modules = 0
        self.parameters = 0

    def module(self, parent: Any, name: str, child: Any) -> None:
        if threading.get_ident() == self.owner and child is not None:
            self.modules += 1
            if self.modules > MAX_MODULES:
                raise _TooLarge(f"more than {MAX_MODULES:,} layers")

    def parameter(self, parent: Any, name: str, value: Any) -> None:
        if threading.get_ident() == self.owner and value is not None:
            self.parameters += value.numel()
            if self.parameters > 10 * MAX_PARAMETERS:
                raise _TooLarge(f"more than {10 * MAX_PARAMETERS:,} parameters")


def _build_on_meta(card: ModelCard, cls: type) -> torch.nn.Module:
    import torch
    from torch.nn.modules import module as nn_module

    architecture = card.weights.architecture
    kwargs = architecture.kwargs if architecture else {}
    where = f"{card.path or card.id}: weights.architecture"
    counter = _Counter()
    handles = [nn_module.register_module_module_registration_hook(counter.module),
               nn_module.register_module_parameter_registration_hook(counter.parameter)]
    try:
        with torch.device("meta"), _no_values():
            return cls(**kwargs)
    except _TooLarge as exc:
        raise ModelCardError(f"{where}: the network would have {exc}; refused") from None
    except Exception as exc:  # noqa: BLE001 - a constructor refuses bad kwargs in many ways
        raise ModelCardError(
            f"{where}.kwargs: {cls.__name__} refused them: {_first_line(exc)}"
        ) from None
    finally:
        for handle in handles:
            handle.remove()


def _no_values() -> Any:
    """A mode in which reading a ``meta`` tensor's values gives zeros instead of an error.

    Meta tensors have shapes but no values; a constructor that reads one (SwinUNETR turns a
    ``linspace`` of drop-path rates into floats) gets zeros, which change no shape.
    """
    import numpy as np
    import torch
    from torch.overrides import TorchFunctionMode

    class NoValues(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
            tensor = args[0] if args else None
            if func in (torch.Tensor.item, torch.Tensor.tolist) and getattr(tensor, "is_meta", 0):
                dtype = tensor.dtype
                zero = False if dtype == torch.bool else 0.0 if dtype.is_floating_point else 0
                return zero if func is torch.Tensor.item else np.full(tensor.shape, zero).tolist()
            return func(*args, **(kwargs or {}))

    return NoValues()


def _activation_bytes(module: torch.nn.Module, batch: torch.Tensor) -> int | None:
    """The largest (input + output) bytes of one leaf layer on `batch`, traced on ``meta``."""
    import torch

    peak = 0

    def hook(layer: Any, inputs: Any, output: Any) -> None:
        nonlocal peak
        peak = max(peak, _nbytes(inputs) + _nbytes(output))

    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    handles = [leaf.register_forward_hook(hook) for leaf in leaves]
    try:
        with torch.no_grad():
            module.eval()(batch)
    except Exception:  # noqa: BLE001 - an op without a meta kernel: no estimate, no refusal
        return None
    finally:
        for handle in handles:
            handle.remove()
    return max(peak, _nbytes(batch))


def _nbytes(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, list | tuple):
        return sum(_nbytes(item) for item in value)
    if isinstance(value, dict):
        return sum(_nbytes(item) for item in value.values())
    return 0


def gigabytes(size: int) -> str:
    """Bytes as ``'12.3 GB'`` (``'0.01 GB'`` for small sizes)."""
    return f"{size / 1e9:,.1f} GB" if size >= 1e8 else f"{size / 1e9:.2f} GB"


def _breakdown(estimate: SizeEstimate) -> str:
    shape = "x".join(map(str, estimate.input_shape))
    weights = f"{gigabytes(estimate.parameter_bytes)} for {estimate.parameters:,} parameters"
    if estimate.activation_bytes is None:
        return weights
    return f"{weights} + {gigabytes(estimate.activation_bytes)} for one {shape} input"


def _limit_reason() -> str:
    total = physical_memory()
    share = f"{MEMORY_FRACTION:.0%}"
    return f"{share} of its {gigabytes(total)}" if total else f"{share} of an assumed 8 GB"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
