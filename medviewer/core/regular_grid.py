"""Exact resampling of an irregular acquisition onto a regular, orthogonal grid.

A gantry-tilted CT (slice positions that step off the slice normal) or a stack with uneven
spacing has no orthogonal affine: the :class:`~medviewer.core.volume.Volume` that shows it on
a regular grid puts some slices off their true positions (loading warns). This module rebuilds
the volume from the true Image Position (Patient) of every slice, kept in
``VolumeMetadata.slice_positions``, as Slicer's acquisition transform does.

The output grid keeps the acquired in-plane axes and pixel spacing, on the pixel lattice of the
first slice, widened to cover every slice's pixels; its slice axis is the slice normal, stepped
by the nominal (median) slice distance from the first slice to the last.

An output voxel at distance ``e`` along the normal, between acquired slices ``k`` and ``k+1``
(distances ``d_k <= e <= d_k+1``), takes::

    (1 - w) * I_k(q) + w * I_k+1(q),    w = (e - d_k) / (d_k+1 - d_k)

where ``I_k(q)`` samples slice ``k`` bilinearly at the voxel's in-plane position ``q`` (its foot
point on that plane along the normal). On an acquired plane ``w`` is 0 and the output is that
slice, moved in-plane by its offset: exactly its pixels when the offset is whole pixels. The
slices are parallel, so each is offset by one vector and every output slice is two shifted
copies (separable, no per-voxel coordinates).

Voxels whose foot point falls outside the pixels of a slice they need (the corners a tilted
stack's shear leaves uncovered) take a fill value, by default the volume's minimum (air or the
scanner's padding value for CT). Integer volumes keep their dtype, rounded to the nearest value
(a convex combination never leaves the input range; CT stays int16 and its memory); floating
volumes keep theirs.

Numpy only: the method needs nothing but array shifts, and SimpleITK's resampler could only
take a tilted stack as one sheared image (not uneven spacing), interpolating along the
acquisition step rather than the normal.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from medviewer.core.errors import CancelledError, GeometryError
from medviewer.core.volume import Volume, VolumeMetadata

__all__ = [
    "RegularGrid",
    "needs_regular_grid",
    "plan_regular_grid",
    "resample_regular",
    "slice_position_error",
    "slice_positions",
]

POSITION_TOLERANCE_MM = 1e-3
"""Distances below this (mm) are rounding in the files: offsets snap to whole pixels or planes."""

_MIN_DEVIATION_MM = 0.01
_UID_NAMESPACE = uuid.UUID("6f1c1b0e-6a34-5b4e-9d47-7b1c0e3a2f51")


@dataclass(frozen=True, eq=False)
class RegularGrid:
    """The regular grid of an acquisition and where each of its slices comes from.

    Attributes
    ----------
    affine : numpy.ndarray
        4x4 orthogonal ``(col, row, slice) -> LPS`` affine of the output.
    shape : tuple of int
        ``(slices, rows, cols)`` of the output.
    lower : numpy.ndarray
        For each output slice, the acquired slice at or below it along the normal.
    weight : numpy.ndarray
        For each output slice, the weight of acquired slice ``lower + 1`` (0 on a plane).
    offsets : numpy.ndarray
        ``(n, 2)``: the ``(row, col)`` pixel position in each acquired slice of output pixel
        ``(0, 0)``; output pixel ``(r, c)`` samples it at ``(r, c) + offset``.
    depths : numpy.ndarray
        Distance (mm) of each acquired slice from the first along the output normal.
    lateral : numpy.ndarray
        ``(n, 2)`` in-plane displacement (mm, along rows then columns) of each acquired slice
        from the first: zero unless the gantry was tilted.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    lower: np.ndarray
    weight: np.ndarray
    offsets: np.ndarray
    depths: np.ndarray
    lateral: np.ndarray

    @property
    def spacing(self) -> float:
        """Slice spacing (mm) of the output along the normal."""
        return float(np.linalg.norm(self.affine[:3, 2]))

    def describe(self) -> str:
        """Why the acquisition needed the grid: tilt, uneven spacing and gaps, in words."""
        steps = np.diff(self.depths)
        parts = []
        shift = float(np.linalg.norm(self.lateral[-1]))
        if shift > POSITION_TOLERANCE_MM:
            degrees = np.degrees(np.arctan2(shift, self.depths[-1]))
            parts.append(f"gantry tilt {degrees:.2f} degrees, {shift:.4g} mm shear")
        if np.ptp(steps) > POSITION_TOLERANCE_MM:
            parts.append(f"slice distances {steps.min():.4g} to {steps.max():.4g} mm")
        if steps.max() > 1.5 * self.spacing:
            parts.append(f"values across the {steps.max():.4g} mm gap are interpolated")
        return "; ".join(parts) or "regular acquisition"


