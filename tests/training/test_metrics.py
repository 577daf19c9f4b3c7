"""Tests of medviewer.training.metrics against scenes with known truth."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from medviewer.training.metrics import (
    dice,
    heatmap_hit,
    match_nodules,
    nodule_components,
    per_nodule_dice,
    roc_auc,
    roc_points,
    sensitivity_specificity,
    summarise,
)

SPACING = (1.5, 0.75, 0.75)  # (slice, row, col) mm: anisotropic


def ball(shape, spacing, centre_index, radius_mm) -> np.ndarray:
    """Voxels whose centre lies within `radius_mm` of the voxel centre `centre_index`."""
    grids = np.indices(shape, dtype=np.float64)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre_index, spacing, strict=True))
    return d2 <= radius_mm**2


def brute_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice from sets of voxel coordinates."""
    sa, sb = set(zip(*np.nonzero(a), strict=True)), set(zip(*np.nonzero(b), strict=True))
    return 2 * len(sa & sb) / (len(sa) + len(sb))


# --------------------------------------------------------------------------------------------
# Dice and components


def test_dice_of_sphere_shifted_by_one_voxel_matches_brute_force() -> None:
    spacing = (2.0, 0.8, 0.7)
    truth_mask = ball((16, 40, 40), spacing, (8, 20, 20), 6.0)
    shifted = np.roll(truth_mask, 1, axis=1)  # one row; the ball is far from the border
    truth = truth_mask.astype(np.uint8) * 3
    pred = shifted.astype(np.uint8) * 3
    pred[0, :5, :5] = 1  # another label: not counted
    expected = brute_dice(truth_mask, shifted)
    assert 0.5 < expected < 1.0
    assert dice(pred, truth, 3) == expected
    assert dice(pred, truth, 3) == dice(truth, pred, 3)


def test_dice_empty_and_shape_cases() -> None:
    zeros = np.zeros((3, 4, 5), np.uint8)
    assert dice(zeros, zeros, 3) == 1.0
    one = zeros.copy()
    one[1, 1, 1] = 3
    assert dice(one, zeros, 3) == 0.0
    assert dice(one, one, 3) == 1.0
    with pytest.raises(ValueError, match="shape"):
        dice(one, np.zeros((3, 4, 6), np.uint8), 3)


def test_equivalent_diameter_of_voxelised_sphere() -> None:
    spacing = (1.25, 0.7, 0.9)
    mask = ball((20, 30, 30), spacing, (10, 15, 14), 6.0)
    labels = np.where(mask, 3, 0).astype(np.uint8)
    labels[0, 0, 0] = 1  # another label is not a component
    (component,) = nodule_components(labels, spacing)
    assert component.index == 1
    assert component.voxels == int(mask.sum())
    assert component.volume_mm3 == pytest.approx(mask.sum() * 1.25 * 0.7 * 0.9, rel=1e-12)
    assert component.equivalent_diameter_mm == pytest.approx(12.0, rel=0.05)
    assert component.equivalent_diameter_mm == pytest.approx(
        (6 * component.volume_mm3 / math.pi) ** (1 / 3), rel=1e-12
    )
    assert component.centroid_index == (10.0, 15.0, 14.0)  # symmetric about a voxel centre
    expected_box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    assert component.bounding_box == expected_box
    assert component.bounding_box == (slice(6, 15), slice(7, 24), slice(8, 21))


def test_components_use_26_connectivity_and_raster_order() -> None:
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[4, 4, 4] = labels[5, 5, 5] = 3  # corner neighbours: one component
    labels[0, 3, 3] = 3  # first in raster order
    labels[0, 3, 5] = 3  # one voxel gap: separate
    components = nodule_components(labels, (1.0, 1.0, 1.0))
    assert [c.voxels for c in components] == [1, 1, 2]
    assert [c.index for c in components] == [1, 2, 3]
    assert [c.bounding_box[2].start for c in components] == [3, 5, 4]
    assert components[2].centroid_index == (4.5, 4.5, 4.5)
    assert nodule_components(np.zeros((2, 2, 2), np.uint8), (1.0, 1.0, 1.0)) == []


# --------------------------------------------------------------------------------------------
# Per-nodule Dice


