"""Model cards: the typed, validated ``model.json`` that sits beside a model's weights.

A card says what a model is for, which file holds its weights (and that file's sha256), how an
image is prepared for it (orientation, spacing, intensity) and how its output is read (labels
or classes, activation, threshold, post-processing). Every field is checked when the card is
read; every problem is one :class:`~medviewer.core.errors.ModelCardError` naming the file and
the field, e.g. ``/models/lung/model.json: input.spacing[2]: must be a number > 0, got -1``.

This module reads JSON only: it never imports torch or MONAI, so listing models is instant. A card
file is read once and at most :data:`MAX_CARD_BYTES` of it; a card nested deeper than
:data:`MAX_NESTING` levels is refused (never a traceback), and values quoted in messages are
shortened (:func:`short_repr`).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import re
import reprlib
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from medviewer.core.errors import ModelCardError
from medviewer.core.findings import DEFAULT_COLORS, Segment, default_color  # noqa: F401
from medviewer.core.geometry import AXIS_LETTERS

SCHEMA = "medviewer.model/1"
CARD_FILE = "model.json"
TASKS = ("segmentation", "classification", "interactive")
#: What an interactive (promptable) model's input channels hold, in the card's order
#: (:class:`PromptSpec`).
PROMPT_CHANNELS = ("image", "positive", "negative", "previous", "box")
PROMPT_ENCODINGS = ("gaussian", "disk")
#: An interactive model's cube holds at most this many voxels (every prompt allocates it).
MAX_PROMPT_VOXELS = 256**3
WEIGHT_FORMATS = ("torchscript", "safetensors", "state_dict", "onnx")
#: Formats medviewer knows but refuses, and why (the card validator says this).
REFUSED_FORMATS = {
    "exported": (
        "torch.export programs (.pt2) are refused: loading one unpickles parts of the file "
        "and evaluates expressions written in it, so a crafted file can run any program on "
        "this computer; save the model as TorchScript (torch.jit.save) or its state dict as "
        "safetensors instead"
    ),
}
#: Formats that hold tensors only, so the card must name the network that receives them.
ARCHITECTURE_FORMATS = ("safetensors", "state_dict")
ARCHITECTURE_PREFIXES = ("monai.networks.nets.", "medviewer.ai.nets.")
ACTIVATIONS = ("softmax", "sigmoid", "none")
INTENSITY_OPS = ("clip", "scale_range", "percentile_scale", "zscore", "linear")
#: Label post-processing ops a card may name (:func:`medviewer.ai.statistics.postprocess_labels`):
#: the first two as plain names, the others as objects with their parameters
#: (``{"op": "remove_small", "min_volume_mm3": 30}``).
POSTPROCESS_OPS = (
    "largest_component", "fill_holes", "keep_largest", "remove_small", "mean_between",
    "max_probability",
)  # fmt: skip
EXPLAIN_METHODS = ("gradcam", "gradcampp")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_LABEL_KEY_RE = re.compile(r"^[1-9][0-9]*$")
_CHUNK = 1 << 20
#: A model card file is at most this large (real cards are a few kB).
MAX_CARD_BYTES = 1 << 20
#: JSON and YAML read from a model folder may nest this deep at most.
MAX_NESTING = 64
#: ... and hold this many values at most (YAML aliases counted each time they are used).
MAX_VALUES = 1_000_000
_TOP_REQUIRED = (
    "schema",
    "id",
    "name",
    "version",
    "task",
    "intended_use",
    "modalities",
    "weights",
    "input",
    "output",
)
_TOP_OPTIONAL = ("description", "license", "authors", "references", "explain", "metrics")


# -- the card ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """The network class that receives tensor-only weights, and its constructor arguments."""

    name: str
    kwargs: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"name": self.name, "kwargs": copy.deepcopy(self.kwargs)}


@dataclass(frozen=True)
class WeightsSpec:
    """The weights file (relative to the card folder), its sha256, format and architecture."""

    file: str
    sha256: str
    format: str
    architecture: Architecture | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        data: dict[str, Any] = {"file": self.file, "sha256": self.sha256, "format": self.format}
        if self.architecture is not None:
            data["architecture"] = self.architecture.to_dict()
        return data


@dataclass(frozen=True)
class IntensityOp:
    """One intensity step of the preprocessing; ``params`` holds every parameter, defaults too."""

    op: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"op": ..., **params}``."""
        return {"op": self.op, **{key: _jsonable(value) for key, value in self.params.items()}}


@dataclass(frozen=True)
class PostprocessStep:
    """One post-processing step of a label; ``params`` holds its parameters (none for the
    plain ``largest_component`` and ``fill_holes``).

    - ``keep_largest``: ``count`` (>= 1) largest connected components are kept.
    - ``remove_small``: components under ``min_volume_mm3`` (on the series grid) are removed.
    - ``mean_between``: components whose mean image value (modality units, e.g. HU) lies
      outside ``[min, max]`` are removed; either bound may be left out.
    - ``max_probability``: components whose highest probability of the label (the value its
      voxels were decided from) is under ``min`` are removed: the card's threshold draws the
      outline, ``min`` decides which outlines count (hysteresis thresholding).
    """

    op: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str | dict[str, Any]:
        """The JSON form: the op's name alone when it has no parameters."""
        return {"op": self.op, **self.params} if self.params else self.op


@dataclass(frozen=True)
class CropForegroundSpec:
    """``input.crop_foreground``: run the model on the series' foreground box only.

    On the series (before any resampling or intensity op), the voxels above `threshold`
    (image units, e.g. HU), or above the `percentile`-th percentile of the image, define a
    bounding box; it grows by `margin_mm` on each side (per array axis, whole voxels whose
    centres lie within the margin) and is clipped to the image. Exactly one of `threshold`
    and `percentile` is set.
    """

    threshold: float | None = None
    percentile: float | None = None
    margin_mm: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        key, value = (
            ("threshold", self.threshold) if self.threshold is not None
            else ("percentile", self.percentile)
        )
        return {key: value, "margin_mm": self.margin_mm}


