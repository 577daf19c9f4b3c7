"""Tests for medviewer.core.viewstate against independently known truth.

Expected values are written out by hand (derived in the comments), computed with plain
matrix algebra or numpy percentiles in the test, or checked for consistency with
:func:`medviewer.core.geometry.reslice`; no expectation is produced by calling the function
under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.core.geometry import affine_from_dicom, plane_count, reslice
from medviewer.core.viewstate import (
    ViewState,
    default_window,
    drag_sensitivity,
    initial_state,
    nice_scale_length,
    plane_index_of,
    preset_for_key,
    slice_position_mm,
    voi_lut_names,
    voi_luts_of,
)
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.core.windowing import VoiLut, WindowPreset

AXIAL_IOP = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
PLANE_NAMES = ("axial", "coronal", "sagittal")

# (slices, rows, cols) = (4, 5, 6): all different to catch axis mix-ups.
SHAPE = (4, 5, 6)

# Axial, slices stored inferior -> superior: col 0.6 mm along +x, row 0.8 mm along +y,
# slice 2.5 mm along +z.
A_AXIAL = np.array(
    [[0.6, 0, 0, -100], [0, 0.8, 0, -120], [0, 0, 2.5, -50], [0, 0, 0, 1]], dtype=float
)
# Axial, slices stored superior -> inferior (step -2 mm along z) and columns running
# towards the patient's right (-x).
A_DESCENDING = np.array(
    [[-1.2, 0, 0, 100], [0, 1.0, 0, -100], [0, 0, -2.0, 40], [0, 0, 0, 1]], dtype=float
)
# Sagittal acquisition: columns +y (0.5 mm), rows -z (0.7 mm), slices -x (3 mm).
A_SAGITTAL = np.array(
    [[0, 0, -3, 60], [0.5, 0, 0, -90], [0, -0.7, 0, 80], [0, 0, 0, 1]], dtype=float
)


def _expected_indices(affine_name: str, col: int, row: int, sl: int) -> dict[str, int]:
    """Plane indices of voxel (col, row, slice), worked out by hand for each affine.

    A plane index counts along the increasing patient coordinate of the plane normal
    (axial +z, coronal +y, sagittal +x), so an axis running against the normal is counted
    from its far end.
    """
    n_slices, n_rows, n_cols = SHAPE
    if affine_name == "axial":
        return {"axial": sl, "coronal": row, "sagittal": col}
    if affine_name == "descending":
        # z decreases with the slice index, x decreases with the column index.
        return {"axial": n_slices - 1 - sl, "coronal": row, "sagittal": n_cols - 1 - col}
    # sagittal: z decreases with the row, y increases with the column, x decreases with slice.
    return {"axial": n_rows - 1 - row, "coronal": col, "sagittal": n_slices - 1 - sl}


AFFINES = {"axial": A_AXIAL, "descending": A_DESCENDING, "sagittal": A_SAGITTAL}


def _volume(affine: np.ndarray, shape: tuple[int, ...] = SHAPE, **meta: object) -> Volume:
    return Volume(np.zeros(shape, dtype=np.int16), affine, VolumeMetadata(**meta))  # type: ignore[arg-type]


def _voxel_centre(affine: np.ndarray, col: float, row: float, sl: float) -> np.ndarray:
    return (affine @ np.array([col, row, sl, 1.0]))[:3]


def _plane_coordinates(plane_affine: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(screen col, screen row, k) of an LPS point in a displayed plane."""
    return (np.linalg.inv(plane_affine) @ np.append(point, 1.0))[:3]


def _rotation_z(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


# --------------------------------------------------------------------------- ViewState


def _state(index: int = 5, count: int = 10) -> ViewState:
    return ViewState("axial", index, count, center=40.0, width=400.0)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 5), (1, 6), (3, 8), (4, 9), (5, 9), (100, 9), (-1, 4), (-5, 0), (-6, 0), (-100, 0)],
)
def test_scrolled_moves_and_stops_at_both_ends(step: int, expected: int) -> None:
    state = _state()
    moved = state.scrolled(step)
    assert moved.index == expected
    assert state.index == 5  # frozen: the original is unchanged
    assert (moved.plane, moved.count, moved.center, moved.width) == ("axial", 10, 40.0, 400.0)