def per_nodule_scene() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Truth: big A, small S beside A (inside A's box), big B far away. Predictions around."""
    shape = (24, 48, 64)
    parts = {
        "A": ball(shape, SPACING, (8, 16, 16), 6.0),
        "S": ball(shape, SPACING, (8, 16, 28), 2.0),
        "B": ball(shape, SPACING, (16, 36, 50), 6.0),
    }
    truth = np.zeros(shape, np.uint8)
    for name in "ASB":
        truth[parts[name]] = 3
    parts["A shifted"] = np.roll(parts["A"], 1, axis=1)
    parts["blob in box"] = np.zeros(shape, bool)
    parts["blob in box"][8:10, 30:32, 30:32] = True
    pred = np.zeros(shape, np.uint8)
    for name in ("A shifted", "S", "B", "blob in box"):
        pred[parts[name]] = 3
    pred[2, 44:46, 60:62] = 3  # outside every scored nodule's box
    return pred, truth, parts


def test_per_nodule_dice_scores_large_nodules_and_ignores_other_nodules() -> None:
    pred, truth, parts = per_nodule_scene()
    a, s, b = parts["A"], parts["S"], parts["B"]
    shifted, blob = parts["A shifted"], parts["blob in box"]
    assert not (shifted & (s | blob)).any()
    components = nodule_components(truth, SPACING)
    assert [c.voxels for c in components] == [a.sum(), s.sum(), b.sum()]
    assert components[1].equivalent_diameter_mm < 6.0 < components[0].equivalent_diameter_mm

    scores = per_nodule_dice(pred, truth, SPACING)

    overlap = np.count_nonzero(a & shifted)
    expected_a = 2 * overlap / (a.sum() + shifted.sum() + blob.sum())  # S's voxels left out
    assert scores == [
        (components[0].equivalent_diameter_mm, expected_a),
        (components[2].equivalent_diameter_mm, 1.0),
    ]


def test_per_nodule_dice_threshold_and_misses() -> None:
    pred, truth, _ = per_nodule_scene()
    assert per_nodule_dice(pred, truth, SPACING, min_diameter_mm=20.0) == []
    assert len(per_nodule_dice(pred, truth, SPACING, min_diameter_mm=0.0)) == 3
    missed = per_nodule_dice(np.zeros_like(pred), truth, SPACING)
    assert [score for _, score in missed] == [0.0, 0.0]


# --------------------------------------------------------------------------------------------
# Detection


def detection_scene() -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Truth: A (12 mm), C (10 mm, missed), S (3 mm, small).

    Predictions: one overlapping A, one FP, one overlapping only S, one single-voxel FP.
    """
    shape = (20, 60, 60)
    truth = np.zeros(shape, np.uint8)
    truth[ball(shape, SPACING, (6, 15, 15), 6.0)] = 3  # A
    truth[ball(shape, SPACING, (14, 45, 45), 5.0)] = 3  # C
    truth[ball(shape, SPACING, (6, 15, 45), 1.5)] = 3  # S
    pred = np.zeros(shape, np.uint8)
    pred[ball(shape, SPACING, (6, 20, 20), 4.0)] = 3  # overlaps A partly
    pred[ball(shape, SPACING, (15, 12, 12), 3.0)] = 3  # false positive
    pred[5:8, 16:19, 44:47] = 3  # overlaps S only
    pred[1, 50, 5] = 3  # single voxel: 0.84 mm3
    diameters = {
        "A": nodule_components(truth, SPACING)[0].equivalent_diameter_mm,
        "C": nodule_components(truth, SPACING)[2].equivalent_diameter_mm,
    }
    assert [c.bounding_box[0].start for c in nodule_components(truth, SPACING)] == [2, 5, 11]
    return pred, truth, diameters


def test_match_nodules_counts_crafted_scene() -> None:
    pred, truth, diameters = detection_scene()
    result = match_nodules(pred, truth, SPACING, min_candidate_mm3=1.0)
    assert (result.true_positives, result.false_negatives) == (1, 1)
    assert (result.false_positives, result.ignored, result.discarded) == (1, 1, 1)
    assert result.sensitivity == 0.5
    assert result.detected_diameters_mm == (diameters["A"],)
    assert result.missed_diameters_mm == (diameters["C"],)


def test_match_nodules_without_candidate_floor_and_with_small_nodules_eligible() -> None:
    pred, truth, _ = detection_scene()
    kept_all = match_nodules(pred, truth, SPACING)
    assert (kept_all.false_positives, kept_all.ignored, kept_all.discarded) == (2, 1, 0)
    everything = match_nodules(pred, truth, SPACING, min_diameter_mm=0.0, min_candidate_mm3=1.0)
    assert (everything.true_positives, everything.false_negatives) == (2, 1)
    assert (everything.false_positives, everything.ignored) == (1, 0)
    assert everything.sensitivity == 2 / 3


def test_match_nodules_one_prediction_spanning_two_nodules_and_empty_maps() -> None:
    truth = np.zeros((3, 10, 10), np.uint8)
    truth[1, 2:5, 2:5] = 3
    truth[1, 2:5, 6:9] = 3
    pred = np.zeros_like(truth)
    pred[1, 3, 1:9] = 3  # one bar across both
    result = match_nodules(pred, truth, (1.0, 2.0, 2.0), min_diameter_mm=3.0)
    assert (result.true_positives, result.false_negatives, result.false_positives) == (2, 0, 0)
    empty = match_nodules(np.zeros_like(truth), truth, (1.0, 2.0, 2.0), min_diameter_mm=3.0)
    assert (empty.true_positives, empty.false_negatives, empty.false_positives) == (0, 2, 0)
    no_truth = match_nodules(pred, np.zeros_like(truth), (1.0, 2.0, 2.0))
    assert no_truth.false_positives == 1
    assert math.isnan(no_truth.sensitivity)
    with pytest.raises(ValueError, match="spacing"):
        match_nodules(pred, truth, (1.0, 0.0, 2.0))


# --------------------------------------------------------------------------------------------
# ROC


def test_roc_auc_equals_pairwise_count_with_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 80).astype(float) / 5  # many ties
    labels = rng.random(80) < 0.4
    pos, neg = scores[labels], scores[~labels]
    greater = sum(int(p > n) for p in pos for n in neg)
    equal = sum(int(p == n) for p in pos for n in neg)
    exact = Fraction(2 * greater + equal, 2 * pos.size * neg.size)
    assert roc_auc(scores, labels) == float(exact)
    assert roc_auc(scores, labels.astype(int)) == float(exact)
    assert roc_auc(list(scores), list(labels)) == float(exact)


def test_roc_points_area_equals_auc() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 8, 50).astype(float)
    labels = rng.random(50) < 0.5
    thresholds, sensitivity, specificity = roc_points(scores, labels)
    assert thresholds[0] == np.inf
    assert np.all(np.diff(thresholds) < 0)
    assert (sensitivity[0], specificity[0], sensitivity[-1], specificity[-1]) == (0, 1, 1, 0)
    fpr = 1.0 - specificity
    area = float(np.sum(np.diff(fpr) * (sensitivity[1:] + sensitivity[:-1]) / 2))
    assert area == pytest.approx(roc_auc(scores, labels), abs=1e-12)
    for t, sens, spec in zip(thresholds[1:], sensitivity[1:], specificity[1:], strict=True):
        assert sensitivity_specificity(scores, labels, t) == pytest.approx((sens, spec))


def test_roc_auc_edge_cases() -> None:
    labels = [0, 0, 1, 1]
    assert roc_auc([0.1, 0.2, 0.3, 0.4], labels) == 1.0
    assert roc_auc([0.4, 0.3, 0.2, 0.1], labels) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], labels) == 0.5
    assert roc_auc([0.1, 0.3, 0.3, 0.4], labels) == 0.875
    with pytest.raises(ValueError, match="both classes: got 0 positive and 3 negative"):
        roc_auc([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(ValueError, match="both classes: got 2 positive and 0 negative"):
        roc_auc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="0/1"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        roc_auc([0.1, 0.2, 0.3], [0, 1])


def test_sensitivity_specificity_at_threshold() -> None:
    scores = [0.1, 0.4, 0.35, 0.8, 0.2]
    labels = [0, 0, 1, 1, 1]
    assert sensitivity_specificity(scores, labels, 0.35) == (2 / 3, 0.5)  # >= is positive
    assert sensitivity_specificity(scores, labels, 0.36) == (1 / 3, 0.5)
    assert sensitivity_specificity(scores, labels, 0.0) == (1.0, 0.0)
    sens, spec = sensitivity_specificity([0.3, 0.6], [1, 1], 0.5)
    assert sens == 0.5
    assert math.isnan(spec)


# --------------------------------------------------------------------------------------------
# Heatmaps and summaries


def test_heatmap_hit_uses_first_argmax_and_anisotropic_spacing() -> None:
    heatmap = np.zeros((10, 20))
    heatmap[3, 7] = 1.0
    heatmap[8, 15] = 1.0  # same value later: not the peak
    spacing = (2.0, 0.5)  # rows 2 mm, cols 0.5 mm
    assert heatmap_hit(heatmap, spacing, (3.0, 11.0), 2.0) == (True, 2.0)  # 4 cols
    assert heatmap_hit(heatmap, spacing, (3.0, 11.0), 1.99) == (False, 2.0)
    assert heatmap_hit(heatmap, spacing, (4.5, 7.0), 2.5) == (False, 3.0)  # 1.5 rows
    assert heatmap_hit(heatmap, spacing[::-1], (4.5, 7.0), 2.5) == (True, 0.75)
    hit, distance = heatmap_hit(heatmap, spacing, (6.0, 11.0), 7.0)
    assert (hit, distance) == (True, math.hypot(6.0, 2.0))
    with pytest.raises(ValueError, match="2D"):
        heatmap_hit(np.zeros((2, 2, 2)), spacing, (0, 0), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        heatmap_hit(np.full((2, 2), np.nan), spacing, (0, 0), 1.0)


def test_summarise_skips_nan_and_handles_empty() -> None:
    assert summarise([1.0, float("nan"), 3.0, 2.0, 10.0]) == {
        "n": 4,
        "mean": 4.0,
        "median": 2.5,
        "min": 1.0,
        "max": 10.0,
    }
    for values in ([], [float("nan")]):
        summary = summarise(values)
        assert summary["n"] == 0
        assert all(math.isnan(summary[k]) for k in ("mean", "median", "min", "max"))
