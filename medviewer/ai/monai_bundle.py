"""Import a MONAI bundle folder as a medviewer model card, reading its configs as data only.

A MONAI bundle (https://docs.monai.io/en/latest/mb_specification.html) is a folder with
``configs/metadata.json`` (what the model is, ``network_data_format`` of its input and output),
an inference config (``configs/inference.json`` or ``.yaml``) and ``models/model.ts``
(TorchScript). ``models/model.pt`` is a pickle and is never used.

The configs are MONAI "config syntax": values starting with ``$`` are Python expressions,
``@`` references and ``%`` macros, and ``_target_`` names a class to instantiate. Nothing here
evaluates or instantiates anything: configs are parsed as plain data (JSON, or YAML with
``yaml.safe_load``), expressions are skipped and ``_target_`` is only compared with known
transform names; every skipped or unknown piece becomes a human-readable warning.

Every file read or copied must lie inside the bundle folder (symbolic links are followed and
refused when they lead out), and the imported model passes the same checks as any model added
to the registry (:func:`medviewer.ai.weights.validate_model`), so a crafted ``model.ts`` is
refused before anything loads it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medviewer.ai.model_card import (
    CARD_FILE,
    MAX_NESTING,
    SCHEMA,
    ModelCard,
    check_nesting,
    default_color,
    file_sha256,
    load_card,
    parse_json,
    read_limited,
    short_repr,
)
from medviewer.ai.safe_archive import check_inside
from medviewer.ai.weights import validate_model
from medviewer.core.errors import ModelCardError
from medviewer.core.staging import staged_folder

METADATA = Path("configs") / "metadata.json"
INFERENCE_CONFIGS = ("inference.json", "inference.yaml", "inference.yml")
TORCHSCRIPT = Path("models") / "model.ts"
#: A bundle's metadata.json or inference config is at most this large.
MAX_CONFIG_BYTES = 4 << 20
WEIGHTS_FILE = "model.ts"
#: Documentation files copied beside the imported card when the bundle has them.
DOC_FILES = (("docs/README.md", "README.md"), ("docs/license.txt", "license.txt"))

_EXPRESSION_PREFIXES = ("$", "@", "%")
_IMAGE_FORMAT = "network_data_format.inputs.image"
_PRED_FORMAT = "network_data_format.outputs.pred"
#: Transforms that need no card field: loading, channel/type handling, inversion, saving.
_NEUTRAL = frozenset(
    {
        "LoadImage",
        "EnsureChannelFirst",
        "AddChannel",
        "AsChannelFirst",
        "EnsureType",
        "ToTensor",
        "ToNumpy",
        "ToDevice",
        "CastToType",
        "Identity",
        "Invert",
        "SaveImage",
        "CopyItems",
        "DeleteItems",
        "SqueezeDim",
    }
)
_MISSING: Any = object()


def is_monai_bundle(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` looks like a MONAI bundle (it has ``configs/metadata.json``).

    Parameters
    ----------
    folder : path-like
        Any path.

    Returns
    -------
    bool
    """
    return (Path(folder) / METADATA).is_file()


@dataclass
class _Found:
    """What the inference config says, gathered while walking it, and the warnings."""

    image_key: str
    pred_key: str
    warnings: list[str] = field(default_factory=list)
    orientation: str | None = None
    spacing: list[float] | float | None = None
    intensity: list[dict[str, Any]] = field(default_factory=list)
    patch_size: list[int] | None = None
    overlap: float | None = None
    activation: str | None = None
    threshold: float | None = None
    crop_foreground: dict[str, Any] | None = None
    #: (step, applied labels or None for all), in config order.
    # (a card's post-processing step: a plain name or an object, the labels it applies to)
    postprocess: list[tuple[str | dict[str, Any], list[int] | None]] = field(default_factory=list)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def card_from_monai_bundle(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], list[str]]:
    """Build a card (JSON form, not yet validated) from a MONAI bundle.

    Parameters
    ----------
    folder : path-like
        The bundle folder.

    Returns
    -------
    card : dict
        The card in the JSON form of :mod:`medviewer.ai.model_card`.
    warnings : list of str
        What could not be imported (skipped expressions, unknown transforms, guesses).

    Raises
    ------
    ModelCardError
        When ``metadata.json`` or ``models/model.ts`` is missing, a config is not valid JSON or
        YAML, or the input modality is not stated.
    """
    root = Path(folder).absolute()
    meta = _read_metadata(root)
    image, image_key = _tensor_format(meta, "inputs", "image")
    pred, pred_key = _tensor_format(meta, "outputs", "pred")
    found = _Found(image_key=image_key, pred_key=pred_key)
    if image_key != "image":
        found.warn(
            f"network_data_format.inputs: no 'image' entry, used {short_repr(image_key)}"
        )
    config = _read_inference(root, found)
    if config:
        _walk_config(config, found)
    task = _task(meta, pred)
    card = {
        "schema": SCHEMA,
        **_identity(meta, root, found),
        "task": task,
        "modalities": _modalities(image, root),
        "weights": _weights(root),
        "input": _input_section(image, found),
        "output": _output_section(task, pred, found),
    }
    return card, found.warnings