@dataclass(frozen=True)
class RoiSpec:
    """``input.roi``: run the model inside another (upstream) model's labels only (a cascade).

    The runner runs the segmentation model `model` (or reuses its result on the same series),
    takes the union of its `labels`, grows it by `margin_mm` (voxel centres within that
    distance, in mm) and runs this card's model on that mask's bounding box; outputs at the
    box's voxels outside the grown mask are background. With `keep_labels` the upstream
    `labels` join this model's result (a voxel both models label keeps this model's label).
    """

    model: str
    labels: tuple[int, ...]
    margin_mm: float = 0.0
    keep_labels: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"model": self.model, "labels": list(self.labels), "margin_mm": self.margin_mm,
                "keep_labels": self.keep_labels}


@dataclass(frozen=True)
class PromptSpec:
    """``input.prompts``: how an interactive (promptable) model receives its prompts.

    The model runs on a cube of `roi_mm` (mm per model dim) centred on the object's first
    positive click (or its first box's centre), on the card's grid (``spacing``,
    ``orientation``). Its input channels are `channels` in order: ``image`` (the series,
    intensity ops applied), ``positive`` and ``negative`` (the clicks and scribbles, each
    voxel drawn as a Gaussian of sigma `radius_mm` with peak 1, or a disk (ball) of that
    radius), ``previous`` (the object's mask before this prompt, 0/1) and ``box`` (1 inside
    the object's boxes). The output is one channel: the object's probability (sigmoid) or
    logit.
    """

    channels: tuple[str, ...]
    encoding: str
    radius_mm: float
    roi_mm: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"channels": list(self.channels), "encoding": self.encoding,
                "radius_mm": self.radius_mm, "roi_mm": list(self.roi_mm)}


@dataclass(frozen=True)
class InputSpec:
    """How an image is prepared: dims, orientation, spacing, sizes, channels, intensity, and
    the part of the series the model runs on (``crop_foreground`` or ``roi``)."""

    dims: int
    orientation: str
    spacing: tuple[float, ...] | None
    size: tuple[int, ...] | None
    patch_size: tuple[int, ...] | None
    overlap: float
    channels: int
    intensity: tuple[IntensityOp, ...]
    context_slices: int = 0
    crop_foreground: CropForegroundSpec | None = None
    roi: RoiSpec | None = None
    prompts: PromptSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        extra: dict[str, Any] = {}
        if self.context_slices:
            extra["context_slices"] = self.context_slices
        if self.crop_foreground is not None:
            extra["crop_foreground"] = self.crop_foreground.to_dict()
        if self.roi is not None:
            extra["roi"] = self.roi.to_dict()
        if self.prompts is not None:
            extra["prompts"] = self.prompts.to_dict()
        return {
            "dims": self.dims,
            "orientation": self.orientation,
            "spacing": _jsonable(self.spacing),
            "size": _jsonable(self.size),
            "patch_size": _jsonable(self.patch_size),
            "overlap": self.overlap,
            "channels": self.channels,
            "intensity": [op.to_dict() for op in self.intensity],
            **extra,
        }


@dataclass(frozen=True)
class OutputSpec:
    """How the output is read.

    For segmentation with ``sigmoid`` every label is its own channel (in label order); with
    ``softmax`` or ``none`` channel 0 is background and channel k is label k. ``postprocess``
    maps a label to its post-processing steps (empty when there are none). ``temperature``
    divides the raw outputs before the activation (temperature scaling, fitted on validation
    data so that probabilities are calibrated; 1 leaves them as the network gives them).
    ``bias`` (classifiers with a softmax only, one value per class, empty for none) is added
    after the division: with it, a two-class model's ``p = sigmoid(z / T + b1 - b0)`` is Platt
    scaling, which also removes an offset a temperature cannot (a model trained on balanced
    batches carries their prior in its logits).

    For a classifier run slice by slice (2D input on a volume), ``slice_average`` averages
    each slice's probabilities with that many neighbours on each side (a nodule spans several
    slices, a vessel's cross-section that fools one slice rarely fools its neighbours), and
    ``series_consecutive`` makes a class's series probability the highest value that many
    consecutive slices all reach (1: the maximum over slices), read from the slices before
    averaging. Both are chosen on validation data (the card's metrics say which).
    """

    activation: str
    labels: dict[int, Segment]
    classes: tuple[str, ...]
    threshold: float
    postprocess: dict[int, tuple[PostprocessStep, ...]]
    temperature: float = 1.0
    bias: tuple[float, ...] = ()
    slice_average: int = 0
    series_consecutive: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        data: dict[str, Any] = {"activation": self.activation}
        if self.labels:
            data["labels"] = {
                str(seg.label): {"name": seg.name, "color": seg.color}
                for seg in self.labels.values()
            }
        if self.classes:
            data["classes"] = list(self.classes)
        data["threshold"] = self.threshold
        if self.temperature != 1.0:
            data["temperature"] = self.temperature
        if self.bias:
            data["bias"] = list(self.bias)
        if self.slice_average:
            data["slice_average"] = self.slice_average
        if self.series_consecutive != 1:
            data["series_consecutive"] = self.series_consecutive
        if self.postprocess:
            data["postprocess"] = {
                str(k): [step.to_json() for step in steps] for k, steps in self.postprocess.items()
            }
        return data


@dataclass(frozen=True)
class ExplainSpec:
    """The saliency method of a classifier and the layer it hooks."""

    method: str
    layer: str


