"""Tiny models with closed-form outputs, saved in every weights format, and cards for them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medviewer.ai.model_card import ModelCard, load_card
from medviewer.core.volume import Volume, VolumeMetadata


class ThresholdSegmenter(nn.Module):
    """Two-channel logits: 0 and ``gain * (x - threshold)``; softmax argmax = ``x > threshold``."""

    def __init__(self, threshold: float = 100.0, gain: float = 1.0) -> None:
        super().__init__()
        self.threshold = threshold
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        foreground = self.gain * (x[:, :1] - self.threshold)
        return torch.cat([torch.zeros_like(foreground), foreground], dim=1)


class BoxFilterSegmenter(nn.Module):
    """Logits 0 and ``mean of the 3x3(x3) neighbourhood - threshold`` (zeros beyond the edge).

    Translation-equivariant with a receptive field of one voxel: on a zero background, a crop
    that keeps every voxel within two voxels of the bright ones gives the same labels as the
    whole image; a tighter crop does not (the edge's zero padding stands in for real voxels).
    """

    def __init__(self, threshold: float = 100.0) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            mean = nn.functional.avg_pool3d(x[:, :1], 3, 1, 1, count_include_pad=True)
        else:
            mean = nn.functional.avg_pool2d(x[:, :1], 3, 1, 1, count_include_pad=True)
        foreground = mean - self.threshold
        return torch.cat([torch.zeros_like(foreground), foreground], dim=1)


class BandSegmenter(nn.Module):
    """Label k (1..K) where ``edges[k-1] < x <= edges[k]``, else 0 (one-hot logits)."""

    def __init__(self, edges: list[float]) -> None:
        super().__init__()
        self.edges = edges

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = x[:, :1]
        channels = [torch.full_like(value, 5.0)]
        for k in range(1, len(self.edges)):
            inside = (value > self.edges[k - 1]) & (value <= self.edges[k])
            channels.append(10.0 * inside.float())
        return torch.cat(channels, dim=1)


class SigmoidThreshold(nn.Module):
    """One sigmoid logit ``x - threshold``: the label where ``x >= threshold``."""

    def __init__(self, threshold: float = 500.0) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] - self.threshold


class OctantSegmenter(nn.Module):
    """Labels each voxel ``1 + sum_i 2**i * (index_i < size_i / 2)`` over its spatial dims.

    One-hot logits (background channel 0 never wins), so the label map tells which half of
    every tensor dim each voxel landed in: the model is orientation-sensitive by construction.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        label = torch.ones(x.shape[:1] + spatial, dtype=torch.long, device=x.device)
        for i, size in enumerate(spatial):
            index = torch.arange(size, device=x.device)
            first_half = (index < size // 2).long()
            view = [1] * (len(spatial) + 1)
            view[i + 1] = size
            label = label + (1 << i) * first_half.reshape(view)
        channels = (1 << len(spatial)) + 1
        return 10.0 * nn.functional.one_hot(label, channels).movedim(-1, 1).float()


class MeanClassifier(nn.Module):
    """Logits ``[0, gain * (mean(x) - centre)]``: P(class 1) = sigmoid(gain * (mean - centre))."""

    def __init__(self, centre: float = 0.0, gain: float = 1.0) -> None:
        super().__init__()
        self.centre = centre
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(dim=1, keepdim=True)
        return torch.cat([torch.zeros_like(mean), self.gain * (mean - self.centre)], dim=1)


def save_torchscript(module: nn.Module, path: Path) -> Path:
    """Script and save `module`."""
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def save_exported(module: nn.Module, path: Path, example: torch.Tensor) -> Path:
    """torch.export `module` and save it (medviewer refuses such files: tests show why)."""
    dims = {i: torch.export.Dim.DYNAMIC for i in range(example.ndim) if i != 1}
    program = torch.export.export(module, (example,), dynamic_shapes=(dims,))
    torch.export.save(program, str(path))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card_dict(
    weights: Path,
    fmt: str,
    *,
    task: str = "segmentation",
    dims: int = 3,
    orientation: str = "RAS",
    modalities: tuple[str, ...] = ("CT",),
    labels: dict[str, Any] | None = None,
    classes: list[str] | None = None,
    **input_fields: Any,
) -> dict[str, Any]:
    """A complete card for `weights` (its sha256 computed)."""
    extra = {k: input_fields.pop(k) for k in ("architecture", "explain", "model_id",
                                                 "threshold", "postprocess", "activation",
                                                 "temperature", "bias")
             if k in input_fields}
    output: dict[str, Any] = {"activation": extra.get("activation", "softmax")}
    if task == "segmentation":
        output["labels"] = labels or {"1": {"name": "bright", "color": "#ff0000"}}
    else:
        output["classes"] = classes or ["normal", "bright"]
    for key in ("threshold", "postprocess", "temperature", "bias"):
        if key in extra:
            output[key] = extra[key]
    card: dict[str, Any] = {
        "schema": "medviewer.model/1",
        "id": extra.get("model_id", "tiny-model"),
        "name": "Tiny test model",
        "version": "1.0.0",
        "task": task,
        "intended_use": "Tests only.",
        "modalities": list(modalities),
        "weights": {"file": weights.name, "sha256": sha256(weights), "format": fmt},
        "input": {"dims": dims, "orientation": orientation, **input_fields},
        "output": output,
    }
    if "architecture" in extra:
        card["weights"]["architecture"] = extra["architecture"]
    if "explain" in extra:
        card["explain"] = extra["explain"]
    return card


def write_card(folder: Path, card: dict[str, Any]) -> ModelCard:
    """Write `card` as folder/model.json and load it back."""
    (folder / "model.json").write_text(json.dumps(card, indent=2))
    return load_card(folder)


def make_card(
    folder: Path, module: nn.Module, fmt: str = "torchscript", example: torch.Tensor | None = None,
    **fields: Any,
) -> ModelCard:
    """Save `module` in `fmt` into `folder` and return a loaded card for it."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        weights = save_torchscript(module, folder / "model.ts")
    else:
        from safetensors.torch import save_file

        weights = folder / "model.safetensors"
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights))
    return write_card(folder, card_dict(weights, fmt, **fields))


def rotation(axis: str, degrees: float) -> np.ndarray:
    """3x3 rotation about an LPS axis."""
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    i, j = {"x": (1, 2), "y": (0, 2), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def make_volume(
    array: np.ndarray,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    directions: np.ndarray | None = None,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    modality: str = "CT",
) -> Volume:
    """A Volume whose columns of `directions` are the unit (col, row, slice) axes in LPS."""
    directions = np.eye(3) if directions is None else directions
    affine = np.eye(4)
    affine[:3, :3] = directions * np.asarray(spacing)
    affine[:3, 3] = origin
    return Volume(array, affine, VolumeMetadata(modality=modality, series_uid="1.2.3"))


def patient_coordinates(volume: Volume) -> np.ndarray:
    """LPS coordinates ``[slice, row, col, 3]`` of every voxel centre."""
    s, r, c = np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij")
    index = np.stack([c, r, s, np.ones_like(c)], axis=-1).astype(float)
    return (index @ volume.affine.T)[..., :3]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks."""
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)