def import_monai_bundle(
    folder: str | os.PathLike[str], dest: str | os.PathLike[str]
) -> tuple[ModelCard, list[str]]:
    """Import a MONAI bundle into a new card folder ``dest``.

    The card is validated first; ``model.ts`` (and ``docs/README.md``, ``docs/license.txt``
    when present) is copied and ``model.json`` written in a hidden staging folder beside it that
    is renamed to ``dest`` at the end (:func:`medviewer.core.staging.staged_folder`), so a
    failure leaves no partial ``dest``.

    Parameters
    ----------
    folder : path-like
        The bundle folder.
    dest : path-like
        The card folder to create; it must not exist (or be empty).

    Returns
    -------
    card : ModelCard
        The card read back from ``dest``.
    warnings : list of str
        What could not be imported.

    Raises
    ------
    ModelCardError
        When the bundle cannot be imported or ``dest`` cannot be written.
    """
    root = Path(folder).absolute()
    data, warnings = card_from_monai_bundle(root)
    card = ModelCard.from_dict(data, str(root))
    docs = _doc_files(root, warnings)
    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ModelCardError(f"{dest}: already exists; the bundle was not imported")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelCardError(f"{dest}: cannot create the model folder: {exc}") from None
    try:
        with staged_folder(dest) as staging:
            _write_card_folder(root, card, staging, docs)
    except OSError as exc:
        raise ModelCardError(f"{dest}: cannot write the imported model: {exc}") from None
    return load_card(dest), warnings


def _write_card_folder(
    root: Path, card: ModelCard, staging: Path, docs: list[tuple[Path, str]]
) -> None:
    """Copy the TorchScript file and docs, write the card, check the copy like any model."""
    shutil.copyfile(_inside(root, TORCHSCRIPT), staging / card.weights.file)
    for source, name in docs:
        shutil.copyfile(source, staging / name)
    text = json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n"
    (staging / CARD_FILE).write_text(text, encoding="utf-8")
    validate_model(load_card(staging))


def _doc_files(root: Path, warnings: list[str]) -> list[tuple[Path, str]]:
    """(real source, name) of the documentation files to copy; those leading out are skipped."""
    docs = []
    for source, name in DOC_FILES:
        try:
            path = _inside(root, Path(source))
        except ModelCardError as exc:
            warnings.append(f"{source}: not copied: {exc}")
            continue
        if path.is_file():
            docs.append((path, name))
    return docs


def _inside(root: Path, relative: Path) -> Path:
    """``root / relative`` resolved; refused when it (or a link on its way) leaves the bundle."""
    return check_inside(root, relative.as_posix(), f"{root / relative}")


# -- files ------------------------------------------------------------------------------


def _read_metadata(root: Path) -> Mapping[str, Any]:
    path = root / METADATA
    _inside(root, METADATA)
    if not path.is_file():
        raise ModelCardError(f"{root}: not a MONAI bundle: {METADATA.as_posix()} is missing")
    meta = _parse_file(path)
    if not isinstance(meta, Mapping):
        raise ModelCardError(f"{path}: must hold a JSON object")
    return meta


def _read_inference(root: Path, found: _Found) -> Mapping[str, Any]:
    for name in INFERENCE_CONFIGS:
        path = root / "configs" / name
        if path.is_file():
            _inside(root, Path("configs") / name)
            config = _parse_file(path)
            if isinstance(config, Mapping):
                return config
            found.warn(f"configs/{name}: not an object; preprocessing not imported")
            return {}
    found.warn("no configs/inference.json or .yaml: preprocessing and inferer not imported")
    return {}


