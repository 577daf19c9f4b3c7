"""Tests of medviewer.synthetic.phantom: determinism, drawn ranges, anatomy in LPS, radiograph
geometry.

Renders use small grids (3.5 mm pixels, 4 mm slices) or small local grids around one nodule.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest

from medviewer.synthetic.phantom import (
    LEFT_LUNG,
    NODULE,
    RADIOGRAPH_NODULE_MM,
    RIGHT_LUNG,
    AxialGrid,
    ChestCase,
    Nodule,
    Radiograph,
    chest_case,
    ct_grid,
    render_ct,
    render_radiograph,
)

GRID = AxialGrid(
    rows=120,
    cols=120,
    pixel_spacing=3.5,
    origin_xy=(-210.0, -200.0),
    z_positions=tuple(float(z) for z in np.arange(-150, 150, 4.0)),
)
GRID_DIAGONAL_MM = math.sqrt(3.5**2 + 3.5**2 + 4.0**2)
ANATOMY_SEEDS = (0, 3, 6)


@functools.cache
def case_of(seed: int) -> ChestCase:
    return chest_case(seed)


@functools.cache
def rendered(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free (HU, labels) of case `seed` on GRID."""
    return render_ct(case_of(seed), GRID, noise=False)


@functools.cache
def radiograph(seed: int, without_nodules: bool = False) -> Radiograph:
    case = case_of(seed)
    return render_radiograph(dataclasses.replace(case, nodules=()) if without_nodules else case)


