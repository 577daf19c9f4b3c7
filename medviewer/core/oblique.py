"""True oblique MPR: the three planes of a rotated patient frame, resampled through the affine.

The standard planes (axial, coronal, sagittal) have fixed axes in patient space (LPS):
screen-right, screen-down and the normal the slices step along. A rotation ``R`` (3x3, a
proper rotation in LPS) turns all three frames together, so the planes stay orthogonal and
each view's crosshair lines (the other two planes) stay horizontal and vertical on screen.
``R`` = identity through this module is the patient axes themselves, resampled: how a tilted
acquisition is read in true axial, coronal and sagittal.

:func:`oblique_grid` lays a plane's pixels over the volume: square pixels of the volume's
finest spacing, slices that far apart, covering the volume's box; slice ``index`` of the
plane is an affine like :class:`~medviewer.core.geometry.PlaneSlice`'s, so everything drawn
through plane affines (crosshair, measurements, overlays, fusion) follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.core.errors import GeometryError
from medviewer.core.geometry import Plane, PlaneSlice, orientation_letters

# (normal, screen-right, screen-down) of each standard plane, as geometry.reslice shows them
PLANE_AXES: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    "axial": (np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
    "coronal": (np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "sagittal": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),
}  # fmt: skip
IDENTITY: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
#: The most pixels (and slices) along any axis of a rotated plane: a file whose spacing is
#: tiny beside its extent gets coarser pixels, not a plane too large to allocate.
MAX_PLANE_SIDE = 2048


def rotation_about(axis: np.ndarray, degrees: float) -> np.ndarray:
    """The 3x3 rotation by `degrees` about `axis` (LPS, right-handed; Rodrigues)."""
    unit = np.asarray(axis, float)
    length = np.linalg.norm(unit)
    if length == 0:
        raise GeometryError("a rotation needs a non-zero axis")
    x, y, z = unit / length
    angle = np.radians(degrees)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.asarray(np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k))


def as_rotation(rotation: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """A validated 3x3 proper rotation (orthonormal, determinant +1)."""
    matrix = np.asarray(rotation, float).reshape(3, 3)
    if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-6) or np.linalg.det(matrix) < 0:
        raise GeometryError("the MPR rotation must be a proper rotation matrix")
    return matrix


@dataclass(frozen=True)
class ObliqueGrid:
    """The pixels and slices of one rotated plane over a volume (see :func:`oblique_grid`)."""

    right: np.ndarray  # unit vectors, LPS
    down: np.ndarray
    normal: np.ndarray
    pixel_mm: float
    step_mm: float
    start: np.ndarray  # the LPS centre of pixel (0, 0) of slice 0
    shape: tuple[int, int]  # rows, cols
    count: int

    def affine(self, index: int) -> np.ndarray:
        """The ``(col, row, k, 1)`` -> LPS matrix of slice `index`."""
        if not 0 <= index < self.count:
            raise IndexError(f"plane index {index} out of range for {self.count} slice(s)")
        out = np.eye(4)
        out[:3, 0] = self.right * self.pixel_mm
        out[:3, 1] = self.down * self.pixel_mm
        out[:3, 2] = self.normal * self.step_mm
        out[:3, 3] = self.start + self.normal * self.step_mm * index
        return out

    def index_of(self, point: np.ndarray) -> int | None:
        """The slice holding an LPS point, or None outside the grid."""
        depth = float((np.asarray(point, float) - self.start) @ self.normal) / self.step_mm
        index = round(depth)
        return index if 0 <= index < self.count else None

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters of the four screen edges."""
        return {"left": orientation_letters(-self.right), "right": orientation_letters(self.right),
                "top": orientation_letters(-self.down), "bottom": orientation_letters(self.down)}

    def plane_slice(self, index: int, image: np.ndarray) -> PlaneSlice:
        """Slice `index` with its sampled `image` as a PlaneSlice."""
        return PlaneSlice(image, self.affine(index), (self.pixel_mm, self.pixel_mm),
                          self.edge_letters())  # fmt: skip


def oblique_grid(
    shape: tuple[int, ...], affine: np.ndarray, rotation: tuple[float, ...] | np.ndarray,
    plane: Plane,
) -> ObliqueGrid:
    """The rotated `plane`'s grid over a volume of `shape` (slices, rows, cols) and `affine`.

    Pixels and the slice step are the volume's finest spacing (coarser when that would make
    more than MAX_PLANE_SIDE of them along an axis); the grid covers the volume's box (voxel
    edges), centred on it.
    """
    matrix = as_rotation(rotation)
    try:
        normal0, right0, down0 = PLANE_AXES[plane]
    except KeyError:
        raise GeometryError(f"unknown plane {plane!r}") from None
    normal, right, down = matrix @ normal0, matrix @ right0, matrix @ down0
    linear = np.asarray(affine, float)[:3, :3]
    pixel = float(np.min(np.linalg.norm(linear, axis=0)))
    n_slices, n_rows, n_cols = (int(v) for v in shape[:3])
    corners = np.array([[c, r, k] for c in (-0.5, n_cols - 0.5) for r in (-0.5, n_rows - 0.5)
                        for k in (-0.5, n_slices - 0.5)])  # fmt: skip
    lps = corners @ linear.T + np.asarray(affine, float)[:3, 3]
    axes = np.stack([right, down, normal])
    low, high = (lps @ axes.T).min(axis=0), (lps @ axes.T).max(axis=0)
    pixel = max(pixel, float(np.max(high - low)) / MAX_PLANE_SIDE)
    sizes = np.maximum(np.ceil((high - low) / pixel - 1e-6).astype(int), 1)
    # centre the pixel grid on the box
    spare = sizes * pixel - (high - low)
    first = low - spare / 2 + pixel / 2
    start = first[0] * right + first[1] * down + first[2] * normal
    return ObliqueGrid(right, down, normal, pixel, pixel, start,
                       (int(sizes[1]), int(sizes[0])), int(sizes[2]))  # fmt: skip