# -- positions ------------------------------------------------------------------------------


def slice_positions(volume: Volume) -> np.ndarray:
    """The true Image Position (Patient) of each slice of `volume`, ``(slices, 3)`` LPS mm.

    Raises
    ------
    medviewer.core.errors.GeometryError
        When the volume does not carry one position per slice (not loaded from positioned
        DICOM slices, or derived from such a volume on another grid).
    """
    positions = np.asarray(volume.metadata.slice_positions, dtype=float).reshape(-1, 3)
    if positions.shape[0] != volume.shape[0] or not np.all(np.isfinite(positions)):
        raise GeometryError(
            f"the volume carries {positions.shape[0]} slice positions for {volume.shape[0]} "
            "slices: its acquisition geometry is unknown"
        )
    return positions


def slice_position_error(volume: Volume) -> float:
    """Largest distance (mm) between a slice's true position and where the affine puts it.

    0.0 when the volume carries no slice positions.
    """
    try:
        positions = slice_positions(volume)
    except GeometryError:
        return 0.0
    index = np.arange(volume.shape[0], dtype=float)[:, None]
    placed = volume.affine[:3, 3] + index * volume.affine[:3, 2]
    return float(np.max(np.linalg.norm(positions - placed, axis=1)))


def needs_regular_grid(volume: Volume, tolerance_mm: float | None = None) -> bool:
    """True when some slice of `volume` is shown off its true position (tilt, uneven spacing).

    Parameters
    ----------
    volume : Volume
        A volume loaded from positioned slices.
    tolerance_mm : float, optional
        Largest harmless misplacement; default 1% of the slice spacing, at least 0.01 mm
        (the tolerance of the loader's uneven-spacing check).
    """
    if volume.shape[0] < 2:
        return False
    if tolerance_mm is None:
        tolerance_mm = max(_MIN_DEVIATION_MM, 0.01 * float(volume.spacing[2]))
    return slice_position_error(volume) > tolerance_mm


# -- the plan -------------------------------------------------------------------------------


def plan_regular_grid(volume: Volume, spacing: float | None = None) -> RegularGrid:
    """Compute the regular grid covering `volume`'s acquired slices (see the module notes).

    Parameters
    ----------
    volume : Volume
        Slices in order along their normal, with ``metadata.slice_positions``.
    spacing : float, optional
        Output slice spacing in mm; default the median distance between acquired slices.

    Raises
    ------
    medviewer.core.errors.GeometryError
        Without slice positions, with fewer than 2 slices, or when two slices share a
        position along the normal or are out of order.
    """
    positions = slice_positions(volume)
    if positions.shape[0] < 2:
        raise GeometryError("a single slice has no acquisition grid to regularise")
    axes = volume.affine[:3, :2]  # (col, row) index steps, mm
    normal = _normal(axes, positions)
    depths = _depths(positions, normal)
    step = _spacing(depths, spacing)
    lateral, shifts = _in_plane(positions, axes)
    low, high = np.floor(shifts.min(axis=0)), np.ceil(shifts.max(axis=0))
    count = int(np.floor((depths[-1] + POSITION_TOLERANCE_MM) / step)) + 1
    lower, weight = _brackets(depths, np.arange(count) * step)
    affine = np.eye(4)
    affine[:3, :2] = axes
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[0] + axes @ low[::-1]
    rows, cols = volume.shape[1:]
    shape = (count, rows + int(high[0] - low[0]), cols + int(high[1] - low[1]))
    return RegularGrid(affine, shape, lower, weight, low - shifts, depths, lateral)


