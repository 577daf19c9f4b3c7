"""The part of a series a model runs on, and the way back to the whole series.

A card may run its model on a box of the series rather than on all of it: the box around the
foreground (``input.crop_foreground``) or around another model's labels (``input.roi``). The
box is cut from the series *before* the card's resampling, so the model runs on that
sub-volume exactly as it would on a series of that size; its outputs are pasted back into the
full series grid with background outside the box (and, for a region of interest, outside the
grown mask inside the box).

Boxes are in array order, ``(slice, row, col)``, start inclusive and stop exclusive. A margin
in mm becomes, per array axis, the whole voxels whose centres lie within it:
``floor(margin / spacing)``. numpy only, except the grown mask (SimpleITK's exact Euclidean
distance map, in mm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from medviewer.ai.model_card import CropForegroundSpec
from medviewer.core.volume import Volume

#: A margin that is a whole number of voxels (up to rounding) counts that voxel in.
_MARGIN_TOLERANCE = 1e-6
#: Voxels compared with the threshold per step (bounds the temporary mask's memory).
_CHUNK_VOXELS = 1 << 23


@dataclass(frozen=True)
class Box:
    """A box of array indices ``(slice, row, col)``: `start` inclusive, `stop` exclusive."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Index the box with ``array[box.slices]``."""
        return (
            slice(self.start[0], self.stop[0]),
            slice(self.start[1], self.stop[1]),
            slice(self.start[2], self.stop[2]),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxels along each array axis."""
        return (
            self.stop[0] - self.start[0],
            self.stop[1] - self.start[1],
            self.stop[2] - self.start[2],
        )

    def grown(self, margins: Sequence[int], shape: Sequence[int]) -> Box:
        """The box grown by ``margins[i]`` voxels on both sides of axis i, clipped to `shape`."""
        start = tuple(max(0, a - m) for a, m in zip(self.start, margins, strict=True))
        stop = tuple(min(n, b + m) for b, m, n in zip(self.stop, margins, shape, strict=True))
        return Box(start, stop)  # type: ignore[arg-type]

    def at_least(self, extent: int, shape: Sequence[int]) -> Box:
        """The box grown (towards the end first) to `extent` voxels per axis, where `shape`
        allows (a 3D model needs at least two voxels along each axis)."""
        start, stop = list(self.start), list(self.stop)
        for axis, size in enumerate(shape):
            want = min(extent, int(size))
            if stop[axis] - start[axis] < want:
                stop[axis] = min(int(size), start[axis] + want)
                start[axis] = stop[axis] - want
        return Box((start[0], start[1], start[2]), (stop[0], stop[1], stop[2]))

    def is_whole(self, shape: Sequence[int]) -> bool:
        """Whether the box covers an array of `shape` entirely."""
        return self.start == (0, 0, 0) and tuple(self.stop) == tuple(int(n) for n in shape)


@dataclass(frozen=True, eq=False)
class Region:
    """Where a model runs: a box of the series and, optionally, a mask inside it.

    Attributes
    ----------
    box : Box
    mask : numpy.ndarray or None
        Boolean, of the box's shape: the voxels whose output is kept. Outputs at the box's
        other voxels become background. None keeps the whole box.
    """

    box: Box
    mask: np.ndarray | None = None

    def at_least(self, extent: int, shape: Sequence[int]) -> Region:
        """The region with its box grown to `extent` voxels per axis where `shape` allows
        (:meth:`Box.at_least`); the mask keeps its voxels (the added ones are not in it)."""
        box = self.box.at_least(extent, shape)
        if box == self.box or self.mask is None:
            return Region(box, self.mask)
        mask = np.zeros(box.shape, dtype=bool)
        inner = tuple(
            slice(a - b, a - b + n)
            for a, b, n in zip(self.box.start, box.start, self.box.shape, strict=True)
        )
        mask[inner] = self.mask
        return Region(box, mask)

    def crop(self, volume: Volume) -> Volume:
        """The box of `volume` as a volume of its own (a view; the affine moved to the box)."""
        affine = np.array(volume.affine, dtype=float)
        s0, r0, c0 = self.box.start
        affine[:3, 3] = (volume.affine @ np.array([c0, r0, s0, 1.0]))[:3]
        return replace(volume, array=volume.array[self.box.slices], affine=affine)

    def paste(
        self, array: np.ndarray, shape: Sequence[int], fill: float | np.ndarray
    ) -> np.ndarray:
        """An array on the box's grid ``[s, r, c(, C)]`` -> the full grid of `shape`.

        Parameters
        ----------
        array : numpy.ndarray
            Of the box's shape, with any trailing axes.
        shape : sequence of int
            The series' ``(slices, rows, cols)``.
        fill : float or numpy.ndarray
            The value outside the box and outside the mask (per trailing entry for an
            array: e.g. the background probability vector).

        Returns
        -------
        numpy.ndarray
            A new array of `array`'s dtype.
        """
        if tuple(array.shape[:3]) != self.box.shape:
            raise ValueError(f"array of shape {array.shape} does not fit the box {self.box}")
        out = np.empty((*(int(n) for n in shape), *array.shape[3:]), dtype=array.dtype)
        out[...] = fill
        target = out[self.box.slices]
        target[...] = array
        if self.mask is not None:
            target[~self.mask] = fill
        return out

    def paste_rows(self, rows: np.ndarray, axis: int, count: int, fill: np.ndarray) -> np.ndarray:
        """Per-slice rows along array `axis` of the box -> `count` rows, `fill` outside it."""
        out = np.empty((count, *rows.shape[1:]), dtype=rows.dtype)
        out[...] = fill
        out[self.box.start[axis] : self.box.stop[axis]] = rows
        return out


def array_spacing(volume: Volume) -> tuple[float, float, float]:
    """Voxel size in mm along the array axes ``(slice, row, col)``."""
    col, row, slice_ = (float(s) for s in volume.spacing)
    return (slice_, row, col)


def margin_voxels(spacing: Sequence[float], margin_mm: float) -> tuple[int, int, int]:
    """Whole voxels per axis whose centres lie within `margin_mm`: ``floor(margin / spacing)``."""
    counts = (math.floor(margin_mm / float(s) + _MARGIN_TOLERANCE) for s in spacing)
    a, b, c = counts
    return (a, b, c)


def bounding_box(mask: np.ndarray) -> Box | None:
    """The smallest box holding every True voxel of a 3D mask; None when it has none."""
    found = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        if hits.size == 0:
            return None
        found.append((int(hits[0]), int(hits[-1]) + 1))
    return Box((found[0][0], found[1][0], found[2][0]), (found[0][1], found[1][1], found[2][1]))


def foreground_threshold(array: np.ndarray, spec: CropForegroundSpec) -> float:
    """The image value the foreground lies above: the card's threshold, or its percentile
    of every voxel value (all channels of a colour image)."""
    if spec.threshold is not None:
        return spec.threshold
    assert spec.percentile is not None
    return float(np.percentile(array, spec.percentile))


def above_box(array: np.ndarray, threshold: float) -> Box | None:
    """The box of the voxels above `threshold` (any channel of a colour image), or None.

    Compared a few slices at a time, so no mask of the whole series is ever allocated.
    """
    slices, rows, cols = array.shape[:3]
    per_slice = np.zeros(slices, dtype=bool)
    plane = np.zeros((rows, cols), dtype=bool)
    step = max(1, _CHUNK_VOXELS // max(1, int(np.prod(array.shape[1:]))))
    for k0 in range(0, slices, step):
        above = array[k0 : k0 + step] > threshold
        if above.ndim == 4:
            above = np.asarray(above.any(axis=3))
        per_slice[k0 : k0 + step] = above.any(axis=(1, 2))
        plane |= above.any(axis=0)
    hits = np.flatnonzero(per_slice)
    if hits.size == 0:
        return None
    in_plane = bounding_box(plane[None])
    assert in_plane is not None
    return Box(
        (int(hits[0]), in_plane.start[1], in_plane.start[2]),
        (int(hits[-1]) + 1, in_plane.stop[1], in_plane.stop[2]),
    )


def foreground_region(volume: Volume, spec: CropForegroundSpec) -> Region | None:
    """The region ``input.crop_foreground`` runs a model on, or None when nothing is above
    the threshold.

    Parameters
    ----------
    volume : Volume
        The series, as loaded (no intensity op applied).
    spec : CropForegroundSpec

    Returns
    -------
    Region or None
        The box of the voxels above the threshold, grown by the margin (in whole voxels per
        axis, from the series' spacing) and clipped to the series.
    """
    box = above_box(volume.array, foreground_threshold(volume.array, spec))
    if box is None:
        return None
    return Region(box.grown(margin_voxels(array_spacing(volume), spec.margin_mm), volume.shape))


def grown_mask_region(
    mask: np.ndarray, spacing: Sequence[float], margin_mm: float
) -> Region | None:
    """The region of a mask grown by `margin_mm`: its box and the grown mask inside it.

    A voxel belongs to the grown mask when its centre lies within `margin_mm` (Euclidean, in
    mm, with the series' spacing) of a voxel centre of `mask`.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean ``[slice, row, col]`` on the series grid.
    spacing : sequence of float
        mm along ``(slice, row, col)``.
    margin_mm : float
        >= 0.

    Returns
    -------
    Region or None
        None when `mask` is empty.
    """
    box = bounding_box(mask)
    if box is None:
        return None
    margins = margin_voxels(spacing, margin_mm)
    box = box.grown(margins, mask.shape)
    inside = np.ascontiguousarray(mask[box.slices], dtype=bool)
    if any(margins):
        inside = _dilated(inside, spacing, margin_mm)
    return Region(box, inside)


def _dilated(mask: np.ndarray, spacing: Sequence[float], margin_mm: float) -> np.ndarray:
    """Voxels within `margin_mm` of `mask` (an exact Euclidean distance map, SimpleITK)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.view(np.uint8))
    image.SetSpacing([float(s) for s in reversed(tuple(spacing))])  # (x, y, z) = (col, row, slice)
    distance = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(distance) <= margin_mm * (1 + _MARGIN_TOLERANCE)