def _parse_file(path: Path) -> Any:
    """JSON, or YAML read with ``yaml.safe_load`` (plain data, no Python objects).

    At most :data:`MAX_CONFIG_BYTES` are read; a document nested deeper than
    :data:`~medviewer.ai.model_card.MAX_NESTING` levels or expanding (through YAML aliases) to
    more than :data:`~medviewer.ai.model_card.MAX_VALUES` values is refused.
    """
    data = read_limited(path, MAX_CONFIG_BYTES, "a bundle config")
    if path.suffix not in (".yaml", ".yml"):
        return parse_json(data, path)
    try:
        config = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelCardError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ModelCardError(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise ModelCardError(
            f"{path}: invalid YAML: nested too deeply to read (at most {MAX_NESTING} levels)"
        ) from None
    except MemoryError:
        raise ModelCardError(f"{path}: invalid YAML: too large to hold in memory") from None
    check_nesting(config, str(path))
    return config


# -- metadata ---------------------------------------------------------------------------


def _tensor_format(meta: Mapping[str, Any], side: str, key: str) -> tuple[Mapping[str, Any], str]:
    """``network_data_format.<side>.<key>`` (or the only entry there), and its key."""
    formats = meta.get("network_data_format")
    entries = formats.get(side) if isinstance(formats, Mapping) else None
    if not isinstance(entries, Mapping) or not entries:
        return {}, key
    if isinstance(entries.get(key), Mapping):
        return entries[key], key
    first = next(iter(entries))
    value = entries[first]
    return (value, str(first)) if isinstance(value, Mapping) else ({}, key)


def _text(value: Any) -> str:
    """A metadata string, or '' for anything else (lists joined with ', ')."""
    if isinstance(value, str):
        return value.strip()
    if _is_number(value):
        return str(value)
    if isinstance(value, list):
        return ", ".join(item.strip() for item in value if isinstance(item, str))
    return ""


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [item.strip() for item in value if isinstance(item, str) and item.strip()]
    return []


def slugify(text: str) -> str:
    """A card id from a name: lower case, runs of other characters become ``-``.

    Parameters
    ----------
    text : str
        A model name.

    Returns
    -------
    str
        Matches the card's id pattern; ``"monai-bundle"`` when nothing usable is left.
    """
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:64].rstrip("-._")
    return slug or "monai-bundle"


def _identity(meta: Mapping[str, Any], root: Path, found: _Found) -> dict[str, Any]:
    """id, name, version, description, intended use, license, authors, references, metrics."""
    name = _text(meta.get("name")) or root.name
    version = _text(meta.get("version"))
    if not version:
        found.warn("metadata.json: no version; the card says version '0'")
    task_text = _text(meta.get("task"))
    description = _text(meta.get("description"))
    intended = _text(meta.get("intended_use"))
    if not intended:
        what = task_text or description or name
        intended = f"{what.rstrip('.')}. Imported from a MONAI bundle; no intended use was stated."
    metrics = meta.get("eval_metrics")
    return {
        "id": slugify(name),
        "name": name,
        "version": version or "0",
        "description": description,
        "intended_use": intended,
        "license": _text(meta.get("license")) or _text(meta.get("copyright")),
        "authors": _string_list(meta.get("authors", meta.get("authorship"))),
        "references": _string_list(meta.get("references")),
        "metrics": dict(metrics) if isinstance(metrics, Mapping) else {},
    }


def _modalities(image: Mapping[str, Any], root: Path) -> list[str]:
    modalities = [m.upper() for m in _string_list(image.get("modality")) if m.lower() != "n/a"]
    if not modalities:
        raise ModelCardError(
            f"{root / METADATA}: {_IMAGE_FORMAT}.modality: missing; the input modality is "
            'checked before every run, so the bundle must state it (e.g. "CT")'
        )
    return modalities


def _weights(root: Path) -> dict[str, Any]:
    path = root / TORCHSCRIPT
    _inside(root, TORCHSCRIPT)
    if not path.is_file():
        raise ModelCardError(
            f"{root}: {TORCHSCRIPT.as_posix()} is missing: only TorchScript bundles can be "
            "imported (models/model.pt is a pickle and is never loaded)"
        )
    try:
        sha256 = file_sha256(path)
    except OSError as exc:
        raise ModelCardError(f"{path}: cannot read: {exc}") from None
    return {"file": WEIGHTS_FILE, "sha256": sha256, "format": "torchscript"}


