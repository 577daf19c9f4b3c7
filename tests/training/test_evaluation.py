"""Evaluation figures from hand-built case summaries, its SVG figures, and a small real run."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from medviewer.synthetic import phantom
from medviewer.training import figures
from medviewer.training.evaluate import (
    ClassifierCase,
    SegmentationCase,
    radiograph_figures,
    segmentation_figures,
    slice_classifier_figures,
)
from medviewer.training.metrics import CaseCandidates, DetectionResult, froc

SVG = "{http://www.w3.org/2000/svg}"


def detection(tp: int, fn: int, fp: int) -> DetectionResult:
    return DetectionResult(tp, fn, fp, 0, 0, tp / (tp + fn) if tp + fn else math.nan, (), ())


def segmentation_cases() -> list[SegmentationCase]:
    """A: 2 nodules found (0.9, 0.7), 1 FP (0.5); B: 1 missed, 2 FPs (.95, .2); C: nothing."""
    return [
        SegmentationCase(1, (0.99, 0.98), (0.8, 0.6), (70, 200), detection(2, 0, 1),
                         CaseCandidates((0.9, 0.7), (0.5,)), 10.0),
        SegmentationCase(2, (0.97, 0.96), (0.0,), (0, 50), detection(0, 1, 2),
                         CaseCandidates((-math.inf,), (0.95, 0.2)), 12.0),
        SegmentationCase(3, (0.95, 0.97), (), (0, 0), detection(0, 0, 0),
                         CaseCandidates((), ()), 11.0),
    ]


def assert_within(figure: dict) -> None:
    low, high = figure["ci95"]
    assert low <= figure["value"] <= high


def test_segmentation_figures_from_case_summaries() -> None:
    result = segmentation_figures(segmentation_cases())
    left = result["lung_dice"]["left lung"]
    assert (left["n"], left["mean"], left["min"]) == (3, pytest.approx(0.97), 0.95)
    assert left["ci95"][0] >= 0.95 and left["ci95"][1] <= 0.99
    nodules = result["nodule_dice_ge_6mm"]
    assert (nodules["n"], nodules["mean"]) == (3, pytest.approx(0.4667))
    assert nodules["pooled"]["value"] == pytest.approx(2 * 70 / 250)
    assert_within(nodules["pooled"])
    found = result["detection_ge_6mm"]
    assert (found["nodules"], found["cases_with_nodules"], found["found"]) == (3, 2, 2)
    assert found["sensitivity"]["value"] == pytest.approx(0.6667)
    assert found["false_positives"] == 3
    assert found["false_positives_per_case"]["value"] == 1.0
    assert_within(found["false_positives_per_case"])
    # FROC: thresholds .95 (0 of 3 found, 1 FP), .9 (1/3), .7 (2/3, 1 FP), .5 (2 FPs), .2;
    # 3 cases, so 1/8 and 1/4 FP per case allow no FP; from 1/2 (1.5 FPs) on, 2/3
    froc_result = result["froc_ge_6mm"]
    assert froc_result["sensitivity_at_fp_per_case"] == {
        "0.125": 0.0, "0.25": 0.0, "0.5": 0.6667, "1": 0.6667, "2": 0.6667, "4": 0.6667,
        "8": 0.6667}
    assert froc_result["cpm"]["value"] == pytest.approx(10 / 21, abs=1e-4)
    assert froc_result["sensitivity_at_1_fp_per_case"]["value"] == pytest.approx(0.6667)
    assert froc_result["nodules"] == 3
    assert_within(froc_result["cpm"])
    # resamples of case C alone have no nodule: skipped, 1 in 27 on average
    assert 0 < froc_result["cpm"]["ci95_skipped"] < 200
    assert result["inference_seconds"]["median"] == 11.0


def classifier_case(seed, positive, targets, gradcam=None) -> ClassifierCase:
    positive, targets = np.array(positive, float), np.array(targets, bool)
    return ClassifierCase(seed, 1 - positive, positive, targets, float(positive.max()),
                          bool(targets.any()), gradcam)


def test_radiograph_figures_by_hand() -> None:
    cases = [classifier_case(1, [0.9], [True], (True, 3.0)),
             classifier_case(2, [0.8], [True], (False, 40.0)),
             classifier_case(3, [0.3], [True]),
             classifier_case(4, [0.6], [False]),
             classifier_case(5, [0.1], [False])]
    result = radiograph_figures(cases, threshold=0.5)
    # positives .9 .8 .3 against negatives .6 .1: 5 of 6 pairs ordered
    assert result["auc"]["value"] == pytest.approx(5 / 6, abs=1e-4)
    assert (result["positives"], result["negatives"]) == (3, 2)
    assert result["sensitivity"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["specificity"]["value"] == 0.5
    assert result["gradcam_hit_rate"]["value"] == 0.5 and result["gradcam_true_positives"] == 2
    assert result["gradcam_distance_mm"]["median"] == 21.5
    # resamples with no true positive have no hit rate: skipped and counted
    assert result["gradcam_hit_rate"]["ci95_skipped"] > 0
    calibration = result["calibration"]
    # |1 - .9| + |1 - .8| + |1 - .3| + |0 - .6| + |0 - .1|, over 5
    assert calibration["ece"]["value"] == pytest.approx(0.34)
    assert calibration["bins"]["count"] == [0, 1, 0, 1, 0, 0, 1, 0, 1, 1]
    for key in ("auc", "sensitivity", "specificity", "gradcam_hit_rate"):
        assert_within(result[key])


def test_slice_classifier_figures_resample_series() -> None:
    cases = [classifier_case(1, [0.9, 0.1], [True, False]),
             classifier_case(2, [0.2, 0.8], [True, False]),
             classifier_case(3, [0.3, 0.05], [False, False])]
    result = slice_classifier_figures(cases, threshold=0.5)
    # nodule slices .9 .2 against .1 .8 .3 .05: 4 + 2 of 8 pairs
    assert result["slice_auc"]["value"] == 0.75
    assert (result["slices"], result["nodule_slices"], result["series_positive"]) == (6, 2, 2)
    assert result["slice_sensitivity"]["value"] == 0.5
    assert result["slice_specificity"]["value"] == 0.75
    # series maxima .9 and .8 (nodule) against .3
    assert result["series_auc"]["value"] == 1.0
    assert result["series_sensitivity"]["value"] == result["series_specificity"]["value"] == 1.0
    assert result["calibration"]["unit"] == "slice" and sum(result["calibration"]["bins"]
                                                            ["count"]) == 6
    # a resample of series 1 and 2 only has no nodule-free series: no series AUC
    assert result["series_auc"]["ci95_skipped"] > 0


# --------------------------------------------------------------------------------------------
# SVG figures


def svg_points(path: Path) -> list[tuple[float, float]]:
    """Centres of the SVG's circles in drawing units (y up, as the drawing was made)."""
    root = ET.parse(path).getroot()
    return [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(SVG + "circle")]