@dataclass(frozen=True)
class ModelCard:
    """A validated model card. Build one with :meth:`from_dict` or :func:`load_card`.

    ``path`` is the card file it was read from (``None`` for a card built in memory); it is not
    part of equality, so a card equals its round trip through :meth:`to_dict`.
    """

    schema: str
    id: str
    name: str
    version: str
    description: str
    task: str
    intended_use: str
    license: str
    authors: tuple[str, ...]
    references: tuple[str, ...]
    modalities: tuple[str, ...]
    weights: WeightsSpec
    input: InputSpec
    output: OutputSpec
    explain: ExplainSpec | None
    metrics: dict[str, Any]
    path: Path | None = field(default=None, compare=False)

    @property
    def folder(self) -> Path:
        """The folder holding the card file.

        Raises
        ------
        ModelCardError
            When the card was not read from a file.
        """
        if self.path is None:
            raise ModelCardError(f"model {self.id!r}: the card was not read from a file")
        return self.path.parent

    @property
    def weights_path(self) -> Path:
        """The weights file: ``folder / weights.file``."""
        return self.folder / self.weights.file

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, such that ``ModelCard.from_dict(card.to_dict(), src) == card``.

        Returns
        -------
        dict
            A fresh JSON-serialisable dict (defaults written out).
        """
        data: dict[str, Any] = {
            "schema": self.schema,
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "task": self.task,
            "intended_use": self.intended_use,
            "license": self.license,
            "authors": list(self.authors),
            "references": list(self.references),
            "modalities": list(self.modalities),
            "weights": self.weights.to_dict(),
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
        }
        if self.explain is not None:
            data["explain"] = {"method": self.explain.method, "layer": self.explain.layer}
        data["metrics"] = copy.deepcopy(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str, path: Path | None = None) -> ModelCard:
        """Validate a card's JSON form.

        Parameters
        ----------
        data : Mapping
            The parsed JSON object.
        source : str
            What the card was read from (a file or folder), named by every error.
        path : Path, optional
            The card file, kept as :attr:`path`.

        Returns
        -------
        ModelCard

        Raises
        ------
        ModelCardError
            ``"<source>: <field>: <problem>"`` for the first invalid field.
        """
        if not isinstance(data, Mapping):
            raise ModelCardError(f"{source}: the card must be a JSON object, got {_got(data)}")
        try:
            return _parse_card(data, path)
        except _FieldError as exc:
            raise ModelCardError(f"{source}: {exc}") from None


# -- files ------------------------------------------------------------------------------


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read and validate a card.

    Parameters
    ----------
    path : path-like
        A ``model.json`` file, or a folder holding one.

    Returns
    -------
    ModelCard
        With :attr:`ModelCard.path` set to the (absolute) card file.

    Raises
    ------
    ModelCardError
        When the file is missing or unreadable, is not JSON, or holds an invalid card
        (including a ``weights.file`` that leads outside the card folder through a link).
    """
    card_path = Path(path).absolute()
    if card_path.is_dir():
        card_path = card_path / CARD_FILE
    if not card_path.is_file():
        raise ModelCardError(f"{card_path}: no model card here (expected a {CARD_FILE} file)")
    data = _read_json(card_path)
    card = ModelCard.from_dict(data, str(card_path), path=card_path)
    weights_inside_folder(card)
    return card


def weights_inside_folder(card: ModelCard) -> Path:
    """The weights file's real path, refused when it leaves the card folder's real path.

    ``weights.file`` is already a plain relative path (no ``..``, not absolute); this also
    follows symbolic links, of the file and of the folders on its way.

    Parameters
    ----------
    card : ModelCard
        A card read from a file.

    Returns
    -------
    Path
        The resolved weights path (it may not exist).

    Raises
    ------
    ModelCardError
        ``"<card>: weights.file: 'sub/model.ts' leads outside the model folder ..."``.
    """
    try:
        folder = card.folder.resolve()
        target = card.weights_path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links
        raise ModelCardError(f"{card.path}: weights.file: cannot be followed: {exc}") from None
    if not target.is_relative_to(folder):
        raise ModelCardError(
            f"{card.path}: weights.file: {card.weights.file!r} leads outside the model folder "
            f"{card.folder} (through a link, to {target}); a model's weights must be inside "
            "its folder, so the model is refused"
        )
    return target


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file (lower-case hex), read in 1 MiB chunks.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(card: ModelCard) -> Path:
    """Check that the weights file exists and matches the card's sha256.

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
        When the file is missing, unreadable or outside the card folder (through a link), or
        its sha256 differs (the model is refused).
    """
    path = card.weights_path
    weights_inside_folder(card)
    if not path.is_file():
        raise ModelCardError(f"{path}: weights file missing (named by {card.path})")
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise ModelCardError(f"{path}: weights file unreadable: {exc}") from None
    check_sha256(card, actual)
    return path


def check_sha256(card: ModelCard, actual: str) -> None:
    """Refuse weights whose sha256 (`actual`, lower-case hex) is not the card's.

    Raises
    ------
    ModelCardError
        ``"<weights>: sha256 mismatch: card says ..., file is ...; the model is refused"``.
    """
    expected = card.weights.sha256
    if actual != expected:
        raise ModelCardError(
            f"{card.weights_path}: sha256 mismatch: card says {expected[:12]}..., file is "
            f"{actual[:12]}...; the model is refused"
        )


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The bytes of one regular file, read once, refused beyond `limit` bytes.

    The file is opened without blocking (a named pipe cannot stall the reader) and must be a
    regular file once open; at most ``limit + 1`` bytes are ever read.

    Parameters
    ----------
    path : Path
        The file.
    limit : int
        The most bytes it may hold.
    what : str
        What the file is, for messages (``"the model card"``).

    Returns
    -------
    bytes

    Raises
    ------
    ModelCardError
        ``"<path>: cannot read: ..."``, ``"<path>: refused: <what> is not a regular file"`` or
        ``"<path>: refused: <what> is larger than <limit> bytes"``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ModelCardError(f"{path}: cannot read: {exc}") from None
    try:
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise ModelCardError(f"{path}: refused: {what} is not a regular file")
            data = stream.read(limit + 1)
    except OSError as exc:
        raise ModelCardError(f"{path}: cannot read: {exc}") from None
    if len(data) > limit:
        raise ModelCardError(
            f"{path}: refused: {what} is larger than {limit:,} bytes, the most medviewer reads"
        )
    return data