def _in_plane(positions: np.ndarray, axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each slice's in-plane displacement from the first: ``(row, col)`` in mm and in pixels
    (whole where within POSITION_TOLERANCE_MM of whole: rounding in the files)."""
    pixel = np.linalg.norm(axes[:, ::-1], axis=0)  # (row, col) spacing
    lateral = (positions - positions[0]) @ (axes[:, ::-1] / pixel)
    pixels = lateral / pixel
    whole = np.round(pixels)
    return lateral, np.where(np.abs(pixels - whole) * pixel <= POSITION_TOLERANCE_MM, whole, pixels)


def _normal(axes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The unit slice normal, pointing from the first slice towards the last."""
    normal = np.cross(axes[:, 0], axes[:, 1])
    normal /= np.linalg.norm(normal)
    return normal if (positions[-1] - positions[0]) @ normal >= 0 else -normal


def _depths(positions: np.ndarray, normal: np.ndarray) -> np.ndarray:
    depths: np.ndarray = (positions - positions[0]) @ normal
    steps = np.diff(depths)
    if np.any(steps <= POSITION_TOLERANCE_MM):
        raise GeometryError(
            "slices repeat a position or are out of order along their normal (smallest "
            f"distance {steps.min():.4g} mm): no single grid holds them"
        )
    return depths


def _spacing(depths: np.ndarray, spacing: float | None) -> float:
    step = float(np.median(np.diff(depths))) if spacing is None else float(spacing)
    if not np.isfinite(step) or step <= POSITION_TOLERANCE_MM:
        raise GeometryError(f"the output slice spacing must be a positive length, got {step}")
    return step


def _brackets(depths: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target depth, the acquired slice below it and the weight of the one above."""
    lower = np.clip(np.searchsorted(depths, targets, side="right") - 1, 0, depths.size - 2)
    gap = depths[lower + 1] - depths[lower]
    below, above = targets - depths[lower], depths[lower + 1] - targets
    weight = np.clip(below / gap, 0.0, 1.0)
    weight[below <= POSITION_TOLERANCE_MM] = 0.0
    weight[above <= POSITION_TOLERANCE_MM] = 1.0
    return lower, weight


# -- resampling -----------------------------------------------------------------------------


def resample_regular(
    volume: Volume,
    *,
    spacing: float | None = None,
    fill: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Volume:
    """Resample an irregular acquisition onto its regular orthogonal grid.

    Parameters
    ----------
    volume : Volume
        Slices in order along their normal, with ``metadata.slice_positions`` (as
        :func:`medviewer.io.series.load_series` gives for positioned DICOM stacks).
    spacing : float, optional
        Output slice spacing (mm); default the median acquired slice distance.
    fill : float, optional
        Value of voxels outside the acquired slices; default the volume's minimum.
    cancel : callable, optional
        Polled after every output slice; True raises
        :class:`~medviewer.core.errors.CancelledError`.
    progress : callable, optional
        ``progress(done, total)`` after every output slice.

    Returns
    -------
    Volume
        On the regular grid (orthogonal affine), same dtype; its metadata says it was resampled
        and from what, carries a derived series UID (results on this grid are kept apart from
        the acquired series') and no source frames (its slices are no acquired images).

    Raises
    ------
    medviewer.core.errors.GeometryError
        See :func:`plan_regular_grid`.
    """
    grid = plan_regular_grid(volume, spacing)
    value = float(np.min(volume.array)) if fill is None else float(fill)
    out = np.empty(grid.shape + volume.array.shape[3:], dtype=volume.array.dtype)
    for index in range(grid.shape[0]):
        out[index] = _stored(_output_slice(volume.array, grid, index), value, out.dtype)
        if cancel is not None and cancel():
            raise CancelledError("resampling cancelled")
        if progress is not None:
            progress(index + 1, grid.shape[0])
    metadata = regular_metadata(volume.metadata, grid, value)
    return Volume(out, grid.affine, metadata)


def _output_slice(array: np.ndarray, grid: RegularGrid, index: int) -> np.ndarray:
    """Output slice `index` in float64, NaN where it needs pixels no slice has."""
    k, w = int(grid.lower[index]), float(grid.weight[index])
    size = grid.shape[1:]
    if w == 0.0:
        return _shifted(array[k], grid.offsets[k], size)
    if w == 1.0:
        return _shifted(array[k + 1], grid.offsets[k + 1], size)
    below = _shifted(array[k], grid.offsets[k], size)
    return below * (1.0 - w) + _shifted(array[k + 1], grid.offsets[k + 1], size) * w


def _shifted(image: np.ndarray, offset: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` sampled bilinearly at ``(r, c) + offset`` for every output pixel ``(r, c)``."""
    rows = _shift_axis(image.astype(np.float64), float(offset[0]), size[0], 0)
    return _shift_axis(rows, float(offset[1]), size[1], 1)


def _shift_axis(image: np.ndarray, offset: float, size: int, axis: int) -> np.ndarray:
    """Linear interpolation of `image` at ``arange(size) + offset`` along `axis`; NaN outside."""
    count = image.shape[axis]
    where = np.arange(size) + offset
    inside = (where >= -1e-9) & (where <= count - 1 + 1e-9)
    where = np.clip(where, 0, count - 1)
    lower = np.clip(np.floor(where).astype(np.intp), 0, max(count - 2, 0))
    upper = np.minimum(lower + 1, count - 1)
    shape = [1] * image.ndim
    shape[axis] = size
    frac = (where - lower).reshape(shape)
    out = np.take(image, lower, axis) * (1.0 - frac) + np.take(image, upper, axis) * frac
    return np.where(inside.reshape(shape), out, np.nan)


def _stored(values: np.ndarray, fill: float, dtype: np.dtype) -> np.ndarray:
    values = np.where(np.isnan(values), fill, values)
    return np.rint(values) if np.issubdtype(dtype, np.integer) else values


# -- metadata -------------------------------------------------------------------------------


def regular_metadata(metadata: VolumeMetadata, grid: RegularGrid, fill: float) -> VolumeMetadata:
    """The metadata of a resampled volume: what it was resampled from, how, and its new UID."""
    note = (
        f"resampled onto a regular grid from {grid.depths.size} acquired slices at their true "
        f"positions ({grid.describe()}): {grid.spacing:.4g} mm along the slice normal, linear "
        f"interpolation; voxels outside the acquired slices are {fill:g}"
    )
    index = np.arange(grid.shape[0], dtype=float)[:, None]
    positions = grid.affine[:3, 3] + index * grid.affine[:3, 2]
    return replace(
        metadata,
        series_uid=derived_uid(metadata.series_uid, grid),
        series_description=f"{metadata.series_description} (regular grid)".strip(),
        warnings=(note, *(f"before resampling: {w}" for w in metadata.warnings)),
        source_frames=(),
        slice_positions=tuple((float(x), float(y), float(z)) for x, y, z in positions),
        extra={**metadata.extra, "regular_grid_of": metadata.series_uid},
    )


def derived_uid(series_uid: str, grid: RegularGrid) -> str:
    """A UID for the resampled series, the same each time the same series is resampled.

    ``2.25.<UUID>`` (ISO/IEC 9834-8), from a name-based UUID of the source UID and the grid;
    empty when the source has no UID.
    """
    if not series_uid:
        return ""
    name = f"{series_uid}|regular grid|{np.round(grid.affine, 6).tolist()}|{grid.shape}"
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, name).int}"
