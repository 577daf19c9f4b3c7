"""True oblique MPR against known geometry: a tilted acquisition read in patient axes, a
rotated frame's three planes, sampled values of a known field, letters and distances."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.errors import GeometryError
from medviewer.core.oblique import IDENTITY, as_rotation, oblique_grid, rotation_about
from medviewer.core.plane_sampling import VolumeSampler


def _tilted_affine(degrees: float) -> np.ndarray:
    """0.8 x 0.8 x 2 mm voxels, the slices tilted `degrees` about LR (a gantry-tilt look)."""
    affine = np.eye(4)
    affine[:3, :3] = rotation_about(np.array([1.0, 0, 0]), degrees) @ np.diag([0.8, 0.8, 2.0])
    affine[:3, 3] = (-20.0, -20.0, -25.0)
    return affine


def _field(affine: np.ndarray, shape) -> np.ndarray:
    k, r, c = np.indices(shape, dtype=float)
    lps = np.einsum("ij,jklm->klmi", affine[:3, :3], np.stack([c, r, k])) + affine[:3, 3]
    return (lps @ np.array([0.5, -0.25, 1.0]) + 3.0).astype(np.float32)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_a_linear_field_is_sampled_exactly_on_rotated_planes(plane):
    affine, shape = _tilted_affine(20.0), (25, 50, 50)
    field = _field(affine, shape)
    rotation = rotation_about(np.array([0.3, 1.0, 0.2]), 25.0)
    grid = oblique_grid(shape, affine, rotation, plane)
    sampler = VolumeSampler(field, affine)
    index = grid.count // 2
    plane_affine = grid.affine(index)
    image = sampler.sample(plane_affine, grid.shape)
    rows, cols = grid.shape
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    lps = (plane_affine[:3, :3] @ np.stack([c.ravel(), r.ravel(), np.zeros(c.size)])).T
    lps += plane_affine[:3, 3]
    truth = (lps @ np.array([0.5, -0.25, 1.0]) + 3.0).reshape(rows, cols)
    voxel = np.linalg.solve(affine[:3, :3], (lps - affine[:3, 3]).T).T
    inner = np.all((voxel >= 0) & (voxel <= np.array(shape[::-1]) - 1), axis=1).reshape(rows,
                                                                                       cols)
    assert inner.sum() > 200
    np.testing.assert_allclose(image[inner], truth[inner], atol=1e-3)
    assert np.isnan(image[~np.isfinite(image)]).all()


def test_a_tilted_acquisition_reads_in_true_axial_planes():
    """A rod along the patient's z axis crosses the tilted slices obliquely; in the true
    axial planes (identity rotation, resampled) it is a dot at the same place on every
    slice, and the letters are the patient's own."""
    affine, shape = _tilted_affine(20.0), (30, 60, 60)
    k, r, c = np.indices(shape, dtype=float)
    lps = np.einsum("ij,jklm->klmi", affine[:3, :3], np.stack([c, r, k])) + affine[:3, 3]
    rod = np.hypot(lps[..., 0] - 4.0, lps[..., 1] - 2.0) < 2.0
    array = np.where(rod, 1000.0, 0.0).astype(np.float32)
    grid = oblique_grid(shape, affine, IDENTITY, "axial")
    assert grid.edge_letters() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    sampler = VolumeSampler(array, affine)
    centres = []
    for index in range(grid.count // 2 - 4, grid.count // 2 + 5):
        image = np.nan_to_num(sampler.sample(grid.affine(index), grid.shape))
        rr, cc = np.nonzero(image > 500)
        centre = grid.affine(index) @ np.array([cc.mean(), rr.mean(), 0, 1.0])
        centres.append(centre[:2])
    np.testing.assert_allclose(centres, [[4.0, 2.0]] * len(centres), atol=0.5)


def test_the_three_planes_stay_orthogonal_and_the_letters_follow_the_rotation():
    rotation = rotation_about(np.array([0.0, 0.0, 1.0]), 30.0)  # about SI
    shape, affine = (20, 40, 40), np.diag([1.0, 1.0, 1.0, 1.0])
    grids = {p: oblique_grid(shape, affine, rotation, p) for p in ("axial", "coronal",
                                                                   "sagittal")}  # fmt: skip
    normals = np.stack([g.normal for g in grids.values()])
    np.testing.assert_allclose(normals @ normals.T, np.eye(3), atol=1e-12)
    axial = grids["axial"]
    np.testing.assert_allclose(axial.right, [np.cos(np.radians(30)), np.sin(np.radians(30)), 0])
    assert axial.edge_letters()["right"] == "LP" and axial.edge_letters()["top"] == "AL"
    # pixels are square mm: two pixels 10 apart along a row are 10 pixel widths apart
    a = axial.affine(3) @ np.array([2, 5, 0, 1.0])
    b = axial.affine(3) @ np.array([12, 5, 0, 1.0])
    assert np.linalg.norm(a - b) == pytest.approx(10 * axial.pixel_mm)
    assert axial.index_of(axial.affine(7)[:3, 3]) == 7
    assert axial.index_of(axial.start - 50 * axial.normal) is None


def test_bad_rotations_are_refused():
    with pytest.raises(GeometryError, match="proper rotation"):
        as_rotation(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(GeometryError, match="proper rotation"):
        as_rotation(np.diag([2.0, 1.0, 1.0]))
    with pytest.raises(GeometryError, match="non-zero axis"):
        rotation_about(np.zeros(3), 10)


def test_a_tiny_spacing_beside_a_large_extent_gives_a_bounded_plane():
    """A hostile file: 0.001 mm slices 400 mm wide would be a 400 000-pixel-wide plane."""
    affine = np.diag([0.8, 0.8, 0.001, 1.0])
    grid = oblique_grid((10, 500, 500), affine, rotation_about(np.array([1.0, 0, 0]), 30.0),
                        "coronal")  # fmt: skip
    assert max(grid.shape) <= 2048 and grid.count <= 2048
    assert grid.pixel_mm == pytest.approx(400.0 / 2048, rel=0.05)
