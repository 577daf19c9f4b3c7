"""Labels on the volume grid from model-grid probabilities, without resampling every channel.

A resampled segmentation decides each volume voxel's label from its probabilities linearly
interpolated from the model grid (edges keep sub-voxel accuracy). Resampling every channel of
a 512 x 512 x 300 CT takes most of a run on a CPU (11 s of the lung model's 14 s on this
project's 2-core machine), although nearly every voxel's answer is known without it:

* a convex combination of probability vectors that all decide the same label decides that
  label too (softmax: ``p_k >= p_j`` at every corner holds for any weighted mean, strict
  inequalities stay strict; sigmoid: the threshold and the comparisons likewise), so a volume
  voxel inside a model-grid cell whose eight corners share a label gets that label, which is
  also the label of its nearest model voxel;
* only voxels in *mixed* cells (corners with different labels) near the labels' edges need
  their probabilities interpolated, and there are few of them.

:func:`labels_on_volume` therefore takes each voxel's nearest model-grid label and
interpolates the probabilities at mixed-cell voxels only, as SimpleITK's linear interpolator
does (neighbours clamped at the grid's edge; beyond half a voxel outside
it, the nearest voxel, as ``SetUseNearestNeighborExtrapolator`` gives). The result equals
resampling every channel and deciding on the volume grid (tested against it); no Qt, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medviewer.ai.transforms import ModelGrid

#: Decides labels from probabilities ``[K, ...]`` (:func:`medviewer.ai.decisions.decide_labels`).
Decide = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Axis:
    """Where the reoriented indices along one model dim fall on the model grid."""

    lower: np.ndarray  # model index of each position's cell (its lower corner), int
    upper: np.ndarray  # the cell's upper corner (== lower on a one-voxel axis)
    weight: np.ndarray  # the upper corner's weight, float64
    inside: np.ndarray  # within half a voxel of the grid (SimpleITK interpolates there)
    nearest: np.ndarray  # the nearest model index (a corner of the cell inside the grid)

    @classmethod
    def of(cls, positions: np.ndarray, size: int) -> _Axis:
        inside = (positions >= -0.5) & (positions < size - 0.5)
        clamped = np.clip(positions, 0.0, size - 1.0)
        lower = np.minimum(np.floor(clamped).astype(np.intp), max(size - 2, 0))
        upper = np.minimum(lower + 1, size - 1)
        nearest = np.clip(np.rint(positions), 0, size - 1).astype(np.intp)
        return cls(lower, upper, clamped - lower, inside, nearest)


def labels_on_volume(
    grid: ModelGrid,
    probabilities: np.ndarray,
    decide: Decide,
    check_cancel: Callable[[], None] | None = None,
) -> np.ndarray:
    """The volume-grid label map of model-grid `probabilities` ``[K, d0, d1, d2]``.

    Parameters
    ----------
    grid : ModelGrid
    probabilities : numpy.ndarray
        float32, one channel per output channel, on the model grid.
    decide : callable
        Probabilities ``[K, ...]`` -> labels ``[...]``, voxel by voxel.
    check_cancel : callable, optional
        Called between slices (raises to stop).

    Returns
    -------
    numpy.ndarray
        Labels ``[slice, row, col]`` of `decide`'s dtype.
    """
    model_labels = decide(probabilities)
    if not grid.resampled:
        return grid.to_volume(model_labels, linear=False)
    axes = [_Axis.of(grid.model_positions(d), model_labels.shape[d]) for d in range(3)]
    labels = model_labels  # each voxel's nearest model voxel: right where a cell's corners agree
    for d, axis in enumerate(axes):
        labels = np.take(labels, axis.nearest, axis=d)
    mixed = _mixed_cells(model_labels)
    inside_12 = axes[1].inside[:, None] & axes[2].inside[None, :]
    cells_12 = np.ix_(axes[1].lower, axes[2].lower)
    for i in (int(k) for k in np.flatnonzero(axes[0].inside)):
        if check_cancel is not None:
            check_cancel()
        band = mixed[axes[0].lower[i]][cells_12] & inside_12
        rows, cols = np.nonzero(band)
        if rows.size:
            values = _interpolated(probabilities, axes, i, rows, cols)
            labels[i, rows, cols] = decide(values)
    return grid.reoriented_to_volume(labels)


def _mixed_cells(labels: np.ndarray) -> np.ndarray:
    """Per cell (indexed by its lower corner): whether its up to eight corners differ."""
    views = []
    for corner in np.ndindex(2, 2, 2):
        index = tuple(
            slice(c, c + max(n - 1, 1)) if n > 1 else slice(0, 1)
            for c, n in zip(corner, labels.shape, strict=True)
        )
        views.append(labels[index])
    low, high = views[0].copy(), views[0].copy()
    for view in views[1:]:
        np.minimum(low, view, out=low)
        np.maximum(high, view, out=high)
    return low != high


def _interpolated(
    probabilities: np.ndarray, axes: list[_Axis], i: int, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Trilinear probabilities ``[K, n]`` at reoriented voxels ``(i, rows, cols)``."""
    a, b, c = axes
    corners = ((a.lower[i], a.upper[i], a.weight[i]),
               (b.lower[rows], b.upper[rows], b.weight[rows]),
               (c.lower[cols], c.upper[cols], c.weight[cols]))
    out = np.empty((probabilities.shape[0], rows.size), np.float32)
    for k, channel in enumerate(probabilities):
        out[k] = _trilinear(channel, *corners)
    return out