def check_nesting(
    data: Any, where: str, max_depth: int = MAX_NESTING, max_values: int = MAX_VALUES
) -> None:
    """Refuse parsed JSON/YAML nested deeper than `max_depth` or holding over `max_values` values.

    Walked without recursion; a YAML alias counts every time it is used, so a "billion laughs"
    document (aliases of aliases) is refused here instead of growing in every later walk or
    message.

    Raises
    ------
    ModelCardError
        ``"<where>: refused: nested more than 64 levels deep"`` or ``"...: holds more than
        1,000,000 values ..."``.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > max_values:
            raise ModelCardError(
                f"{where}: refused: holds more than {max_values:,} values (YAML aliases "
                "counted each time they are used)"
            )
        if isinstance(value, Mapping | list | tuple):
            if depth >= max_depth:
                raise ModelCardError(f"{where}: refused: nested more than {max_depth} levels deep")
            items = value.values() if isinstance(value, Mapping) else value
            stack.extend((item, depth + 1) for item in items)


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = 240
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 10
_REPR.maxlong = 80


def short_repr(value: Any) -> str:
    """``repr(value)`` bounded: long strings, lists and deep nests are cut with ``...``."""
    try:
        return _REPR.repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"


def parse_json(data: bytes, path: Path, hook: Callable[..., Any] | None = None) -> Any:
    """Parse JSON bytes read from `path`; every failure is a ModelCardError naming the file.

    Parameters
    ----------
    data : bytes
        The file's bytes (UTF-8).
    path : Path
        The file, for messages.
    hook : callable, optional
        ``object_pairs_hook`` for :func:`json.loads`.

    Returns
    -------
    Any
        The parsed value, nested at most :data:`MAX_NESTING` deep.

    Raises
    ------
    ModelCardError
        Not UTF-8, invalid JSON (line and column), too deeply nested, or too large to hold.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelCardError(f"{path}: cannot read: {exc}") from None
    try:
        value = json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        raise ModelCardError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise ModelCardError(
            f"{path}: invalid JSON: nested too deeply to read (at most {MAX_NESTING} levels)"
        ) from None
    except MemoryError:
        raise ModelCardError(f"{path}: invalid JSON: too large to hold in memory") from None
    except ValueError as exc:  # a duplicate key, an integer of more than 4300 digits
        raise ModelCardError(f"{path}: invalid JSON: {exc}") from None
    check_nesting(value, str(path))
    return value


def _read_json(path: Path) -> Any:
    """Parse a card file (at most :data:`MAX_CARD_BYTES`); errors name the file and the reason."""
    return parse_json(read_limited(path, MAX_CARD_BYTES, "the model card"), path, _unique_keys)


class _DuplicateKeyError(ValueError):
    """A JSON object names a key twice (the second would silently win)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


# -- validation helpers -----------------------------------------------------------------


class _FieldError(Exception):
    """An invalid field; :meth:`ModelCard.from_dict` prefixes the source."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")


def _fail(name: str, message: str) -> NoReturn:
    raise _FieldError(name, message)


def _got(value: Any) -> str:
    text = short_repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value: Any) -> Any:
    """Tuples to lists, recursively (the JSON form of stored values)."""
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value


def _fields(
    value: Any, name: str, required: Iterable[str], optional: Iterable[str] = ()
) -> Mapping[str, Any]:
    """An object with exactly the allowed keys: unknown keys first, then missing ones."""
    obj = _object(value, name)
    required, allowed = tuple(required), (*required, *optional)
    for key in obj:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
            _fail(_join(name, str(key)), f"unknown field{hint}")
    for key in required:
        if key not in obj:
            _fail(_join(name, key), "missing")
    return obj


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(name, f"must be an object, got {_got(value)}")
    return value