@pytest.mark.parametrize(
    ("index", "expected"), [(0, 0), (7, 7), (9, 9), (10, 9), (55, 9), (-1, 0), (-30, 0)]
)
def test_at_clamps_to_the_plane_range(index: int, expected: int) -> None:
    result = _state().at(index)
    assert result.index == expected
    assert type(result.index) is int


def test_at_and_scrolled_on_an_empty_plane_stay_at_zero() -> None:
    empty = ViewState("axial", 0, 0, 0.0, 1.0)
    assert empty.at(3).index == 0
    assert empty.scrolled(-2).index == 0


@pytest.mark.parametrize(
    ("width", "expected"),
    [(400.0, 400.0), (1.0, 1.0), (1.5, 1.5), (0.2, 1.0), (0.0, 1.0), (-50, 1.0)],
)
def test_windowed_keeps_width_at_least_one(width: float, expected: float) -> None:
    result = _state().windowed(-600, width)
    assert result.center == -600.0
    assert result.width == expected
    assert (result.index, result.count, result.invert) == (5, 10, False)


def test_drag_right_widens_by_pixels_times_sensitivity() -> None:
    result = _state().dragged(10, 0, 2.0)
    assert (result.center, result.width) == (40.0, 420.0)


def test_drag_left_narrows_by_pixels_times_sensitivity() -> None:
    result = _state().dragged(-25, 0, 4.0)
    assert (result.center, result.width) == (40.0, 300.0)


def test_drag_down_raises_and_up_lowers_the_level() -> None:
    assert _state().dragged(0, 7, 0.5).center == 43.5
    assert _state().dragged(0, -7, 0.5).center == 36.5
    assert _state().dragged(0, 7, 0.5).width == 400.0


def test_diagonal_drag_changes_both() -> None:
    result = _state().dragged(3, -12, 8.0)
    assert (result.center, result.width) == (40.0 - 96.0, 424.0)


def test_drag_cannot_narrow_below_width_one() -> None:
    result = _state().dragged(-1000, 0, 1.0)
    assert result.width == 1.0


@pytest.mark.parametrize(
    ("value_range", "expected"),
    [
        (4096.0, 8.0),  # 4096 / 512
        (1024.0, 2.0),
        (512.0, 1.0),
        (256.0, 0.5),
        (25.6, 0.05),  # exactly at the floor
        (10.0, 0.05),  # 10 / 512 = 0.0195... -> floor
        (0.0, 0.05),
    ],
)
def test_drag_sensitivity(value_range: float, expected: float) -> None:
    assert drag_sensitivity(value_range) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- initial_state

# (20, 60, 80) = (slices, rows, cols); PixelSpacing [0.6 row, 0.8 col]; slice step 2 mm.
BIG_SHAPE = (20, 60, 80)
BIG_AFFINE = affine_from_dicom([-30.0, -20.0, 10.0], AXIAL_IOP, [0.6, 0.8], [0.0, 0.0, 2.0])


@pytest.mark.parametrize(("plane", "count"), [("axial", 20), ("coronal", 60), ("sagittal", 80)])
def test_initial_state_shows_the_middle_slice_of_each_plane(plane: str, count: int) -> None:
    volume = _volume(BIG_AFFINE, BIG_SHAPE)
    state = initial_state(volume, plane)  # type: ignore[arg-type]
    assert state.plane == plane
    assert state.count == count
    assert state.index == count // 2
    assert state.invert is False


def test_initial_state_default_plane_is_axial() -> None:
    state = initial_state(_volume(BIG_AFFINE, BIG_SHAPE))
    assert (state.plane, state.count, state.index) == ("axial", 20, 10)


