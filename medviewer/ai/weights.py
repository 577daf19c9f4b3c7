"""Load a card's weights into a callable network, safely, once.

Nothing is ever unpickled by Python's full unpickler: TorchScript goes through its own loader,
state dicts come from safetensors or ``torch.load(weights_only=True)`` into an architecture the
card names (from MONAI's networks or :mod:`medviewer.ai.nets`), ONNX through onnxruntime;
torch.export programs are refused (:data:`~medviewer.ai.model_card.REFUSED_FORMATS`).

Before any byte of the file reaches a loader, :func:`check_weights` checks that the file is
inside the model folder, matches the card's sha256, fits in memory, and passes the static
checks of :mod:`medviewer.ai.safe_archive` (no pickle naming code, no data outside the folder);
an architecture is sized on the ``meta`` device before it is built
(:mod:`medviewer.ai.model_size`). ``medviewer models add`` runs the same checks
(:func:`validate_model`).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.ai.model_card import (
    REFUSED_FORMATS,
    ModelCard,
    verify_weights,
    weights_inside_folder,
)
from medviewer.ai.model_size import SizeEstimate, check_file_size, check_network_size
from medviewer.ai.safe_archive import check_weights_file
from medviewer.core.errors import InferenceError, ModelCardError

if TYPE_CHECKING:
    import torch

_ARCHITECTURE_MODULES = ("monai.networks.nets", "medviewer.ai.nets")


@dataclass(eq=False)
class Network:
    """A loaded model: call it on a batch tensor; `module` is the eager module when there is one.

    Attributes
    ----------
    forward : callable
        ``forward(batch) -> output`` on `device`.
    module : torch.nn.Module or None
        The eager ``nn.Module`` (safetensors/state-dict weights), the one Grad-CAM hooks into.
    device : torch.device
    format : str
        The card's weights format.
    """

    forward: Any
    module: Any
    device: Any
    format: str

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the network on `batch`."""
        return self.forward(batch)


_CACHE: dict[tuple[str, str, str], Network] = {}
_CACHE_LOCK = threading.Lock()


def load_network(card: ModelCard, device: torch.device) -> Network:
    """The card's network on `device`, loaded once and then reused.

    Raises
    ------
    ModelCardError
        When the model is refused: see :func:`check_weights` (and, for an architecture,
        :func:`build_architecture`).
    InferenceError
        When the file cannot be loaded in the card's format.
    """
    loader = _loader(card)
    key = (str(card.weights_path.resolve()), card.weights.sha256, str(device))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        path = check_weights(card)
        network = loader(card, path, device)
        _CACHE[key] = network
        return network


def check_weights(card: ModelCard) -> Path:
    """Everything checked about a weights file before any loader reads a byte of it.

    The file must be inside the card folder (links followed), be no larger than the memory a
    model may use, match the card's sha256, and pass the static checks of its format.

    Parameters
    ----------
    card : ModelCard
        A card read from a file.

    Returns
    -------
    Path
        The weights file.

    Raises
    ------
    ModelCardError
        ``"<path>: refused: <reason>"`` (or a sha256 mismatch, a missing file).
    """
    _loader(card)
    if weights_inside_folder(card).is_file():
        check_file_size(card.weights_path)  # before hashing: a 100 GB file is refused at once
    path = verify_weights(card)
    check_weights_file(path, card.weights.format, card.folder)
    return path


def validate_model(card: ModelCard) -> SizeEstimate | None:
    """What ``medviewer models add`` checks: :func:`check_weights`, then the network's size.

    Parameters
    ----------
    card : ModelCard
        A card read from a file.

    Returns
    -------
    SizeEstimate or None
        The architecture's estimate (``None`` for formats that hold the network itself).

    Raises
    ------
    ModelCardError
        When the model is refused; nothing has been loaded or built.
    """
    check_weights(card)
    if card.weights.architecture is None:
        return None
    return check_network_size(card, architecture_class(card))