def test_froc_svg_plots_the_sensitivity_at_each_rate(tmp_path) -> None:
    cases = segmentation_cases()
    result = segmentation_figures(cases)
    curve = froc([c.candidates for c in cases])
    drawings = figures.evaluation_figures("demo-x", {"cases": 3, **result}, froc=curve)
    written = figures.write_svgs(drawings, tmp_path)
    assert written == [tmp_path / "demo-x-froc.svg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-x-froc.svg"]  # no staging left
    left, bottom, width, height = figures.PLOT
    plotted = []
    for x, y in svg_points(written[0]):
        rate = 2 ** ((x - left) / width * 6 - 3)
        plotted.append((round(rate, 6), round((y - bottom) / height, 4)))
    assert plotted == [(0.125, 0), (0.25, 0), (0.5, 0.6667), (1, 0.6667), (2, 0.6667),
                       (4, 0.6667), (8, 0.6667)]
    text = written[0].read_text()
    assert "CPM 0.476" in text and "3 nodules" in text


def test_reliability_svg_plots_each_filled_bin(tmp_path) -> None:
    cases = [classifier_case(k, [p], [t]) for k, (p, t) in enumerate(
        [(0.05, False), (0.05, True), (0.95, True), (0.55, False)])]
    result = radiograph_figures(cases, threshold=0.5)
    (path,) = figures.write_svgs(figures.evaluation_figures("demo-y", result), tmp_path)
    assert path.name == "demo-y-reliability.svg"
    left, bottom, width, height = figures.PLOT
    plotted = [(round((x - left) / width, 4), round((y - bottom) / height, 4))
               for x, y in svg_points(path)]
    assert plotted == [(0.05, 0.5), (0.55, 0.0), (0.95, 1.0)]


# --------------------------------------------------------------------------------------------
# A real run


def test_radiograph_evaluation_runs_end_to_end(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    from medviewer.training.__main__ import main

    assert main(["evaluate", "demo-cxr-nodule-cls", "--seeds", "5000-5002", "--json",
                 "--figures", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    labels = [phantom.chest_case(s).radiograph_class for s in (5000, 5001, 5002)]
    assert result["positives"] == labels.count("nodule") == 2
    assert result["cases"] == 3 and result["bootstrap"]["resamples"] == 2000
    assert sum(result["calibration"]["bins"]["count"]) == 3
    # the shipped card's fitted temperature and bias are used (and reported)
    from medviewer.ai.registry import ModelRegistry

    output = ModelRegistry().get("demo-cxr-nodule-cls").card.output
    assert output.temperature != 1.0 and output.bias[0] == 0.0 and output.bias[1] != 0.0
    assert result["calibration"]["temperature"] == output.temperature
    assert result["calibration"]["bias"] == output.bias[1]
    assert set(result["auc"]) >= {"value", "ci95"}
    assert (tmp_path / "demo-cxr-nodule-cls-reliability.svg").is_file()