def test_initial_window_comes_from_the_first_file_preset() -> None:
    presets = (WindowPreset("WINDOW1", 40.0, 400.0), WindowPreset("WINDOW2", -600.0, 1500.0))
    array = np.arange(np.prod(BIG_SHAPE), dtype=np.float32).reshape(BIG_SHAPE)
    volume = Volume(array, BIG_AFFINE, VolumeMetadata(modality="CT", window_presets=presets))
    state = initial_state(volume, "coronal", sample=array[:2])
    assert (state.center, state.width) == (40.0, 400.0)


def test_initial_window_is_robust_percentiles_of_the_array() -> None:
    n = int(np.prod(BIG_SHAPE))  # 96000 distinct values 0..95999
    values = np.random.default_rng(3).permutation(n).astype(np.int32)
    volume = Volume(values.reshape(BIG_SHAPE), BIG_AFFINE)
    # Linear-interpolated percentiles of 0..n-1: p * (n - 1).
    lo, hi = 0.005 * (n - 1), 0.995 * (n - 1)
    state = initial_state(volume)
    assert state.center == pytest.approx((lo + hi) / 2, abs=1e-6)
    assert state.width == pytest.approx(hi - lo, abs=1e-6)
    assert state.width == pytest.approx(95039.01, abs=1e-6)


def test_initial_window_ignores_a_single_outlier() -> None:
    array = np.zeros(BIG_SHAPE, dtype=np.int16)
    array[3, 4, 5] = 30000
    center, width = default_window(Volume(array, BIG_AFFINE))
    assert (center, width) == (0.0, 1.0)


def test_initial_window_of_a_constant_array_has_width_one() -> None:
    array = np.full(BIG_SHAPE, 250, dtype=np.int16)
    state = initial_state(Volume(array, BIG_AFFINE))
    assert (state.center, state.width) == (250.0, 1.0)


def test_initial_window_uses_the_sample_when_given() -> None:
    array = np.zeros(BIG_SHAPE, dtype=np.int16)
    sample = np.arange(1000, dtype=np.int16).reshape(1, 10, 100)[:, ::-1]
    # Percentiles of 0..999: 0.005 * 999 = 4.995 and 0.995 * 999 = 994.005.
    state = initial_state(Volume(array, BIG_AFFINE), "sagittal", sample=sample)
    assert state.center == pytest.approx(499.5, abs=1e-9)
    assert state.width == pytest.approx(989.01, abs=1e-9)
    assert (state.count, state.index) == (80, 40)


def test_initial_window_ignores_non_finite_values() -> None:
    array = np.arange(1000, dtype=np.float64).reshape(10, 10, 10)
    array[0, 0, :5] = np.nan
    array[0, 1, :5] = np.inf
    # Finite values 5..999 minus 10..14, i.e. 990 values; compute the percentiles directly.
    finite = array[np.isfinite(array)]
    lo, hi = np.percentile(finite, [0.5, 99.5])
    center, width = default_window(Volume(array, np.eye(4)))
    assert center == pytest.approx((lo + hi) / 2)
    assert width == pytest.approx(hi - lo)


def test_empty_sample_falls_back_to_the_full_8_bit_range() -> None:
    array = np.arange(1000, dtype=np.int16).reshape(10, 10, 10)
    empty = array[:0]
    assert default_window(Volume(array, np.eye(4)), empty) == (127.5, 255.0)


def test_monochrome1_is_shown_inverted() -> None:
    state = initial_state(_volume(A_AXIAL, photometric="MONOCHROME1"))
    assert state.invert is True
    assert initial_state(_volume(A_AXIAL, photometric="MONOCHROME2")).invert is False