def _loader(card: ModelCard) -> Any:
    loader = _LOADERS.get(card.weights.format)
    if loader is None:
        reason = REFUSED_FORMATS.get(card.weights.format, "medviewer has no loader for it")
        raise ModelCardError(
            f"{card.path or card.id}: weights.format {card.weights.format!r}: {reason}"
        )
    return loader


def clear_network_cache() -> None:
    """Forget every loaded network (frees their memory once nothing else holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _load_torchscript(card: ModelCard, path: Path, device: torch.device) -> Network:
    import torch

    try:
        module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise InferenceError(f"{path}: not a TorchScript file: {_first_line(exc)}") from None
    module.eval()
    return Network(module, None, device, card.weights.format)


def _load_state_dict_weights(card: ModelCard, path: Path, device: torch.device) -> Network:
    module = build_architecture(card)
    state = _read_state_dict(card, path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InferenceError(
            f"{path}: weights do not fit {card.weights.architecture.name}: {_first_line(exc)}"
        ) from None
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    module.to(device)
    return Network(module, module, device, card.weights.format)


def _read_state_dict(card: ModelCard, path: Path) -> dict[str, Any]:
    import torch

    if card.weights.format == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise InferenceError(f"{path}: not a safetensors file: {_first_line(exc)}") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises many types
        raise InferenceError(
            f"{path}: refused: not a plain state dict of tensors (weights_only load failed: "
            f"{_first_line(exc)})"
        ) from None
    if not isinstance(state, dict):
        raise InferenceError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def build_architecture(card: ModelCard) -> torch.nn.Module:
    """The untrained network the card names (only medviewer or MONAI architectures).

    It is first built on the ``meta`` device and sized (:func:`check_network_size`); only a
    network within the limits is built for real.

    Raises
    ------
    ModelCardError
        When the name is not an allowed network, the constructor refuses the kwargs, or the
        network is over the size limits (the message says how much it would need).
    """
    cls = architecture_class(card)
    check_network_size(card, cls)
    architecture = card.weights.architecture
    assert architecture is not None  # architecture_class checked it
    try:
        return cls(**architecture.kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelCardError(
            f"{card.path}: weights.architecture.kwargs: {architecture.name} refused them: {exc}"
        ) from None


def architecture_class(card: ModelCard) -> type:
    """The ``nn.Module`` class the card's ``weights.architecture.name`` names.

    Raises
    ------
    ModelCardError
        When it is missing, outside the allowed modules, or not a network.
    """
    import torch

    architecture = card.weights.architecture
    if architecture is None:
        raise ModelCardError(f"{card.path}: weights.architecture: missing")
    module_name, _, class_name = architecture.name.rpartition(".")
    if module_name not in _ARCHITECTURE_MODULES:
        raise ModelCardError(
            f"{card.path}: weights.architecture.name: must be in "
            f"{' or '.join(_ARCHITECTURE_MODULES)}, got {architecture.name!r}"
        )
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ModelCardError(
            f"{card.path}: weights.architecture.name: {architecture.name!r} is not a network"
        )
    return cls


def _load_onnx(card: ModelCard, path: Path, device: torch.device) -> Network:
    try:
        import onnxruntime
    except ImportError:
        raise InferenceError(
            "ONNX models need onnxruntime: pip install 'medviewer[onnx]'"
        ) from None
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        raise InferenceError(f"{path}: not a usable ONNX model: {_first_line(exc)}") from None
    input_name = session.get_inputs()[0].name

    def forward(batch: torch.Tensor) -> torch.Tensor:
        import torch

        array = batch.detach().float().cpu().numpy()
        output = session.run(None, {input_name: array})[0]
        return torch.from_numpy(output).to(batch.device)

    return Network(forward, None, device, card.weights.format)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_LOADERS = {
    "torchscript": _load_torchscript,
    "safetensors": _load_state_dict_weights,
    "state_dict": _load_state_dict_weights,
    "onnx": _load_onnx,
}
