"""Thick slabs: maximum, minimum and average intensity projections of a plane's neighbours.

A slab of ``thickness_mm`` around slice ``index`` of a plane covers an odd number of slices
centred on it (:func:`slab_slices`), so the slab's middle is the shown plane itself: the
label map, the crosshair and measurements drawn on it belong to that plane, and the
projection is taken along the plane's normal in the volume's own voxels (no resampling).
Near the first and last slice the slab is cut short at the volume's end.

Scrolling recomputes little (:class:`SlabProjector`): the average keeps a running sum (add
the slice entering, subtract the one leaving), and the maximum and minimum use the van Herk /
Gil-Werman split into blocks of the slab's length, where any window of that length is the
maximum of one block's suffix and the next block's prefix, each computed once per block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medviewer.core.errors import GeometryError
from medviewer.core.geometry import Plane, PlaneSlice, plane_count, reslice

SlabMode = Literal["mip", "minip", "avg"]
#: The projections, in the order the viewer offers them.
SLAB_MODES: tuple[SlabMode, ...] = ("mip", "minip", "avg")
#: How each projection is named on screen.
SLAB_NAMES: dict[str, str] = {"mip": "MIP", "minip": "MinIP", "avg": "Avg"}
#: The thickest slab offered (the memory of a block is bounded by it, see SlabProjector).
MAX_SLAB_MM = 100.0
#: The thickness steps of the slab keys (millimetres).
SLAB_STEPS_MM: tuple[float, ...] = (3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 75.0,
                                    100.0)  # fmt: skip
#: The thickness a slab starts at when its mode is first chosen (millimetres).
DEFAULT_SLAB_MM = 10.0
#: Running sums are recomputed from the slices after this many incremental steps.
_RESUM_EVERY = 64
#: The most memory a MIP/MinIP's two blocks may take; a thicker slab (in slices) is projected
#: from scratch each frame instead.
MAX_BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Slab:
    """A thick-slab projection: ``mode`` over ``thickness_mm`` around the shown plane."""

    mode: SlabMode
    thickness_mm: float

    def __post_init__(self) -> None:
        if self.mode not in SLAB_MODES:
            raise ValueError(f"unknown slab mode {self.mode!r}; expected one of "
                             f"{', '.join(SLAB_MODES)}")  # fmt: skip
        if not 0.0 < float(self.thickness_mm) <= MAX_SLAB_MM:
            raise ValueError(f"slab thickness must be in (0, {MAX_SLAB_MM:g}] mm, "
                             f"got {self.thickness_mm!r}")  # fmt: skip


def cycled(slab: Slab | None, thickness_mm: float = DEFAULT_SLAB_MM) -> Slab | None:
    """The next projection of the slab key: off, MIP, MinIP, average, off (same thickness)."""
    if slab is None:
        return Slab(SLAB_MODES[0], thickness_mm)
    following = SLAB_MODES.index(slab.mode) + 1
    return Slab(SLAB_MODES[following], slab.thickness_mm) if following < len(SLAB_MODES) else None


def stepped(slab: Slab | None, step: int) -> Slab | None:
    """The slab one thickness step thicker (`step` > 0) or thinner (see SLAB_STEPS_MM).

    Thinner than the first step turns the slab off; thicker from off starts a MIP at the
    first step.
    """
    if slab is None:
        return Slab(SLAB_MODES[0], SLAB_STEPS_MM[0]) if step > 0 else None
    steps = np.asarray(SLAB_STEPS_MM)
    if step > 0:
        larger = steps[steps > slab.thickness_mm + 1e-9]
        return Slab(slab.mode, float(larger[0]) if larger.size else MAX_SLAB_MM)
    smaller = steps[steps < slab.thickness_mm - 1e-9]
    return Slab(slab.mode, float(smaller[-1])) if smaller.size else None


def slab_slices(thickness_mm: float, spacing_mm: float) -> int:
    """The odd number of slices a slab of `thickness_mm` covers at `spacing_mm` (at least 1).

    The nearest odd count to ``thickness / spacing``: 10 mm at 1.25 mm is 9 slices (11.25 mm),
    at 2.5 mm 5 slices (12.5 mm), at 5 mm 3 slices.
    """
    if spacing_mm <= 0:
        raise GeometryError(f"slice spacing must be positive, got {spacing_mm}")
    half = int(np.floor((thickness_mm / spacing_mm - 1.0) / 2.0 + 0.5))
    return 2 * max(half, 0) + 1


def slab_window(index: int, count: int, slices: int) -> tuple[int, int]:
    """First and last plane index of the `slices`-thick slab centred on `index` (clipped)."""
    half = slices // 2
    return max(index - half, 0), min(index + half, count - 1)


def through_spacing(plane_slice: PlaneSlice) -> float:
    """The distance between neighbouring slices of a plane (mm)."""
    return float(np.linalg.norm(plane_slice.affine[:3, 2]))


def slab_thickness_mm(slab: Slab, plane_slice: PlaneSlice) -> float:
    """The thickness a slab really covers on this plane: its slice count times the spacing."""
    spacing = through_spacing(plane_slice)
    return slab_slices(slab.thickness_mm, spacing) * spacing


def project(stack: np.ndarray, mode: SlabMode) -> np.ndarray:
    """Reference projection of a ``(slices, rows, cols)`` stack (float64 for ``avg``)."""
    if mode == "mip":
        return np.asarray(stack.max(axis=0))
    if mode == "minip":
        return np.asarray(stack.min(axis=0))
    return np.asarray(stack.mean(axis=0, dtype=np.float64))


def slab_image(
    array: np.ndarray, affine: np.ndarray, plane: Plane, index: int, slab: Slab
) -> np.ndarray:
    """The slab image of slice `index` of `plane`, computed from scratch (see SlabProjector)."""
    count = plane_count(array.shape, affine, plane)
    centre = reslice(array, affine, plane, index)
    lo, hi = slab_window(index, count, slab_slices(slab.thickness_mm, through_spacing(centre)))
    stack = np.stack([reslice(array, affine, plane, k).image for k in range(lo, hi + 1)])
    return project(stack, slab.mode)


class SlabProjector:
    """Slab images of one volume's plane, updated incrementally as the slice moves.

    Give it the volume with :meth:`image`; it keeps what the next slice reuses and starts over
    when the volume, plane, thickness or mode change, or after :meth:`invalidate` (slices of a
    loading series arrived). Memory: the average keeps one float64 image; the maximum and
    minimum keep one block's suffix and the next block's prefix, ``2 x slices`` images of the
    volume's type (at most 2 x 161 slices of a 100 mm slab at 0.625 mm).
    """

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._array: np.ndarray | None = None
        self._blocks: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._sum: np.ndarray | None = None
        self._sum_window: tuple[int, int] = (0, -1)
        self._sum_steps = 0
        self.recomputed_slices = 0  # slices read to build blocks/sums (for tests and benches)

    def invalidate(self) -> None:
        """Forget everything (the volume's values changed)."""
        self._key = None
        self._blocks.clear()
        self._sum = None

    def image(
        self, array: np.ndarray, affine: np.ndarray, plane: Plane, index: int, slab: Slab
    ) -> np.ndarray:
        """The slab image of slice `index`; equal to :func:`slab_image` (avg to float error).

        Returns
        -------
        numpy.ndarray
            ``(rows, cols)``: the volume's type for ``mip``/``minip``, float64 for ``avg``. Owned
            by the caller for ``mip``/``minip``; for ``avg`` valid until the next call.
        """
        if array.ndim != 3:
            raise GeometryError("slabs are projections of grey volumes, not of colour ones")
        count = plane_count(array.shape, affine, plane)
        centre = reslice(array, affine, plane, index)
        slices = slab_slices(slab.thickness_mm, through_spacing(centre))
        key = (id(array), array.shape, tuple(np.asarray(affine).ravel()), plane, slices,
               slab.mode)  # fmt: skip
        if key != self._key or self._array is not array:
            self.invalidate()
            self._key, self._array = key, array
        lo, hi = slab_window(index, count, slices)

        def plane_at(k: int) -> np.ndarray:
            self.recomputed_slices += 1
            return reslice(array, affine, plane, k).image

        if slab.mode == "avg":
            return self._average(plane_at, lo, hi)
        return self._extreme(plane_at, lo, hi, slices, slab.mode, count)

    # -- average: a running sum -----------------------------------------------------------

    def _average(self, plane_at: Callable[[int], np.ndarray], lo: int, hi: int) -> np.ndarray:
        old_lo, old_hi = self._sum_window
        steps = abs(lo - old_lo) + abs(hi - old_hi)
        fresh = (self._sum is None or steps > (hi - lo + 1) or self._sum_steps >= _RESUM_EVERY)
        if fresh:
            total = plane_at(lo).astype(np.float64)
            for k in range(lo + 1, hi + 1):
                total += plane_at(k)
            self._sum, self._sum_steps = total, 0
        else:
            assert self._sum is not None
            for k in range(old_lo, lo):  # leaving at the low end
                self._sum -= plane_at(k)
            for k in range(lo, old_lo):  # entering at the low end
                self._sum += plane_at(k)
            for k in range(hi + 1, old_hi + 1):
                self._sum -= plane_at(k)
            for k in range(old_hi + 1, hi + 1):
                self._sum += plane_at(k)
            self._sum_steps += 1
            if self._sum.dtype.kind == "f" and not np.isfinite(self._sum).all():
                # NaN - NaN stays NaN: a non-finite value that left would linger, so add the
                # window's slices up again
                self._sum = plane_at(lo).astype(np.float64)
                for k in range(lo + 1, hi + 1):
                    self._sum += plane_at(k)
        self._sum_window = (lo, hi)
        return self._sum / float(hi - lo + 1)

    # -- maximum and minimum: van Herk / Gil-Werman blocks --------------------------------

    def _extreme(
        self,
        plane_at: Callable[[int], np.ndarray],
        lo: int,
        hi: int,
        slices: int,
        mode: str,
        count: int,
    ) -> np.ndarray:
        op = np.maximum if mode == "mip" else np.minimum
        sample = plane_at(lo)
        if 2 * slices * sample.nbytes > MAX_BLOCK_BYTES:  # bounded memory: no blocks
            stack = np.stack([sample, *(plane_at(k) for k in range(lo + 1, hi + 1))])
            return project(stack, "mip" if mode == "mip" else "minip")
        self.recomputed_slices -= 1  # the sample is not a block's read
        first, last = lo // slices, hi // slices
        if first == last:  # the window lies in one block: a whole block or cut at an end
            block_lo = first * slices
            block_hi = min(block_lo + slices, count) - 1
            if lo == block_lo and hi == block_hi and ("suffix", first) in self._blocks:
                return np.array(self._blocks[("suffix", first)][0])  # scrolling back: cached
            if lo == block_lo:
                prefix = self._block(plane_at, "prefix", first, slices, count, op)
                return np.array(prefix[hi - lo])
            if hi == block_hi:
                suffix = self._block(plane_at, "suffix", first, slices, count, op)
                return np.array(suffix[lo - block_lo])
            stack = np.stack([plane_at(k) for k in range(lo, hi + 1)])
            return project(stack, "mip" if mode == "mip" else "minip")
        suffix = self._block(plane_at, "suffix", first, slices, count, op)
        prefix = self._block(plane_at, "prefix", last, slices, count, op)
        return np.asarray(op(suffix[lo - first * slices], prefix[hi - last * slices]))

    def _block(
        self,
        plane_at: Callable[[int], np.ndarray],
        kind: str,
        block: int,
        slices: int,
        count: int,
        op: Callable[..., np.ndarray],
    ) -> np.ndarray:
        """Running extremes of one block from its start (prefix) or to its end (suffix)."""
        cached = self._blocks.get((kind, block))
        if cached is not None:
            self._blocks.move_to_end((kind, block))
            return cached
        start = block * slices
        stop = min(start + slices, count)
        first = plane_at(start)
        out = np.empty((stop - start, *first.shape), first.dtype)
        order = range(start, stop) if kind == "prefix" else range(stop - 1, start - 1, -1)
        previous: np.ndarray | None = None
        for k in order:
            position = k - start
            current = first if k == start else plane_at(k)
            if previous is None:
                out[position] = current
            else:
                op(previous, current, out=out[position])
            previous = out[position]
        self._blocks[(kind, block)] = out
        while len(self._blocks) > 2:  # one suffix and one prefix serve every window
            self._blocks.popitem(last=False)
        return out
