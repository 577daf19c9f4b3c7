"""The classical click-to-segment engine: no weights, any modality (SimpleITK).

- **A positive click or scribble** grows a region from its seeds (``ConfidenceConnected``: the
  seeds' neighbourhood mean and spread, re-estimated twice), then moves its edge to half way
  between the region's and its surroundings' typical values (the half-maximum edge of a
  partial-volume boundary), within two voxels of the grown region, and fills its holes. It
  works in a box around the seeds that triples while the region touches the box's sides, up
  to the whole series. Each prompt's region is computed once and kept; the object is their
  union.
- **A box** takes its largest bright or dark component: Otsu's threshold inside the box, the
  side of it the box's centre is on (against its rim).
- **A negative click or scribble** only removes: a marker watershed on the object's distance
  map (basins at its thick parts, ridges at its necks), seeded with the positive and the
  negative prompts, keeps what the positive markers flood; and, where there is no neck (a
  round blob), the part nearer to the negative prompt than to a positive one goes, within
  twice the prompt's depth in the object. A positive prompt next to the object (a missed
  rim) adds only what it grows within 4 mm of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from medviewer.ai.interactive import Voxel, VoxelPrompts
from medviewer.core.errors import CancelledError
from medviewer.core.volume import Volume

if TYPE_CHECKING:
    import SimpleITK

START_HALF_WIDTH_MM = 40.0
"""Half the side of the first box a click grows in (it triples while the region touches it)."""
EDGE_RIM_VOXELS = 2
"""How far (voxels) the half-maximum edge may move out from the grown region."""
_CACHE_SIZE = 64


class ClassicalEngine:
    """Region growing, Otsu boxes and a marker watershed; see the module docstring."""

    name = "classical"

    def __init__(self, multiplier: float = 2.5, iterations: int = 2) -> None:
        self.multiplier = multiplier
        self.iterations = iterations
        self._regions: dict[tuple[object, ...], np.ndarray] = {}

    def segment(self, volume: Volume, prompts: VoxelPrompts, previous: np.ndarray | None,
                cancel: Callable[[], bool]) -> np.ndarray:
        """The object's mask (bool, ``volume.shape``) from all its prompts."""
        mask = np.zeros(volume.shape, dtype=bool)
        for group in prompts.positive_groups:
            _check(cancel)
            limit = _object_box(volume, mask, CORRECTION_BOX_MM) if mask.any() else None
            if limit is not None and not _inside_box(group, limit):
                limit = None  # a click away from the object: another part of it, grown freely
            region = self._grown(volume, group, cancel, limit)
            adjacent = 1.5 * float(volume.spacing.max())
            if mask.any() and _near(mask, group, volume, adjacent):
                region = region & _ball(volume, group, CORRECTION_MM)  # an edge correction
            mask |= region
        for low, high in prompts.boxes:
            _check(cancel)
            mask |= box_component(volume, low, high)
        if prompts.negative and mask.any():
            _check(cancel)
            mask = split_off(volume, mask, prompts.positive, prompts.negative)
        return mask

    def _grown(self, volume: Volume, seeds: Sequence[Voxel], cancel: Callable[[], bool],
               limit: Box | None = None) -> np.ndarray:
        key = (id(volume.array), tuple(seeds), None if limit is None else
               tuple((b.start, b.stop) for b in limit))
        if key not in self._regions:
            if len(self._regions) >= _CACHE_SIZE:
                self._regions.pop(next(iter(self._regions)))
            self._regions[key] = grow_region(volume, seeds, self.multiplier, self.iterations,
                                             cancel, limit)
        return self._regions[key]


Box = tuple[slice, slice, slice]
CORRECTION_BOX_MM = 10.0
"""A positive prompt inside an object's box grown by this much (mm) refines that object: its
region grows within that box only (a click on a vessel the lung mask missed must not grow
along the vessel into the heart). A prompt outside it adds another part, grown freely."""


def grow_region(volume: Volume, seeds: Sequence[Voxel], multiplier: float = 2.5,
                iterations: int = 2,
                cancel: Callable[[], bool] = lambda: False,
                limit: Box | None = None) -> np.ndarray:
    """The region grown from `seeds` ((slice, row, col) voxels) with its half-maximum edge,
    holes filled; in a box around the seeds that triples while the region touches its sides
    (within the box `limit` when given)."""
    spacing = volume.spacing[::-1]  # (slice, row, col) mm
    half = np.ceil(START_HALF_WIDTH_MM / spacing).astype(int)
    points = np.asarray(seeds)
    shape = np.asarray(volume.shape)
    floor = np.zeros(3, int) if limit is None else np.array([b.start for b in limit])
    ceiling = shape if limit is None else np.array([b.stop for b in limit])
    while True:
        _check(cancel)
        low = np.maximum(points.min(axis=0) - half, floor)
        high = np.minimum(points.max(axis=0) + half + 1, ceiling)
        box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
        region = _grow_in_box(volume, box, points - low, multiplier, iterations)
        touching = _touches_open_sides(region, low - floor, high - floor, ceiling - floor)
        if not touching.any():
            break
        half = np.where(touching, half * 3, half)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[box] = region
    return mask


