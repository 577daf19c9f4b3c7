"""Thick slabs against known truth: which voxels a slab holds, where they land on screen, and
that scrolling incrementally gives the same image as computing it from scratch."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.errors import GeometryError
from medviewer.core.geometry import patient_to_voxel, plane_count, reslice
from medviewer.core.slab import (
    Slab,
    SlabProjector,
    cycled,
    project,
    slab_image,
    slab_slices,
    slab_thickness_mm,
    slab_window,
    stepped,
)

# A volume stored head first with flipped rows and columns: axis 0 runs towards the feet
# (-z, 2.5 mm), rows towards anterior (-y, 0.8 mm), columns towards the patient's right (-x,
# 0.7 mm), so every plane's screen flips and the plane index counts against the array.
FLIPPED = np.array([
    [-0.7, 0.0, 0.0, 100.0],
    [0.0, -0.8, 0.0, 50.0],
    [0.0, 0.0, -2.5, 200.0],
    [0.0, 0.0, 0.0, 1.0],
])  # fmt: skip


@pytest.mark.parametrize(
    ("thickness", "spacing", "slices"),
    [(10.0, 1.25, 9), (10.0, 2.5, 5), (10.0, 5.0, 3), (1.0, 2.5, 1), (2.0, 1.0, 3),
     (100.0, 0.625, 161), (3.0, 3.0, 1)],
)  # fmt: skip
def test_slab_covers_the_nearest_odd_number_of_slices(thickness, spacing, slices):
    assert slab_slices(thickness, spacing) == slices


def test_slab_window_is_centred_and_cut_at_the_volume_ends():
    assert slab_window(10, 40, 9) == (6, 14)
    assert slab_window(2, 40, 9) == (0, 6)
    assert slab_window(38, 40, 9) == (34, 39)
    assert slab_window(0, 1, 9) == (0, 0)


@pytest.mark.parametrize(
    ("mode", "thickness", "message"),
    [("max", 5.0, "unknown slab mode"), ("mip", 0.0, "thickness"), ("mip", 101.0, "thickness")],
)
def test_bad_slabs_are_refused(mode, thickness, message):
    with pytest.raises(ValueError, match=message):
        Slab(mode, thickness)


def test_a_bright_voxel_shows_in_the_mip_of_every_slab_that_holds_it_and_where_it_lies():
    array = np.zeros((30, 40, 50), np.int16)
    voxel = (12, 7, 33)  # (slice, row, col)
    array[voxel] = 1000
    lps = FLIPPED[:3, :3] @ np.array(voxel[::-1], float) + FLIPPED[:3, 3]
    slab = Slab("mip", 10.0)  # 5 slices of 2.5 mm: 12.5 mm
    count = plane_count(array.shape, FLIPPED, "axial")
    for index in range(count):
        image = slab_image(array, FLIPPED, "axial", index, slab)
        centre = reslice(array, FLIPPED, "axial", index)
        centre_z = float(centre.affine[2, 3])
        inside = abs(centre_z - lps[2]) <= 2 * 2.5 + 1e-6
        assert (image.max() == 1000) == inside, index
        if inside:  # the projected voxel lies where the plane's affine puts the voxel's x, y
            row, col = np.argwhere(image == 1000)[0]
            shown = centre.affine[:3, :3] @ np.array([col, row, 0.0]) + centre.affine[:3, 3]
            np.testing.assert_allclose(shown[:2], lps[:2], atol=1e-9)
    assert slab_thickness_mm(slab, reslice(array, FLIPPED, "axial", 0)) == pytest.approx(12.5)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_a_tilted_rod_projects_to_the_segment_inside_the_slab(plane):
    """A rod running diagonally through the volume: the MIP of a slab shows the part of the
    rod whose through-plane coordinate lies within the slab, at its in-plane position."""
    array = np.zeros((24, 30, 36), np.int16)
    points = []
    for t in np.linspace(0.0, 1.0, 400):
        s, r, c = (round(2 + 19 * t), round(3 + 24 * t), round(4 + 29 * t))
        array[s, r, c] = 500
        points.append((s, r, c))
    voxels = np.array(sorted(set(points)))
    lps = (FLIPPED[:3, :3] @ voxels[:, ::-1].T).T + FLIPPED[:3, 3]
    axis = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
    index = plane_count(array.shape, FLIPPED, plane) // 2
    centre = reslice(array, FLIPPED, plane, index)
    spacing = float(np.linalg.norm(centre.affine[:3, 2]))
    image = slab_image(array, FLIPPED, plane, index, Slab("mip", 4 * spacing))  # 5 slices
    inside = np.abs(lps[:, axis] - centre.affine[axis, 3]) <= 2 * spacing + 1e-6
    expected = np.zeros(image.shape, bool)
    screen = patient_to_voxel(centre.affine, lps[inside])  # (col, row, k) of the plane
    expected[np.round(screen[:, 1]).astype(int), np.round(screen[:, 0]).astype(int)] = True
    np.testing.assert_array_equal(image == 500, expected)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("mode", ["mip", "minip", "avg"])
def test_scrolling_incrementally_equals_computing_each_slab_from_scratch(plane, mode):
    rng = np.random.default_rng(4)
    array = rng.integers(-1000, 3000, (23, 17, 19)).astype(np.int16)
    slab = Slab(mode, 7.5 if plane == "axial" else 3.0)
    count = plane_count(array.shape, FLIPPED, plane)
    projector = SlabProjector()
    path = [*range(count), *range(count - 1, -1, -1), 5, count - 2, 6, 0, count - 1, 3, 4, 5]
    for index in path:
        got = projector.image(array, FLIPPED, plane, index, slab)
        want = slab_image(array, FLIPPED, plane, index, slab)
        assert got.dtype == (np.float64 if mode == "avg" else np.int16)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=f"{plane} {index}")


def test_the_reference_projection_of_a_stack():
    stack = np.array([[[1, 5]], [[3, -2]], [[2, 0]]], np.int16)
    np.testing.assert_array_equal(project(stack, "mip"), [[3, 5]])
    np.testing.assert_array_equal(project(stack, "minip"), [[1, -2]])
    np.testing.assert_allclose(project(stack, "avg"), [[2.0, 1.0]])


@pytest.mark.parametrize("mode", ["mip", "avg"])
def test_scrolling_reads_about_two_slices_a_frame_whatever_the_thickness(mode):
    array = np.zeros((200, 8, 8), np.int16)
    affine = np.diag([1.0, 1.0, 0.5, 1.0])
    projector = SlabProjector()
    slab = Slab(mode, 20.0)  # 41 slices
    projector.image(array, affine, "axial", 50, slab)
    before = projector.recomputed_slices
    for index in range(51, 151):
        projector.image(array, affine, "axial", index, slab)
    per_frame = (projector.recomputed_slices - before) / 100
    assert per_frame <= 2.5  # a fresh projection would read 41


def test_invalidate_picks_up_values_that_changed():
    array = np.zeros((10, 4, 4), np.int16)
    projector = SlabProjector()
    slab = Slab("mip", 5.0)
    assert projector.image(array, np.eye(4), "axial", 5, slab).max() == 0
    array[6, 1, 1] = 9  # a slice of a loading series arrived
    projector.invalidate()
    assert projector.image(array, np.eye(4), "axial", 5, slab)[1, 1] == 9


def test_colour_volumes_have_no_slab():
    with pytest.raises(GeometryError, match="colour"):
        SlabProjector().image(np.zeros((4, 3, 3, 3), np.uint8), np.eye(4), "axial", 1,
                              Slab("mip", 3.0))  # fmt: skip


def test_the_slab_keys_cycle_the_projections_and_step_the_thickness():
    assert cycled(None) == Slab("mip", 10.0)
    assert cycled(Slab("mip", 20.0)) == Slab("minip", 20.0)
    assert cycled(Slab("minip", 20.0)) == Slab("avg", 20.0)
    assert cycled(Slab("avg", 20.0)) is None
    assert stepped(Slab("mip", 10.0), 1) == Slab("mip", 15.0)
    assert stepped(Slab("avg", 12.0), -1) == Slab("avg", 10.0)
    assert stepped(Slab("mip", 100.0), 1) == Slab("mip", 100.0)
    assert stepped(Slab("mip", 3.0), -1) is None
    assert stepped(None, 1) == Slab("mip", 3.0)
    assert stepped(None, -1) is None


def test_a_nan_leaves_the_running_average_with_the_slice_that_held_it():
    array = np.ones((40, 4, 4), np.float32)
    array[10, 1, 1] = np.nan
    projector, slab = SlabProjector(), Slab("avg", 5.0)  # 5 slices of 1 mm
    for index in range(40):
        got = projector.image(array, np.eye(4), "axial", index, slab)
        assert np.isnan(got[1, 1]) == (8 <= index <= 12), index


def test_a_slab_too_thick_for_blocks_is_projected_from_scratch(monkeypatch):
    from medviewer.core import slab as slab_module

    monkeypatch.setattr(slab_module, "MAX_BLOCK_BYTES", 1000)  # two 8x8 int16 blocks: 1 KB
    rng = np.random.default_rng(1)
    array = rng.integers(0, 100, (40, 8, 8)).astype(np.int16)
    projector, slab = SlabProjector(), Slab("mip", 21.0)  # 21 slices of 1 mm
    for index in range(40):
        np.testing.assert_array_equal(projector.image(array, np.eye(4), "axial", index, slab),
                                      slab_image(array, np.eye(4), "axial", index, slab))
    assert not projector._blocks
