"""Fusion sampling against known truth: a linear field on a tilted, anisotropic grid is
reproduced exactly at a plane's pixels of another grid; outside it is NaN; colours follow
the window."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.fusion import (
    FusionStyle,
    color_table,
    colorize,
    fusion_index,
    sample_plane,
)
from medviewer.core.geometry import reslice


def _rotation(degrees_z: float, degrees_x: float) -> np.ndarray:
    a, b = np.radians(degrees_z), np.radians(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


PET_AFFINE = np.eye(4)
PET_AFFINE[:3, :3] = _rotation(20.0, 8.0) @ np.diag([4.0, 3.5, 5.0])
PET_AFFINE[:3, 3] = (-60.0, -50.0, -40.0)
CT_AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])
CT_AFFINE[:3, 3] = (-40.0, -30.0, -20.0)
GRADIENT, OFFSET = np.array([0.3, -0.2, 0.5]), 7.0


def _field(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    k, r, c = np.indices(shape, dtype=float)
    lps = np.einsum("ij,jklm->iklm", affine[:3, :3], np.stack([c, r, k])) + affine[:3, 3, None,
                                                                                    None, None]
    return np.einsum("i,iklm->klm", GRADIENT, lps) + OFFSET


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_a_linear_field_is_sampled_exactly_at_every_pixel_inside(plane):
    pet = _field(PET_AFFINE, (20, 24, 26)).astype(np.float32)
    ct = np.zeros((30, 60, 70), np.int16)
    centre = reslice(ct, CT_AFFINE, plane, {"axial": 12, "coronal": 30, "sagittal": 35}[plane])
    sampled = sample_plane(pet, PET_AFFINE, centre, scale=2.0)
    rows, cols = centre.image.shape
    c, r = np.meshgrid(np.arange(cols), np.arange(rows))
    lps = (centre.affine[:3, :3] @ np.stack([c.ravel(), r.ravel(), np.zeros(c.size)])).T
    lps += centre.affine[:3, 3]
    truth = (lps @ GRADIENT + OFFSET).reshape(rows, cols) * 2.0
    inside = np.isfinite(sampled)
    assert inside.mean() > 0.3  # the planes cross the PET volume
    # a pixel is inside exactly when it lies within a voxel (half a voxel past the centres);
    # between the outer voxel centres the interpolation is exact, past them it holds the
    # outer value (no extrapolation)
    voxel = np.linalg.solve(PET_AFFINE[:3, :3], (lps - PET_AFFINE[:3, 3]).T).T
    size = np.array([26, 24, 20])
    within = np.all((voxel >= -0.5) & (voxel <= size - 0.5), axis=1)
    np.testing.assert_array_equal(inside.ravel(), within)
    centres = np.all((voxel >= 0) & (voxel <= size - 1), axis=1).reshape(rows, cols)
    assert centres.sum() > 0.8 * inside.sum()
    np.testing.assert_allclose(sampled[centres], truth[centres], atol=1e-3)
    clamped = np.clip(voxel, 0, size - 1)
    edge_truth = (clamped @ PET_AFFINE[:3, :3].T + PET_AFFINE[:3, 3]) @ GRADIENT + OFFSET
    edge = inside & ~centres
    np.testing.assert_allclose(sampled[edge], 2.0 * edge_truth.reshape(rows, cols)[edge],
                               atol=1e-3)  # fmt: skip


def test_a_hot_voxel_shows_where_it_lies():
    pet = np.zeros((10, 12, 14), np.float32)
    pet[6, 4, 9] = 100.0
    hot = PET_AFFINE[:3, :3] @ np.array([9.0, 4.0, 6.0]) + PET_AFFINE[:3, 3]
    ct = np.zeros((80, 100, 100), np.int16)
    ct_affine = np.diag([0.5, 0.5, 0.5, 1.0])
    ct_affine[:3, 3] = hot - np.array([25.0, 25.0, 0.0]) - np.array([0.0, 0.0, 20.0])
    plane = reslice(ct, ct_affine, "axial", 40)  # z = hot z
    sampled = sample_plane(pet, PET_AFFINE, plane)
    row, col = np.unravel_index(int(np.nanargmax(sampled)), sampled.shape)
    where = plane.affine[:3, :3] @ np.array([col, row, 0.0]) + plane.affine[:3, 3]
    assert np.linalg.norm(where - hot) <= 0.5
    assert sampled[row, col] == pytest.approx(100.0, rel=0.05)


def test_colours_follow_the_window_and_nan_is_transparent():
    style = FusionStyle(low=1.0, high=5.0, opacity=0.6, color_map="hot iron")
    rgba = colorize(np.array([[np.nan, 0.5, 1.0, 3.0, 5.0, 9.0, 1.5]], np.float32), style)
    assert list(rgba[0, :6, 3]) == [0, 0, 0, 153, 153, 153]
    assert abs(int(rgba[0, 6, 3]) - 76) <= 1  # 1.5: half way up the fade (a 255-step table)
    table = color_table("hot iron")
    assert (rgba[0, 4, :3] == table[255]).all() and (rgba[0, 5, :3] == table[255]).all()
    assert (rgba[0, 3, :3] == table[128]).all()
    assert list(fusion_index(np.array([np.nan, 0.0, 1.0, 3.0, 5.0, 7.0]), 1.0, 5.0)) == [
        0, 0, 1, 128, 255, 255]  # low itself: the first, transparent entry
    assert tuple(table[0]) == (0, 0, 0) and tuple(table[255]) == (255, 255, 255)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"color_map": "jet"}, "unknown colour map"), ({"low": 5.0, "high": 5.0}, "must exceed"),
     ({"opacity": 1.5}, "opacity")],
)  # fmt: skip
def test_bad_styles_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FusionStyle(**kwargs)