def test_colour_volume_window_is_the_8_bit_range() -> None:
    rng = np.random.default_rng(5)
    array = rng.integers(0, 50, (*SHAPE, 3), dtype=np.uint8)  # dark image: percentiles would differ
    volume = Volume(array, A_AXIAL, VolumeMetadata(photometric="RGB"))
    state = initial_state(volume, "coronal", sample=array[:1])
    assert (state.center, state.width) == (127.5, 255.0)
    assert (state.count, state.index, state.invert) == (5, 2, False)


# --------------------------------------------------------------------------- preset_for_key

CT_KEYS = {
    1: ("Brain", 40.0, 80.0),
    2: ("Subdural", 80.0, 200.0),
    3: ("Stroke", 40.0, 40.0),
    4: ("Lung", -600.0, 1500.0),
    5: ("Mediastinum", 50.0, 350.0),
    6: ("Abdomen", 50.0, 400.0),
    7: ("Liver", 30.0, 150.0),
    8: ("Bone", 400.0, 1800.0),
}

FILE_PRESETS = (WindowPreset("T2 soft", 300.0, 600.0), WindowPreset("T2 wide", 500.0, 1200.0))


@pytest.mark.parametrize(("key", "expected"), sorted(CT_KEYS.items()))
def test_ct_number_keys_give_reading_presets(key: int, expected: tuple) -> None:
    # The files' own presets do not replace the CT reading presets.
    volume = _volume(A_AXIAL, modality="CT", window_presets=FILE_PRESETS)
    preset = preset_for_key(volume, key)
    assert preset is not None
    assert (preset.name, preset.center, preset.width) == expected


def test_ct_modality_is_matched_case_insensitively() -> None:
    preset = preset_for_key(_volume(A_AXIAL, modality=" ct "), 4)
    assert preset is not None and (preset.center, preset.width) == (-600.0, 1500.0)


@pytest.mark.parametrize("key", [9, 10, -1])
def test_ct_keys_without_a_preset_give_none(key: int) -> None:
    assert preset_for_key(_volume(A_AXIAL, modality="CT"), key) is None


def test_mr_keys_use_the_files_presets_one_based() -> None:
    volume = _volume(A_AXIAL, modality="MR", window_presets=FILE_PRESETS)
    first, second = preset_for_key(volume, 1), preset_for_key(volume, 2)
    assert first is not None and (first.name, first.center, first.width) == ("T2 soft", 300, 600)
    assert second is not None and (second.name, second.center, second.width) == (
        "T2 wide",
        500,
        1200,
    )
    for key in (3, 4, 8, 9, -1):
        assert preset_for_key(volume, key) is None


def test_mr_without_file_presets_has_no_number_key_windows() -> None:
    volume = _volume(A_AXIAL, modality="MR")
    assert all(preset_for_key(volume, key) is None for key in range(1, 10))


@pytest.mark.parametrize("modality", ["CT", "MR", ""])
def test_key_zero_is_the_auto_percentile_window(modality: str) -> None:
    values = np.random.default_rng(11).permutation(1000).astype(np.int16) - 200  # -200..799
    volume = Volume(
        values.reshape(10, 10, 10),
        np.eye(4),
        VolumeMetadata(modality=modality, window_presets=FILE_PRESETS),
    )
    # Percentiles of -200..799: -200 + 4.995 and -200 + 994.005.
    preset = preset_for_key(volume, 0)
    assert preset is not None
    assert preset.name == "Auto"
    assert preset.center == pytest.approx(299.5, abs=1e-9)
    assert preset.width == pytest.approx(989.01, abs=1e-9)


# --------------------------------------------------------------------------- plane_index_of


def _all_voxels() -> list[tuple[int, int, int]]:
    n_slices, n_rows, n_cols = SHAPE
    return [(c, r, s) for s in range(n_slices) for r in range(n_rows) for c in range(n_cols)]


