"""Tests for medviewer.ai.statistics against analytic truth.

Expected volumes, centroids and diameters are written out by hand from the shapes' geometry
(boxes, ellipsoids, discs), or computed by brute force over voxel centres, never by the code
under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.ai import statistics
from medviewer.ai.model_card import PostprocessStep
from medviewer.ai.statistics import (
    EXACT_FERET_MAX_VOXELS,
    FERET_COVERING_ANGLE_DEG,
    FERET_DIRECTIONS,
    FERET_OBSERVED_RELATIVE_ERROR,
    approximate_feret_diameter,
    feret_directions,
    fill_holes,
    keep_largest_component,
    keep_largest_components,
    postprocess_labels,
    remove_components_by_max_probability,
    remove_components_by_mean,
    remove_small_components,
    segment_statistics,
)

SPACING = (0.5, 0.8, 2.5)  # (col, row, slice) mm
ORIGIN = (-100.5, 20.25, 37.0)


def _rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """Rodrigues rotation matrix about `axis`."""
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    theta = math.radians(degrees)
    return np.eye(3) + math.sin(theta) * cross + (1 - math.cos(theta)) * cross @ cross


def _affine(
    spacing: tuple[float, float, float] = SPACING,
    rotation: np.ndarray | None = None,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = (np.eye(3) if rotation is None else rotation) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _brute_force_diameter(mask: np.ndarray, affine: np.ndarray) -> float:
    """Largest distance between voxel centres of `mask`, comparing every pair."""
    s, r, c = np.nonzero(mask)
    points = np.column_stack([c, r, s]) @ affine[:3, :3].T
    diff = points[:, None, :] - points[None, :, :]
    return float(np.sqrt(np.einsum("ijk,ijk->ij", diff, diff).max()))


# A 5 x 10 x 16 (slices x rows x cols) box: slices 2-6, rows 3-12, cols 4-19.
BOX_SHAPE = (12, 20, 30)
BOX = (slice(2, 7), slice(3, 13), slice(4, 20))
BOX_CENTROID_INDEX = (11.5, 7.5, 4.0)  # (col, row, slice)
BOX_DIAMETER = math.sqrt((15 * 0.5) ** 2 + (9 * 0.8) ** 2 + (4 * 2.5) ** 2)


def _box_labels() -> np.ndarray:
    labels = np.zeros(BOX_SHAPE, dtype=np.uint8)
    labels[BOX] = 1
    return labels


# --------------------------------------------------------------------------- boxes


def test_box_on_anisotropic_grid() -> None:
    affine = _affine(origin=ORIGIN)
    stats = segment_statistics(_box_labels(), affine, {1: "box"})[1]

    assert stats.label == 1
    assert stats.name == "box"
    assert stats.voxels == 800
    assert stats.volume_ml == pytest.approx(800 * 0.5 * 0.8 * 2.5 / 1000, rel=1e-12)
    expected_lps = (-100.5 + 11.5 * 0.5, 20.25 + 7.5 * 0.8, 37.0 + 4.0 * 2.5)
    assert stats.centroid_lps == pytest.approx(expected_lps, abs=1e-9)
    assert stats.centroid_slice == 4
    assert stats.longest_diameter_mm == pytest.approx(BOX_DIAMETER, rel=1e-9)
    assert stats.mean_value is None

    (component,) = stats.components
    assert component.index == 1
    assert component.voxels == 800
    assert component.volume_ml == pytest.approx(0.8, rel=1e-12)
    assert component.bbox == (2, 3, 4, 7, 13, 20)
    assert component.centroid_index == pytest.approx(BOX_CENTROID_INDEX, abs=1e-9)
    assert component.centroid_lps == pytest.approx(expected_lps, abs=1e-9)
    assert component.centroid_slice == 4
    assert component.longest_diameter_mm == pytest.approx(BOX_DIAMETER, rel=1e-9)
    assert component.mean_value is None


def test_box_on_oblique_grid() -> None:
    affine = _affine(rotation=_rotation((1.0, 2.0, 0.5), 30.0), origin=ORIGIN)
    stats = segment_statistics(_box_labels(), affine, {1: "box"})[1]
    component = stats.components[0]

    expected_lps = (affine @ (*BOX_CENTROID_INDEX, 1.0))[:3]
    assert component.centroid_index == pytest.approx(BOX_CENTROID_INDEX, abs=1e-9)
    assert component.centroid_lps == pytest.approx(tuple(expected_lps), abs=1e-9)
    assert stats.centroid_lps == pytest.approx(tuple(expected_lps), abs=1e-9)
    assert stats.volume_ml == pytest.approx(0.8, rel=1e-12)
    assert stats.longest_diameter_mm == pytest.approx(BOX_DIAMETER, rel=1e-9)
    assert component.bbox == (2, 3, 4, 7, 13, 20)


def test_approximate_path_is_exact_on_a_box(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, "EXACT_FERET_MAX_VOXELS", 0)
    affine = _affine(rotation=_rotation((0.0, 1.0, 1.0), 30.0), origin=ORIGIN)
    stats = segment_statistics(_box_labels(), affine, {1: "box"})[1]
    assert stats.longest_diameter_mm == pytest.approx(BOX_DIAMETER, rel=1e-9)


def test_single_voxel_has_zero_diameter() -> None:
    labels = np.zeros((3, 4, 5), dtype=np.uint8)
    labels[1, 2, 3] = 7
    stats = segment_statistics(labels, _affine(), {7: "dot"})[7]
    assert stats.voxels == 1
    assert stats.longest_diameter_mm == 0.0
    assert stats.components[0].bbox == (1, 2, 3, 2, 3, 4)
    assert stats.components[0].centroid_index == pytest.approx((3.0, 2.0, 1.0))


def test_exact_diameter_matches_brute_force_on_irregular_blobs() -> None:
    rng = np.random.default_rng(8)
    affine = _affine(rotation=_rotation((2.0, 1.0, -1.0), 30.0), origin=ORIGIN)
    for _ in range(5):
        labels = np.zeros((8, 10, 12), dtype=np.uint8)
        labels[1:7, 2:9, 1:11] = rng.random((6, 7, 10)) < 0.6
        blob = keep_largest_component(labels, 1, fully_connected=True)
        stats = segment_statistics(blob, affine, {1: "blob"}, fully_connected=True)[1]
        assert len(stats.components) == 1
        expected = _brute_force_diameter(blob == 1, affine)
        assert stats.longest_diameter_mm == pytest.approx(expected, rel=1e-9)


def test_flat_and_straight_components() -> None:
    labels = np.zeros((6, 8, 9), dtype=np.uint8)
    labels[1:4, 2, 1:5] = 1  # one row thick: slices x cols
    labels[5, 1:7, 7] = 2  # a run along the rows
    labels[0:6, 7, 0] = 3  # a run along the slices
    labels[1, 5:7, 2:5] = 4  # one slice thick
    stats = segment_statistics(labels, _affine(), {1: "a", 2: "b", 3: "c", 4: "d"})
    assert stats[1].longest_diameter_mm == pytest.approx(math.hypot(2 * 2.5, 3 * 0.5))
    assert stats[2].longest_diameter_mm == pytest.approx(5 * 0.8)
    assert stats[3].longest_diameter_mm == pytest.approx(5 * 2.5)
    assert stats[4].longest_diameter_mm == pytest.approx(math.hypot(1 * 0.8, 2 * 0.5))


# --------------------------------------------------------------------------- components


def test_two_blobs_ordered_by_size() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.int16)
    labels[6:8, 6:8, 6:8] = 2  # 8 voxels, first in neither order
    labels[0:3, 0:3, 0:3] = 2  # 27 voxels
    affine = _affine()
    stats = segment_statistics(labels, affine, {2: "blobs"})[2]

    assert [c.index for c in stats.components] == [1, 2]
    assert [c.voxels for c in stats.components] == [27, 8]
    assert stats.voxels == 35
    assert stats.volume_ml == pytest.approx(sum(c.volume_ml for c in stats.components))
    assert stats.components[0].bbox == (0, 0, 0, 3, 3, 3)
    assert stats.components[1].bbox == (6, 6, 6, 8, 8, 8)
    assert stats.components[1].centroid_index == pytest.approx((6.5, 6.5, 6.5))
    # Segment centroid: voxel-weighted mean of the two blobs' centroids.
    expected_index = (27 * np.array([1.0, 1.0, 1.0]) + 8 * np.array([6.5, 6.5, 6.5])) / 35
    expected_lps = expected_index * np.asarray(SPACING)
    assert stats.centroid_lps == pytest.approx(tuple(expected_lps), abs=1e-9)
    # Segment diameter: the larger of the two blobs' own diameters, not across blobs.
    big = math.sqrt((2 * 0.5) ** 2 + (2 * 0.8) ** 2 + (2 * 2.5) ** 2)
    assert stats.longest_diameter_mm == pytest.approx(big)


def test_fully_connected_joins_diagonal_voxels() -> None:
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    labels[1, 1, 1] = labels[2, 2, 2] = 1  # corner-touching
    labels[4, 4, 0] = labels[4, 5, 1] = 1  # edge-touching in one slice
    affine = _affine()
    face = segment_statistics(labels, affine, {1: "x"})[1]
    full = segment_statistics(labels, affine, {1: "x"}, fully_connected=True)[1]
    assert len(face.components) == 4
    assert len(full.components) == 2
    assert [c.voxels for c in full.components] == [2, 2]
    corner = math.sqrt(0.5**2 + 0.8**2 + 2.5**2)
    assert full.longest_diameter_mm == pytest.approx(corner)


def test_max_components_drops_the_smallest_but_counts_them() -> None:
    labels = np.zeros((5, 20, 20), dtype=np.uint8)
    labels[1:4, 1:4, 1:4] = 1
    labels[1:3, 10:12, 10:12] = 1
    for col in range(0, 20, 2):
        labels[4, 18, col] = 1
    stats = segment_statistics(labels, _affine(), {1: "x"}, max_components=2)[1]
    assert [c.voxels for c in stats.components] == [27, 8]
    assert stats.voxels == 27 + 8 + 10
    assert stats.volume_ml == pytest.approx(45 * 0.5 * 0.8 * 2.5 / 1000)
    none_listed = segment_statistics(labels, _affine(), {1: "x"}, max_components=0)[1]
    assert none_listed.components == ()
    assert none_listed.voxels == 45


def test_mean_values_match_numpy() -> None:
    rng = np.random.default_rng(3)
    labels = np.zeros((8, 12, 14), dtype=np.uint8)
    labels[1:4, 2:6, 2:9] = 1
    labels[5:7, 8:11, 1:3] = 1
    labels[4:8, 0:5, 10:14] = 2
    for values in (rng.normal(40.0, 300.0, labels.shape), rng.integers(-1024, 3000, labels.shape)):
        values = values.astype(np.float32 if values.dtype.kind == "f" else np.int16)
        stats = segment_statistics(labels, _affine(), {1: "a", 2: "b"}, values)
        for label in (1, 2):
            expected = values[labels == label].astype(np.float64).mean()
            assert stats[label].mean_value == pytest.approx(expected, rel=1e-9)
        big, small = stats[1].components
        assert big.mean_value == pytest.approx(values[1:4, 2:6, 2:9].astype(float).mean())
        assert small.mean_value == pytest.approx(values[5:7, 8:11, 1:3].astype(float).mean())


def test_empty_label_has_zero_stats() -> None:
    values = np.ones(BOX_SHAPE)
    stats = segment_statistics(_box_labels(), _affine(), {1: "box", 5: "absent"}, values)
    assert list(stats) == [1, 5]
    empty = stats[5]
    assert (empty.label, empty.name, empty.voxels) == (5, "absent", 0)
    assert empty.volume_ml == 0.0
    assert empty.longest_diameter_mm == 0.0
    assert empty.centroid_lps is None
    assert empty.centroid_slice is None
    assert empty.mean_value is None
    assert empty.components == ()
    assert stats[1].mean_value == pytest.approx(1.0)


# --------------------------------------------------------------------------- large shapes


def test_large_ellipsoid_uses_the_approximation_within_its_bound() -> None:
    import SimpleITK as sitk

    semi = (30.0, 15.0, 12.0)  # mm, along the ellipsoid's own axes
    spacing = (0.7, 0.7, 1.0)
    rotation = _rotation((1.0, -1.0, 2.0), 30.0)
    shape = (34, 90, 90)
    affine = _affine(spacing, rotation)
    centre_index = np.array([44.5, 45.0, 16.7])
    s, r, c = np.indices(shape)
    index = np.stack([c, r, s], axis=-1) - centre_index
    body = (index @ (rotation @ np.diag(spacing)).T) @ rotation  # patient offsets, body frame
    labels = (((body / semi) ** 2).sum(axis=-1) <= 1.0).astype(np.uint8)
    assert labels.sum() > EXACT_FERET_MAX_VOXELS
    assert not labels[0].any() and not labels[-1].any()

    stats = segment_statistics(labels, affine, {1: "ellipsoid"})[1]
    expected_ml = 4 / 3 * math.pi * math.prod(semi) / 1000
    assert stats.volume_ml == pytest.approx(expected_ml, rel=0.01)
    centre_lps = affine[:3, :3] @ centre_index
    assert stats.centroid_lps == pytest.approx(tuple(centre_lps), abs=0.05)

    # Voxel centres lie inside the ellipsoid, within a voxel diagonal of its tips.
    diagonal = math.hypot(*spacing)
    approx = stats.longest_diameter_mm
    assert 2 * semi[0] * (1 - FERET_OBSERVED_RELATIVE_ERROR) - 2 * diagonal <= approx
    assert approx <= 2 * semi[0]
    # Against SimpleITK's exact Feret diameter of the same voxels: a lower bound, within 0.1 %.
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(spacing)
    shape_filter = sitk.LabelShapeStatisticsImageFilter()
    shape_filter.ComputeFeretDiameterOn()
    shape_filter.Execute(image)
    exact = shape_filter.GetFeretDiameter(1)
    assert exact * (1 - FERET_OBSERVED_RELATIVE_ERROR) <= approx <= exact + 1e-9


def test_feret_directions_cover_the_sphere() -> None:
    directions = feret_directions()
    assert directions.shape == (FERET_DIRECTIONS, 3)
    assert np.linalg.norm(directions, axis=1) == pytest.approx(np.ones(FERET_DIRECTIONS))
    rng = np.random.default_rng(11)
    probes = rng.normal(size=(100_000, 3))
    probes /= np.linalg.norm(probes, axis=1)[:, None]
    nearest = np.degrees(np.arccos(np.clip(np.abs(probes @ directions.T).max(axis=1), 0, 1)))
    assert nearest.max() <= FERET_COVERING_ANGLE_DEG


def test_approximate_diameter_guaranteed_bound_on_random_clouds() -> None:
    rng = np.random.default_rng(5)
    bound = math.cos(math.radians(FERET_COVERING_ANGLE_DEG))
    for _ in range(20):
        points = rng.normal(size=(400, 3)) * rng.uniform(0.2, 5.0, size=3)
        diff = points[:, None, :] - points[None, :, :]
        exact = float(np.sqrt(np.einsum("ijk,ijk->ij", diff, diff).max()))
        approx = approximate_feret_diameter(points)
        assert exact * bound <= approx <= exact + 1e-12
    assert approximate_feret_diameter(np.zeros((1, 3))) == 0.0
    assert approximate_feret_diameter(np.zeros((5, 3))) == 0.0
    assert approximate_feret_diameter(np.array([[0, 0, 0], [3.0, 4.0, 0]])) == pytest.approx(5.0)


# --------------------------------------------------------------------------- 2D


def test_single_slice_input() -> None:
    labels = np.zeros((1, 10, 12), dtype=np.uint8)
    labels[0, 2:6, 3:9] = 1  # 4 rows x 6 cols
    labels[0, 7, 0] = labels[0, 8, 1] = 1  # diagonal pair
    affine = _affine((0.6, 0.9, 3.0), origin=(1.0, 2.0, 3.0))
    stats = segment_statistics(labels, affine, {1: "x"})[1]
    rect = stats.components[0]
    assert rect.voxels == 24
    assert rect.volume_ml == pytest.approx(24 * 0.6 * 0.9 * 3.0 / 1000)
    assert rect.longest_diameter_mm == pytest.approx(math.hypot(5 * 0.6, 3 * 0.9))
    assert rect.centroid_index == pytest.approx((5.5, 3.5, 0.0))
    assert rect.centroid_lps == pytest.approx((1.0 + 5.5 * 0.6, 2.0 + 3.5 * 0.9, 3.0))
    assert rect.centroid_slice == 0
    assert rect.bbox == (0, 2, 3, 1, 6, 9)
    assert len(stats.components) == 3
    full = segment_statistics(labels, affine, {1: "x"}, fully_connected=True)[1]
    assert len(full.components) == 2


def test_single_slice_large_disc_uses_the_approximation() -> None:
    radius = 90  # voxels, 1 mm pixels
    r, c = np.indices((2 * radius + 5, 2 * radius + 5)) - (radius + 2)
    labels = (r * r + c * c <= radius * radius)[None].astype(np.uint8)
    assert labels.sum() > EXACT_FERET_MAX_VOXELS
    stats = segment_statistics(labels, _affine((1.0, 1.0, 5.0)), {1: "disc"})[1]
    assert stats.longest_diameter_mm == pytest.approx(2 * radius)
    assert stats.centroid_slice == 0


def test_invalid_inputs_raise() -> None:
    labels = _box_labels()
    with pytest.raises(ValueError, match="shape"):
        segment_statistics(labels, _affine(), {1: "x"}, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="slices, rows, cols"):
        segment_statistics(labels[0], _affine(), {1: "x"})
    with pytest.raises(ValueError, match="max_components"):
        segment_statistics(labels, _affine(), {1: "x"}, max_components=-1)
    with pytest.raises(ValueError):
        segment_statistics(labels, np.zeros((4, 4)), {1: "x"})


def test_segment_statistics_leaves_inputs_unchanged() -> None:
    labels = _box_labels()
    values = np.arange(labels.size, dtype=np.float64).reshape(labels.shape)
    affine = _affine(origin=ORIGIN)
    before = (labels.copy(), values.copy(), affine.copy())
    segment_statistics(labels, affine, {1: "box", 2: "none"}, values)
    for after, original in zip((labels, values, affine), before, strict=True):
        np.testing.assert_array_equal(after, original)


# --------------------------------------------------------------------------- post-processing


def test_keep_largest_component() -> None:
    labels = np.zeros((6, 8, 8), dtype=np.uint8)
    labels[0:3, 0:3, 0:3] = 1
    labels[5, 7, 7] = 1
    labels[4, 4, 4] = 1
    labels[3, 3, 3] = 1  # touches the big blob's corner only
    labels[4:6, 0:2, 5:8] = 2
    before = labels.copy()

    out = keep_largest_component(labels, 1)
    expected = labels.copy()
    expected[5, 7, 7] = expected[4, 4, 4] = expected[3, 3, 3] = 0
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(labels, before)
    assert out is not labels

    full = keep_largest_component(labels, 1, fully_connected=True)
    expected[4, 4, 4] = expected[3, 3, 3] = 1  # chain of corner contacts
    np.testing.assert_array_equal(full, expected)
    np.testing.assert_array_equal(keep_largest_component(labels, 9), labels)


def _hollow_sphere(shape: tuple[int, int, int]) -> np.ndarray:
    s, r, c = np.indices(shape) - np.array(shape)[:, None, None, None] // 2
    d2 = s * s + r * r + c * c
    return ((d2 <= 36) & (d2 > 9)).astype(np.uint8)


def test_fill_holes_fills_a_closed_cavity_but_keeps_other_labels() -> None:
    labels = _hollow_sphere((16, 16, 16))
    s, r, c = np.indices(labels.shape) - 8
    cavity = s * s + r * r + c * c <= 9
    labels[8, 8, 8] = 3  # a nodule inside the cavity
    before = labels.copy()

    out = fill_holes(labels, 1)
    np.testing.assert_array_equal(labels, before)
    assert out[8, 8, 8] == 3
    filled = cavity.copy()
    filled[8, 8, 8] = False
    assert (out[filled] == 1).all()
    assert (out[~cavity] == labels[~cavity]).all()


def test_fill_holes_leaves_a_cup_open_to_the_border() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[2:10, 2:8, 2:8] = 1  # walls and floor; the cup's mouth is at the last slice
    labels[3:10, 3:7, 3:7] = 0
    np.testing.assert_array_equal(fill_holes(labels, 1), labels)
    # Closing the mouth (but not at the border) makes it a hole.
    closed = np.zeros((12, 10, 10), dtype=np.uint8)
    closed[:10] = labels
    closed[9, 2:8, 2:8] = 1
    out = fill_holes(closed, 1)
    assert (out[3:9, 3:7, 3:7] == 1).all()


def test_fill_holes_single_slice_is_2d() -> None:
    ring = np.zeros((1, 9, 9), dtype=np.uint8)
    ring[0, 1:8, 1:8] = 2
    ring[0, 2:7, 2:7] = 0
    out = fill_holes(ring, 2)
    assert (out[0, 1:8, 1:8] == 2).all()
    assert out.sum() == 2 * 49
    np.testing.assert_array_equal(fill_holes(ring[0], 2), out[0])  # plain 2D arrays too


def test_postprocess_applies_ops_in_order() -> None:
    labels = np.zeros((1, 20, 20), dtype=np.uint8)
    labels[0, 0:7, 0:7] = 1  # ring of 24 voxels around a 25-voxel hole
    labels[0, 1:6, 1:6] = 0
    labels[0, 10:16, 10:15] = 1  # solid blob of 30 voxels
    labels[0, 18, 18] = 2
    before = labels.copy()

    fill_first = postprocess_labels(labels, {1: ("fill_holes", "largest_component")})
    assert fill_first[0, 0:7, 0:7].sum() == 49
    assert fill_first[0, 10:16, 10:15].sum() == 0
    largest_first = postprocess_labels(labels, {1: ("largest_component", "fill_holes")})
    assert largest_first[0, 0:7, 0:7].sum() == 0
    assert largest_first[0, 10:16, 10:15].sum() == 30
    assert fill_first[0, 18, 18] == largest_first[0, 18, 18] == 2
    np.testing.assert_array_equal(labels, before)


def test_postprocess_rejects_unknown_ops_before_running() -> None:
    labels = np.ones((1, 3, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="dilate"):
        postprocess_labels(labels, {1: ("fill_holes",), 2: ("largest_component", "dilate")})
    np.testing.assert_array_equal(postprocess_labels(labels, {}), labels)


# --------------------------------------------------------------------------- parameterised steps


def _three_components() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label 1 as components of 27, 8 and 1 voxels (means 40, -850, 100); label 2 beside.

    The grid's voxels are 2 x 1 x 1 mm, so the components hold 54, 16 and 2 mm^3.
    """
    labels = np.zeros((8, 10, 12), dtype=np.uint8)
    values = np.zeros(labels.shape, dtype=np.int16)
    labels[0:3, 0:3, 0:3], values[0:3, 0:3, 0:3] = 1, 40  # A: 27 voxels, soft tissue
    labels[5:7, 5:7, 5:7], values[5:7, 5:7, 5:7] = 1, -850  # B: 8 voxels, lung air
    labels[7, 9, 11], values[7, 9, 11] = 1, 100  # C: 1 voxel
    labels[0:2, 8:10, 8:10] = 2
    affine = np.diag([1.0, 1.0, 2.0, 1.0])  # col, row spacing 1 mm; slice step 2 mm
    return labels, values, affine


