"""Bootstrap intervals, FROC/CPM and calibration error against hand-computed truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.training.metrics import (
    FROC_RATES,
    CaseCandidates,
    bootstrap,
    bootstrap_values,
    detection_candidates,
    expected_calibration_error,
    froc,
    gather,
    match_nodules,
    reliability_bins,
    reliability_json,
    roc_auc,
)
from tests.training.test_metrics import SPACING, ball, detection_scene

# --------------------------------------------------------------------------------------------
# Bootstrap


def test_identical_cases_give_a_zero_width_interval() -> None:
    values = np.full(25, 0.7)
    interval = bootstrap(lambda i: values[i].mean(), values.size)
    assert (interval.value, interval.low, interval.high) == pytest.approx((0.7, 0.7, 0.7))
    assert (interval.resamples, interval.skipped) == (2000, 0)
    assert interval.to_json() == {"value": 0.7, "ci95": [0.7, 0.7]}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_of_a_proportion_follows_the_binomial(seed) -> None:
    # 10 cases, 5 positive: a resample's proportion is Binomial(10, 1/2) / 10, whose 2.5 %
    # and 97.5 % quantiles are 2/10 and 8/10 (P(X <= 1) = 11/1024 < 0.025 < P(X <= 2) =
    # 56/1024). With 2000 resamples the 50th smallest is 0.2 unless ~6 sd from expectation.
    values = np.array([1.0] * 5 + [0.0] * 5)
    interval = bootstrap(lambda i: values[i].mean(), values.size, seed=seed)
    assert interval.value == 0.5
    assert (interval.low, interval.high) == pytest.approx((0.2, 0.8))
    _, draws = bootstrap_values(lambda i: values[i].mean(), values.size, seed=seed)
    # the resample mean is unbiased: its average is within 4 sd (0.158 / sqrt(2000)) of 0.5
    assert abs(draws.mean() - 0.5) < 4 * math.sqrt(0.025 / 2000)


def test_bootstrap_is_deterministic_with_its_seed() -> None:
    values = np.random.default_rng(7).normal(size=40)
    first = bootstrap_values(lambda i: values[i].mean(), values.size, seed=3)[1]
    again = bootstrap_values(lambda i: values[i].mean(), values.size, seed=3)[1]
    other = bootstrap_values(lambda i: values[i].mean(), values.size, seed=4)[1]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    interval = bootstrap(lambda i: values[i].mean(), values.size)
    assert interval.low < interval.value < interval.high
    # the percentile interval of a mean is about +-1.96 standard errors wide
    se = values.std() / math.sqrt(values.size)
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_degenerate_resamples_are_skipped_and_counted() -> None:
    scores, labels = np.array([0.9, 0.1]), np.array([True, False])

    def auc(i: np.ndarray) -> float:
        return roc_auc(scores[i], labels[i]) if len(set(labels[i])) == 2 else math.nan

    interval = bootstrap(auc, 2, seed=5)
    # resample r is the r-th draw of rng.integers(0, 2, size=2): one class when both agree
    rng = np.random.default_rng(5)
    one_class = sum(int(len(set(rng.integers(0, 2, size=2))) == 1) for _ in range(2000))
    assert interval.skipped == one_class and 900 < one_class < 1100
    assert (interval.value, interval.low, interval.high) == (1.0, 1.0, 1.0)
    assert interval.to_json()["ci95_skipped"] == one_class


def test_undefined_statistic_has_no_interval() -> None:
    labels = np.array([True, True, True])
    interval = bootstrap(lambda i: math.nan, labels.size)
    assert math.isnan(interval.value) and interval.skipped == 2000
    assert interval.to_json() == {"value": None, "ci95": None, "ci95_skipped": 2000}
    empty = bootstrap(lambda i: 1.0, 0)
    assert empty.to_json() == {"value": None, "ci95": None}


def test_cluster_bootstrap_keeps_each_series_slices_together() -> None:
    # series A ranks its nodule slice first, series B last; pooled over both the AUC is 3/4
    # (0.9 > 0.1, 0.9 > 0.8, 0.2 > 0.1, 0.2 < 0.8). Resampling series gives AA (1), BB (0)
    # or AB/BA (3/4), never a mix of single slices.
    scores = [np.array([0.9, 0.1]), np.array([0.2, 0.8])]
    targets = [np.array([True, False]), np.array([True, False])]
    value, draws = bootstrap_values(
        lambda i: roc_auc(gather(scores, i), gather(targets, i)), 2, resamples=400
    )
    assert value == 0.75
    assert set(draws) == {0.0, 0.75, 1.0}
    assert np.mean(draws == 0.75) == pytest.approx(0.5, abs=0.1)
    assert gather(scores, np.array([], dtype=int)).size == 0


# --------------------------------------------------------------------------------------------
# FROC


def hand_cases() -> list[CaseCandidates]:
    """Case 1: nodules 0.9 and missed, FPs 0.8 and 0.3; case 2: nodule 0.6, FPs .95 .5 .4 .2."""
    return [
        CaseCandidates((0.9, -math.inf), (0.8, 0.3)),
        CaseCandidates((0.6,), (0.95, 0.5, 0.4, 0.2)),
    ]


def test_froc_of_hand_built_candidates() -> None:
    curve = froc(hand_cases())
    assert (curve.nodules, curve.cases) == (3, 2)
    assert curve.thresholds.tolist() == [math.inf, 0.95, 0.9, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
    assert curve.false_positives.tolist() == [0, 1, 1, 2, 2, 3, 4, 5, 6]
    assert curve.sensitivity.tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3,
                                                        2 / 3, 2 / 3, 2 / 3])
    # FPs per case 0, .5, .5, 1, 1, 1.5, 2, 2.5, 3: at <= 1/8 and 1/4 only "nothing kept" (0);
    # at 1/2 the 0.9 threshold (1/3); at 1 the 0.6 threshold (2/3); beyond, 2/3
    at = [curve.sensitivity_at(r) for r in FROC_RATES]
    assert at == pytest.approx([0, 0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert curve.cpm() == pytest.approx(3 / 7)


def test_froc_ties_enter_together_and_no_nodule_is_undefined() -> None:
    curve = froc([CaseCandidates((0.5,), (0.5,)), CaseCandidates((), ())])
    assert curve.thresholds.tolist() == [math.inf, 0.5]
    # the nodule comes with half a false positive per case: not reached at 1/8 or 1/4
    assert [curve.sensitivity_at(r) for r in (0.25, 0.5)] == [0.0, 1.0]
    assert curve.cpm() == pytest.approx(5 / 7)
    assert math.isnan(froc([CaseCandidates((), (0.3,))]).cpm())
    assert froc([]).thresholds.tolist() == [math.inf]


def test_cpm_bootstrap_over_cases() -> None:
    same = [CaseCandidates((0.9,), (0.4,))] * 6
    interval = bootstrap(lambda i: froc([same[k] for k in i]).cpm(), len(same))
    # 1 FP per case at score 0.4 < 0.9: sensitivity 1 from 0 FPs; every resample is the same
    assert (interval.value, interval.low, interval.high) == (1.0, 1.0, 1.0)
    mixed = [*hand_cases(), CaseCandidates((), (0.7,))]
    interval = bootstrap(lambda i: froc([mixed[k] for k in i]).cpm(), len(mixed))
    # resamples made only of the nodule-free case have no sensitivity: 1 in 27 on average
    assert 0 < interval.skipped < 2000 * 3 / 27
    assert interval.low <= interval.value <= interval.high


def test_detection_candidates_score_components_by_their_maximum() -> None:
    pred, truth, _ = detection_scene()
    probability = np.where(pred == 3, 0.5, 0.0)
    probability[6, 20, 20] = 0.9  # the candidate overlapping A
    probability[15, 12, 12] = 0.6  # the false positive
    probability[6, 17, 45] = 0.95  # the candidate touching only the 3 mm nodule S
    probability[1, 50, 5] = 0.99  # a single voxel under the volume floor
    extra = np.zeros_like(pred, dtype=bool)
    extra[5:8, 9:11, 13:16] = True  # a second candidate inside A, apart from the first
    assert (truth[extra] == 3).all() and not (pred[extra] == 3).any()
    pred[extra] = 3
    probability[extra] = 0.92
    result = detection_candidates(pred, truth, probability, SPACING, min_candidate_mm3=1.0)
    # A takes the better of its two candidates; C (10 mm) is missed; S is too small to count
    assert result.nodule_scores == (0.92, -math.inf)
    assert result.false_positive_scores == (0.6,)
    assert (result.ignored, result.discarded) == (1, 1)
    counts = match_nodules(pred, truth, SPACING, min_candidate_mm3=1.0)
    assert (counts.true_positives, counts.false_positives) == (1, 1)
    curve = froc([result])
    assert curve.sensitivity[-1] == 0.5 and curve.false_positives[-1] == 1
    # the same scene scored on a transposed (non-contiguous) probability view
    view = np.ascontiguousarray(probability.transpose(2, 1, 0)).transpose(2, 1, 0)
    assert detection_candidates(pred, truth, view, SPACING, min_candidate_mm3=1.0) == result
    with pytest.raises(ValueError, match="probability shape"):
        detection_candidates(pred, truth, probability[:-1], SPACING)


def test_detection_candidates_on_a_ball_scored_by_a_smooth_map() -> None:
    shape = (10, 30, 30)
    truth = np.where(ball(shape, SPACING, (5, 15, 15), 5.0), 3, 0).astype(np.uint8)
    pred = truth.copy()
    grids = np.indices(shape)
    probability = 1.0 / (1.0 + np.abs(grids[2] - 15.0))  # peaks on the column through 15
    result = detection_candidates(pred, truth, probability, SPACING)
    assert result.nodule_scores == (1.0,) and result.false_positive_scores == ()


# --------------------------------------------------------------------------------------------
# Calibration


def test_reliability_bins_and_ece_by_hand() -> None:
    p = [0.05, 0.05, 0.95, 0.95, 0.55, 1.0, 0.1]
    y = [0, 1, 1, 1, 0, 1, 0]
    bins = reliability_bins(p, y)
    assert [b.count for b in bins] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    assert (bins[0].confidence, bins[0].accuracy) == (0.05, 0.5)
    assert (bins[1].low, bins[1].high, bins[1].accuracy) == (0.1, 0.2, 0.0)  # 0.1 opens bin 1
    assert bins[9].confidence == pytest.approx((0.95 + 0.95 + 1.0) / 3) and bins[9].accuracy == 1
    assert math.isnan(bins[2].confidence)
    table = reliability_json(bins)
    assert table["edges"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert table["count"] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    assert table["confidence"][:3] == [0.05, 0.1, None]
    assert table["accuracy"][9] == 1.0
    # |0.5 - 0.05| * 2 + |0 - 0.1| + |0 - 0.55| + |1 - 2.9/3| * 3, over 7 samples
    expected = (0.9 + 0.1 + 0.55 + 0.1) / 7
    assert expected_calibration_error(p, y) == pytest.approx(expected)
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins([1.2], [1])


def test_ece_is_small_when_calibrated_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(11)
    truth = rng.uniform(0.0, 1.0, 20000)
    labels = rng.random(truth.size) < truth
    assert expected_calibration_error(truth, labels) < 0.02
    logit = np.log(truth / (1 - truth))
    overconfident = 1.0 / (1.0 + np.exp(-3.0 * logit))
    # a bin at confidence 0.95 holds cases of true probability ~0.73: ECE ~0.15
    assert expected_calibration_error(overconfident, labels) > 0.1
