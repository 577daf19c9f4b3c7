"""Tests for medviewer.core.geometry against independently computed truth.

Expected values are written out by hand, computed with plain matrix algebra in
the test, taken from SimpleITK, or derived from hypothesis-generated rotations;
no expectation is produced by calling the function under test.
"""

import math

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from medviewer.core.errors import GeometryError
from medviewer.core.geometry import (
    PlaneSlice,
    SliceSorting,
    affine_from_dicom,
    direction_of,
    letter_vector,
    orientation_letters,
    patient_to_voxel,
    plane_count,
    reslice,
    slice_normal,
    sort_slices,
    spacing_of,
    validate_affine,
    voxel_to_patient,
)

SETTINGS = settings(max_examples=60, deadline=None, database=None)

AXIAL_IOP = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
SAGITTAL_IOP = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
CORONAL_IOP = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
FLIPPED_AXIAL_IOP = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

# Hand-written affines (columns: col step, row step, slice step, origin).
# Axial, IOP AXIAL_IOP, PixelSpacing [0.8, 0.6], slice step (0, 0, 2.5).
A_AXIAL = np.array(
    [[0.6, 0, 0, -100], [0, 0.8, 0, -120], [0, 0, 2.5, -50], [0, 0, 0, 1]], dtype=float
)
# Axial with slices stored head-to-feet (step against the normal).
A_AXIAL_DESCENDING = np.array(
    [[0.6, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, -2.0, 30], [0, 0, 0, 1]], dtype=float
)
# Sagittal, IOP SAGITTAL_IOP, PixelSpacing [0.7, 0.5], normal (-1, 0, 0), step 3 mm.
A_SAGITTAL = np.array(
    [[0, 0, -3, 60], [0.5, 0, 0, -90], [0, -0.7, 0, 80], [0, 0, 0, 1]], dtype=float
)
# Coronal, IOP CORONAL_IOP, PixelSpacing [0.9, 0.4], normal (0, 1, 0), step 1.5 mm.
A_CORONAL = np.array(
    [[0.4, 0, 0, -80], [0, 0, 1.5, 10], [0, -0.9, 0, 70], [0, 0, 0, 1]], dtype=float
)
# Feet-first / flipped axial, IOP FLIPPED_AXIAL_IOP, PixelSpacing [1.0, 1.2],
# normal (0, 0, -1), step 2 mm along the normal.
A_FLIPPED_AXIAL = np.array(
    [[-1.2, 0, 0, 100], [0, 1.0, 0, -100], [0, 0, -2, 40], [0, 0, 0, 1]], dtype=float
)

SHAPE = (4, 5, 6)  # (slices, rows, cols): all different to catch axis mix-ups.

# Number of slices per plane, worked out by hand from each affine and SHAPE.
AXIS_ALIGNED_CASES = {
    "axial": (A_AXIAL, {"axial": 4, "coronal": 5, "sagittal": 6}),
    "axial_descending": (A_AXIAL_DESCENDING, {"axial": 4, "coronal": 5, "sagittal": 6}),
    "sagittal": (A_SAGITTAL, {"axial": 5, "coronal": 6, "sagittal": 4}),
    "coronal": (A_CORONAL, {"axial": 5, "coronal": 4, "sagittal": 6}),
    "flipped_axial": (A_FLIPPED_AXIAL, {"axial": 4, "coronal": 5, "sagittal": 6}),
}

# Plane -> (normal, screen-right, screen-down), from the display convention.
PLANES = {
    "axial": ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    "coronal": ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
    "sagittal": ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
}

EDGE_LETTERS = {
    "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
    "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
    "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
}


# --------------------------------------------------------------------------- helpers


def encoded_volume(shape: tuple[int, int, int]) -> np.ndarray:
    """Volume whose value encodes its own (slice, row, col) index."""
    s, r, c = np.indices(shape)
    return s * 10000 + r * 100 + c


def decode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (slice, row, col) index arrays from encoded values."""
    return values // 10000, (values // 100) % 100, values % 100


def lps_of_voxels(affine: np.ndarray, s, r, c) -> np.ndarray:
    """Plain matrix product affine @ (c, r, s, 1), shape (..., 3)."""
    ijk1 = np.stack([c, r, s, np.ones_like(c)], axis=-1).astype(float)
    return np.einsum("ij,...j->...i", affine, ijk1)[..., :3]


def screen_lps(plane_affine: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """LPS of every screen pixel via the plane affine @ (col, row, 0, 1)."""
    rows, cols = np.indices(shape)
    return lps_of_voxels(plane_affine, np.zeros_like(rows), rows, cols)


def rotation(q) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion (standard formula)."""
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