def coordinates(grid: AxialGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS x, y, z of every voxel of `grid`, each shaped ``grid.shape``."""
    z, y, x = np.meshgrid(grid.zs(), grid.ys(), grid.xs(), indexing="ij")
    return x, y, z


def local_grid(nodule: Nodule, step: float) -> AxialGrid:
    """A cube of `step` mm voxels centred on the nodule, reaching 0.7 diameters and 2 voxels."""
    k = math.ceil((0.7 * nodule.diameter_mm + 2 * step) / step)
    x, y, z = nodule.centre_lps
    return AxialGrid(
        rows=2 * k + 1,
        cols=2 * k + 1,
        pixel_spacing=step,
        origin_xy=(x - k * step, y - k * step),
        z_positions=tuple(float(v) for v in z + step * np.arange(-k, k + 1)),
    )


def distance_to_nearest_surface(case: ChestCase, x, y, z) -> np.ndarray:
    """Distance to the nearest nodule centre minus that nodule's 0.7 diameters (mm)."""
    return np.min(
        [
            np.sqrt(
                (x - n.centre_lps[0]) ** 2 + (y - n.centre_lps[1]) ** 2 + (z - n.centre_lps[2]) ** 2
            )
            - 0.7 * n.diameter_mm
            for n in case.nodules
        ],
        axis=0,
    )


# --------------------------------------------------------------------------------------------
# Determinism and drawn ranges


def test_same_seed_gives_identical_case_and_renders() -> None:
    assert chest_case(7) == chest_case(7)
    assert chest_case(7) != chest_case(8)
    case = chest_case(3)
    hu_a, labels_a = render_ct(case, GRID)
    hu_b, labels_b = render_ct(chest_case(3), GRID)
    assert hu_a.dtype == np.int16 and labels_a.dtype == np.uint8
    assert hu_a.shape == labels_a.shape == GRID.shape
    np.testing.assert_array_equal(hu_a, hu_b)
    np.testing.assert_array_equal(labels_a, labels_b)
    hu_other, _ = render_ct(chest_case(4), GRID)
    assert not np.array_equal(hu_a, hu_other)
    first = render_radiograph(case, pixel_spacing=2.0, voxel_mm=4.0)
    again = render_radiograph(chest_case(3), pixel_spacing=2.0, voxel_mm=4.0)
    other = render_radiograph(chest_case(4), pixel_spacing=2.0, voxel_mm=4.0)
    assert first.pixels.dtype == np.uint16
    np.testing.assert_array_equal(first.pixels, again.pixels)
    assert (first.origin_xz, first.label) == (again.origin_xz, again.label)
    assert not np.array_equal(first.pixels, other.pixels)


def test_drawn_fields_stay_in_documented_ranges() -> None:
    counts = set()
    for seed in range(50):
        case = case_of(seed)
        assert case.seed == seed
        assert 150 <= case.slice_count <= 300
        assert 0.6 <= case.slice_spacing_mm <= 2.5
        assert 0.6 <= case.pixel_spacing_mm <= 0.8
        assert 0 <= len(case.nodules) <= 4
        counts.add(len(case.nodules))
        assert [lung.side for lung in case.lungs] == [LEFT_LUNG, RIGHT_LUNG]
        for nodule in case.nodules:
            check_nodule_fields(case, nodule)
    assert counts == {0, 1, 2, 3, 4}  # every count happens in 50 seeds


def check_nodule_fields(case: ChestCase, nodule: Nodule) -> None:
    assert 3.0 <= nodule.diameter_mm <= 30.0
    assert nodule.kind in ("solid", "part-solid")
    assert nodule.side in (LEFT_LUNG, RIGHT_LUNG)
    assert (nodule.centre_lps[0] > 0) == (nodule.side == LEFT_LUNG)  # patient left is +x
    if nodule.kind == "part-solid":
        assert nodule.diameter_mm >= 8.0
        assert 0.35 <= nodule.core_fraction <= 0.6
    else:
        assert nodule.core_fraction == 1.0
    lobulated = any(a != 0 for a in nodule.lobulation)
    assert lobulated == (nodule.diameter_mm >= 8.0)
    assert all(abs(a) <= 0.12 for a in nodule.lobulation)
    lung = case.lungs[0] if nodule.side == LEFT_LUNG else case.lungs[1]
    assert lung.dome_z - 10 <= nodule.centre_lps[2] <= lung.apex_z - 15


# --------------------------------------------------------------------------------------------
# Anatomy on a coarse grid (noise-free)


@pytest.mark.parametrize("seed", ANATOMY_SEEDS)
def test_lungs_sit_left_and_right_between_dome_and_apex(seed: int) -> None:
    case = case_of(seed)
    _, labels = rendered(seed)
    x, _, z = coordinates(GRID)
    left, right = labels == LEFT_LUNG, labels == RIGHT_LUNG
    assert left.sum() > 1000 and right.sum() > 1000
    assert x[left].mean() > 40.0  # patient left is +x in LPS
    assert x[right].mean() < -40.0
    for lung, mask in zip(case.lungs, (left, right), strict=True):
        assert z[mask].min() > lung.dome_z - lung.dome_depth  # above the lowest point of its dome
        assert z[mask].max() < lung.apex_z


@pytest.mark.parametrize("seed", ANATOMY_SEEDS)
def test_air_outside_the_body_and_spine_behind(seed: int) -> None:
    hu, labels = rendered(seed)
    x, y, _ = coordinates(GRID)
    anterior = y < -case_of(seed).body_half_axes[1] - 5.0  # in front of the chest wall
    assert anterior.any()
    assert np.all(hu[anterior] == -1000)
    assert np.all(labels[anterior] == 0)
    spine = (hu > 300) & (np.abs(x) < 15.0)
    assert spine.sum() > 50
    assert y[spine].min() > 0.0  # posterior


def test_air_outside_the_body_with_noise() -> None:
    hu, _ = render_ct(case_of(0), GRID)
    _, y, _ = coordinates(GRID)
    anterior = hu[y < -case_of(0).body_half_axes[1] - 10.0]
    assert abs(float(anterior.mean()) + 1000.0) < 10.0  # clipping at -1024 lifts it a little
    assert anterior.std() > 1.0  # there is noise


@pytest.mark.parametrize("seed", ANATOMY_SEEDS)
def test_nodule_labels_stay_near_nodule_centres(seed: int) -> None:
    case = case_of(seed)
    _, labels = rendered(seed)
    x, y, z = coordinates(GRID)
    nodule = labels == NODULE
    assert nodule.any()
    reach = distance_to_nearest_surface(case, x[nodule], y[nodule], z[nodule])
    assert reach.max() <= GRID_DIAGONAL_MM
    for n in case.nodules:
        if n.diameter_mm < RADIOGRAPH_NODULE_MM:
            continue  # may fall between the 3.5 mm voxel centres
        d = np.sqrt(
            (x[nodule] - n.centre_lps[0]) ** 2
            + (y[nodule] - n.centre_lps[1]) ** 2
            + (z[nodule] - n.centre_lps[2]) ** 2
        )
        assert d.min() <= n.diameter_mm / 2 + GRID_DIAGONAL_MM / 2


# --------------------------------------------------------------------------------------------
# Nodules on fine local grids


def local_render(case: ChestCase, nodule: Nodule, step: float):
    grid = local_grid(nodule, step)
    _, labels = render_ct(case, grid, noise=False)
    return grid, labels


def adjacent_to_background(labels: np.ndarray) -> np.ndarray:
    """Voxels with a 6-neighbour inside the grid labelled 0."""
    padded = np.pad(labels.astype(np.int16), 1, constant_values=-1)
    core = (slice(1, -1),) * 3
    out = np.zeros(labels.shape, dtype=bool)
    for axis in range(3):
        for shift in (-1, 1):
            out |= np.roll(padded, shift, axis=axis)[core] == 0
    return out


@pytest.mark.parametrize("seed", range(10))
def test_nodules_stay_in_the_lungs_and_out_of_the_heart(seed: int) -> None:
    case = case_of(seed)
    cx, cy, cz = case.heart_centre
    ax, ay, az = case.heart_half_axes
    for n in case.nodules:
        step = max(0.5, n.diameter_mm / 24)
        grid, labels = local_render(case, n, step)
        x, y, z = coordinates(grid)
        nodule = labels == NODULE
        if not nodule.any():
            continue  # see test_every_nodule_is_rendered
        reach = distance_to_nearest_surface(case, x[nodule], y[nodule], z[nodule])
        assert reach.max() <= step * math.sqrt(3)
        heart = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 < 1.0
        assert not (heart & nodule).any()
        touching = np.count_nonzero(adjacent_to_background(labels) & nodule)
        assert touching / np.count_nonzero(nodule) < 0.5


def _small_nodules(count: int) -> list[tuple[int, int]]:
    """The first `count` (seed, index) pairs of nodules under 8 mm (spheres, not lobulated)."""
    found = [(seed, k) for seed in range(40) for k, n in enumerate(case_of(seed).nodules)
             if n.diameter_mm < 8.0]
    return found[:count]


@pytest.mark.parametrize(("seed", "index"), _small_nodules(3))
def test_small_solid_nodule_volume_matches_its_sphere(seed: int, index: int) -> None:
    nodule = case_of(seed).nodules[index]
    assert nodule.kind == "solid" and nodule.diameter_mm < 8.0
    assert not any(nodule.lobulation)
    _, labels = local_render(case_of(seed), nodule, 0.5)
    volume = np.count_nonzero(labels == NODULE) * 0.5**3
    sphere = math.pi / 6 * nodule.diameter_mm**3
    assert volume == pytest.approx(sphere, rel=0.25)


@pytest.mark.parametrize(
    "seed",
    [
        0,
        3,
        5,
        8,
        22,
        11,
        18,
        21,
    ],
)
def test_every_nodule_is_rendered(seed: int) -> None:
    case = case_of(seed)
    assert case.nodules
    for n in case.nodules:
        step = max(0.5, n.diameter_mm / 24)
        grid, labels = local_render(case, n, step)
        centre = grid.rows // 2
        assert labels[centre, centre, centre] == NODULE  # the voxel at the nodule's centre
        volume = np.count_nonzero(labels == NODULE) * step**3
        assert volume >= 0.5 * math.pi / 6 * n.diameter_mm**3


# --------------------------------------------------------------------------------------------
# Radiographs


def smoothed(image: np.ndarray, sigma_px: float) -> np.ndarray:
    import SimpleITK as sitk

    blurred = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(image), sigma_px)
    return sitk.GetArrayFromImage(blurred)