def _task(meta: Mapping[str, Any], pred: Mapping[str, Any]) -> str:
    """classification when the output says so (format or type), or the task text does."""
    fmt, kind = _text(pred.get("format")).lower(), _text(pred.get("type")).lower()
    if fmt in ("labels", "segmentation"):
        return "segmentation"
    if fmt == "classification" or kind == "probabilities" or (fmt == "classes" and kind != "image"):
        return "classification"
    words = f"{_text(meta.get('task'))} {_text(meta.get('name'))}".lower()
    return "classification" if "classif" in words else "segmentation"


# -- input and output sections ----------------------------------------------------------


def _int_list(value: Any) -> list[int] | None:
    """A list of ints > 0, or None."""
    if isinstance(value, list) and value and all(_is_int(v) and v > 0 for v in value):
        return list(value)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _spatial_shape(image: Mapping[str, Any], found: _Found) -> list[Any] | None:
    shape = image.get("spatial_shape")
    if shape is None:
        return None
    if not isinstance(shape, list) or len(shape) not in (2, 3):
        found.warn(
            f"{_IMAGE_FORMAT}.spatial_shape: {short_repr(shape)} not understood; not imported"
        )
        return None
    return shape


def _dims(shape: list[Any] | None, found: _Found) -> int:
    if shape is not None:
        return len(shape)
    if found.patch_size is not None:
        return len(found.patch_size)
    if isinstance(found.spacing, list):
        return len(found.spacing)
    return 3


def _input_section(image: Mapping[str, Any], found: _Found) -> dict[str, Any]:
    shape = _spatial_shape(image, found)
    dims = _dims(shape, found)
    size, patch_size = _sizes(image, shape, dims, found)
    channels = image.get("num_channels", 1)
    if not (_is_int(channels) and channels >= 1):
        found.warn(f"{_IMAGE_FORMAT}.num_channels: {short_repr(channels)} not usable; assumed 1")
        channels = 1
    if found.orientation is None:
        found.warn("no Orientation transform: the orientation was assumed to be RAS")
    crop = {"crop_foreground": found.crop_foreground} if found.crop_foreground else {}
    return {
        **crop,
        "dims": dims,
        "orientation": found.orientation or "RAS",
        "spacing": _spacing(found, dims),
        "size": size,
        "patch_size": patch_size,
        "overlap": found.overlap if found.overlap is not None else 0.25,
        "channels": channels,
        "intensity": found.intensity,
    }


def _sizes(
    image: Mapping[str, Any], shape: list[Any] | None, dims: int, found: _Found
) -> tuple[list[int] | None, list[int] | None]:
    """(size, patch_size): the inferer's roi_size wins; else spatial_shape when all ints."""
    patch_size = found.patch_size
    if patch_size is not None and (dims != 3 or len(patch_size) != dims):
        found.warn(f"inferer roi_size {patch_size} does not fit a {dims}-D input; not imported")
        patch_size = None
    ints = _int_list(shape)
    if shape is not None and ints is None:
        found.warn(
            f"{_IMAGE_FORMAT}.spatial_shape: {short_repr(shape)} is not a fixed size; not imported"
        )
    if ints is None:
        return None, patch_size
    if image.get("is_patch_data") is True and dims == 3:
        return None, patch_size or ints
    return ints, patch_size


def _spacing(found: _Found, dims: int) -> list[float] | None:
    spacing = found.spacing
    if spacing is None:
        return None
    values = [spacing] * dims if not isinstance(spacing, list) else spacing
    if len(values) != dims or not all(v > 0 for v in values):
        found.warn(
            f"Spacing pixdim {short_repr(spacing)} does not fit a {dims}-D input; not imported"
        )
        return None
    return [float(v) for v in values]


def _output_section(task: str, pred: Mapping[str, Any], found: _Found) -> dict[str, Any]:
    names = _channel_names(pred, found)
    output: dict[str, Any] = {}
    if task == "classification":
        activation = found.activation or ("softmax" if len(names) >= 2 else "sigmoid")
        output = {"activation": activation, "classes": names}
    else:
        activation = found.activation or "softmax"
        labels = _labels(names, activation)
        output = {"activation": activation, "labels": labels}
        postprocess = _postprocess(found, activation, [int(k) for k in labels])
        if postprocess:
            output["postprocess"] = postprocess
    if found.threshold is not None:
        output["threshold"] = found.threshold
    return output


