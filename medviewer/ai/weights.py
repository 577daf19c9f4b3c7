"""Load a card's weights into a callable network, safely, once.

Nothing is ever unpickled by Python's full unpickler: TorchScript goes through its own loader,
state dicts come from safetensors or ``torch.load(weights_only=True)`` into an architecture the
card names (from MONAI's networks or :mod:`medviewer.ai.nets`), ONNX through onnxruntime;
torch.export programs are refused (:data:`~medviewer.ai.model_card.REFUSED_FORMATS`).

Before any byte of the file reaches a loader, :func:`check_weights` checks that the file is
inside the model folder and fits in memory, reads it once, and checks those bytes: the card's
sha256 and the static checks of :mod:`medviewer.ai.safe_archive` (no pickle naming code, no
TorchScript code touching files, no data outside the folder). The loaders get those same bytes
from memory (a file on a network or FUSE folder could serve other bytes on a second read); an
ONNX model with external data gets them in a private temporary folder, since onnxruntime finds
external data beside the model file. An architecture is sized on the ``meta`` device before it
is built (:mod:`medviewer.ai.model_size`). ``medviewer models add`` runs the same checks
(:func:`validate_model`).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from medviewer.ai.model_card import (
    REFUSED_FORMATS,
    ModelCard,
    check_sha256,
    read_limited,
    weights_inside_folder,
)
from medviewer.ai.model_size import (
    SizeEstimate,
    check_file_size,
    check_network_size,
    memory_limit,
)
from medviewer.ai.safe_archive import check_weights_bytes
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


@dataclass(frozen=True, eq=False)
class CheckedWeights:
    """A weights file's bytes, read once and checked: what the loader gets.

    Attributes
    ----------
    path : Path
        The weights file (``card.folder / weights.file``), for messages.
    data : bytes
        Its bytes; their sha256 is the card's and they passed the static checks.
    external : dict of str to bytes
        ONNX external data by location, read once and checked (empty otherwise).
    """

    path: Path
    data: bytes = field(repr=False)
    external: dict[str, bytes] = field(default_factory=dict, repr=False)


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
        network = loader(card, check_weights(card), device)
        _CACHE[key] = network
        return network


def check_weights(card: ModelCard) -> CheckedWeights:
    """Read the weights once and check those bytes; loaders get nothing else.

    The file must be inside the card folder (links followed) and no larger than the memory a
    model may use; its bytes must match the card's sha256 and pass the static checks of their
    format (:func:`~medviewer.ai.safe_archive.check_weights_bytes`).

    Parameters
    ----------
    card : ModelCard
        A card read from a file.

    Returns
    -------
    CheckedWeights
        The bytes (and ONNX external data) as checked.

    Raises
    ------
    ModelCardError
        ``"<path>: refused: <reason>"`` (or a sha256 mismatch, a missing file).
    """
    _loader(card)
    path = card.weights_path
    weights_inside_folder(card)
    if not path.is_file():
        raise ModelCardError(f"{path}: weights file missing (named by {card.path})")
    check_file_size(path)  # before reading: a 100 GB file is refused at once
    data = read_limited(path, memory_limit(), "the weights file")
    check_sha256(card, hashlib.sha256(data).hexdigest())
    external = check_weights_bytes(data, path, card.weights.format, card.folder)
    return CheckedWeights(path, data, external)


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


def _load_torchscript(card: ModelCard, weights: CheckedWeights, device: torch.device) -> Network:
    import torch

    try:
        module = torch.jit.load(io.BytesIO(weights.data), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise InferenceError(
            f"{weights.path}: not a TorchScript file: {_first_line(exc)}"
        ) from None
    module.eval()
    return Network(module, None, device, card.weights.format)


def _load_state_dict_weights(
    card: ModelCard, weights: CheckedWeights, device: torch.device
) -> Network:
    module = build_architecture(card)
    state = _read_state_dict(card, weights)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InferenceError(
            f"{weights.path}: weights do not fit {card.weights.architecture.name}: "
            f"{_first_line(exc)}"
        ) from None
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    module.to(device)
    return Network(module, module, device, card.weights.format)


def _read_state_dict(card: ModelCard, weights: CheckedWeights) -> dict[str, Any]:
    import torch

    path = weights.path
    if card.weights.format == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return load(weights.data)
        except SafetensorError as exc:
            raise InferenceError(f"{path}: not a safetensors file: {_first_line(exc)}") from None
    try:
        state = torch.load(io.BytesIO(weights.data), map_location="cpu", weights_only=True)
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


def _load_onnx(card: ModelCard, weights: CheckedWeights, device: torch.device) -> Network:
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
        session = _onnx_session(onnxruntime, weights, providers)
    except OSError as exc:
        raise InferenceError(f"{weights.path}: cannot stage the ONNX model: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
        raise InferenceError(
            f"{weights.path}: not a usable ONNX model: {_first_line(exc)}"
        ) from None
    input_name = session.get_inputs()[0].name

    def forward(batch: torch.Tensor) -> torch.Tensor:
        import torch

        array = batch.detach().float().cpu().numpy()
        output = session.run(None, {input_name: array})[0]
        return torch.from_numpy(output).to(batch.device)

    return Network(forward, None, device, card.weights.format)


def _onnx_session(onnxruntime: Any, weights: CheckedWeights, providers: list[str]) -> Any:
    """An onnxruntime session on the checked bytes, never on the files in the model folder.

    Without external data the model is handed over as bytes. onnxruntime finds external data
    only beside a model file, so then the checked bytes (model and external files, at their
    checked locations) are written to a new private temporary folder, the session is built from
    there, and the folder is removed.
    """
    if not weights.external:
        return onnxruntime.InferenceSession(weights.data, providers=providers)
    staging = Path(tempfile.mkdtemp(prefix="medviewer-onnx-"))
    try:
        for location, content in weights.external.items():
            target = staging.joinpath(*PurePosixPath(location.replace("\\", "/")).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        model = staging / weights.path.name
        model.write_bytes(weights.data)  # last: a location naming the model file cannot replace it
        return onnxruntime.InferenceSession(str(model), providers=providers)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_LOADERS = {
    "torchscript": _load_torchscript,
    "safetensors": _load_state_dict_weights,
    "state_dict": _load_state_dict_weights,
    "onnx": _load_onnx,
}