@pytest.mark.parametrize("seed", [5, 6])  # one nodule >= 8 mm each: solid, part-solid
def test_radiograph_nodule_shows_where_it_projects(seed: int) -> None:
    case = case_of(seed)
    (nodule,) = case.nodules
    assert nodule.diameter_mm >= RADIOGRAPH_NODULE_MM
    with_nodule, without = radiograph(seed), radiograph(seed, without_nodules=True)
    assert (with_nodule.label, without.label) == ("nodule", "normal")
    assert with_nodule.pixels.shape == without.pixels.shape
    # Poisson noise is not paired between the two renders: smooth it away before the peak.
    difference = with_nodule.pixels.astype(np.float32) - without.pixels.astype(np.float32)
    spacing = with_nodule.pixel_spacing
    peak = smoothed(difference, max(nodule.diameter_mm / 4, 2.0) / spacing)
    row, col = np.unravel_index(int(np.argmax(peak)), peak.shape)
    target_row, target_col = with_nodule.project(nodule.centre_lps)
    distance = math.hypot(row - target_row, col - target_col) * spacing
    assert distance <= nodule.diameter_mm / 2 + 3.0


def test_radiograph_projection_axes() -> None:
    image = radiograph(5)
    row, col = image.project((0.0, 0.0, image.origin_xz[1]))
    assert (row, col) == (0.0, -image.origin_xz[0] / image.pixel_spacing)
    row_low, col_left = image.project((10.0, 50.0, image.origin_xz[1] - 20.0))
    assert row_low == pytest.approx(20.0 / image.pixel_spacing)  # rows toward the feet
    assert col_left == pytest.approx(col + 10.0 / image.pixel_spacing)  # columns toward +x


