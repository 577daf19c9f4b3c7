"""The model's input: the series on the model grid as a tensor, intensity ops applied.

:func:`prepare_input` turns the model-grid array into ``[C, d0, d1, d2]`` and applies the card's
leading pointwise ops once; :class:`ModelInput` cuts it into what the network takes (batches of
slices for a 2D model, with context slices for 2.5D; the whole volume for a 3D model), applying
the remaining ops per sample. torch is imported when a function runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.ai.model_card import IntensityOp, ModelCard
from medviewer.ai.transforms import apply_intensity

if TYPE_CHECKING:
    import torch

POINTWISE_OPS = frozenset({"clip", "scale_range", "linear"})
"""Intensity ops that treat each voxel alone, so they commute with cutting the image up."""


def plain(tensor: Any) -> Any:
    """A plain torch.Tensor (MONAI transforms may return MetaTensors)."""
    as_tensor = getattr(tensor, "as_tensor", None)
    return as_tensor() if as_tensor is not None else tensor


@dataclass(frozen=True)
class ModelInput:
    """The series on the model grid, ready to be cut into the network's samples.

    Attributes
    ----------
    image : torch.Tensor
        ``[C, d0, d1, d2]`` on the CPU, the leading pointwise ops applied.
    sample_ops : tuple of IntensityOp
        The card's remaining ops, applied per sample (per slice for a 2D model).
    context_slices : int
        Slices on each side a 2.5D model sees with each slice.
    """

    image: torch.Tensor
    sample_ops: tuple[IntensityOp, ...] = ()
    context_slices: int = 0

    @property
    def slice_count(self) -> int:
        """Slices along d2 (what a 2D model runs over)."""
        return int(self.image.shape[-1])

    @property
    def spatial(self) -> tuple[int, ...]:
        """``(d0, d1, d2)``."""
        return tuple(self.image.shape[1:])

    def slices(self, k0: int, k1: int) -> torch.Tensor:
        """Slices ``k0:k1`` along d2 as a ``[B, C, d0, d1]`` batch with per-slice intensity ops.

        With context slices each slice k sees slices k-c..k+c (edge slices repeated) stacked
        as channels, in increasing d2 order, each with its image channels together.
        """
        import torch

        context = self.context_slices
        indices = torch.arange(k0 - context, k1 + context).clamp(0, self.slice_count - 1)
        batch = self.by_slice[indices]  # [n, C, d0, d1], read whole slices at a time
        if self.sample_ops:
            batch = torch.stack([plain(apply_intensity(s, self.sample_ops)) for s in batch])
        if context:
            width = 2 * context + 1
            windows = batch.unfold(0, width, 1)  # [k1 - k0, C, d0, d1, width]
            batch = windows.permute(0, 4, 1, 2, 3).flatten(1, 2)  # slice-major channels
        return batch.contiguous()

    @cached_property
    def by_slice(self) -> torch.Tensor:
        """The image slice-major, ``[d2, C, d0, d1]`` contiguous (made once, on first use), so
        each batch reads whole slices rather than one voxel per slice."""
        return self.image.permute(3, 0, 1, 2).contiguous()

    def whole(self) -> torch.Tensor:
        """The volume as a ``[1, C, d0, d1, d2]`` batch with the per-sample ops applied."""
        image = self.image
        if self.sample_ops:
            image = plain(apply_intensity(image, self.sample_ops))
        return image[None].contiguous()


def prepare_input(model_array: np.ndarray, card: ModelCard) -> ModelInput:
    """Model-grid array ``[d0, d1, d2(, 3)]`` -> :class:`ModelInput`, leading ops applied.

    Pointwise ops (clip, scale_range, linear) before the first statistical op (zscore,
    percentile_scale) commute with slicing and run once on the whole array; the rest run
    per sample (per slice for a 2D model).
    """
    import torch

    tensor = torch.from_numpy(model_array)
    tensor = tensor.movedim(-1, 0) if model_array.ndim == 4 else tensor[None]
    ops = card.input.intensity
    leading = 0
    while leading < len(ops) and ops[leading].op in POINTWISE_OPS:
        leading += 1
    if leading:
        tensor = plain(apply_intensity(tensor, ops[:leading]))
    return ModelInput(tensor.contiguous(), tuple(ops[leading:]), card.input.context_slices)