@pytest.mark.parametrize("affine_name", sorted(AFFINES))
@pytest.mark.parametrize("plane", PLANE_NAMES)
def test_plane_index_of_voxel_centres(affine_name: str, plane: str) -> None:
    affine = AFFINES[affine_name]
    volume = _volume(affine)
    for col, row, sl in _all_voxels():
        point = _voxel_centre(affine, col, row, sl)
        index = plane_index_of(volume, plane, point)  # type: ignore[arg-type]
        assert index == _expected_indices(affine_name, col, row, sl)[plane], (col, row, sl)


@pytest.mark.parametrize("affine_name", sorted(AFFINES))
@pytest.mark.parametrize("plane", PLANE_NAMES)
def test_plane_index_of_agrees_with_reslice(affine_name: str, plane: str) -> None:
    affine = AFFINES[affine_name]
    volume = _volume(affine)
    rng = np.random.default_rng(7)
    for col, row, sl in _all_voxels():
        # Anywhere inside the voxel, not only its centre.
        point = _voxel_centre(affine, *(np.array([col, row, sl]) + rng.uniform(-0.45, 0.45, 3)))
        index = plane_index_of(volume, plane, point)  # type: ignore[arg-type]
        assert index is not None
        shown = reslice(volume.array, affine, plane, index)  # type: ignore[arg-type]
        u, v, k = _plane_coordinates(shown.affine, point)
        assert abs(k) < 0.5
        rows, cols = shown.image.shape
        assert -0.5 < u < cols - 0.5
        assert -0.5 < v < rows - 0.5


def test_axial_index_of_a_descending_volume_counts_from_inferior() -> None:
    volume = _volume(A_DESCENDING)
    # Slice 0 is the most superior (z = 40), slice 3 the most inferior (z = 34).
    assert plane_index_of(volume, "axial", [100.0, -100.0, 40.0]) == 3
    assert plane_index_of(volume, "axial", [100.0, -100.0, 34.0]) == 0
    assert plane_index_of(volume, "axial", [100.0, -100.0, 36.0]) == 1
    # Slice k of the plane is the array slice count - 1 - k: its z is 34 + 2k.
    assert reslice(volume.array, A_DESCENDING, "axial", 1).affine[2, 3] == pytest.approx(36.0)


@pytest.mark.parametrize(
    ("z", "expected"),
    [
        (-50.0 - 1.26, None),  # more than half a slice (1.25 mm) below slice 0
        (-50.0 - 1.24, 0),
        (-50.0 + 1.24, 0),
        (-50.0 + 1.26, 1),
        (-42.5 + 1.24, 3),  # slice 3 is at z = -42.5
        (-42.5 + 1.26, None),
        (500.0, None),
        (-500.0, None),
    ],
)
def test_axial_index_rounds_to_the_nearest_slice_and_none_outside(
    z: float, expected: int | None
) -> None:
    volume = _volume(A_AXIAL)
    assert plane_index_of(volume, "axial", [-99.0, -119.0, z]) == expected


@pytest.mark.parametrize(
    ("plane", "point"),
    [
        ("coronal", [-100.0, -120.0 - 0.41, -50.0]),  # half a row is 0.4 mm
        ("coronal", [-100.0, -120.0 + 4 * 0.8 + 0.41, -50.0]),
        ("sagittal", [-100.0 - 0.31, -120.0, -50.0]),  # half a column is 0.3 mm
        ("sagittal", [-100.0 + 5 * 0.6 + 0.31, -120.0, -50.0]),
    ],
)
def test_coronal_and_sagittal_points_beyond_the_volume_give_none(
    plane: str, point: list[float]
) -> None:
    assert plane_index_of(_volume(A_AXIAL), plane, point) is None  # type: ignore[arg-type]


def test_plane_index_of_non_finite_point_or_empty_volume_is_none() -> None:
    assert plane_index_of(_volume(A_AXIAL), "axial", [0.0, 0.0, np.nan]) is None
    empty = _volume(A_AXIAL, (0, 5, 6))
    assert plane_index_of(empty, "axial", [-100.0, -120.0, -50.0]) is None