def _kept(out: np.ndarray, labels: np.ndarray) -> set[str]:
    names = {"A": (0, 0, 0), "B": (5, 5, 5), "C": (7, 9, 11)}
    assert np.array_equal(out == 2, labels == 2), "label 2 must not change"
    assert set(np.unique(out[labels != 1])) <= {0, 2}, "nothing added"
    return {name for name, at in names.items() if out[at] == 1}


def test_keep_largest_components_keeps_the_count_largest() -> None:
    labels, _, _ = _three_components()
    assert _kept(keep_largest_components(labels, 1, 2), labels) == {"A", "B"}
    assert _kept(keep_largest_components(labels, 1, 1), labels) == {"A"}
    assert _kept(keep_largest_components(labels, 1, 5), labels) == {"A", "B", "C"}
    with pytest.raises(ValueError, match="count must be >= 1"):
        keep_largest_components(labels, 1, 0)


def test_remove_small_components_measures_volume_on_the_grid() -> None:
    labels, _, affine = _three_components()
    voxel = abs(np.linalg.det(affine[:3, :3]))
    assert voxel == 2.0
    assert _kept(remove_small_components(labels, 1, 20.0, voxel), labels) == {"A"}
    assert _kept(remove_small_components(labels, 1, 16.0, voxel), labels) == {"A", "B"}
    assert _kept(remove_small_components(labels, 1, 2.0, voxel), labels) == {"A", "B", "C"}