def _channel_names(pred: Mapping[str, Any], found: _Found) -> list[str]:
    """The output channels' names in channel order (from channel_def, else num_channels)."""
    channel_def = pred.get("channel_def")
    if isinstance(channel_def, Mapping) and channel_def:
        named: dict[int, str] = {}
        for key, name in channel_def.items():
            if re.fullmatch(r"\d+", str(key).strip()):
                named[int(str(key).strip())] = str(name).strip() or f"channel {key}"
            else:
                found.warn(
                    f"{_PRED_FORMAT}.channel_def: key {short_repr(key)} is not a channel; skipped"
                )
        return [named.get(k, f"channel {k}") for k in range(max(named, default=-1) + 1)]
    count = pred.get("num_channels")
    if _is_int(count) and count >= 1:
        found.warn(f"{_PRED_FORMAT}: no channel_def; the channels were named 'channel <k>'")
        return [f"channel {k}" for k in range(count)]
    found.warn(f"{_PRED_FORMAT}: no channel_def or num_channels; no labels or classes imported")
    return []


def _labels(names: list[str], activation: str) -> dict[str, dict[str, str]]:
    """sigmoid: channel k is label k+1; softmax/none: channel 0 is background, k is label k."""
    labelled = names if activation == "sigmoid" else names[1:]
    return {
        str(label): {"name": name, "color": default_color(label)}
        for label, name in enumerate(labelled, start=1)
    }


def _postprocess(
    found: _Found, activation: str, labels: list[int]
) -> dict[str, list[str | dict[str, Any]]]:
    """Per-label steps; applied labels are channel indices for sigmoid outputs (label k+1)."""
    steps: dict[int, list[str | dict[str, Any]]] = {}
    for step, applied in found.postprocess:
        chosen = (
            labels
            if applied is None
            else [a + 1 if activation == "sigmoid" else a for a in applied]
        )
        for label in chosen:
            if label in labels and step not in steps.setdefault(label, []):
                steps[label].append(step)
    return {str(label): ops for label, ops in sorted(steps.items()) if ops}


# -- the inference config ---------------------------------------------------------------


def _is_expression(value: Any) -> bool:
    """A config-syntax expression, reference or macro (anywhere inside ``value``)."""
    if isinstance(value, str):
        return value.startswith(_EXPRESSION_PREFIXES)
    if isinstance(value, list):
        return any(_is_expression(item) for item in value)
    if isinstance(value, Mapping):
        return any(_is_expression(item) for item in value.values())
    return False


def _param(item: Mapping[str, Any], key: str, where: str, found: _Found) -> Any:
    """``item[key]``; ``_MISSING`` when absent or an expression (which is never evaluated)."""
    value = item.get(key, _MISSING)
    if value is not _MISSING and _is_expression(value):
        found.warn(
            f"{where}.{key}: {short_repr(value)} is an expression or reference; not evaluated, "
            "skipped"
        )
        return _MISSING
    return value


def _walk_config(config: Mapping[str, Any], found: _Found) -> None:
    for item, where, name in _transforms(config, "preprocessing", found.image_key, found):
        handler = _PREPROCESSING.get(name)
        if handler is not None:
            handler(item, where, found)
        elif name not in _NEUTRAL:
            found.warn(f"preprocessing: not imported: {where}")
    _read_inferer(config, found)
    for item, where, name in _transforms(config, "postprocessing", found.pred_key, found):
        handler = _POSTPROCESSING.get(name)
        if handler is not None:
            handler(item, where, found)
        elif name not in _NEUTRAL:
            found.warn(f"postprocessing: not imported: {where}")


def _transforms(
    config: Mapping[str, Any], section: str, data_key: str, found: _Found
) -> list[tuple[Mapping[str, Any], str, str]]:
    """(transform, its _target_ as written, its bare name) for those applying to data_key."""
    value = config.get(section, _MISSING)
    if value is _MISSING:
        found.warn(f"{section}: not found in the inference config; not imported")
        return []
    items = value.get("transforms", _MISSING) if isinstance(value, Mapping) else value
    if not isinstance(items, list):
        found.warn(f"{section}: {short_repr(items)} is not a list of transforms; not imported")
        return []
    result = []
    for index, item in enumerate(items):
        target = item.get("_target_") if isinstance(item, Mapping) else None
        if not isinstance(target, str) or _is_expression(target):
            found.warn(
                f"{section}.transforms[{index}]: {short_repr(item)} not understood; not imported"
            )
        elif _applies_to(item, data_key, target, found):
            result.append((item, target.rsplit(".", 1)[-1], _bare_name(target)))
    return result