def _array(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        _fail(name, f"must be a list, got {_got(value)}")
    return list(value)


def _string(value: Any, name: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        _fail(name, f"must be a {'' if empty else 'non-empty '}string, got {_got(value)}")
    return value


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        _fail(name, f"must be true or false, got {_got(value)}")
    return value


def _number(
    value: Any, name: str, rule: str = "", ok: Callable[[float], bool] = lambda _: True
) -> float:
    """A finite JSON number (never a boolean) passing ``ok``; ``rule`` describes ``ok``."""
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or not ok(value):
        _fail(name, f"must be a number{rule}, got {_got(value)}")
    return float(value)


def _integer(
    value: Any, name: str, rule: str = "", ok: Callable[[int], bool] = lambda _: True
) -> int:
    """A JSON integer (never a boolean) passing ``ok``; ``rule`` describes ``ok``."""
    if not isinstance(value, int) or isinstance(value, bool) or not ok(value):
        _fail(name, f"must be an integer{rule}, got {_got(value)}")
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices or not isinstance(value, str):
        _fail(name, f"must be one of {', '.join(map(repr, choices))}; got {_got(value)}")
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    return tuple(_string(item, f"{name}[{i}]") for i, item in enumerate(_array(value, name)))


def _positive_float(value: Any, name: str) -> float:
    return _number(value, name, " > 0", lambda x: x > 0)


def _positive_int(value: Any, name: str) -> int:
    return _integer(value, name, " > 0", lambda x: x > 0)


# -- sections ---------------------------------------------------------------------------


def _parse_card(data: Mapping[str, Any], path: Path | None) -> ModelCard:
    obj = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    _fields(obj, "", _TOP_REQUIRED, _TOP_OPTIONAL)
    schema = _string(obj["schema"], "schema")
    if schema != SCHEMA:
        _fail("schema", f"must be {SCHEMA!r}, got {_got(schema)}")
    task = _choice(obj["task"], "task", TASKS)
    weights = _parse_weights(obj["weights"])
    inputs, output = _parse_input(obj["input"]), _parse_output(obj["output"], task)
    _check_steps_fit_the_input(output, inputs)
    card_id = _parse_id(obj["id"])
    _check_region(inputs, output, task, card_id)
    _check_prompts(inputs, output, task)
    return ModelCard(
        schema=schema,
        id=card_id,
        name=_string(obj["name"], "name"),
        version=_string(obj["version"], "version"),
        description=_string(obj.get("description", ""), "description", empty=True),
        task=task,
        intended_use=_string(obj["intended_use"], "intended_use"),
        license=_string(obj.get("license", ""), "license", empty=True),
        authors=_strings(obj.get("authors", []), "authors"),
        references=_strings(obj.get("references", []), "references"),
        modalities=_parse_modalities(obj["modalities"]),
        weights=weights,
        input=inputs,
        output=output,
        explain=_parse_explain(obj.get("explain"), task, weights),
        metrics=copy.deepcopy(dict(_object(obj.get("metrics", {}), "metrics"))),
        path=path,
    )


def _check_steps_fit_the_input(output: OutputSpec, inputs: InputSpec) -> None:
    """``mean_between`` averages one image value per voxel: a greyscale (1-channel) model;
    ``max_probability`` reads probabilities: a softmax or sigmoid output."""
    for label, steps in output.postprocess.items():
        for i, step in enumerate(steps):
            if step.op == "mean_between" and inputs.channels != 1:
                _fail(f"output.postprocess.{label}[{i}]",
                      f"'mean_between' needs a 1-channel (greyscale) model; "
                      f"input.channels is {inputs.channels}")
            if step.op == "max_probability" and output.activation not in ("softmax", "sigmoid"):
                _fail(f"output.postprocess.{label}[{i}]",
                      "'max_probability' needs probabilities: output.activation 'softmax' or "
                      f"'sigmoid', got {output.activation!r}")


def _check_region(inputs: InputSpec, output: OutputSpec, task: str, card_id: str) -> None:
    """``input.roi`` against the rest of the card: one region rule, another model, labels."""
    roi = inputs.roi
    if roi is None:
        return
    if inputs.crop_foreground is not None:
        _fail("input.roi", "not allowed with input.crop_foreground: the region is the other "
                           "model's labels; give one of the two")
    if roi.model == card_id:
        _fail("input.roi.model", f"names this model itself ({card_id!r}); a region of interest "
                                 "comes from another segmentation model")
    if roi.keep_labels and task != "segmentation":
        _fail("input.roi.keep_labels", "only a segmentation model can add the other model's "
                                       "labels to its result")
    if roi.keep_labels:
        for label in roi.labels:
            if label in output.labels:
                _fail("input.roi.labels",
                      f"label {label} is also this card's label {label} "
                      f"({output.labels[label].name!r}); with keep_labels the other model's "
                      "labels join this card's, so their ids must differ")


def _check_prompts(inputs: InputSpec, output: OutputSpec, task: str) -> None:
    """An interactive card: 3D, prompts described, one channel per prompt channel, one
    output label; no other card has prompts."""
    if task != "interactive":
        if inputs.prompts is not None:
            _fail("input.prompts", "only an interactive model (task 'interactive') takes prompts")
        return
    if inputs.prompts is None:
        _fail("input.prompts", "missing: an interactive model must say how prompts reach it")
    if inputs.dims != 3:
        _fail("input.dims", "an interactive model runs on a 3D region (dims 3)")
    if inputs.spacing is None or inputs.size is not None or inputs.roi is not None \
            or inputs.crop_foreground is not None:
        _fail("input", "an interactive model needs input.spacing and takes its region from "
                       "the prompts (no size, roi or crop_foreground)")
    cube = [max(1, round(r / s)) for r, s in zip(inputs.prompts.roi_mm, inputs.spacing,
                                                  strict=True)]
    if math.prod(cube) > MAX_PROMPT_VOXELS:
        _fail("input.prompts.roi_mm", f"is a cube of {' x '.join(map(str, cube))} voxels at "
                                      f"input.spacing; at most {MAX_PROMPT_VOXELS:,} (256^3)")
    if inputs.channels != len(inputs.prompts.channels):
        _fail("input.channels", f"is {inputs.channels}, but input.prompts.channels names "
                                f"{len(inputs.prompts.channels)}")
    if len(output.labels) != 1 or output.activation == "softmax" or output.postprocess:
        _fail("output", "an interactive model gives one channel for its object: one label, "
                        "activation 'sigmoid' or 'none', no postprocess")


def _parse_prompts(value: Any) -> PromptSpec | None:
    """``{"channels": [...], "encoding": e, "radius_mm": r, "roi_mm": [x, y, z]}``, or None."""
    name = "input.prompts"
    if value is None:
        return None
    obj = _fields(value, name, ("channels", "roi_mm"), ("encoding", "radius_mm"))
    items = _array(obj["channels"], f"{name}.channels")
    channels = tuple(_choice(c, f"{name}.channels[{i}]", PROMPT_CHANNELS)
                     for i, c in enumerate(items))
    if "image" not in channels or "positive" not in channels:
        _fail(f"{name}.channels", "must hold at least 'image' and 'positive'")
    if len(set(channels)) != len(channels):
        _fail(f"{name}.channels", f"names a channel twice: {list(channels)}")
    roi = _vector(obj["roi_mm"], f"{name}.roi_mm", 3, _positive_float)
    if roi is None:
        _fail(f"{name}.roi_mm", "must give the region's size in mm along each model dim")
    rule, ok = " in (0, 50] (mm)", lambda r: 0 < r <= 50
    return PromptSpec(
        channels=channels,
        encoding=_choice(obj.get("encoding", "gaussian"), f"{name}.encoding", PROMPT_ENCODINGS),
        radius_mm=_number(obj.get("radius_mm", 2.0), f"{name}.radius_mm", rule, ok),
        roi_mm=(float(roi[0]), float(roi[1]), float(roi[2])),
    )


def _parse_id(value: Any, name: str = "id") -> str:
    text = _string(value, name)
    if not _ID_RE.match(text):
        _fail(
            name,
            "must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or "
            f"digit, got {_got(text)}",
        )
    return text


def _parse_modalities(value: Any) -> tuple[str, ...]:
    items = _strings(value, "modalities")
    if not items:
        _fail("modalities", 'must name at least one modality, e.g. ["CT"]')
    return tuple(item.strip().upper() for item in items)


def _parse_weights(value: Any) -> WeightsSpec:
    obj = _fields(value, "weights", ("file", "sha256", "format"), ("architecture",))
    sha256 = _string(obj["sha256"], "weights.sha256")
    if not _SHA256_RE.match(sha256):
        _fail("weights.sha256", f"must be 64 hexadecimal characters, got {_got(sha256)}")
    if isinstance(obj["format"], str) and obj["format"] in REFUSED_FORMATS:
        _fail("weights.format", f"{obj['format']!r}: {REFUSED_FORMATS[obj['format']]}")
    fmt = _choice(obj["format"], "weights.format", WEIGHT_FORMATS)
    return WeightsSpec(
        file=_parse_weights_file(obj["file"]),
        sha256=sha256.lower(),
        format=fmt,
        architecture=_parse_architecture(obj.get("architecture"), fmt),
    )


def _parse_weights_file(value: Any) -> str:
    name = "weights.file"
    text = _string(value, name)
    if "\\" in text or "\0" in text:
        _fail(name, f"must be a relative path with '/' separators, got {_got(text)}")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        _fail(name, f"must be relative to the card folder, not absolute, got {_got(text)}")
    if any(part in ("", ".", "..") for part in text.split("/")):
        _fail(name, f"must be a plain path inside the card folder (no '..'), got {_got(text)}")
    if text == CARD_FILE:
        _fail(name, f"must not be the card file itself, got {_got(text)}")
    return text


def _parse_architecture(value: Any, fmt: str) -> Architecture | None:
    name = "weights.architecture"
    if fmt not in ARCHITECTURE_FORMATS:
        if value is not None:
            _fail(name, f"not allowed with format {fmt!r}: the file holds the network itself")
        return None
    if value is None:
        _fail(name, f"missing: {fmt} weights hold tensors only, so the card must name the network")
    obj = _fields(value, name, ("name",), ("kwargs",))
    cls = _string(obj["name"], f"{name}.name")
    parts = cls.split(".")
    if not cls.startswith(ARCHITECTURE_PREFIXES) or not all(p.isidentifier() for p in parts):
        allowed = " or ".join(f"{p}<Class>" for p in ARCHITECTURE_PREFIXES)
        _fail(f"{name}.name", f"must be {allowed}, got {_got(cls)}")
    kwargs = _object(obj.get("kwargs", {}), f"{name}.kwargs")
    return Architecture(name=cls, kwargs=copy.deepcopy(dict(kwargs)))


def _parse_input(value: Any) -> InputSpec:
    optional = ("spacing", "size", "patch_size", "overlap", "channels", "intensity",
                "context_slices", "crop_foreground", "roi", "prompts")
    obj = _fields(value, "input", ("dims", "orientation"), optional)
    dims = _integer(obj["dims"], "input.dims", " (2 or 3)", lambda d: d in (2, 3))
    if obj.get("patch_size") is not None and dims != 3:
        _fail("input.patch_size", "only allowed when dims is 3 (2-D models run slice by slice)")
    context = _integer(obj.get("context_slices", 0), "input.context_slices", " in 0..8",
                       lambda c: 0 <= c <= 8)
    if context and dims != 2:
        _fail("input.context_slices", "only allowed when dims is 2 (neighbouring slices)")
    rule, ok = " in [0, 1)", lambda x: 0 <= x < 1
    overlap = _number(obj.get("overlap", 0.25), "input.overlap", rule, ok)
    ops = _array(obj.get("intensity", []), "input.intensity")
    return InputSpec(
        dims=dims,
        orientation=_parse_orientation(obj["orientation"]),
        spacing=_vector(obj.get("spacing"), "input.spacing", dims, _positive_float),
        size=_vector(obj.get("size"), "input.size", dims, _positive_int),
        patch_size=_vector(obj.get("patch_size"), "input.patch_size", dims, _positive_int),
        overlap=overlap,
        channels=_integer(obj.get("channels", 1), "input.channels", " >= 1", lambda c: c >= 1),
        intensity=tuple(_parse_op(op, f"input.intensity[{i}]") for i, op in enumerate(ops)),
        context_slices=context,
        crop_foreground=_parse_crop_foreground(obj.get("crop_foreground")),
        roi=_parse_roi(obj.get("roi")),
        prompts=_parse_prompts(obj.get("prompts")),
    )


def _parse_crop_foreground(value: Any) -> CropForegroundSpec | None:
    """``{"threshold": t | "percentile": p, "margin_mm": m}``, or None."""
    name = "input.crop_foreground"
    if value is None:
        return None
    obj = _fields(value, name, (), ("threshold", "percentile", "margin_mm"))
    given = [key for key in ("threshold", "percentile") if key in obj]
    if len(given) != 1:
        what = "both" if given else "neither"
        _fail(name, "needs exactly one of threshold (image units, e.g. HU) or percentile "
                    f"(0-100), got {what}")
    rule, ok = " >= 0 (mm)", lambda m: m >= 0
    margin = _number(obj.get("margin_mm", 0.0), f"{name}.margin_mm", rule, ok)
    if "threshold" in obj:
        return CropForegroundSpec(threshold=_number(obj["threshold"], f"{name}.threshold"),
                                  margin_mm=margin)
    rule, ok = " in [0, 100]", lambda p: 0 <= p <= 100
    percentile = _number(obj["percentile"], f"{name}.percentile", rule, ok)
    return CropForegroundSpec(percentile=percentile, margin_mm=margin)


def _parse_roi(value: Any) -> RoiSpec | None:
    """``{"model": id, "labels": [...], "margin_mm": m, "keep_labels": b}``, or None."""
    name = "input.roi"
    if value is None:
        return None
    obj = _fields(value, name, ("model", "labels"), ("margin_mm", "keep_labels"))
    model = _parse_id(obj["model"], f"{name}.model")
    items = _array(obj["labels"], f"{name}.labels")
    rule, ok = " >= 1 (a label of that model)", lambda k: k >= 1
    labels = [_integer(k, f"{name}.labels[{i}]", rule, ok) for i, k in enumerate(items)]
    if not labels:
        _fail(f"{name}.labels", "must name at least one label of that model")
    if len(set(labels)) != len(labels):
        _fail(f"{name}.labels", f"names a label twice: {labels}")
    rule, ok = " >= 0 (mm)", lambda m: m >= 0
    return RoiSpec(
        model=model,
        labels=tuple(sorted(labels)),
        margin_mm=_number(obj.get("margin_mm", 0.0), f"{name}.margin_mm", rule, ok),
        keep_labels=_boolean(obj.get("keep_labels", False), f"{name}.keep_labels"),
    )


def _parse_orientation(value: Any) -> str:
    name = "input.orientation"
    text = _string(value, name).upper()
    axes = {axis for c in text for axis, pair in enumerate(AXIS_LETTERS) if c in pair}
    if len(text) != 3 or axes != {0, 1, 2}:
        rule = "3 letters, one from each pair L/R, A/P, S/I (e.g. 'RAS')"
        _fail(name, f"must be {rule}; got {_got(value)}")
    return text


def _vector(
    value: Any, name: str, dims: int, item: Callable[[Any, str], Any]
) -> tuple[Any, ...] | None:
    """``None``, or a list of ``dims`` entries each checked by ``item``."""
    if value is None:
        return None
    items = _array(value, name)
    if len(items) != dims:
        _fail(name, f"must have {dims} entries (one per spatial dim), got {len(items)}")
    return tuple(item(entry, f"{name}[{i}]") for i, entry in enumerate(items))


# -- intensity --------------------------------------------------------------------------


def _parse_op(value: Any, name: str) -> IntensityOp:
    obj = _object(value, name)
    if "op" not in obj:
        _fail(f"{name}.op", "missing")
    op = _choice(obj["op"], f"{name}.op", INTENSITY_OPS)
    required, optional, parse = _OPS[op]
    params = _fields({k: v for k, v in obj.items() if k != "op"}, name, required, optional)
    return IntensityOp(op=op, params=parse(params, name))


def _pair(value: Any, name: str) -> tuple[float, float]:
    items = _array(value, name)
    if len(items) != 2:
        _fail(name, f"must be [low, high] (2 numbers), got {_got(value)}")
    return _number(items[0], f"{name}[0]"), _number(items[1], f"{name}[1]")


def _clip_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    low, high = _number(params["min"], f"{name}.min"), _number(params["max"], f"{name}.max")
    if not low < high:
        _fail(f"{name}.max", f"must be greater than min ({low:g}), got {_got(params['max'])}")
    return {"min": low, "max": high}


def _scale_range_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    low, high = _number(params["min"], f"{name}.min"), _number(params["max"], f"{name}.max")
    if low == high:
        _fail(f"{name}.max", f"must differ from min ({low:g}), got {_got(params['max'])}")
    return {
        "min": low,
        "max": high,
        "to": _pair(params["to"], f"{name}.to"),
        "clip": _boolean(params.get("clip", True), f"{name}.clip"),
    }


def _percentile_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    rule, ok = " in [0, 100]", lambda p: 0 <= p <= 100
    lower = _number(params["lower"], f"{name}.lower", rule, ok)
    upper = _number(params["upper"], f"{name}.upper", rule, ok)
    if not lower < upper:
        _fail(f"{name}.upper", f"must be greater than lower ({lower:g}), got {upper:g}")
    return {
        "lower": lower,
        "upper": upper,
        "to": _pair(params.get("to", [0.0, 1.0]), f"{name}.to"),
        "clip": _boolean(params.get("clip", True), f"{name}.clip"),
    }


def _zscore_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {}


def _linear_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {
        "scale": _number(params["scale"], f"{name}.scale"),
        "offset": _number(params["offset"], f"{name}.offset"),
    }


_OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Any]] = {
    "clip": (("min", "max"), (), _clip_params),
    "scale_range": (("min", "max", "to"), ("clip",), _scale_range_params),
    "percentile_scale": (("lower", "upper"), ("to", "clip"), _percentile_params),
    "zscore": ((), (), _zscore_params),
    "linear": (("scale", "offset"), (), _linear_params),
}