def _oblique_affine() -> np.ndarray:
    """Rotated 20 degrees about z; spacing 0.7 (col), 0.9 (row), 2.5 (slice)."""
    affine = np.eye(4)
    affine[:3, :3] = _rotation_z(20.0) * np.array([0.7, 0.9, 2.5])
    affine[:3, 3] = [-12.0, 31.0, -7.5]
    return affine


@pytest.mark.parametrize("plane", PLANE_NAMES)
def test_oblique_volume_round_trip(plane: str) -> None:
    affine = _oblique_affine()
    volume = _volume(affine)
    rng = np.random.default_rng(42)
    n_slices, n_rows, n_cols = SHAPE
    for _ in range(40):
        col, row, sl = (int(rng.integers(n)) for n in (n_cols, n_rows, n_slices))
        point = _voxel_centre(affine, col, row, sl)
        index = plane_index_of(volume, plane, point)  # type: ignore[arg-type]
        # After a 20-degree turn about z the column axis is still nearest to x (cos 20 > sin 20)
        # and the row axis nearest to y, both pointing the positive way.
        assert index == {"axial": sl, "coronal": row, "sagittal": col}[plane]
        shown = reslice(volume.array, affine, plane, index)  # type: ignore[arg-type]
        u, v, k = _plane_coordinates(shown.affine, point)
        assert abs(k) < 0.5
        rows, cols = shown.image.shape
        assert -0.5 < u < cols - 0.5 and -0.5 < v < rows - 0.5


# --------------------------------------------------------------------------- slice_position_mm


@pytest.mark.parametrize(
    ("affine_name", "plane", "index", "expected"),
    [
        # A_AXIAL: z = -50 + 2.5 s, y = -120 + 0.8 r, x = -100 + 0.6 c.
        ("axial", "axial", 0, -50.0),
        ("axial", "axial", 3, -42.5),
        ("axial", "coronal", 0, -120.0),
        ("axial", "coronal", 4, -116.8),
        ("axial", "sagittal", 0, -100.0),
        ("axial", "sagittal", 5, -97.0),
        # A_DESCENDING: z = 40 - 2 s (plane index k is slice 3 - k), x = 100 - 1.2 c.
        ("descending", "axial", 0, 34.0),
        ("descending", "axial", 3, 40.0),
        ("descending", "sagittal", 0, 94.0),
        ("descending", "sagittal", 5, 100.0),
        ("descending", "coronal", 2, -98.0),
        # A_SAGITTAL: x = 60 - 3 s, y = -90 + 0.5 c, z = 80 - 0.7 r.
        ("sagittal", "sagittal", 0, 51.0),
        ("sagittal", "sagittal", 3, 60.0),
        ("sagittal", "coronal", 5, -87.5),
        ("sagittal", "axial", 0, 77.2),
        ("sagittal", "axial", 4, 80.0),
    ],
)
def test_slice_position_of_resliced_planes(
    affine_name: str, plane: str, index: int, expected: float
) -> None:
    affine = AFFINES[affine_name]
    shown = reslice(np.zeros(SHAPE), affine, plane, index)  # type: ignore[arg-type]
    assert slice_position_mm(shown.affine) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("affine_name", sorted(AFFINES))
@pytest.mark.parametrize("plane", PLANE_NAMES)
def test_slice_position_increases_with_the_plane_index(affine_name: str, plane: str) -> None:
    affine = AFFINES[affine_name]
    array = np.zeros(SHAPE)
    count = plane_count(SHAPE, affine, plane)  # type: ignore[arg-type]
    positions = [
        slice_position_mm(reslice(array, affine, plane, i).affine)  # type: ignore[arg-type]
        for i in range(count)
    ]
    assert count > 1
    assert np.all(np.diff(positions) > 0), positions


def _plane_affine(right: list[float], down: list[float], origin: list[float]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 3] = right, down, origin
    affine[:3, 2] = np.cross(right, down)
    return affine