def _bare_name(target: str) -> str:
    """``monai.transforms.Spacingd`` -> ``Spacing`` (module prefix and dict ``d`` dropped)."""
    name = target.rsplit(".", 1)[-1]
    known = _PREPROCESSING.keys() | _POSTPROCESSING.keys() | _NEUTRAL
    return name[:-1] if name.endswith("d") and name[:-1] in known else name


def _applies_to(item: Mapping[str, Any], data_key: str, target: str, found: _Found) -> bool:
    """Whether a dictionary transform's ``keys`` include the data key (array ones always do)."""
    keys = item.get("keys", _MISSING)
    if keys is _MISSING:
        return True
    if _is_expression(keys):
        name = target.rsplit(".", 1)[-1]
        found.warn(
            f"{name}.keys: {short_repr(keys)} is an expression; not evaluated, assumed "
            f"{data_key!r}"
        )
        return True
    return data_key in ([keys] if isinstance(keys, str) else keys if isinstance(keys, list) else [])


def _read_inferer(config: Mapping[str, Any], found: _Found) -> None:
    inferer = config.get("inferer", _MISSING)
    if inferer is _MISSING:
        return
    target = inferer.get("_target_") if isinstance(inferer, Mapping) else None
    if not isinstance(target, str) or _is_expression(target):
        found.warn(f"inferer: {short_repr(inferer)} not understood; not imported")
        return
    name = target.rsplit(".", 1)[-1]
    if name == "SimpleInferer":
        return
    if name != "SlidingWindowInferer":
        found.warn(f"inferer: not imported: {name}")
        return
    roi = _param(inferer, "roi_size", name, found)
    if roi is not _MISSING:
        found.patch_size = _int_list(roi)
        if found.patch_size is None:
            found.warn(
                f"{name}.roi_size: {short_repr(roi)} is not a list of sizes > 0; not imported"
            )
    overlap = _param(inferer, "overlap", name, found)
    if _is_number(overlap) and 0 <= overlap < 1:
        found.overlap = float(overlap)
    elif overlap is not _MISSING:
        found.warn(
            f"{name}.overlap: {short_repr(overlap)} is not a number in [0, 1); not imported"
        )


# -- transform handlers -----------------------------------------------------------------


def _orientation(item: Mapping[str, Any], where: str, found: _Found) -> None:
    axcodes = _param(item, "axcodes", where, found)
    if isinstance(axcodes, str):
        found.orientation = axcodes.upper()
    elif axcodes is not _MISSING:
        found.warn(f"{where}.axcodes: {short_repr(axcodes)} not usable; not imported")


def _spacing_transform(item: Mapping[str, Any], where: str, found: _Found) -> None:
    pixdim = _param(item, "pixdim", where, found)
    if _is_number(pixdim) or (isinstance(pixdim, list) and all(map(_is_number, pixdim))):
        found.spacing = pixdim
    elif pixdim is not _MISSING:
        found.warn(f"{where}.pixdim: {short_repr(pixdim)} not usable; not imported")


def _numbers(item: Mapping[str, Any], keys: tuple[str, ...], where: str, found: _Found) -> bool:
    """Whether every key holds a plain number (warning about those that do not)."""
    ok = True
    for key in keys:
        value = _param(item, key, where, found)
        if not _is_number(value):
            ok = False
            if value is not _MISSING:
                found.warn(f"{where}.{key}: {short_repr(value)} is not a number")
    return ok


def _flag(item: Mapping[str, Any], key: str, where: str, found: _Found, default: bool) -> bool:
    value = _param(item, key, where, found)
    return value if isinstance(value, bool) else default


def _target_range(item: Mapping[str, Any], where: str, found: _Found) -> list[float] | None:
    """[b_min, b_max], [0, 1] when both are absent or null (MONAI then maps to [0, 1])."""
    b_min, b_max = item.get("b_min"), item.get("b_max")
    if b_min is None and b_max is None:
        return [0.0, 1.0]
    return (
        [float(b_min), float(b_max)] if _numbers(item, ("b_min", "b_max"), where, found) else None
    )


