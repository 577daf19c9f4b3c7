"""From a Volume to the tensor a model card asks for, and from the model's output back.

Geometry first (numpy and SimpleITK, exact and reversible):

* :func:`reorientation_for` picks, for each of the card's three axis codes, the volume axis
  closest to it and whether it runs the other way: a permutation and flips, no interpolation,
  as MONAI's ``Orientation`` and nibabel's ``io_orientation`` do, so oblique series work.
* :class:`ModelGrid` adds the card's resampling (to ``spacing``, then to ``size``), axis by axis,
  and maps arrays between the volume grid and the model grid in both directions: linear into
  the model, nearest (labels) or linear (probabilities, heatmaps) back out.

Intensity next (:func:`apply_intensity`, MONAI's intensity transforms on torch tensors).

Array conventions: a Volume's array is ``[slice, row, col]``; its affine maps ``(col, row,
slice)``. The *source* order used here is ``(col, row, slice)`` (the affine's column order);
the *model* order is ``(d0, d1, d2)``, the card's axis codes in order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.ai.model_card import InputSpec, IntensityOp
from medviewer.core.geometry import direction_of, letter_vector, spacing_of

if TYPE_CHECKING:
    import torch

_SAME_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Reorientation:
    """Permutation and flips that take a volume's ``(col, row, slice)`` axes to a card's codes.

    Attributes
    ----------
    perm : tuple of int
        ``perm[i]`` is the source axis (0 col, 1 row, 2 slice) that model dim ``d_i`` runs along.
    flip : tuple of bool
        ``flip[i]`` is True when ``d_i`` increases where the source axis decreases.
    """

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]

    def to_model(self, source: np.ndarray) -> np.ndarray:
        """View a ``(col, row, slice, ...)`` array in model ``(d0, d1, d2, ...)`` order, no copy."""
        rest = tuple(range(3, source.ndim))
        out = source.transpose((*self.perm, *rest))
        flips = tuple(i for i in range(3) if self.flip[i])
        return np.flip(out, flips) if flips else out

    def to_source(self, model: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_model` (no copy)."""
        flips = tuple(i for i in range(3) if self.flip[i])
        unflipped = np.flip(model, flips) if flips else model
        inverse = tuple(int(i) for i in np.argsort(self.perm))
        return unflipped.transpose((*inverse, *range(3, model.ndim)))

    def model_affine(self, affine: np.ndarray, source_shape: Sequence[int]) -> np.ndarray:
        """Affine from model index ``(d0, d1, d2)`` to LPS for a source of `source_shape`.

        `source_shape` is in ``(col, row, slice)`` order.
        """
        index_map = np.zeros((4, 4))
        index_map[3, 3] = 1.0
        for i, (axis, flipped) in enumerate(zip(self.perm, self.flip, strict=True)):
            index_map[axis, i] = -1.0 if flipped else 1.0
            index_map[axis, 3] = source_shape[axis] - 1 if flipped else 0.0
        return np.asarray(affine, dtype=float) @ index_map


def reorientation_for(affine: np.ndarray, codes: str) -> Reorientation:
    """Closest permutation/flip of a volume's axes to the axis `codes` (e.g. ``"RAS"``).

    Greedy on the largest absolute cosine between a code's direction and a volume axis, as
    nibabel's ``io_orientation`` does, so each code gets a distinct axis even on oblique series.
    """
    directions = direction_of(affine)  # columns: unit LPS vectors of col, row, slice
    targets = np.array([letter_vector(c) for c in codes])
    cosines = targets @ directions  # [code, source axis]
    perm = [-1, -1, -1]
    flip = [False, False, False]
    remaining = np.abs(cosines).copy()
    for _ in range(3):
        code, axis = np.unravel_index(int(np.argmax(remaining)), remaining.shape)
        perm[code] = int(axis)
        flip[code] = bool(cosines[code, axis] < 0)
        remaining[code, :] = -1.0
        remaining[:, axis] = -1.0
    return Reorientation((perm[0], perm[1], perm[2]), (flip[0], flip[1], flip[2]))