@pytest.mark.parametrize(
    ("right", "down", "expected"),
    [
        ([0.5, 0, 0], [0, 0.5, 0], 5.0),  # axial: S coordinate
        ([-0.5, 0, 0], [0, 0.5, 0], 5.0),  # normal -z is turned to +z
        ([0.7, 0, 0], [0, 0, -0.7], 4.0),  # coronal: y
        ([0, 0.9, 0], [0, 0, -0.9], 3.0),  # sagittal: x
        ([0, -0.9, 0], [0, 0, -0.9], 3.0),
    ],
)
def test_slice_position_of_hand_written_plane_affines(
    right: list[float], down: list[float], expected: float
) -> None:
    assert slice_position_mm(_plane_affine(right, down, [3.0, 4.0, 5.0])) == pytest.approx(expected)


def test_slice_position_of_an_oblique_plane_is_the_projection_on_its_normal() -> None:
    # Axial-ish plane tilted 30 degrees about x: normal (0, -sin 30, cos 30).
    a = math.radians(30.0)
    right, down = [1.0, 0.0, 0.0], [0.0, math.cos(a), math.sin(a)]
    origin = [7.0, 2.0, 10.0]
    expected = -2.0 * math.sin(a) + 10.0 * math.cos(a)
    assert slice_position_mm(_plane_affine(right, down, origin)) == pytest.approx(expected)


# --------------------------------------------------------------------------- nice_scale_length


@pytest.mark.parametrize(
    ("mm_per_pixel", "target", "expected"),
    [
        # raw = mm/px * target, p = 10**floor(log10(raw)); the first of p, 2p, 5p, 10p that
        # reaches 0.7 * raw.
        (0.7, 100.0, 50.0),  # raw 70, p 10, 0.7 raw = 49: 10, 20 < 49 <= 50
        (0.3, 100.0, 50.0),  # raw 30, p 10, 21: 20 < 21 <= 50
        (0.15, 100.0, 20.0),  # raw 15, p 10, 10.5: 10 < 10.5 <= 20
        (0.0123, 100.0, 1.0),  # raw 1.23, p 1, 0.861 <= 1
        (1.0, 100.0, 100.0),  # raw 100, p 100, 70 <= 100
        (2.5, 100.0, 200.0),  # raw 250, p 100, 175: 100 < 175 <= 200
        (0.08, 100.0, 10.0),  # raw 8, p 1, 5.6: 1, 2, 5 < 5.6 <= 10
        (0.9, 100.0, 100.0),  # raw 90, p 10, 63: 50 < 63 <= 100
        (0.5, 50.0, 20.0),  # raw 25, p 10, 17.5: 10 < 17.5 <= 20
        (0.002, 100.0, 0.2),  # raw 0.2, p 0.1, 0.14: 0.1 < 0.14 <= 0.2
    ],
)
def test_nice_scale_length_values(mm_per_pixel: float, target: float, expected: float) -> None:
    assert nice_scale_length(mm_per_pixel, target) == pytest.approx(expected, rel=1e-12)


def test_nice_scale_length_is_round_and_about_the_target_length() -> None:
    for mm_per_pixel in np.geomspace(1e-3, 1e3, 500):
        for target in (40.0, 100.0):
            length = nice_scale_length(float(mm_per_pixel), target)
            exponent = math.floor(math.log10(length) + 1e-9)
            mantissa = length / 10.0**exponent
            assert min(abs(mantissa - m) for m in (1.0, 2.0, 5.0)) < 1e-9, length
            pixels = length / mm_per_pixel
            assert 0.7 * target * (1 - 1e-9) <= pixels <= 1.75 * target, (mm_per_pixel, length)


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf"), -float("inf")])
def test_nice_scale_length_rejects_non_positive_or_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        nice_scale_length(bad)


def test_all_nan_sample_gets_a_usable_window() -> None:
    volume = Volume(np.full((3, 4, 5), np.nan, np.float32), np.eye(4), VolumeMetadata())
    state = initial_state(volume)
    assert (state.center, state.width) == (0.5, 1.0)