quaternions = st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(
    lambda q: sum(v * v for v in q) > 0.05
)
spacings = st.floats(0.2, 5.0, allow_nan=False)
coordinates = st.floats(-300, 300, allow_nan=False)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


@SETTINGS
@given(quaternions)
def test_rotation_helper_is_a_proper_rotation(q):
    r = rotation(q)
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


# --------------------------------------------------------------------------- slice_normal


@pytest.mark.parametrize(
    ("iop", "expected"),
    [
        (AXIAL_IOP, (0, 0, 1)),
        (SAGITTAL_IOP, (-1, 0, 0)),
        (CORONAL_IOP, (0, 1, 0)),
        (FLIPPED_AXIAL_IOP, (0, 0, -1)),
    ],
)
def test_slice_normal_hand_cases(iop, expected):
    np.testing.assert_allclose(slice_normal(iop), expected, atol=1e-15)


@SETTINGS
@given(quaternions)
def test_slice_normal_of_rotation_is_third_column(q):
    r = rotation(q)
    normal = slice_normal([*r[:, 0], *r[:, 1]])
    np.testing.assert_allclose(normal, r[:, 2], atol=1e-12)


def test_slice_normal_normalises_slightly_imprecise_cosines():
    normal = slice_normal([1.0004, 0, 0, 0, 0.9996, 0])
    assert np.linalg.norm(normal) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(
    ("iop", "message"),
    [
        ([1, 0, 0, 0, 1], "6 values"),
        ([1, 0, 0, 0, 1, 0, 0], "6 values"),
        ([1.01, 0, 0, 0, 1, 0], "row cosine .* not a unit"),
        ([1, 0, 0, 0, 0.5, 0], "column cosine .* not a unit"),
        ([1, 0, 0, 0.1, 0.99498744, 0], "not orthogonal"),
        ([math.nan, 0, 0, 0, 1, 0], "non-finite"),
    ],
)
def test_slice_normal_rejects_bad_orientation(iop, message):
    with pytest.raises(ValueError, match=message):
        slice_normal(iop)


# --------------------------------------------------------------------------- sort_slices


@SETTINGS
@given(
    q=quaternions,
    spacing=spacings,
    origin=st.tuples(coordinates, coordinates, coordinates),
    data=st.data(),
)
def test_sort_slices_recovers_shuffled_oblique_stack(q, spacing, origin, data):
    r = rotation(q)
    n = data.draw(st.integers(2, 12), label="n")
    perm = np.array(data.draw(st.permutations(range(n)), label="perm"))
    normal = r[:, 2]
    base = np.array(origin) + np.arange(n)[:, None] * spacing * normal
    shuffled = base[perm]

    result = sort_slices(shuffled, [*r[:, 0], *r[:, 1]])

    assert isinstance(result, SliceSorting)
    np.testing.assert_allclose(shuffled[result.order], base, atol=1e-9)
    expected_d0 = origin[0] * normal[0] + origin[1] * normal[1] + origin[2] * normal[2]
    np.testing.assert_allclose(result.distances, expected_d0 + np.arange(n) * spacing, atol=1e-9)
    assert result.spacing == pytest.approx(spacing, abs=1e-9)
    np.testing.assert_allclose(result.step, spacing * normal, atol=1e-9)
    assert result.warnings == ()


def test_sort_slices_uses_normal_projection_not_input_order_or_z():
    # Sagittal: normal is (-1, 0, 0), so increasing distance = decreasing x.
    xs = [10.0, -5.0, 0.0, 5.0, -10.0]
    positions = [(x, 3.0, -7.0) for x in xs]
    result = sort_slices(positions, SAGITTAL_IOP)
    assert result.order.tolist() == [0, 3, 2, 1, 4]
    np.testing.assert_allclose(result.distances, [-10, -5, 0, 5, 10])
    assert result.spacing == 5.0
    np.testing.assert_allclose(result.step, [-5, 0, 0])
    assert result.warnings == ()