# -- output -----------------------------------------------------------------------------


def _parse_output(value: Any, task: str) -> OutputSpec:
    optional = ("labels", "classes", "threshold", "postprocess", "temperature", "bias",
                "slice_average", "series_consecutive")  # fmt: skip
    obj = _fields(value, "output", ("activation",), optional)
    activation = _choice(obj["activation"], "output.activation", ACTIVATIONS)
    rule, ok = " strictly between 0 and 1", lambda t: 0 < t < 1
    threshold = _number(obj.get("threshold", 0.5), "output.threshold", rule, ok)
    temperature = _parse_temperature(obj.get("temperature", 1.0), activation)
    if task in ("segmentation", "interactive"):
        if "bias" in obj:
            _fail("output.bias", "is for classifiers (Platt scaling of class logits)")
        for key in ("slice_average", "series_consecutive"):
            if key in obj:
                _fail(f"output.{key}", "is for classifiers run slice by slice")
        labels = _parse_segmentation(obj, activation)
        postprocess = _parse_postprocess(obj.get("postprocess"), labels)
        return OutputSpec(activation, labels, (), threshold, postprocess, temperature)
    classes = _parse_classification(obj, activation)
    bias = _parse_bias(obj.get("bias"), activation, classes)
    average = _int_between(obj.get("slice_average", 0), "output.slice_average", 0, 10)
    consecutive = _int_between(obj.get("series_consecutive", 1), "output.series_consecutive",
                               1, 20)  # fmt: skip
    return OutputSpec(activation, {}, classes, threshold, {}, temperature, bias, average,
                      consecutive)  # fmt: skip