def _scale_range(item: Mapping[str, Any], where: str, found: _Found) -> None:
    target = _target_range(item, where, found)
    if not _numbers(item, ("a_min", "a_max"), where, found) or target is None:
        found.warn(f"intensity: not imported: {where} (a value could not be read)")
        return
    found.intensity.append(
        {
            "op": "scale_range",
            "min": float(item["a_min"]),
            "max": float(item["a_max"]),
            "to": target,
            "clip": _flag(item, "clip", where, found, default=False),
        }
    )


def _percentiles(item: Mapping[str, Any], where: str, found: _Found) -> None:
    target = _target_range(item, where, found)
    if not _numbers(item, ("lower", "upper"), where, found) or target is None:
        found.warn(f"intensity: not imported: {where} (a value could not be read)")
        return
    if _flag(item, "relative", where, found, default=False):
        found.warn(f"{where}.relative: true is not supported; imported as absolute")
    found.intensity.append(
        {
            "op": "percentile_scale",
            "lower": float(item["lower"]),
            "upper": float(item["upper"]),
            "to": target,
            "clip": _flag(item, "clip", where, found, default=False),
        }
    )


def _normalize(item: Mapping[str, Any], where: str, found: _Found) -> None:
    for key in ("subtrahend", "divisor"):
        if item.get(key) is not None:
            found.warn(f"{where}.{key}: not supported; imported as a plain z-score")
    if _flag(item, "nonzero", where, found, default=False):
        found.warn(f"{where}.nonzero: true is not supported; imported as a plain z-score")
    found.intensity.append({"op": "zscore"})


def _activations(item: Mapping[str, Any], where: str, found: _Found) -> None:
    if _flag(item, "softmax", where, found, default=False):
        found.activation = "softmax"
    elif _flag(item, "sigmoid", where, found, default=False):
        found.activation = "sigmoid"


def _as_discrete(item: Mapping[str, Any], where: str, found: _Found) -> None:
    threshold = _param(item, "threshold", where, found)
    if _is_number(threshold) and 0 < threshold < 1:
        found.threshold = float(threshold)
    elif threshold not in (_MISSING, None):
        found.warn(
            f"{where}.threshold: {short_repr(threshold)} is not a number in (0, 1); not imported"
        )


def _largest_component(item: Mapping[str, Any], where: str, found: _Found) -> None:
    """``KeepLargestConnectedComponent``: ``num_components`` N > 1 keeps the N largest."""
    count = _param(item, "num_components", where, found)
    if count in (_MISSING, None, 1):
        _postprocess_step("largest_component", item, where, found)
    elif _is_int(count) and count > 1:
        _postprocess_step({"op": "keep_largest", "count": count}, item, where, found)
    else:
        found.warn(f"{where}.num_components: {short_repr(count)} not usable; step not imported")


def _fill_holes(item: Mapping[str, Any], where: str, found: _Found) -> None:
    _postprocess_step("fill_holes", item, where, found)


def _postprocess_step(
    step: str | dict[str, Any], item: Mapping[str, Any], where: str, found: _Found
) -> None:
    applied = _param(item, "applied_labels", where, found)
    if applied in (_MISSING, None):
        found.postprocess.append((step, None))
    elif _is_int(applied) or (isinstance(applied, list) and all(map(_is_int, applied))):
        found.postprocess.append((step, [applied] if _is_int(applied) else applied))
    else:
        found.warn(
            f"{where}.applied_labels: {short_repr(applied)} not usable; step not imported"
        )


def _crop_foreground(item: Mapping[str, Any], where: str, found: _Found) -> None:
    """``CropForeground(d)`` with its default ``select_fn`` (``x > 0`` after the intensity ops
    before it) -> ``crop_foreground`` with that threshold in image units and the margin in mm.
    """
    reason = _crop_unsupported(item, where, found)
    threshold = None if reason else _raw_threshold(found.intensity)
    if isinstance(threshold, str):
        reason, threshold = threshold, None
    margin = None if reason else _margin_mm(item, found)
    if isinstance(margin, str):
        reason, margin = margin, None
    if reason or threshold is None or margin is None:
        found.warn(f"preprocessing: not imported: {where} ({reason})")
        return
    if found.crop_foreground is not None:
        found.warn(f"preprocessing: not imported: {where} (a second crop; the first is kept)")
        return
    k_divisible = item.get("k_divisible", 1)
    if k_divisible != 1 and not (isinstance(k_divisible, list) and set(k_divisible) == {1}):
        found.warn(f"{where}.k_divisible: {short_repr(k_divisible)} is not supported; the box "
                   "is not padded to a multiple")
    if item.get("channel_indices") is not None:
        found.warn(f"{where}.channel_indices: not supported; every channel counts")
    found.crop_foreground = {"threshold": threshold, "margin_mm": margin}