def test_sort_slices_single_slice():
    result = sort_slices([(1.0, 2.0, 3.0)], CORONAL_IOP)
    assert result.order.tolist() == [0]
    np.testing.assert_allclose(result.distances, [2.0])
    assert result.spacing == 0.0
    np.testing.assert_allclose(result.step, [0, 1, 0])
    assert result.warnings == ()


def axial_stack(zs, xy=(0.0, 0.0)):
    return [(xy[0], xy[1], z) for z in zs]


def kinds(result: SliceSorting) -> set[str]:
    names = {
        "uneven slice spacing",
        "missing slices / gap",
        "duplicate slice positions",
        "gantry tilt",
    }
    return {name for name in names if any(w.startswith(name) for w in result.warnings)}


def warning(result: SliceSorting, kind: str) -> str:
    (message,) = [w for w in result.warnings if w.startswith(kind)]
    return message


def test_sort_slices_clean_case_has_no_warnings():
    result = sort_slices(axial_stack([5.0, 0.0, 7.5, 2.5]), AXIAL_IOP)
    assert result.order.tolist() == [1, 3, 0, 2]
    assert result.spacing == 2.5
    assert result.warnings == ()


def test_sort_slices_warns_uneven_spacing():
    result = sort_slices(axial_stack([0, 1, 2, 3.3, 4.3]), AXIAL_IOP)
    assert kinds(result) == {"uneven slice spacing"}
    message = warning(result, "uneven slice spacing")
    assert "1.3" in message
    assert "median spacing of 1 mm" in message


def test_sort_slices_small_jitter_within_one_percent_is_not_uneven():
    result = sort_slices(axial_stack([0, 10, 20.05, 30]), AXIAL_IOP)
    assert result.warnings == ()


def test_sort_slices_warns_single_gap():
    result = sort_slices(axial_stack([0, 1, 2, 4, 5, 6]), AXIAL_IOP)
    assert "missing slices / gap" in kinds(result)
    message = warning(result, "missing slices / gap")
    assert "1 gap(s)" in message
    assert "gap sizes 2 mm" in message
    assert "about 1 slice(s) missing" in message


def test_sort_slices_warns_several_gaps():
    result = sort_slices(axial_stack([8, 0, 4, 1, 7, 3]), AXIAL_IOP)
    message = warning(result, "missing slices / gap")
    assert "2 gap(s)" in message
    assert "gap sizes 2, 3 mm" in message
    assert "about 3 slice(s) missing" in message


def test_sort_slices_warns_duplicates_without_raising():
    result = sort_slices(axial_stack([0, 1, 1.004, 2, 3]), AXIAL_IOP)
    assert "duplicate slice positions" in kinds(result)
    message = warning(result, "duplicate slice positions")
    assert "1 slice(s)" in message
    assert "0.004" in message


def test_sort_slices_duplicates_keep_input_order():
    result = sort_slices(axial_stack([1, 0, 1]), AXIAL_IOP)
    assert result.order.tolist() == [1, 0, 2]


@pytest.mark.parametrize(
    ("degrees", "expected_text"), [(15.0, "15.00"), (0.2, "0.20"), (5.0, "5.00")]
)
def test_sort_slices_warns_gantry_tilt(degrees, expected_text):
    shift = 2.5 * math.tan(math.radians(degrees))
    positions = [(0.0, k * shift, 2.5 * k) for k in range(6)]
    result = sort_slices(positions, AXIAL_IOP)
    assert kinds(result) == {"gantry tilt"}
    assert f"up to {expected_text} degrees" in warning(result, "gantry tilt")
    np.testing.assert_allclose(result.step, [0, shift, 2.5])


def test_sort_slices_tilt_below_limit_is_clean():
    shift = 2.5 * math.tan(math.radians(0.05))
    positions = [(0.0, k * shift, 2.5 * k) for k in range(6)]
    assert sort_slices(positions, AXIAL_IOP).warnings == ()


def test_sort_slices_checks_each_step_not_only_the_mean():
    # Zig-zag: mean step is exactly along the normal, each step tilts by atan(0.2).
    positions = [(0.2 * (k % 2), 0.0, float(k)) for k in range(5)]
    result = sort_slices(positions, AXIAL_IOP)
    np.testing.assert_allclose(result.step, [0, 0, 1])
    angle = math.degrees(math.atan(0.2))
    assert kinds(result) == {"gantry tilt"}
    assert f"up to {angle:.2f} degrees" in warning(result, "gantry tilt")


