"""Brush and eraser on a label map, with undo and redo. numpy only.

A dab paints (or erases) a disk of radius `radius_mm` centred on an LPS point, on the plane a
viewport shows: the voxels of that plane whose centres lie within the radius. Voxels are found
through the plane's screen affine (as :func:`medviewer.core.geometry.reslice` returns it) and
the label map's own affine, so a dab lands on exactly the voxels drawn under the cursor, in
every plane and for oblique or anisotropic grids.

A stroke (press, drag, release) is one undo step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Stroke:
    """The voxels one stroke changed: flat indices, values before and after."""

    index: np.ndarray
    before: np.ndarray
    after: np.ndarray


def disk_voxels(
    plane_affine: np.ndarray,
    plane_shape: tuple[int, int],
    volume_affine: np.ndarray,
    volume_shape: tuple[int, int, int],
    center_lps: np.ndarray,
    radius_mm: float,
) -> np.ndarray:
    """Flat indices into the volume of the plane's voxels within `radius_mm` of a point.

    Parameters
    ----------
    plane_affine : numpy.ndarray
        4x4 ``(screen_col, screen_row, 0, 1)`` -> LPS of the shown plane.
    plane_shape : (rows, cols)
        Size of the shown plane.
    volume_affine : numpy.ndarray
        4x4 ``(col, row, slice, 1)`` -> LPS of the label map.
    volume_shape : (slices, rows, cols)
    center_lps : numpy.ndarray
        Centre of the disk (projected onto the plane).
    radius_mm : float
    """
    to_screen = np.linalg.inv(plane_affine)
    col, row = (to_screen @ np.append(np.asarray(center_lps, float), 1.0))[:2]
    sx = float(np.linalg.norm(plane_affine[:3, 0]))
    sy = float(np.linalg.norm(plane_affine[:3, 1]))
    rows, cols = plane_shape
    r0, r1 = _span(row, radius_mm / sy, rows)
    c0, c1 = _span(col, radius_mm / sx, cols)
    rr, cc = np.mgrid[r0:r1, c0:c1]
    inside = ((rr - row) * sy) ** 2 + ((cc - col) * sx) ** 2 <= radius_mm**2
    rr, cc = rr[inside], cc[inside]
    if rr.size == 0:
        return np.empty(0, np.int64)
    screen = np.stack([cc, rr, np.zeros_like(rr), np.ones_like(rr)]).astype(float)
    voxel = np.linalg.inv(volume_affine) @ (plane_affine @ screen)
    c, r, s = (np.rint(voxel[i]).astype(np.int64) for i in range(3))
    keep = (
        (s >= 0) & (s < volume_shape[0]) & (r >= 0) & (r < volume_shape[1])
        & (c >= 0) & (c < volume_shape[2])
    )  # fmt: skip
    flat_index: np.ndarray = np.ravel_multi_index((s[keep], r[keep], c[keep]), volume_shape)
    return flat_index


def _span(centre: float, radius: float, size: int) -> tuple[int, int]:
    return max(int(np.floor(centre - radius)), 0), min(int(np.ceil(centre + radius)) + 1, size)


def _flat(labels: np.ndarray) -> np.ndarray:
    """A flat view of the label map (never a copy: edits must land in the array)."""
    if not labels.flags.c_contiguous:
        raise ValueError("label maps are edited in place and must be C-contiguous")
    return labels.reshape(-1)


@dataclass
class LabelEditHistory:
    """Strokes on one label map, with undo and redo.

    Use :meth:`dab` while the mouse moves and :meth:`end_stroke` on release; every dab of a
    stroke is undone together.
    """

    changed_labels: frozenset[int] = frozenset()
    """Labels (not 0) the last stroke, undo or redo changed."""
    _done: list[_Stroke] = field(default_factory=list)
    _undone: list[_Stroke] = field(default_factory=list)
    _open: dict[int, int] = field(default_factory=dict)  # flat index -> value before the stroke

    def dab(self, labels: np.ndarray, voxels: np.ndarray, label: int, erase: bool) -> int:
        """Paint `label` on `voxels` (or erase it there: set those of `label` to 0).

        Returns how many voxels changed.
        """
        flat = _flat(labels)
        if erase:
            voxels = voxels[flat[voxels] == label]
            value = 0
        else:
            voxels = voxels[flat[voxels] != label]
            value = label
        for index, before in zip(voxels.tolist(), flat[voxels].tolist(), strict=True):
            self._open.setdefault(index, before)
        flat[voxels] = value
        return int(voxels.size)

    def end_stroke(self, labels: np.ndarray) -> bool:
        """Close the stroke as one undo step; False when it changed nothing."""
        if not self._open:
            return False
        index = np.fromiter(self._open, np.int64, len(self._open))
        before = np.fromiter(self._open.values(), labels.dtype, len(self._open))
        self._open = {}
        after = _flat(labels)[index].copy()
        changed = after != before
        if not changed.any():
            return False
        stroke = _Stroke(index[changed], before[changed], after[changed])
        self._done.append(stroke)
        self._undone.clear()
        self._note_labels(stroke)
        return True

    def _note_labels(self, stroke: _Stroke) -> None:
        values = np.union1d(np.unique(stroke.before), np.unique(stroke.after))
        self.changed_labels = frozenset(int(v) for v in values if v != 0)

    @property
    def can_undo(self) -> bool:
        """True when a stroke can be undone."""
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        """True when an undone stroke can be redone."""
        return bool(self._undone)

    def undo(self, labels: np.ndarray) -> bool:
        """Undo the last stroke; False when there is none."""
        return self._move(labels, self._done, self._undone, redo=False)

    def redo(self, labels: np.ndarray) -> bool:
        """Redo the last undone stroke; False when there is none."""
        return self._move(labels, self._undone, self._done, redo=True)

    def _move(
        self, labels: np.ndarray, source: list[_Stroke], target: list[_Stroke], redo: bool
    ) -> bool:
        if not source:
            return False
        stroke = source.pop()
        _flat(labels)[stroke.index] = stroke.after if redo else stroke.before
        target.append(stroke)
        self._note_labels(stroke)
        return True