Corners = tuple[np.ndarray | np.intp, np.ndarray | np.intp, np.ndarray | np.float64]


def _trilinear(channel: np.ndarray, d0: Corners, d1: Corners, d2: Corners) -> np.ndarray:
    """`channel` interpolated between (lower, upper) corners with the upper's weight, per dim.

    Nested linear steps along d0, d1, d2 in float64, as SimpleITK's linear interpolator
    computes them for a float32 image; the caller rounds to float32 as it returns them.
    """
    (l0, u0, w0), (l1, u1, w1), (l2, u2, w2) = d0, d1, d2

    def along_d0(i1: np.ndarray | np.intp, i2: np.ndarray | np.intp) -> np.ndarray:
        low = channel[l0, i1, i2].astype(np.float64)
        return low + (channel[u0, i1, i2] - low) * w0

    v00, v10 = along_d0(l1, l2), along_d0(u1, l2)
    v01, v11 = along_d0(l1, u2), along_d0(u1, u2)
    v0 = v00 + (v10 - v00) * w1
    v1 = v01 + (v11 - v01) * w1
    return v0 + (v1 - v0) * w2


def probabilities_at(
    grid: ModelGrid, channel: np.ndarray, index: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """One model-grid probability channel ``[d0, d1, d2]`` at volume voxels.

    Parameters
    ----------
    grid : ModelGrid
    channel : numpy.ndarray
        float32 on the model grid.
    index : tuple of numpy.ndarray
        ``(slice, row, col)`` index arrays into the volume grid.

    Returns
    -------
    numpy.ndarray
        float32, the values :func:`labels_on_volume` decides from (linear interpolation with
        the edge clamped; exact model values where the grid is not resampled).
    """
    source = (index[2], index[1], index[0])  # (col, row, slice)
    reoriented = []
    for d in range(3):
        axis = grid.reorientation.perm[d]
        i = np.asarray(source[axis], dtype=np.intp)
        if grid.reorientation.flip[d]:
            i = grid.source_shape[axis] - 1 - i
        reoriented.append(i)
    axes = [_Axis.of(grid.model_positions(d)[reoriented[d]], channel.shape[d]) for d in range(3)]
    corners = [(axis.lower, axis.upper, axis.weight) for axis in axes]
    return _trilinear(channel, *corners).astype(np.float32)