@pytest.mark.parametrize("positions", [[], [[0, 0]], [[0, 0, 0, 0]], [[0, 0, math.inf]]])
def test_sort_slices_rejects_bad_positions(positions):
    with pytest.raises(ValueError, match="positions"):
        sort_slices(positions, AXIAL_IOP)


def test_sort_slices_rejects_negative_tolerance():
    with pytest.raises(ValueError, match="tolerance_mm"):
        sort_slices(axial_stack([0, 1]), AXIAL_IOP, tolerance_mm=-1)


# --------------------------------------------------------------------------- affine_from_dicom


@pytest.mark.parametrize(
    ("position", "iop", "pixel_spacing", "step", "expected"),
    [
        ((-100, -120, -50), AXIAL_IOP, (0.8, 0.6), (0, 0, 2.5), A_AXIAL),
        ((60, -90, 80), SAGITTAL_IOP, (0.7, 0.5), (-3, 0, 0), A_SAGITTAL),
        ((-80, 10, 70), CORONAL_IOP, (0.9, 0.4), (0, 1.5, 0), A_CORONAL),
        ((100, -100, 40), FLIPPED_AXIAL_IOP, (1.0, 1.2), (0, 0, -2), A_FLIPPED_AXIAL),
    ],
)
def test_affine_from_dicom_hand_cases(position, iop, pixel_spacing, step, expected):
    affine = affine_from_dicom(position, iop, pixel_spacing, step)
    assert affine.dtype == np.float64
    np.testing.assert_allclose(affine, expected, atol=1e-15)


def test_affine_from_dicom_default_step_is_unit_normal():
    affine = affine_from_dicom((1, 2, 3), SAGITTAL_IOP, (0.7, 0.5), None)
    np.testing.assert_allclose(affine[:3, 2], [-1, 0, 0])


def test_affine_from_dicom_pixel_spacing_order():
    # PixelSpacing = [row spacing (vertical), column spacing (horizontal)].
    affine = affine_from_dicom((0, 0, 0), AXIAL_IOP, (2.0, 3.0), None)
    # Moving one column (index i) moves 3 mm along the row cosine (+x).
    np.testing.assert_allclose(affine @ [1, 0, 0, 1], [3, 0, 0, 1])
    # Moving one row (index j) moves 2 mm along the column cosine (+y).
    np.testing.assert_allclose(affine @ [0, 1, 0, 1], [0, 2, 0, 1])


def sitk_points(origin, iop, pixel_spacing, slice_spacing, ijks) -> np.ndarray:
    row_cos = np.array(iop[:3], dtype=float)
    col_cos = np.array(iop[3:], dtype=float)
    normal = np.cross(row_cos, col_cos)
    image = sitk.Image([4, 5, 6], sitk.sitkUInt8)
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing((float(pixel_spacing[1]), float(pixel_spacing[0]), float(slice_spacing)))
    image.SetDirection(tuple(np.column_stack([row_cos, col_cos, normal]).ravel().tolist()))
    return np.array([image.TransformContinuousIndexToPhysicalPoint(p) for p in ijks])


IJKS = [(0.0, 0.0, 0.0), (1.0, 2.0, 3.0), (3.5, -1.0, 2.25), (10.0, 7.0, -4.0)]


@pytest.mark.parametrize("iop", [AXIAL_IOP, SAGITTAL_IOP, CORONAL_IOP, FLIPPED_AXIAL_IOP])
def test_affine_from_dicom_matches_simpleitk_fixed(iop):
    origin, pixel_spacing, slice_spacing = (12.5, -33.0, 101.0), (0.7, 0.45), 2.5
    normal = np.cross(iop[:3], iop[3:])
    affine = affine_from_dicom(origin, iop, pixel_spacing, normal * slice_spacing)
    ours = np.array([(affine @ [*p, 1.0])[:3] for p in IJKS])
    expected = sitk_points(origin, iop, pixel_spacing, slice_spacing, IJKS)
    np.testing.assert_allclose(ours, expected, atol=1e-9)