def _feet_first_volume() -> Volume:
    """5 slices, 3 mm apart, stored from superior to inferior (slice axis -z)."""
    affine = np.diag([0.5, 0.7, -3.0, 1.0])
    affine[:3, 3] = (-10.0, -20.0, 30.0)
    return Volume(np.zeros((5, 4, 6), np.int16), affine, VolumeMetadata(modality="CT"))


def test_array_slice_centre_and_index_round_trip_on_every_axis() -> None:
    from medviewer.core.viewstate import array_index_of, array_slice_centre

    volume = _feet_first_volume()
    centre = array_slice_centre(volume, 3, axis=0)
    assert centre == pytest.approx([-10.0 + 2.5 * 0.5, -20.0 + 1.5 * 0.7, 30.0 - 9.0])
    for axis, n in enumerate(volume.array.shape):
        assert [array_index_of(volume, array_slice_centre(volume, k, axis), axis)
                for k in range(n)] == list(range(n))  # fmt: skip
    assert array_index_of(volume, [0.0, 0.0, 1000.0]) == 0  # clamped


def test_image_numbers_count_from_inferior_whatever_the_array_order() -> None:
    from medviewer.core.viewstate import array_slice_centre, image_numbers_of

    volume = _feet_first_volume()
    centres = [array_slice_centre(volume, k) for k in range(5)]
    assert image_numbers_of(volume, centres).tolist() == [5, 4, 3, 2, 1]
    assert image_numbers_of(volume, centres[2]).tolist() == [3]
    outside = array_slice_centre(volume, 0) + np.array([0.0, 0.0, 10.0])
    assert image_numbers_of(volume, outside).tolist() == [0]
    for point in centres:  # the viewport agrees: plane index + 1
        assert image_numbers_of(volume, point)[0] == plane_index_of(volume, "axial", point) + 1


# --- VOI LUT ------------------------------------------------------------------

SOFT = VoiLut(first_mapped=-100, data=np.arange(201), bits=8, explanation="SOFT")  # -100..100
SHARP = VoiLut(first_mapped=0, data=[0, 255], bits=8)  # a step: 0 -> 0, 1 -> 255


def test_a_volume_with_voi_luts_opens_through_the_first() -> None:
    volume = _volume(A_AXIAL, modality="MR", window_presets=FILE_PRESETS, voi_luts=(SOFT, SHARP),
                     photometric="MONOCHROME1")
    state = initial_state(volume)
    # SOFT's ramp: 0 at -100 .. 200 at 100 -> inputs -100..100, so centre 0, width 200
    assert (state.voi_lut, state.center, state.width, state.invert) == (0, 0.0, 200.0, True)
    assert state.linear_window is None
    assert voi_lut_names(volume.metadata) == ("VOI LUT: SOFT", "VOI LUT 2")


def test_a_single_voi_lut_field_is_offered_too() -> None:
    meta = VolumeMetadata(voi_lut=SHARP)
    assert voi_luts_of(meta) == (SHARP,)
    assert voi_luts_of(VolumeMetadata()) == ()
    assert initial_state(_volume(A_AXIAL, voi_lut=SHARP)).voi_lut == 0


def test_windowing_or_dragging_leaves_the_lut_and_choosing_one_returns() -> None:
    state = ViewState("axial", 1, 4, 0.0, 1.0).through_lut(0, SOFT)
    dragged = state.dragged(10, 4, 2.0)
    # the drag starts from SOFT's equivalent window (0, 200): width +20, level +8
    assert (dragged.voi_lut, dragged.center, dragged.width) == (None, 8.0, 220.0)
    assert dragged.linear_window == (8.0, 220.0)
    assert state.windowed(40, 400).voi_lut is None
    back = dragged.through_lut(1, SHARP)
    assert (back.voi_lut, back.center, back.width) == (1, 0.5, 1.0)  # the same step