def test_remove_components_by_mean_drops_air() -> None:
    labels, values, _ = _three_components()
    assert _kept(remove_components_by_mean(labels, 1, values, low=-500), labels) == {"A", "C"}
    assert _kept(remove_components_by_mean(labels, 1, values, high=50), labels) == {"A", "B"}
    assert _kept(remove_components_by_mean(labels, 1, values, -500, 50), labels) == {"A"}


def test_remove_components_by_max_probability_keeps_those_that_reach_it() -> None:
    labels, _, affine = _three_components()
    probability = np.full(labels.shape, 0.6, np.float32)
    probability[1, 1, 1] = 0.97  # A's peak
    probability[6, 6, 6] = 0.91  # B's peak
    asked = []

    def at(label: int, index: tuple[np.ndarray, ...]) -> np.ndarray:
        asked.append(label)
        return probability[index]

    assert _kept(remove_components_by_max_probability(labels, 1, at, 0.95), labels) == {"A"}
    assert _kept(remove_components_by_max_probability(labels, 1, at, 0.9), labels) == {"A", "B"}
    assert _kept(remove_components_by_max_probability(labels, 1, at, 0.5), labels) == {
        "A", "B", "C"}
    assert set(asked) == {1}
    step = PostprocessStep("max_probability", {"min": 0.95})
    assert _kept(postprocess_labels(labels, {1: [step]}, probability=at), labels) == {"A"}
    with pytest.raises(ValueError, match="'max_probability' needs the model's probabilities"):
        postprocess_labels(labels, {1: [step]}, affine=affine)


def test_postprocess_runs_card_steps_with_the_grid_and_the_image() -> None:
    labels, values, affine = _three_components()
    steps = (
        PostprocessStep("mean_between", {"min": -500.0}),
        PostprocessStep("remove_small", {"min_volume_mm3": 20.0}),
    )
    out = postprocess_labels(labels, {1: steps}, affine=affine, values=values)
    assert _kept(out, labels) == {"A"}
    assert np.count_nonzero(out == 1) == 27
    with pytest.raises(ValueError, match="'remove_small' needs the grid's affine"):
        postprocess_labels(labels, {1: steps}, values=values)
    with pytest.raises(ValueError, match="'mean_between' needs the image values"):
        postprocess_labels(labels, {1: steps}, affine=affine)