def _crop_unsupported(item: Mapping[str, Any], where: str, found: _Found) -> str:
    """Why a CropForeground cannot be mapped at all (empty when it can)."""
    if "select_fn" in item:
        return (f"select_fn {short_repr(item['select_fn'])} is code, never evaluated; only the "
                "default (x > 0) maps to a threshold")
    source = _param(item, "source_key", where, found)
    if source is not _MISSING and source != found.image_key:
        return f"it crops to the foreground of {short_repr(source)}, not of the image"
    return ""


def _raw_threshold(intensity: list[dict[str, Any]]) -> float | str:
    """The image value above which the intensity ops so far give a value above 0, or why
    there is none (a statistical op, a decreasing scale, or a clip that decides alone)."""
    threshold = 0.0
    for op in reversed(intensity):
        name = op["op"]
        if name in ("percentile_scale", "zscore"):
            return (f"its threshold follows a {name} step, which depends on the image, so it "
                    "has no fixed value in image units")
        if name == "linear":
            scale, offset = op["scale"], op["offset"]
            low, high, inner = -math.inf, math.inf, (threshold - offset) / scale if scale else 0
        else:  # scale_range, clip
            a, b = op["min"], op["max"]
            if a == b:
                return f"a {name} step before it maps every value to one"
            lo, hi = op.get("to", (a, b))
            clip = op.get("clip", True)
            scale = (hi - lo) / (b - a)
            low, high = (min(lo, hi), max(lo, hi)) if clip else (-math.inf, math.inf)
            inner = a + (threshold - lo) / scale if scale else 0
        if scale <= 0:
            return f"a {name} step before it does not increase with the image value"
        if not low <= threshold < high:
            return (f"after the {name} step every voxel is "
                    f"{'above' if threshold < low else 'at or below'} its threshold")
        threshold = inner
    return float(threshold)


def _margin_mm(item: Mapping[str, Any], found: _Found) -> float | str:
    """The margin (voxels of the image at that step) in mm, or why it cannot be converted."""
    margin = item.get("margin", 0)
    if _is_expression(margin):
        return f"its margin {short_repr(margin)} is an expression or reference, never evaluated"
    margins = margin if isinstance(margin, list) else [margin]
    if not margins or not all(_is_int(m) and m >= 0 for m in margins):
        return f"margin {short_repr(margin)} is not a number of voxels"
    if not any(margins):
        return 0.0
    spacing = found.spacing
    if spacing is None:
        return (f"its margin of {short_repr(margin)} voxels cannot be converted to mm: no "
                "Spacing transform before it gives the voxel size")
    pixdims = spacing if isinstance(spacing, list) else [spacing] * len(margins)
    if len(margins) == 1:
        margins = margins * len(pixdims)
    if len(margins) != len(pixdims):
        return f"margin {short_repr(margin)} does not fit the pixdim {short_repr(spacing)}"
    millimetres = {round(float(m) * float(p), 6) for m, p in zip(margins, pixdims, strict=True)}
    if len(millimetres) != 1:
        return (f"its margin of {short_repr(margin)} voxels at {short_repr(spacing)} mm is not "
                "the same number of mm along every axis")
    return millimetres.pop()


_Handler = Callable[[Mapping[str, Any], str, _Found], None]
_PREPROCESSING: dict[str, _Handler] = {
    "Orientation": _orientation,
    "Spacing": _spacing_transform,
    "ScaleIntensityRange": _scale_range,
    "ScaleIntensityRangePercentiles": _percentiles,
    "NormalizeIntensity": _normalize,
    "CropForeground": _crop_foreground,
}
_POSTPROCESSING: dict[str, _Handler] = {
    "Activations": _activations,
    "AsDiscrete": _as_discrete,
    "KeepLargestConnectedComponent": _largest_component,
    "FillHoles": _fill_holes,
}