@SETTINGS
@given(
    q=quaternions,
    row_spacing=spacings,
    col_spacing=spacings,
    slice_spacing=spacings,
    origin=st.tuples(coordinates, coordinates, coordinates),
)
def test_affine_from_dicom_matches_simpleitk_oblique(
    q, row_spacing, col_spacing, slice_spacing, origin
):
    r = rotation(q)
    iop = [*r[:, 0], *r[:, 1]]
    affine = affine_from_dicom(origin, iop, (row_spacing, col_spacing), r[:, 2] * slice_spacing)
    ours = voxel_to_patient(affine, IJKS)
    expected = sitk_points(origin, iop, (row_spacing, col_spacing), slice_spacing, IJKS)
    np.testing.assert_allclose(ours, expected, atol=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pixel_spacing": (0.0, 1.0)}, "positive"),
        ({"pixel_spacing": (1.0,)}, "PixelSpacing"),
        ({"position": (0, 0)}, "Image Position"),
        ({"slice_step": (0, 0, 0)}, "zero"),
        ({"orientation": [1, 0, 0, 1, 0, 0]}, "orthogonal"),
    ],
)
def test_affine_from_dicom_rejects_bad_input(kwargs, message):
    args = {
        "position": (0, 0, 0),
        "orientation": AXIAL_IOP,
        "pixel_spacing": (1.0, 1.0),
        "slice_step": None,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        affine_from_dicom(**args)


# --------------------------------------------------------------------------- affine helpers


def test_validate_affine_returns_float_copy():
    source = np.eye(4, dtype=int)
    out = validate_affine(source)
    assert out.dtype == np.float64
    assert out is not source
    out[0, 0] = 5
    assert source[0, 0] == 1
    np.testing.assert_array_equal(validate_affine(A_SAGITTAL), A_SAGITTAL)


def _with(matrix, index, value):
    out = np.array(matrix, dtype=float)
    out[index] = value
    return out


@pytest.mark.parametrize(
    ("affine", "message"),
    [
        (np.eye(3), "shape"),
        (np.eye(4)[:3], "shape"),
        (_with(np.eye(4), (0, 3), math.nan), "non-finite"),
        (_with(np.eye(4), (1, 1), math.inf), "non-finite"),
        (_with(np.eye(4), (3, 0), 0.5), "last row"),
        (_with(np.eye(4), (3, 3), 2.0), "last row"),
        (_with(np.eye(4), (1, 1), 0.0), "zero spacing along the row axis"),
        (_with(np.eye(4), (2, 2), 0.0), "zero spacing along the slice axis"),
        (_with(np.eye(4), (0, 2), 0.1), "not orthogonal"),
        (_with(np.eye(4), (1, 0), 0.001), "not orthogonal"),
    ],
)
def test_validate_affine_errors(affine, message):
    with pytest.raises(ValueError, match=message):
        validate_affine(affine)


def test_validate_affine_accepts_tiny_rounding():
    assert validate_affine(_with(np.eye(4), (1, 0), 5e-5)).shape == (4, 4)


def test_spacing_and_direction_hand_case():
    np.testing.assert_allclose(spacing_of(A_SAGITTAL), [0.5, 0.7, 3.0])
    np.testing.assert_allclose(direction_of(A_SAGITTAL), [[0, 0, -1], [1, 0, 0], [0, -1, 0]])
    np.testing.assert_allclose(spacing_of(A_FLIPPED_AXIAL), [1.2, 1.0, 2.0])
    np.testing.assert_allclose(direction_of(A_FLIPPED_AXIAL), np.diag([-1.0, 1.0, -1.0]))


def test_voxel_patient_hand_case():
    # A_SAGITTAL: x = 60 - 3*slice, y = -90 + 0.5*col, z = 80 - 0.7*row.
    np.testing.assert_allclose(voxel_to_patient(A_SAGITTAL, (1, 2, 3)), [51, -89.5, 78.6])
    np.testing.assert_allclose(patient_to_voxel(A_SAGITTAL, (51, -89.5, 78.6)), [1, 2, 3])
    grid = np.array([[[0, 0, 0], [2, 0, 0]], [[0, 4, 0], [0, 0, 1]]])
    expected = np.array([[[60, -90, 80], [60, -89, 80]], [[60, -90, 77.2], [57, -90, 80]]])
    np.testing.assert_allclose(voxel_to_patient(A_SAGITTAL, grid), expected)
    np.testing.assert_allclose(patient_to_voxel(A_SAGITTAL, expected), grid, atol=1e-12)


@SETTINGS
@given(
    q=quaternions,
    sp=st.tuples(spacings, spacings, spacings),
    origin=st.tuples(coordinates, coordinates, coordinates),
    points=st.lists(st.floats(-50, 50, allow_nan=False), min_size=24, max_size=24),
)
def test_voxel_patient_round_trip(q, sp, origin, points):
    affine = np.eye(4)
    affine[:3, :3] = rotation(q) * np.array(sp)
    affine[:3, 3] = origin
    ijk = np.array(points).reshape(2, 4, 3)
    xyz = voxel_to_patient(affine, ijk)
    assert xyz.shape == (2, 4, 3)
    # Independent truth: explicit sum over affine columns.
    manual = np.array(origin) + sum(ijk[..., k, None] * affine[:3, k] for k in range(3))
    np.testing.assert_allclose(xyz, manual, atol=1e-9)
    np.testing.assert_allclose(patient_to_voxel(affine, xyz), ijk, atol=1e-8)


def test_voxel_patient_reject_bad_points_and_singular_affine():
    with pytest.raises(ValueError, match="shape"):
        voxel_to_patient(np.eye(4), [1, 2])
    singular = _with(np.eye(4), (2, 2), 0.0)
    with pytest.raises(ValueError, match="zero spacing"):
        patient_to_voxel(singular, [1, 2, 3])
    coplanar = np.eye(4)
    coplanar[:3, 2] = [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="singular"):
        patient_to_voxel(coplanar, [1, 2, 3])


# --------------------------------------------------------------------------- orientation_letters


@pytest.mark.parametrize(
    ("vector", "max_letters", "expected"),
    [
        ((1, 0, 0), 3, "L"),
        ((-1, 0, 0), 3, "R"),
        ((0, 1, 0), 3, "P"),
        ((0, -1, 0), 3, "A"),
        ((0, 0, 1), 3, "S"),
        ((0, 0, -1), 3, "I"),
        ((0.8, -0.6, 0), 3, "LA"),
        ((0.6, -0.8, 0), 3, "AL"),
        ((-3, 0, 4), 3, "SR"),
        ((0.2, 0.3, -0.9), 3, "IPL"),
        ((0.2, 0.3, -0.9), 2, "IP"),
        ((0.2, 0.3, -0.9), 1, "I"),
        ((1, 1, 1), 3, "LPS"),
        ((1, 0.0005, 0), 3, "L"),
        ((1, -0.002, 0), 3, "LA"),
        ((10, 0, 0), 3, "L"),
    ],
)
def test_orientation_letters(vector, max_letters, expected):
    assert orientation_letters(vector, max_letters) == expected


@pytest.mark.parametrize(("vector", "max_letters"), [((0, 0, 0), 3), ((1, 0), 3), ((1, 0, 0), 0)])
def test_orientation_letters_rejects_bad_input(vector, max_letters):
    with pytest.raises(ValueError):
        orientation_letters(vector, max_letters)


# --------------------------------------------------------------------------- reslicing


def check_plane(volume: np.ndarray, affine: np.ndarray, plane: str, index: int) -> PlaneSlice:
    """Check a reslice result against voxel positions computed in the test."""
    result = reslice(volume, affine, plane, index)
    image = result.image
    assert image.ndim == 2
    assert np.shares_memory(image, volume)
    assert not image.flags.owndata
    s, r, c = decode(image)
    truth = lps_of_voxels(affine, s, r, c)  # LPS of the voxel each pixel came from
    np.testing.assert_allclose(screen_lps(result.affine, image.shape), truth, atol=1e-9)
    np.testing.assert_allclose(voxel_to_patient(affine, np.stack([c, r, s], -1)), truth)
    np.testing.assert_allclose(result.affine[3], [0, 0, 0, 1])
    if image.shape[1] > 1:
        step_right = truth[0, 1] - truth[0, 0]
        assert result.pixel_spacing[1] == pytest.approx(np.linalg.norm(step_right))
    if image.shape[0] > 1:
        step_down = truth[1, 0] - truth[0, 0]
        assert result.pixel_spacing[0] == pytest.approx(np.linalg.norm(step_down))
    return result


@pytest.mark.parametrize("case", sorted(AXIS_ALIGNED_CASES))
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_reslice_axis_aligned_volumes(case, plane):
    affine, counts = AXIS_ALIGNED_CASES[case]
    volume = encoded_volume(SHAPE)
    normal, right, down = (np.array(v, dtype=float) for v in PLANES[plane])
    count = plane_count(volume.shape, affine, plane)
    assert count == counts[plane]
    seen, along = [], []
    for index in range(count):
        result = check_plane(volume, affine, plane, index)
        s, r, c = decode(result.image)
        truth = lps_of_voxels(affine, s, r, c)
        # Screen-right and screen-down follow the radiological convention exactly.
        if result.image.shape[1] > 1:
            np.testing.assert_allclose(unit(truth[0, 1] - truth[0, 0]), right, atol=1e-12)
        if result.image.shape[0] > 1:
            np.testing.assert_allclose(unit(truth[1, 0] - truth[0, 0]), down, atol=1e-12)
        np.testing.assert_allclose(unit(result.affine[:3, 0]), right, atol=1e-12)
        np.testing.assert_allclose(unit(result.affine[:3, 1]), down, atol=1e-12)
        np.testing.assert_allclose(unit(result.affine[:3, 2]), normal, atol=1e-12)
        # All pixels of one plane slice share the same coordinate along the normal.
        np.testing.assert_allclose(truth @ normal, truth[0, 0] @ normal, atol=1e-9)
        along.append(truth[0, 0] @ normal)
        seen.append(result.image.ravel())
        assert result.edge_letters == EDGE_LETTERS[plane]
    # Index order runs along increasing patient coordinate of the normal.
    assert np.all(np.diff(along) > 0)
    all_voxels = lps_of_voxels(affine, *np.indices(SHAPE))
    assert along[0] == pytest.approx((all_voxels @ normal).min())
    # Every voxel appears exactly once across the plane's slices.
    assert sorted(np.concatenate(seen).tolist()) == sorted(volume.ravel().tolist())


def test_reslice_axial_identity_hand_values():
    volume = encoded_volume(SHAPE)
    result = reslice(volume, np.eye(4), "axial", 2)
    np.testing.assert_array_equal(result.image, volume[2])
    assert result.pixel_spacing == (1.0, 1.0)
    result = reslice(volume, np.eye(4), "coronal", 1)
    # Screen rows run from superior (high slice) to inferior, columns along +x.
    np.testing.assert_array_equal(result.image, volume[::-1, 1, :])
    result = reslice(volume, np.eye(4), "sagittal", 3)
    np.testing.assert_array_equal(result.image, volume[::-1, :, 3])


def test_reslice_flipped_axial_hand_values():
    # IOP [-1,0,0,0,1,0], step (0,0,-2): columns run to patient right, slices to inferior.
    volume = encoded_volume(SHAPE)
    result = reslice(volume, A_FLIPPED_AXIAL, "axial", 0)
    np.testing.assert_array_equal(result.image, volume[3, :, ::-1])
    np.testing.assert_allclose(result.affine[:3, 3], [100 - 1.2 * 5, -100, 40 - 2 * 3])


signed_axes = st.tuples(
    st.permutations([0, 1, 2]), st.lists(st.sampled_from([-1, 1]), min_size=3, max_size=3)
)


@SETTINGS
@given(
    axes=signed_axes,
    sp=st.tuples(spacings, spacings, spacings),
    plane=st.sampled_from(sorted(PLANES)),
)
def test_reslice_any_axis_permutation(axes, sp, plane):
    perm, signs = axes
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for k in range(3):
        affine[perm[k], k] = signs[k] * sp[k]
    affine[:3, 3] = (5.0, -7.0, 11.0)
    volume = encoded_volume((3, 4, 5))
    normal, right, down = (np.array(v, dtype=float) for v in PLANES[plane])
    normal_axis = int(np.argmax(normal))
    expected_count = (5, 4, 3)[perm.index(normal_axis)]  # sizes along (col, row, slice)
    assert plane_count(volume.shape, affine, plane) == expected_count
    for index in (0, expected_count - 1):
        result = check_plane(volume, affine, plane, index)
        np.testing.assert_allclose(unit(result.affine[:3, 0]), right, atol=1e-12)
        np.testing.assert_allclose(unit(result.affine[:3, 1]), down, atol=1e-12)
        assert result.pixel_spacing == pytest.approx(
            (sp[perm.index(int(np.argmax(np.abs(down))))], sp[perm.index(int(np.argmax(right)))])
        )
    first = reslice(volume, affine, plane, 0).affine[:3, 3] @ normal
    last = reslice(volume, affine, plane, expected_count - 1).affine[:3, 3] @ normal
    assert last - first == pytest.approx((expected_count - 1) * sp[perm.index(normal_axis)])


def test_reslice_oblique_uses_nearest_axes():
    angle = math.radians(20)
    cos, sin = math.cos(angle), math.sin(angle)
    affine = np.array(
        [[0.5 * cos, -0.5 * sin, 0, 1], [0.5 * sin, 0.5 * cos, 0, 2], [0, 0, 2, 3], [0, 0, 0, 1]]
    )
    volume = encoded_volume(SHAPE)
    assert plane_count(volume.shape, affine, "axial") == 4
    assert plane_count(volume.shape, affine, "coronal") == 5
    assert plane_count(volume.shape, affine, "sagittal") == 6
    for plane in PLANES:
        result = check_plane(volume, affine, plane, 1)
        _, right, down = PLANES[plane]
        assert result.affine[:3, 0] @ right > 0
        assert result.affine[:3, 1] @ down > 0
    assert reslice(volume, affine, "axial", 0).edge_letters["right"] == "LP"


def test_reslice_gantry_tilted_volume_keeps_exact_positions():
    affine = np.array([[0.5, 0, 0, 0], [0, 0.5, 0.4, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match="not orthogonal"):
        validate_affine(affine)
    volume = encoded_volume(SHAPE)
    for plane in PLANES:
        check_plane(volume, affine, plane, 0)


def test_reslice_colour_volume_keeps_channels():
    volume = encoded_volume(SHAPE)[..., None] * 10 + np.arange(3)
    for plane in PLANES:
        result = reslice(volume, A_SAGITTAL, plane, 1)
        assert result.image.ndim == 3
        assert result.image.shape[-1] == 3
        assert np.shares_memory(result.image, volume)
        np.testing.assert_array_equal(
            result.image % 10, np.broadcast_to(np.arange(3), result.image.shape)
        )
        grey = reslice(encoded_volume(SHAPE), A_SAGITTAL, plane, 1).image
        np.testing.assert_array_equal(result.image[..., 0] // 10, grey)
    assert plane_count(volume.shape, A_SAGITTAL, "axial") == 5


def test_reslice_view_tracks_volume_changes():
    volume = encoded_volume(SHAPE)
    result = reslice(volume, A_CORONAL, "sagittal", 0)
    volume[...] = -1
    assert np.all(result.image == -1)


@pytest.mark.parametrize("index", [-1, 4, 100])
def test_reslice_index_out_of_range(index):
    with pytest.raises(IndexError):
        reslice(encoded_volume(SHAPE), A_AXIAL, "axial", index)


def test_reslice_rejects_bad_arguments():
    volume = encoded_volume(SHAPE)
    with pytest.raises(ValueError, match="unknown plane"):
        reslice(volume, A_AXIAL, "oblique", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        reslice(volume[0], A_AXIAL, "axial", 0)
    with pytest.raises(ValueError, match="shape"):
        plane_count((4, 5, 6, 2), A_AXIAL, "axial")
    with pytest.raises(TypeError):
        reslice(volume, A_AXIAL, "axial", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zero spacing"):
        reslice(volume, _with(A_AXIAL, (2, 2), 0.0), "axial", 0)


@pytest.mark.parametrize(
    ("letter", "vector"),
    [("L", (1, 0, 0)), ("r", (-1, 0, 0)), ("P", (0, 1, 0)), ("A", (0, -1, 0)),
     ("S", (0, 0, 1)), ("I", (0, 0, -1))],
)  # fmt: skip
def test_letter_vector_and_orientation_letters_agree(letter: str, vector: tuple) -> None:
    assert letter_vector(letter) == vector
    assert orientation_letters(vector) == letter.upper()


def test_letter_vector_rejects_other_letters() -> None:
    with pytest.raises(GeometryError, match="not an axis letter: 'H'"):
        letter_vector("H")