@dataclass(frozen=True)
class ModelGrid:
    """The grid a model sees, and the exact maps between it and the volume's grid.

    Along model dim ``i`` the model voxel ``j`` sits at reoriented-source index
    ``scale[i] * j + offset[i]``.

    Attributes
    ----------
    reorientation : Reorientation
    source_shape : tuple of int
        The volume's ``(cols, rows, slices)``.
    reoriented_shape : tuple of int
        The source shape in model order, before resampling.
    shape : tuple of int
        The model grid's ``(d0, d1, d2)`` sizes.
    scale, offset : tuple of float
        Per model dim, as above (1 and 0 when that dim is not resampled).
    native_spacing : tuple of float
        Source spacing in mm along each model dim.
    """

    reorientation: Reorientation
    source_shape: tuple[int, int, int]
    reoriented_shape: tuple[int, int, int]
    shape: tuple[int, int, int]
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    native_spacing: tuple[float, float, float]

    @property
    def resampled(self) -> bool:
        """Whether any model dim is resampled (else the maps are exact permutations)."""
        return self.shape != self.reoriented_shape or any(
            abs(s - 1.0) > _SAME_TOLERANCE or abs(o) > _SAME_TOLERANCE
            for s, o in zip(self.scale, self.offset, strict=True)
        )

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Model voxel size in mm along ``(d0, d1, d2)``."""
        return tuple(  # type: ignore[return-value]
            s * n for s, n in zip(self.scale, self.native_spacing, strict=True)
        )

    def to_model(self, volume_array: np.ndarray, *, linear: bool = True) -> np.ndarray:
        """Volume array ``[slice, row, col(, 3)]`` -> float32 ``[d0, d1, d2(, 3)]``.

        Linear interpolation for images; ``linear=False`` takes the nearest voxel (label maps).
        """
        source = np.moveaxis(volume_array, (0, 1, 2), (2, 1, 0))  # (col, row, slice, ...)
        reoriented = self.reorientation.to_model(source)
        if not self.resampled:
            return np.ascontiguousarray(reoriented, dtype=np.float32)
        # block by block from the view: no float32 copy of the whole series first
        return self._resample(
            reoriented, self.scale, self.offset, self.shape, linear=linear, dtype=np.float32
        )

    def to_volume(self, model_array: np.ndarray, *, linear: bool) -> np.ndarray:
        """Model-grid array ``[d0, d1, d2(, C)]`` -> volume grid ``[slice, row, col(, C)]``.

        Nearest neighbour (labels) when `linear` is False, else linear. Volume voxels beyond
        the model grid's edge (under one model voxel) take the nearest edge value.
        """
        return self.reoriented_to_volume(self.to_reoriented(model_array, linear=linear))

    def to_reoriented(self, model_array: np.ndarray, *, linear: bool) -> np.ndarray:
        """Model-grid array -> the reoriented source grid (model order, volume voxels).

        The first half of :meth:`to_volume`: the model grid's voxel ``j`` lies at reoriented
        index ``scale * j + offset``, so reoriented index ``i`` samples the model grid at
        :meth:`model_positions` ``(i - offset) / scale``.
        """
        if not self.resampled:
            return model_array
        inverse_scale = tuple(1.0 / s for s in self.scale)
        inverse_offset = tuple(-o / s for o, s in zip(self.offset, self.scale, strict=True))
        return self._resample(
            model_array, inverse_scale, inverse_offset, self.reoriented_shape, linear=linear
        )

    def to_volume_on_slices(
        self, model_array: np.ndarray, spans: Sequence[tuple[int, int]], *, linear: bool
    ) -> np.ndarray:
        """:meth:`to_volume` of an array that is 0 outside the model slices ``d2`` in `spans`.

        When d2 is not resampled (2D models: the series' own slices), only those slices are
        resampled in-plane and the rest of the result is 0, which is what the whole array
        gives (linear or nearest sampling at whole slice positions reads one slice);
        otherwise the whole array is mapped.
        """
        identity = (abs(self.scale[2] - 1.0) <= _SAME_TOLERANCE
                    and abs(self.offset[2]) <= _SAME_TOLERANCE
                    and self.shape[2] == self.reoriented_shape[2])
        if not identity or not self.resampled:
            return self.to_volume(model_array, linear=linear)
        inverse_scale = (1.0 / self.scale[0], 1.0 / self.scale[1], 1.0)
        inverse_offset = (-self.offset[0] / self.scale[0], -self.offset[1] / self.scale[1], 0.0)
        # Written through a reoriented view of the zeroed volume: only the spans' slices are
        # touched (no transposed copy of the whole series, which is mostly zeros).
        volume = np.zeros(self.volume_shape(model_array), dtype=model_array.dtype)
        out = self.reorientation.to_model(np.moveaxis(volume, (0, 1, 2), (2, 1, 0)))
        for k0, k1 in spans:
            out[:, :, k0:k1] = self._resample(
                model_array[:, :, k0:k1], inverse_scale, inverse_offset,
                (*self.reoriented_shape[:2], k1 - k0), linear=linear)
        return volume

    def volume_shape(self, model_array: np.ndarray) -> tuple[int, ...]:
        """The volume grid's ``(slice, row, col(, C))`` shape for a model-grid array."""
        source = [0, 0, 0]
        for model_dim, source_dim in enumerate(self.reorientation.perm):
            source[source_dim] = self.reoriented_shape[model_dim]
        return (source[2], source[1], source[0], *model_array.shape[3:])

    def model_positions(self, dim: int) -> np.ndarray:
        """Where each reoriented index along model dim `dim` falls on the model grid (float)."""
        index = np.arange(self.reoriented_shape[dim], dtype=np.float64)
        if not self.resampled:
            return index
        return (index - self.offset[dim]) / self.scale[dim]

    def reoriented_to_volume(self, reoriented: np.ndarray) -> np.ndarray:
        """The second half of :meth:`to_volume`: undo the permutation and flips, exactly."""
        source = self.reorientation.to_source(reoriented)
        return np.ascontiguousarray(np.moveaxis(source, (0, 1, 2), (2, 1, 0)))

    @staticmethod
    def _resample(
        array: np.ndarray,
        scale: Sequence[float],
        offset: Sequence[float],
        out_shape: Sequence[int],
        *,
        linear: bool,
        dtype: type | None = None,
    ) -> np.ndarray:
        """Sample `array` at ``scale * j + offset`` along each of its first three dims.

        Each block is read as a contiguous copy of `dtype` (default: the array's own), so
        `array` may be any view.

        Done in blocks of about :data:`RESAMPLE_BLOCK_VOXELS` output voxels along the longest
        output dim: SimpleITK holds Python's GIL while it runs, and a whole CT at once froze
        the GUI for 1.7 s. Each block reads its input span plus a margin of two voxels, so
        every sample sees the same neighbours as in one pass (the test compares both: equal
        to 1e-6, the rounding of a block's origin).
        """
        axis = int(np.argmax(out_shape))
        count = int(out_shape[axis])
        across = max(1, math.prod(int(n) for n in out_shape) // max(count, 1))
        step = max(1, RESAMPLE_BLOCK_VOXELS // across)
        if step >= count:
            return _resample_block(np.ascontiguousarray(array, dtype=dtype), scale, offset,
                                   out_shape, linear)
        out = np.empty((*[int(n) for n in out_shape], *array.shape[3:]), dtype or array.dtype)
        for j0 in range(0, count, step):
            j1 = min(count, j0 + step)
            block, block_offset = _input_span(array, axis, scale[axis], offset[axis], j0, j1,
                                              dtype)
            shape = list(out_shape)
            shape[axis] = j1 - j0
            offsets = list(offset)
            offsets[axis] = block_offset
            target = [slice(None)] * out.ndim
            target[axis] = slice(j0, j1)
            out[tuple(target)] = _resample_block(block, scale, offsets, shape, linear)
        return out


#: Output voxels per SimpleITK call when resampling: about 40 ms each on this project's 2-core
#: test machine, where a 512x512x300 CT to 1.25 mm takes 2.7 s in blocks against 2.3 s at once.
RESAMPLE_BLOCK_VOXELS = 1 << 19


def _input_span(
    array: np.ndarray, axis: int, scale: float, offset: float, j0: int, j1: int,
    dtype: type | None = None,
) -> tuple[np.ndarray, float]:
    """The input block that output indices ``j0..j1-1`` along `axis` read, and their offset."""
    size = array.shape[axis]
    first, last = scale * j0 + offset, scale * (j1 - 1) + offset
    i0 = min(max(math.floor(first) - 2, 0), size - 1)
    i1 = max(min(math.ceil(last) + 3, size), i0 + 1)
    index = [slice(None)] * array.ndim
    index[axis] = slice(i0, i1)
    return np.ascontiguousarray(array[tuple(index)], dtype=dtype), first - i0


def _resample_block(
    array: np.ndarray,
    scale: Sequence[float],
    offset: Sequence[float],
    out_shape: Sequence[int],
    linear: bool,
) -> np.ndarray:
    """One SimpleITK resampling of `array` at ``scale * j + offset`` (see ModelGrid._resample)."""
    import SimpleITK as sitk

    channels = array.ndim == 4
    # SimpleITK wants (z, y, x) arrays for an (x, y, z) image: our dims (d0, d1, d2) -> x, y, z.
    image = sitk.GetImageFromArray(np.moveaxis(array, (0, 1, 2), (2, 1, 0)), isVector=channels)
    reference = sitk.Image([int(n) for n in out_shape], image.GetPixelID(),
                           image.GetNumberOfComponentsPerPixel())
    reference.SetSpacing([float(s) for s in scale])
    reference.SetOrigin([float(o) for o in offset])
    resample = sitk.ResampleImageFilter()
    resample.SetReferenceImage(reference)
    resample.SetInterpolator(sitk.sitkLinear if linear else sitk.sitkNearestNeighbor)
    # The grids differ by under one voxel at their far ends: extend the edge, never pad zeros.
    resample.SetUseNearestNeighborExtrapolator(True)
    out = sitk.GetArrayFromImage(resample.Execute(image))
    if channels and out.ndim == 3:  # SimpleITK drops the axis of a one-component vector image
        out = out[..., None]
    return np.moveaxis(out, (0, 1, 2), (2, 1, 0))


def model_grid_for(affine: np.ndarray, volume_shape: Sequence[int], spec: InputSpec) -> ModelGrid:
    """The model grid for a volume (`volume_shape` is ``(slices, rows, cols)``) and a card input.

    Resampling keeps the centre of the first voxel and covers the extent between the first and
    last voxel centres to the nearest step (``spacing``), then resizes corner to corner (``size``,
    as ``torch.nn.functional.interpolate`` with ``align_corners=False``). A 2D card resamples only
    d0 and d1; d2 (the slicing axis) is kept.
    """
    reorientation = reorientation_for(affine, spec.orientation)
    slices, rows, cols = (int(n) for n in volume_shape)
    source_shape = (cols, rows, slices)
    reoriented = tuple(source_shape[a] for a in reorientation.perm)
    native = tuple(float(spacing_of(affine)[a]) for a in reorientation.perm)
    scale = [1.0, 1.0, 1.0]
    offset = [0.0, 0.0, 0.0]
    shape = list(reoriented)
    for i in range(spec.dims):
        if spec.spacing is not None:
            shape[i], scale[i] = _spacing_step(reoriented[i], native[i], spec.spacing[i])
        if spec.size is not None:
            shape[i], scale[i], offset[i] = _size_step(
                shape[i], scale[i], offset[i], spec.size[i]
            )
    return ModelGrid(
        reorientation,
        source_shape,
        reoriented,  # type: ignore[arg-type]
        tuple(shape),  # type: ignore[arg-type]
        tuple(scale),  # type: ignore[arg-type]
        tuple(offset),  # type: ignore[arg-type]
        native,  # type: ignore[arg-type]
    )


def _spacing_step(size: int, native: float, target: float) -> tuple[int, float]:
    """New size and index scale for resampling one axis from `native` to `target` mm."""
    if abs(native - target) <= _SAME_TOLERANCE * max(native, target):
        return size, 1.0
    scale = target / native
    return max(1, int(np.floor((size - 1) / scale + 0.5)) + 1), scale


def _size_step(size: int, scale: float, offset: float, target: int) -> tuple[int, float, float]:
    """Compose a corner-aligned resize of one axis from `size` to `target` voxels."""
    if target == size:
        return size, scale, offset
    ratio = size / target
    # model voxel j sits at (j + 0.5) * ratio - 0.5 on the previous grid.
    return target, scale * ratio, offset + scale * (0.5 * ratio - 0.5)


# --------------------------------------------------------------------------- intensity


def apply_intensity(image: torch.Tensor, ops: Sequence[IntensityOp]) -> torch.Tensor:
    """Apply the card's intensity ops, in order, to one channel-first sample ``[C, ...]``.

    Percentiles and z-scores are computed over the sample given: the whole volume for a 3D
    model, one slice for a 2D model (as a model trained on slices saw them).
    """
    for op in ops:
        image = _INTENSITY[op.op](image, op.params)
    return image


def _clip(image: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return image.clamp(float(p["min"]), float(p["max"]))


def _scale_range(image: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    from monai.transforms import ScaleIntensityRange

    low, high = p["to"]
    return ScaleIntensityRange(p["min"], p["max"], low, high, clip=p["clip"])(image)


def _percentile_scale(image: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    from monai.transforms import ScaleIntensityRangePercentiles

    low, high = p["to"]
    return ScaleIntensityRangePercentiles(p["lower"], p["upper"], low, high, clip=p["clip"])(image)


def _zscore(image: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    from monai.transforms import NormalizeIntensity

    del p
    return NormalizeIntensity()(image)


def _linear(image: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return image * float(p["scale"]) + float(p["offset"])


_INTENSITY = {
    "clip": _clip,
    "scale_range": _scale_range,
    "percentile_scale": _percentile_scale,
    "zscore": _zscore,
    "linear": _linear,
}


def channels_of(volume_array: np.ndarray) -> int:
    """Number of image channels in a volume array (3 for RGB, else 1)."""
    return 3 if volume_array.ndim == 4 else 1