@pytest.mark.parametrize("seed", [0, 7, 9])
def test_radiograph_label_follows_the_largest_nodule(seed: int) -> None:
    case = case_of(seed)
    large = any(n.diameter_mm >= RADIOGRAPH_NODULE_MM for n in case.nodules)
    assert case.radiograph_class == ("nodule" if large else "normal")
    assert render_radiograph(case, pixel_spacing=4.0, voxel_mm=4.0).label == case.radiograph_class


def test_radiograph_is_brighter_at_the_spine_than_in_the_lungs() -> None:
    case, image = case_of(5), radiograph(5, without_nodules=True)

    def patch_mean(x: float, z: float) -> float:
        row, col = (round(v) for v in image.project((x, 0.0, z)))
        return float(image.pixels[row - 3 : row + 4, col - 3 : col + 4].mean())

    for lung in case.lungs:
        z_mid = 0.5 * (lung.dome_z + lung.apex_z)
        spine = patch_mean(case.spine_centre_xy[0], z_mid)
        assert spine > patch_mean(lung.centre_xy[0], z_mid) + 200.0


def _nodule_radiograph_seeds(count: int) -> list[int]:
    return [s for s in range(15, 60) if case_of(s).radiograph_class == "nodule"][:count]


@pytest.mark.parametrize("seed", _nodule_radiograph_seeds(3))
def test_radiograph_labelled_nodule_shows_a_nodule(seed: int) -> None:
    """Placement tests the lung as drawn (chest wall, heart, airways), so every nodule shows."""
    assert radiograph(seed).label == "nodule"
    changed = radiograph(seed).pixels != radiograph(seed, without_nodules=True).pixels
    assert changed.any(), "the nodule changed no pixel"


# --------------------------------------------------------------------------------------------
# The demo CT grid


@pytest.mark.parametrize("seed", [0, 6, 20])
def test_ct_grid_matches_the_case(seed: int) -> None:
    case = case_of(seed)
    grid = ct_grid(case)
    assert (grid.rows, grid.cols) == (512, 512)
    assert grid.shape == (case.slice_count, 512, 512)
    assert grid.pixel_spacing == case.pixel_spacing_mm
    xs, ys = grid.xs(), grid.ys()
    assert np.allclose(np.diff(xs), case.pixel_spacing_mm, atol=1e-4)
    assert np.allclose(np.diff(ys), case.pixel_spacing_mm, atol=1e-4)
    assert xs[0] == pytest.approx(-xs[-1], abs=1e-3)  # centred on x = 0
    assert xs[-1] - xs[0] == pytest.approx(511 * case.pixel_spacing_mm, rel=1e-6)
    z = np.asarray(grid.z_positions)
    assert z.size == case.slice_count
    assert np.allclose(np.diff(z), case.slice_spacing_mm, rtol=1e-9)
    assert grid.origin_xy[0] == pytest.approx(float(xs[0]), abs=1e-3)
    assert grid.origin_xy[1] == pytest.approx(float(ys[0]), abs=1e-3)
    for nodule in case.nodules:
        assert z[0] <= nodule.centre_lps[2] <= z[-1]


def test_ct_grid_covers_the_lungs_when_it_can() -> None:
    case = case_of(6)
    z = np.asarray(ct_grid(case).z_positions)
    low = min(lung.dome_z - lung.dome_depth for lung in case.lungs)
    high = max(lung.apex_z for lung in case.lungs)
    assert z[-1] - z[0] >= high - low  # the slices are enough
    assert z[0] <= low and z[-1] >= high