def _int_between(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(name, f"must be an integer from {low} to {high}, got {_got(value)}")
    return value


def _parse_bias(value: Any, activation: str, classes: tuple[str, ...]) -> tuple[float, ...]:
    """``output.bias``: one finite offset per class, for a softmax classifier."""
    if value is None:
        return ()
    if activation != "softmax":
        _fail("output.bias", f"offsets softmax logits; this card's activation is {activation}")
    if not isinstance(value, list) or len(value) != len(classes):
        _fail("output.bias", f"must be a list of {len(classes)} numbers, one per class")
    return tuple(_number(v, f"output.bias[{i}]") for i, v in enumerate(value))


def _parse_temperature(value: Any, activation: str) -> float:
    temperature = _positive_float(value, "output.temperature")
    if temperature != 1.0 and activation == "none":
        _fail("output.temperature", "scales logits before an activation; this card has none")
    return temperature


def _parse_segmentation(obj: Mapping[str, Any], activation: str) -> dict[int, Segment]:
    if "classes" in obj:
        _fail("output.classes", "not allowed for a segmentation model (use output.labels)")
    if "labels" not in obj:
        _fail("output.labels", "missing (a segmentation model needs its labels)")
    labels = _parse_labels(obj["labels"])
    keys = list(labels)
    if activation != "sigmoid" and keys != list(range(1, len(keys) + 1)):
        _fail(
            "output.labels",
            f"with activation {activation!r} channel 0 is background and channel k is label k, "
            f"so the labels must be exactly 1..{len(keys)}; got {keys}",
        )
    return labels


def _parse_labels(value: Any) -> dict[int, Segment]:
    obj = _object(value, "output.labels")
    if not obj:
        _fail("output.labels", "must name at least one label")
    segments = [_parse_segment(key, entry) for key, entry in obj.items()]
    return {seg.label: seg for seg in sorted(segments, key=lambda s: s.label)}


def _label_key(key: Any, name: str) -> int:
    if not isinstance(key, str) or not _LABEL_KEY_RE.match(key):
        _fail(name, f"label keys must be integers >= 1 written as strings, got {_got(key)}")
    return int(key)


def _parse_segment(key: Any, entry: Any) -> Segment:
    name = f"output.labels.{key}"
    label = _label_key(key, name)
    obj = _fields(entry, name, ("name",), ("color",))
    color = _string(obj.get("color", default_color(label)), f"{name}.color")
    if not _COLOR_RE.match(color):
        _fail(f"{name}.color", f"must be '#rrggbb', got {_got(color)}")
    return Segment(label=label, name=_string(obj["name"], f"{name}.name"), color=color.lower())


def _parse_classification(obj: Mapping[str, Any], activation: str) -> tuple[str, ...]:
    for key in ("labels", "postprocess"):
        if key in obj:
            _fail(f"output.{key}", "not allowed for a classification model")
    if "classes" not in obj:
        _fail("output.classes", "missing (a classification model needs its classes)")
    classes = _strings(obj["classes"], "output.classes")
    if not classes:
        _fail("output.classes", "must name at least one class")
    if len(set(classes)) != len(classes):
        _fail("output.classes", f"must be distinct, got {list(classes)}")
    if activation == "softmax" and len(classes) < 2:
        _fail("output.classes", "softmax needs at least 2 classes (use sigmoid for one)")
    return classes


def _parse_postprocess(
    value: Any, labels: dict[int, Segment]
) -> dict[int, tuple[PostprocessStep, ...]]:
    name = "output.postprocess"
    if value is None:
        return {}
    if isinstance(value, list | tuple):
        ops = _postprocess_ops(value, name)
        return {label: ops for label in labels} if ops else {}
    if not isinstance(value, Mapping):
        _fail(name, f"must be a list of steps or an object of label -> steps, got {_got(value)}")
    result: dict[int, tuple[PostprocessStep, ...]] = {}
    for key, item in value.items():
        label = _label_key(key, f"{name}.{key}")
        if label not in labels:
            _fail(f"{name}.{key}", f"no such label (labels: {', '.join(map(str, labels))})")
        ops = _postprocess_ops(item, f"{name}.{key}")
        if ops:
            result[label] = ops
    return dict(sorted(result.items()))


def _postprocess_ops(value: Any, name: str) -> tuple[PostprocessStep, ...]:
    items = enumerate(_array(value, name))
    steps = tuple(_postprocess_step(item, f"{name}[{i}]") for i, item in items)
    ops = [step.op for step in steps]
    if len(set(ops)) != len(ops):
        _fail(name, f"names a step twice: {ops}")
    return steps


def _postprocess_step(value: Any, name: str) -> PostprocessStep:
    """A plain step's name, or an object ``{"op": ..., parameters}``."""
    if isinstance(value, str):
        op = _choice(value, name, POSTPROCESS_OPS)
        if op in _STEP_PARAMS:
            needed = ", ".join(_STEP_PARAMS[op][0]) or "min, max or both"
            _fail(name, f"{op!r} needs parameters: write {{\"op\": {op!r}, ...}} with {needed}")
        return PostprocessStep(op)
    obj = _object(value, name)
    if "op" not in obj:
        _fail(f"{name}.op", "missing")
    op = _choice(obj["op"], f"{name}.op", POSTPROCESS_OPS)
    params = {k: v for k, v in obj.items() if k != "op"}
    if op not in _STEP_PARAMS:
        _fields(params, name, ())
        return PostprocessStep(op)
    required, optional, parse = _STEP_PARAMS[op]
    return PostprocessStep(op, parse(_fields(params, name, required, optional), name))


def _keep_largest_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {"count": _positive_int(params["count"], f"{name}.count")}


def _remove_small_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {"min_volume_mm3": _positive_float(params["min_volume_mm3"], f"{name}.min_volume_mm3")}


def _mean_between_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    bounds = {key: _number(params[key], f"{name}.{key}") for key in ("min", "max") if key in params}
    if not bounds:
        _fail(name, "needs min, max or both (the mean image value a component keeps)")
    if "min" in bounds and "max" in bounds and not bounds["min"] < bounds["max"]:
        rule = f"must be greater than min ({bounds['min']:g})"
        _fail(f"{name}.max", f"{rule}, got {_got(params['max'])}")
    return bounds


def _max_probability_params(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    low = _number(params["min"], f"{name}.min")
    if not 0.0 < low <= 1.0:
        _fail(f"{name}.min", f"must be a probability in (0, 1], got {_got(params['min'])}")
    return {"min": low}


# op -> (required parameters, optional parameters, parser)
_STEP_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Any]] = {
    "keep_largest": (("count",), (), _keep_largest_params),
    "remove_small": (("min_volume_mm3",), (), _remove_small_params),
    "mean_between": ((), ("min", "max"), _mean_between_params),
    "max_probability": (("min",), (), _max_probability_params),
}


def _parse_explain(value: Any, task: str, weights: WeightsSpec) -> ExplainSpec | None:
    if value is None:
        return None
    obj = _fields(value, "explain", ("method", "layer"))
    method = _choice(obj["method"], "explain.method", EXPLAIN_METHODS)
    layer = _string(obj["layer"], "explain.layer")
    if task != "classification":
        _fail("explain", "only classification models can be explained (Grad-CAM)")
    if weights.format not in ARCHITECTURE_FORMATS:
        _fail(
            "explain",
            f"needs weights.format 'safetensors' or 'state_dict', got {weights.format!r}: "
            "Grad-CAM hooks cannot attach to the layers of a TorchScript/exported/ONNX graph",
        )
    return ExplainSpec(method=method, layer=layer)