def _grow_in_box(volume: Volume, box: tuple[slice, ...], seeds: np.ndarray, multiplier: float,
                 iterations: int) -> np.ndarray:
    """The region in `box` (seeds relative to it). A box of more than
    :data:`FINE_MAX_VOXELS` voxels is grown on a grid averaged by whole factors (a lung,
    the heart), and its edge placed back on the full grid at the same half-maximum level,
    within one coarse voxel of the coarse edge."""
    crop = np.ascontiguousarray(volume.array[box], dtype=np.float32)
    spacing = volume.spacing[::-1]
    factors = shrink_factors(crop.shape, spacing)
    if factors == (1, 1, 1):
        region, _ = _grow(crop, spacing, seeds, multiplier, iterations)
        return region
    small = _block_mean(crop, factors)
    small_seeds = np.unique(seeds // np.asarray(factors), axis=0)
    coarse, edge = _grow(small, spacing * np.asarray(factors), small_seeds, multiplier,
                         iterations)
    up = _upsample(coarse, factors, crop.shape)
    if edge is None:
        return up
    level, bright = edge
    near = _upsample(_dilate_voxels(coarse, 1), factors, crop.shape)
    deep = _upsample(_erode_voxels(coarse, 1), factors, crop.shape)
    side = crop >= level if bright else crop <= level
    return deep | (near & side)


FINE_MAX_VOXELS = 2_000_000
"""Boxes up to this many voxels are grown on the full grid (about 120 mm across in-plane at
0.65 mm and 1.9 mm slices)."""


def shrink_factors(shape: Sequence[int], spacing: np.ndarray) -> tuple[int, int, int]:
    """Whole averaging factors per axis (slice, row, col) bringing a box of `shape` under
    :data:`FINE_MAX_VOXELS`, the finest axes first (so voxels grow towards cubes)."""
    factors = np.ones(3, dtype=int)
    while int(np.prod(np.ceil(np.asarray(shape) / factors))) > FINE_MAX_VOXELS:
        size = spacing * factors
        axis = int(np.argmin(np.where(np.asarray(shape) // factors > 1, size, np.inf)))
        factors[axis] += 1
    return (int(factors[0]), int(factors[1]), int(factors[2]))


def _grow(crop: np.ndarray, spacing: np.ndarray, seeds: np.ndarray, multiplier: float,
          iterations: int) -> tuple[np.ndarray, tuple[float, bool] | None]:
    """Confidence-connected region from `seeds`, with its half-maximum edge, holes filled;
    and the edge (level, whether the object is the bright side) when one was placed."""
    import SimpleITK as sitk

    image = _image(crop, spacing)
    seed_list = [(int(c), int(r), int(s)) for s, r, c in seeds]  # ITK index order x, y, z
    core = sitk.ConfidenceConnected(image, seedList=seed_list, numberOfIterations=iterations,
                                    multiplier=multiplier, initialNeighborhoodRadius=1,
                                    replaceValue=1)
    core_np = sitk.GetArrayFromImage(core).astype(bool)
    for s, r, c in seeds:
        core_np[s, r, c] = True  # a seed is always inside
    region, edge = _half_maximum_edge(crop, core_np, image, seed_list, spacing)
    filled = sitk.BinaryFillhole(_image(region.astype(np.uint8), spacing), fullyConnected=False)
    return sitk.GetArrayFromImage(filled).astype(bool), edge


def _half_maximum_edge(crop: np.ndarray, core: np.ndarray, image: SimpleITK.Image,
                       seeds: list[tuple[int, int, int]], spacing: np.ndarray,
                       ) -> tuple[np.ndarray, tuple[float, bool] | None]:
    """`core` with its edge moved to half way between its median and that of a 1-3 mm shell
    around it, when the two differ by more than 4 of the core's standard deviations; only
    voxels within :data:`EDGE_RIM_VOXELS` of the core, connected to the seeds."""
    import SimpleITK as sitk

    inside = crop[core]
    near = _dilate_voxels(core, np.maximum(np.round(1.0 / spacing).astype(int), 1))
    shell = _dilate_voxels(core, np.maximum(np.round(3.0 / spacing).astype(int), 1)) & ~near
    if not shell.any() or inside.size < 2:
        return core, None
    object_level, around = float(np.median(inside)), float(np.median(crop[shell]))
    if abs(object_level - around) <= 4.0 * max(float(inside.std()), 1.0):
        return core, None
    edge = (object_level + around) / 2.0
    bright = object_level > around
    big = float(np.abs(crop).max()) + 1.0
    lower, upper = (edge, big) if bright else (-big, edge)
    grown = sitk.ConnectedThreshold(image, seedList=seeds, lower=lower, upper=upper,
                                    replaceValue=1)
    rim = _dilate_voxels(core, EDGE_RIM_VOXELS)
    return core | (sitk.GetArrayViewFromImage(grown).astype(bool) & rim), (edge, bright)


def _block_mean(array: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """`array` averaged over blocks of `factors` (the last partial blocks too)."""
    padded_shape = [int(np.ceil(n / f)) * f for n, f in zip(array.shape, factors, strict=True)]
    padded = np.pad(array, [(0, p - n) for p, n in zip(padded_shape, array.shape, strict=True)],
                    mode="edge")
    fz, fy, fx = factors
    blocks = padded.reshape(padded_shape[0] // fz, fz, padded_shape[1] // fy, fy,
                            padded_shape[2] // fx, fx)
    return blocks.mean(axis=(1, 3, 5), dtype=np.float32)


def _upsample(mask: np.ndarray, factors: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Each coarse voxel back as its block, cut to `shape`."""
    up = mask
    for axis, factor in enumerate(factors):
        up = np.repeat(up, factor, axis=axis)
    return up[: shape[0], : shape[1], : shape[2]]


def box_component(volume: Volume, low: Voxel, high: Voxel) -> np.ndarray:
    """The largest component of the box's bright or dark side of Otsu's threshold (the side
    its centre half is on, against its rim), holes filled, on the whole grid."""
    import SimpleITK as sitk

    box = tuple(slice(a, b + 1) for a, b in zip(low, high, strict=True))
    crop = np.ascontiguousarray(volume.array[box], dtype=np.float32)
    mask = np.zeros(volume.shape, dtype=bool)
    if crop.size < 2 or float(crop.max()) == float(crop.min()):
        return mask
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.Execute(_sitk(crop, volume))
    threshold = otsu.GetThreshold()
    centre = tuple(slice(n // 4, max(n - n // 4, n // 4 + 1)) for n in crop.shape)
    rim = np.ones(crop.shape, dtype=bool)
    rim[tuple(slice(1, max(n - 1, 1)) for n in crop.shape)] = False
    bright = np.median(crop[centre]) >= (np.median(crop[rim]) if rim.any() else threshold)
    side = (crop > threshold) if bright else (crop <= threshold)
    components = sitk.RelabelComponent(sitk.ConnectedComponent(_sitk(side.astype(np.uint8),
                                                                      volume)))
    largest = sitk.GetArrayFromImage(components) == 1
    filled = sitk.BinaryFillhole(_sitk(largest.astype(np.uint8), volume))
    mask[box] = sitk.GetArrayFromImage(filled).astype(bool)
    return mask


def split_off(volume: Volume, mask: np.ndarray, positive: Sequence[Voxel],
              negative: Sequence[Voxel]) -> np.ndarray:
    """`mask` less what a marker watershed on its distance map gives the `negative` seeds
    (only removes); without positive seeds, the mask voxel deepest inside stands for them.
    A box of more than :data:`FINE_MAX_VOXELS` voxels (a leak into the whole body) is split
    on a grid averaged by whole factors, as regions are grown, and the cut placed back on the
    full grid (on the full grid the distance maps of 40 M voxels took 12 s a click)."""
    points = np.asarray([*positive, *negative, *np.argwhere(mask)[:1]])
    found = np.argwhere(mask)
    low = np.maximum(np.minimum(found.min(axis=0), points.min(axis=0)) - 2, 0)
    high = np.minimum(np.maximum(found.max(axis=0), points.max(axis=0)) + 3, volume.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    inside = mask[box]
    spacing = volume.spacing[::-1]
    local_positive = [np.asarray(v) - low for v in positive if mask[v]]
    local_negative = [np.asarray(v) - low for v in negative]
    factors = shrink_factors(inside.shape, spacing)
    result = mask.copy()
    if factors == (1, 1, 1):
        result[box] = _split_in_box(inside, spacing, local_positive, local_negative)
        return result
    step = np.asarray(factors)
    coarse = _block_mean(inside.astype(np.float32), factors) >= 0.5
    for voxel in local_positive:
        coarse[tuple(voxel // step)] = True  # a thin part under a seed stays
    kept = _split_in_box(coarse, spacing * step, [v // step for v in local_positive],
                         [v // step for v in local_negative])
    result[box] = _upsample(kept, factors, inside.shape) & inside
    return result


def _split_in_box(inside: np.ndarray, spacing: np.ndarray, positive: Sequence[np.ndarray],
                  negative: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`split_off` within a box: `inside` the object, seeds as indices of the box,
    voxels of `spacing` mm (slice, row, col)."""
    import SimpleITK as sitk

    # The depth is that of the object with the holes of each slice filled: a lung is spongy
    # (its vessels are holes), so its own depth is a few mm everywhere, and a leak into the
    # solid heart (30 mm deep) flooded the whole lung from the negative prompt. (A closing
    # would also fuse the lung with the heart across the few mm between them, and thicken
    # the neck between a nodule and a vessel.)
    solid = _holes_filled_per_slice(inside)
    depth = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        _image(solid.astype(np.uint8), spacing), insideIsPositive=True, squaredDistance=False,
        useImageSpacing=True))
    feature = np.where(inside, depth.max() - depth, depth.max() + 1.0).astype(np.float32)
    markers = np.zeros(inside.shape, dtype=np.uint8)
    seeds = [tuple(int(a) for a in v) for v in positive]
    if not seeds:
        deepest = np.unravel_index(int(np.argmax(np.where(inside, depth, -np.inf))), inside.shape)
        seeds = [tuple(int(a) for a in deepest)]
    for voxel in seeds:
        markers[voxel] = 1
    for point in negative:
        local = tuple(int(a) for a in point)
        if all(0 <= v < n for v, n in zip(local, inside.shape, strict=True)):
            markers[local] = 2
    flooded = sitk.MorphologicalWatershedFromMarkers(
        _image(feature, spacing), _image(markers, spacing), markWatershedLine=False,
        fullyConnected=True)
    kept = (sitk.GetArrayFromImage(flooded) == 1) & inside
    negatives_inside = [v for v in negative
                        if all(0 <= a < n for a, n in zip(v, inside.shape, strict=True))
                        and inside[tuple(int(a) for a in v)]]
    if negatives_inside:
        # also where there is no neck to cut at (a round blob): the part nearer a negative seed
        # than a positive one, within twice the seed's depth in the object (a click at the
        # edge trims the edge)
        nearer = _nearer_to_first(inside.shape, spacing, [np.asarray(v) for v in seeds],
                                  negatives_inside)
        reach = np.zeros(inside.shape, dtype=bool)
        for point in negatives_inside:
            depth_mm = float(depth[tuple(int(a) for a in point)])  # huge: an object filling its box
            radius = max(2.0 * min(depth_mm, MAX_REACH_MM), float(spacing.min()))
            reach |= _within(inside.shape, spacing, np.asarray(point), radius)
        kept &= nearer | ~reach
    return _connected_to(kept, seeds, spacing)


MAX_REACH_MM = 500.0
"""The depth a negative prompt's reach is computed from, at most (mm)."""
CORRECTION_MM = 4.0
"""A positive prompt next to the object (within 1.5 voxels) corrects its edge: it adds only
what it grows within this distance (mm) of the prompt (a click on a missed rim, a partial-volume
voxel, must not grow into what lies beyond)."""


def _holes_filled_per_slice(mask: np.ndarray) -> np.ndarray:
    """`mask` with the holes of each of its slices (axis 0) filled."""
    import SimpleITK as sitk

    out = mask.copy()
    for k in range(mask.shape[0]):
        if mask[k].any():
            image = sitk.GetImageFromArray(mask[k].astype(np.uint8))
            out[k] = sitk.GetArrayViewFromImage(sitk.BinaryFillhole(image)).astype(bool)
    return out


def _object_box(volume: Volume, mask: np.ndarray, mm: float) -> Box:
    """The box of `mask`'s voxels grown by `mm` on each side, within the series."""
    from medviewer.ai.regions import bounding_box

    found = bounding_box(mask)  # from projections: no index array of a lung's 10 M voxels
    assert found is not None
    margin = [int(v) for v in np.ceil(mm / volume.spacing[::-1])]
    return found.grown(margin, volume.shape).slices


def _inside_box(voxels: Sequence[Voxel], box: Box) -> bool:
    return all(b.start <= v < b.stop for voxel in voxels for v, b in zip(voxel, box, strict=True))


def _near(mask: np.ndarray, seeds: Sequence[Voxel], volume: Volume, mm: float) -> bool:
    """Whether `mask` has a voxel within `mm` of a seed."""
    return bool((mask & _ball(volume, seeds, mm)).any())


def _ball(volume: Volume, seeds: Sequence[Voxel], mm: float) -> np.ndarray:
    """The voxels within `mm` of a seed, on the whole grid."""
    spacing = volume.spacing[::-1]
    ball = np.zeros(volume.shape, dtype=bool)
    reach = np.ceil(mm / spacing).astype(int)
    for seed in seeds:
        low = np.maximum(np.asarray(seed) - reach, 0)
        high = np.minimum(np.asarray(seed) + reach + 1, volume.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
        ball[box] |= _within(tuple(int(b - a) for a, b in zip(low, high, strict=True)),
                             spacing, np.asarray(seed) - low, mm)
    return ball


def _within(shape: Sequence[int], spacing: np.ndarray, centre: np.ndarray, mm: float
            ) -> np.ndarray:
    """The voxels of a box of `shape` within `mm` of voxel `centre`."""
    grid = np.indices(shape, dtype=np.float32)
    d2 = sum(((grid[a] - float(centre[a])) * float(spacing[a])) ** 2 for a in range(3))
    return d2 <= mm * mm


def _nearer_to_first(shape: Sequence[int], spacing: np.ndarray, first: Sequence[np.ndarray],
                     second: Sequence[np.ndarray]) -> np.ndarray:
    """Voxels (of a box of `shape`) at least as near, in mm, to a voxel of `first` as to any
    of `second`."""
    grid = np.indices(shape, dtype=np.float32)

    def nearest(points: Sequence[np.ndarray]) -> np.ndarray:
        best = np.full(shape, np.inf, dtype=np.float32)
        for point in points:
            d2 = sum(((grid[a] - float(point[a])) * float(spacing[a])) ** 2 for a in range(3))
            np.minimum(best, d2, out=best)
        return best

    return nearest(first) <= nearest(second)


def _connected_to(kept: np.ndarray, seeds: Sequence[Sequence[int]], spacing: np.ndarray
                  ) -> np.ndarray:
    """The components of `kept` holding a seed."""
    import SimpleITK as sitk

    if not kept.any():
        return kept
    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(
        _image(kept.astype(np.uint8), spacing), True))
    wanted = {int(components[tuple(seed)]) for seed in seeds} - {0}
    return np.isin(components, list(wanted)) if wanted else kept


def _dilate_voxels(mask: np.ndarray, radius: int | np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    radii = np.broadcast_to(np.asarray(radius, dtype=int), (3,))[::-1]  # x, y, z
    dilated = sitk.BinaryDilate(sitk.GetImageFromArray(mask.astype(np.uint8)),
                                [int(v) for v in radii], sitk.sitkBall)
    return sitk.GetArrayViewFromImage(dilated).astype(bool)


def _erode_voxels(mask: np.ndarray, radius: int) -> np.ndarray:
    import SimpleITK as sitk

    eroded = sitk.BinaryErode(sitk.GetImageFromArray(mask.astype(np.uint8)), [radius] * 3,
                              sitk.sitkBall)
    return sitk.GetArrayViewFromImage(eroded).astype(bool)


def _touches_open_sides(region: np.ndarray, low: np.ndarray, high: np.ndarray,
                        shape: np.ndarray) -> np.ndarray:
    """Per axis (slice, row, col): whether the region reaches a side of its box that is not
    the series' own edge (so a larger box could hold more of it)."""
    touching = np.zeros(3, dtype=bool)
    for axis in range(3):
        first = np.take(region, 0, axis=axis).any() and low[axis] > 0
        last = np.take(region, -1, axis=axis).any() and high[axis] < shape[axis]
        touching[axis] = bool(first or last)
    return touching


def _sitk(array: np.ndarray, volume: Volume) -> SimpleITK.Image:
    """`array` (a crop of the volume's grid) as an image with the volume's spacing."""
    return _image(array, volume.spacing[::-1])


def _image(array: np.ndarray, spacing: np.ndarray) -> SimpleITK.Image:
    """`array` as an image whose voxels are `spacing` (slice, row, col) mm."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(v) for v in spacing[::-1]])
    return image


def _check(cancel: Callable[[], bool]) -> None:
    if cancel():
        raise CancelledError("superseded by a newer prompt")
