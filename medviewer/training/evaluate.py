"""Held-out evaluation of the demo models, through the app's own runner.

Each test seed is rendered as the demo study renders it (512 x 512 CT at the case's spacing,
1 mm radiograph) and run with :class:`medviewer.ai.runner.Runner` exactly as the viewer and
``medviewer infer`` run it, so the figures describe what users get, on the series' own grid.
Only a small summary of each case is kept (:class:`SegmentationCase`, :class:`ClassifierCase`),
so an evaluation of hundreds of cases holds one volume at a time.

Definitions (also in docs/models.md):
- Every figure comes with a 95 % case-level percentile bootstrap interval
  (:func:`metrics.bootstrap`: 2000 resamples of the cases, seed 0), ``{"value", "ci95"}``; a
  summary (``n``, ``mean``, ...) carries the interval of its mean as ``ci95``. A case is a CT
  series with all its slices and nodules, or a radiograph.
- Lung Dice: per case, on the series grid; mean (with interval) and minimum over cases.
- Nodule Dice: per truth nodule of at least 6 mm (a connected component of the truth's label
  3), within its bounding box grown by its radius (:func:`metrics.per_nodule_dice`); mean and
  median over nodules, and the pooled Dice (all their voxels together).
- Detection: a truth nodule of at least 6 mm is found when a predicted nodule component
  overlaps it; a predicted component touching no truth nodule is a false positive. Predicted
  components under 14 mm^3 (a 3 mm sphere, the smallest phantom nodule) are not counted.
- FROC: each counted component is a candidate scored by the maximum nodule probability inside
  it (:func:`metrics.detection_candidates`, :func:`metrics.froc`); sensitivity at 1/8 ... 8
  false positives per case (a step function: the best operating point with at most that many)
  and their mean, the CPM.
- Classifier AUC: over cases (radiographs) or over all slices of all cases (CT slices, series
  resampled with their slices). Calibration: ECE of the positive-class probability in 10
  equal-width bins, weighted by bin count (:func:`metrics.expected_calibration_error`).
- Grad-CAM hit: for true positives (truth and decision both "nodule"), the heatmap maximum lies
  within a projected nodule of at least 8 mm, its radius + 5 mm.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.ai.model_card import ModelCard, load_card
from medviewer.core.staging import staged_file
from medviewer.core.volume import VolumeMetadata
from medviewer.synthetic import phantom
from medviewer.training import figures as figure_files
from medviewer.training import metrics
from medviewer.training.data import axial_volume, radiograph_volume
from medviewer.training.specs import RECIPES

Log = Callable[[str], None]
MIN_NODULE_MM = 6.0
MIN_CANDIDATE_MM3 = 4.0 / 3.0 * np.pi * 1.5**3  # a 3 mm sphere
HEATMAP_MARGIN_MM = 5.0
#: How the bootstrap intervals are made, recorded with the figures.
BOOTSTRAP = {
    "interval": "95 % percentile bootstrap",
    "resamples": metrics.BOOTSTRAP_RESAMPLES,
    "seed": metrics.BOOTSTRAP_SEED,
    "unit": "case: a CT series with all its slices and nodules, or a radiograph",
}


@dataclass(frozen=True)
class SegmentationCase:
    """What the segmentation figures need from one CT case.

    Attributes
    ----------
    seed : int
    lung_dice : tuple of float
        Dice of the left and the right lung.
    nodule_dice : tuple of float
        Dice of each truth nodule >= 6 mm.
    pooled : tuple of int
        Over those nodules' boxes: ``|P & T|`` and ``|P| + |T|`` (the pooled Dice's sums).
    detection : metrics.DetectionResult
    candidates : metrics.CaseCandidates
    seconds : float
        Inference time.
    """

    seed: int
    lung_dice: tuple[float, float]
    nodule_dice: tuple[float, ...]
    pooled: tuple[int, int]
    detection: metrics.DetectionResult
    candidates: metrics.CaseCandidates
    seconds: float


@dataclass(frozen=True)
class ClassifierCase:
    """What the classifier figures need from one case (a radiograph or a CT series).

    Attributes
    ----------
    seed : int
    negative, positive : numpy.ndarray
        Per sample (the radiograph, or each CT slice): the probability of the first
        ("normal") and the second ("nodule") class, float64.
    targets : numpy.ndarray
        Per sample: whether it shows a nodule (bool).
    series_score : float
        The run's overall "nodule" probability (a CT series: the maximum over slices).
    series_target : bool
    gradcam : tuple of (bool, float) or None
        For a true positive with a heatmap: whether its maximum hit a nodule, and its distance
        to the nearest one in mm; None otherwise.
    """

    seed: int
    negative: np.ndarray
    positive: np.ndarray
    targets: np.ndarray
    series_score: float
    series_target: bool
    gradcam: tuple[bool, float] | None = None


def evaluate(
    model_id: str,
    seeds: Iterable[int],
    model_dir: str | None = None,
    device: str = "cpu",
    *,
    record: bool = False,
    figures: str | Path | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Evaluate `model_id` on phantom `seeds`.

    Parameters
    ----------
    model_id : str
        One of the demo models (:data:`medviewer.training.specs.RECIPES`).
    seeds : iterable of int
        Test seeds; seeds used for training or validation are refused.
    model_dir : str, optional
        A model folder; by default the installed model.
    device : str, optional
    record : bool, optional
        Store the figures in the card as ``metrics.test``.
    figures : path, optional
        A folder to write the SVG figures into (:func:`figure_files.evaluation_figures`).
    log : callable, optional
        Receives one line per case.

    Returns
    -------
    dict
        The figures (the JSON of docs/models.md).
    """
    from medviewer.ai.registry import ModelRegistry

    seeds = list(seeds)
    _refuse_training_seeds(model_id, seeds)
    card = load_card(model_dir) if model_dir else ModelRegistry().get(model_id).card
    started = time.perf_counter()
    froc = None
    if card.task == "segmentation":
        seg_cases = list(segmentation_cases(card, seeds, device, log))
        result = segmentation_figures(seg_cases)
        froc = metrics.froc([c.candidates for c in seg_cases])
    else:
        source = slice_classifier_cases if model_id == "demo-ct-nodule-cls" else radiograph_cases
        cls_cases = list(source(card, seeds, device, log))
        summarise = (slice_classifier_figures if model_id == "demo-ct-nodule-cls"
                     else radiograph_figures)
        result = summarise(cls_cases, card.output.threshold)
        result["calibration"]["temperature"] = card.output.temperature
        if card.output.bias:
            result["calibration"]["bias"] = card.output.bias[1] - card.output.bias[0]
    result = {"seeds": f"{seeds[0]}-{seeds[-1]}" if seeds else "", "cases": len(seeds),
              **result, "bootstrap": BOOTSTRAP,
              "seconds": round(time.perf_counter() - started, 1)}
    if figures is not None:
        drawings = figure_files.evaluation_figures(model_id, result, froc=froc)
        figure_files.write_svgs(drawings, Path(figures))
    if record:
        _record(card, result)
    return result


def _refuse_training_seeds(model_id: str, seeds: list[int]) -> None:
    recipe = RECIPES[model_id]
    seen = set(recipe.train_seeds) | set(recipe.validation_seeds)
    overlap = sorted(seen.intersection(seeds))
    if overlap:
        raise ValueError(
            f"seeds {overlap[0]}..{overlap[-1]} were used to train or validate {model_id}; "
            f"evaluate on seeds outside {recipe.seed_ranges()['train']} and "
            f"{recipe.seed_ranges()['validation']}"
        )


def _runner(card: ModelCard, device: str):
    import os

    from medviewer.ai.runner import Runner

    return Runner(card, device=device, cpu_threads=os.cpu_count())


def _ct_case(seed: int):
    case = phantom.chest_case(seed)
    grid = phantom.ct_grid(case)
    hu, truth = phantom.render_ct(case, grid)
    volume = axial_volume(hu, grid)
    volume = replace(volume, metadata=VolumeMetadata(modality="CT"))
    return case, grid, volume, truth


# --------------------------------------------------------------------------------------------
# Segmentation


def segmentation_cases(
    card: ModelCard, seeds: Iterable[int], device: str = "cpu", log: Log = print
) -> Iterator[SegmentationCase]:
    """Run the segmentation card on each CT seed; yield each case's summary.

    The run keeps the per-voxel probabilities (to score the candidates); they and the volume
    are dropped before the next case.
    """
    from medviewer.ai.runner import run_to_end

    runner = _runner(card, device)
    channel = _probability_channel(card, phantom.NODULE)
    for seed in seeds:
        _case, grid, volume, truth = _ct_case(seed)
        prediction = run_to_end(runner.run(volume, keep_probabilities=channel is not None))
        spacing = (float(volume.spacing[2]), grid.pixel_spacing, grid.pixel_spacing)
        summary = _segmentation_case(seed, prediction, truth, spacing, channel)
        del prediction, volume, truth
        d = summary.detection
        log(f"seed {seed}: lungs {summary.lung_dice[0]:.3f}/{summary.lung_dice[1]:.3f} "
            f"nodules {[round(v, 3) for v in summary.nodule_dice]} TP {d.true_positives} "
            f"FN {d.false_negatives} FP {d.false_positives} ({summary.seconds:.1f} s)")
        yield summary


def _segmentation_case(seed, prediction, truth, spacing, channel: int | None
                       ) -> SegmentationCase:
    labels = prediction.label_map
    # a lungs-only model has no nodule channel: no candidates to score
    probability = (np.zeros(labels.shape, np.float32) if channel is None
                   else prediction.probabilities[..., channel])
    return SegmentationCase(
        seed=seed,
        lung_dice=(metrics.dice(labels, truth, phantom.LEFT_LUNG),
                   metrics.dice(labels, truth, phantom.RIGHT_LUNG)),
        nodule_dice=tuple(float(d) for _, d in metrics.per_nodule_dice(labels, truth, spacing,
                                                                       MIN_NODULE_MM)),
        pooled=_pooled_overlap(labels, truth, spacing),
        detection=metrics.match_nodules(labels, truth, spacing, MIN_NODULE_MM,
                                        min_candidate_mm3=MIN_CANDIDATE_MM3),
        candidates=metrics.detection_candidates(labels, truth, probability, spacing,
                                                MIN_NODULE_MM, MIN_CANDIDATE_MM3),
        seconds=prediction.seconds,
    )


def _probability_channel(card: ModelCard, label: int) -> int | None:
    """The probability channel of `label` (softmax: the label itself; sigmoid: its rank);
    None when the card does not segment `label`."""
    if label not in card.output.labels:
        return None
    if card.output.activation == "sigmoid":
        return sorted(card.output.labels).index(label)
    return label


def _pooled_overlap(labels: np.ndarray, truth: np.ndarray, spacing) -> tuple[int, int]:
    """Intersection and size sums over truth nodules >= 6 mm (pooled Dice)."""
    overlap = total = 0
    for component in metrics.nodule_components(truth, spacing):
        if component.equivalent_diameter_mm < MIN_NODULE_MM:
            continue
        box = component.bounding_box
        t = truth[box] == phantom.NODULE
        p = labels[box] == phantom.NODULE
        overlap += int((t & p).sum())
        total += int(t.sum() + p.sum())
    return overlap, total


def segmentation_figures(cases: Sequence[SegmentationCase]) -> dict[str, Any]:
    """The segmentation model's figures from its cases' summaries, each with its interval.

    Parameters
    ----------
    cases : sequence of SegmentationCase

    Returns
    -------
    dict
        ``lung_dice``, ``nodule_dice_ge_6mm``, ``detection_ge_6mm``, ``froc_ge_6mm`` and
        ``inference_seconds`` (see docs/models.md).
    """
    n = len(cases)
    lungs = {name: np.array([c.lung_dice[side] for c in cases])
             for side, name in enumerate(("left lung", "right lung"))}
    per_case = [np.array(c.nodule_dice) for c in cases]
    pooled = np.array([c.pooled for c in cases], dtype=float).reshape(n, 2)
    found = np.array([c.detection.true_positives for c in cases], dtype=float)
    nodules = found + [c.detection.false_negatives for c in cases]
    fps = np.array([c.detection.false_positives for c in cases], dtype=float)
    return {
        "lung_dice": {name: _mean_summary(values, lambda i, v=values: float(v[i].mean()), n)
                      for name, values in lungs.items()},
        "nodule_dice_ge_6mm": {
            **_mean_summary(np.concatenate([[], *per_case]),
                            lambda i: _mean(metrics.gather(per_case, i)), n),
            "pooled": _interval(lambda i: _share(2 * pooled[i, 0], pooled[i, 1]), n),
        },
        "detection_ge_6mm": {
            "nodules": int(nodules.sum()),
            "cases_with_nodules": int(np.count_nonzero(nodules)),
            "found": int(found.sum()),
            "sensitivity": _interval(lambda i: _share(found[i], nodules[i]), n),
            "false_positives": int(fps.sum()),
            "false_positives_per_case": _interval(lambda i: float(fps[i].mean()), n),
        },
        "froc_ge_6mm": froc_figures([c.candidates for c in cases]),
        "inference_seconds": _stats([c.seconds for c in cases]),
    }


def froc_figures(candidates: Sequence[metrics.CaseCandidates]) -> dict[str, Any]:
    """FROC readings and the CPM (with its interval) of scored candidates, one entry per case."""
    n = len(candidates)
    curve = metrics.froc(candidates)

    def resampled(i: np.ndarray) -> metrics.Froc:
        return metrics.froc([candidates[k] for k in i])

    return {
        "candidate_score": "maximum nodule probability in the component",
        "nodules": curve.nodules,
        "sensitivity_at_fp_per_case": {
            f"{rate:g}": _rounded(curve.sensitivity_at(rate)) for rate in metrics.FROC_RATES
        },
        "sensitivity_at_1_fp_per_case": _interval(lambda i: resampled(i).sensitivity_at(1.0), n),
        "cpm": _interval(lambda i: resampled(i).cpm(), n),
    }


# --------------------------------------------------------------------------------------------
# Classifiers


def slice_classifier_cases(
    card: ModelCard, seeds: Iterable[int], device: str = "cpu", log: Log = print
) -> Iterator[ClassifierCase]:
    """Run a 2D CT classifier card on each seed's series; yield its per-slice probabilities.

    Grad-CAM is not evaluated for this model, so the card runs without it (it does not change
    the probabilities).
    """
    from medviewer.ai.runner import run_to_end

    runner = _runner(replace(card, explain=None), device)
    for seed in seeds:
        _case, _grid, volume, truth = _ct_case(seed)
        prediction = run_to_end(runner.run(volume))
        present = (truth == phantom.NODULE).any(axis=(1, 2))
        per_slice = np.asarray(prediction.slice_probabilities, dtype=np.float64)
        log(f"seed {seed}: {int(present.sum())} nodule slices of {len(present)}, "
            f"series p(nodule) {prediction.classes['nodule']:.3f}")
        yield ClassifierCase(seed, per_slice[:, 0], per_slice[:, 1], present,
                             float(prediction.classes["nodule"]), bool(present.any()))


def radiograph_cases(
    card: ModelCard, seeds: Iterable[int], device: str = "cpu", log: Log = print
) -> Iterator[ClassifierCase]:
    """Run the radiograph card on each seed's radiograph; yield its probabilities and hit."""
    from medviewer.ai.runner import run_to_end

    runner = _runner(card, device)
    for seed in seeds:
        case = phantom.chest_case(seed)
        radiograph = phantom.render_radiograph(case)
        volume = replace(radiograph_volume(radiograph), metadata=VolumeMetadata(modality="DX"))
        prediction = run_to_end(runner.run(volume))
        positive = radiograph.label == "nodule"
        gradcam = None
        if positive and "nodule" in prediction.decision and prediction.heatmap is not None:
            gradcam = _heatmap_hit(prediction.heatmap[0], radiograph, case)
        p = prediction.classes
        log(f"seed {seed}: {radiograph.label}, p(nodule) {p['nodule']:.3f}"
            + ("" if gradcam is None else f", Grad-CAM {'hit' if gradcam[0] else 'miss'}"))
        yield ClassifierCase(seed, np.array([p["normal"]]), np.array([p["nodule"]]),
                             np.array([positive]), float(p["nodule"]), positive, gradcam)


def slice_classifier_figures(cases: Sequence[ClassifierCase], threshold: float) -> dict:
    """The CT slice classifier's figures; intervals resample series with their slices."""
    n = len(cases)
    scores, targets = [c.positive for c in cases], [c.targets for c in cases]
    series = np.array([c.series_score for c in cases])
    series_targets = np.array([c.series_target for c in cases], dtype=bool)
    all_targets = metrics.gather(targets, np.arange(n)).astype(bool)

    def slices(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return metrics.gather(scores, i), metrics.gather(targets, i).astype(bool)

    return {
        "slice_auc": _interval(lambda i: _auc(*slices(i)), n),
        "slices": int(all_targets.size), "nodule_slices": int(all_targets.sum()),
        "slice_sensitivity": _interval(lambda i: _sens_spec(*slices(i), threshold)[0], n),
        "slice_specificity": _interval(lambda i: _sens_spec(*slices(i), threshold)[1], n),
        "series_auc": _interval(lambda i: _auc(series[i], series_targets[i]), n),
        "series_positive": int(series_targets.sum()),
        "series_sensitivity": _interval(
            lambda i: _sens_spec(series[i], series_targets[i], threshold)[0], n),
        "series_specificity": _interval(
            lambda i: _sens_spec(series[i], series_targets[i], threshold)[1], n),
        "calibration": _calibration(scores, targets, "slice"),
    }


def radiograph_figures(cases: Sequence[ClassifierCase], threshold: float) -> dict:
    """The radiograph classifier's figures; intervals resample radiographs."""
    n = len(cases)
    scores = np.array([c.series_score for c in cases])
    targets = np.array([c.series_target for c in cases], dtype=bool)
    hits = np.array([math.nan if c.gradcam is None else float(c.gradcam[0]) for c in cases])
    distances = [c.gradcam[1] for c in cases if c.gradcam is not None]
    return {
        "auc": _interval(lambda i: _auc(scores[i], targets[i]), n),
        "positives": int(targets.sum()), "negatives": int(n - targets.sum()),
        "sensitivity": _interval(lambda i: _sens_spec(scores[i], targets[i], threshold)[0], n),
        "specificity": _interval(lambda i: _sens_spec(scores[i], targets[i], threshold)[1], n),
        "gradcam_hit_rate": _interval(lambda i: _mean(hits[i][~np.isnan(hits[i])]), n),
        "gradcam_true_positives": len(distances),
        "gradcam_distance_mm": _stats(distances),
        "calibration": _calibration([c.positive for c in cases], [c.targets for c in cases],
                                    "radiograph"),
    }


def _calibration(scores: list[np.ndarray], targets: list[np.ndarray], unit: str) -> dict:
    """ECE (with its interval over cases) and the reliability bins of all samples."""
    n = len(scores)
    everything = np.arange(n)

    def ece(i: np.ndarray) -> float:
        return metrics.expected_calibration_error(
            metrics.gather(scores, i), metrics.gather(targets, i).astype(bool))

    bins = metrics.reliability_bins(metrics.gather(scores, everything),
                                    metrics.gather(targets, everything).astype(bool))
    return {
        "unit": unit, "probability": "nodule",
        "ece": _interval(ece, n),
        "bins": metrics.reliability_json(bins),
    }


def _heatmap_hit(heatmap: np.ndarray, radiograph: phantom.Radiograph, case) -> tuple[bool, float]:
    """Whether the heatmap maximum lies in any projected nodule >= 8 mm (+ margin)."""
    best = (False, float("inf"))
    spacing = (radiograph.pixel_spacing, radiograph.pixel_spacing)
    for nodule in case.nodules:
        if nodule.diameter_mm < phantom.RADIOGRAPH_NODULE_MM:
            continue
        radius = nodule.diameter_mm / 2 + HEATMAP_MARGIN_MM
        hit, distance = metrics.heatmap_hit(
            heatmap, spacing, radiograph.project(nodule.centre_lps), radius
        )
        if hit or distance < best[1]:
            best = (hit or best[0], min(distance, best[1]))
    return best


# --------------------------------------------------------------------------------------------
# Statistics over cases


def _interval(statistic: metrics.Statistic, n: int) -> dict[str, Any]:
    """``{"value", "ci95"}`` of a statistic of case indices (see :func:`metrics.bootstrap`)."""
    return metrics.bootstrap(statistic, n).to_json()


def _mean_summary(values: np.ndarray, statistic: metrics.Statistic, n: int) -> dict[str, Any]:
    """:func:`_stats` of `values` with ``ci95``, the interval of the mean over `n` cases."""
    out = _stats(list(values))
    out["ci95"] = _interval(statistic, n)["ci95"]
    return out


def _auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """ROC AUC; NaN unless both classes are present."""
    if targets.size == 0 or targets.all() or not targets.any():
        return math.nan
    return metrics.roc_auc(scores, targets)


def _sens_spec(scores: np.ndarray, targets: np.ndarray, threshold: float) -> tuple[float, float]:
    return metrics.sensitivity_specificity(scores, targets, threshold)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _share(part: np.ndarray, whole: np.ndarray) -> float:
    total = float(np.sum(whole))
    return float(np.sum(part)) / total if total else math.nan


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _stats(values: list[float]) -> dict[str, Any]:
    """:func:`metrics.summarise` rounded, None for NaN (JSON has no NaN)."""
    return {k: (_rounded(v) if isinstance(v, float) else v)
            for k, v in metrics.summarise(values).items()}


def _record(card: ModelCard, result: dict[str, Any]) -> None:
    """Write `result` into the card file as ``metrics.test`` (validated before replacing)."""
    path = Path(card.path)
    data = json.loads(path.read_text())
    data.setdefault("metrics", {})["test"] = result
    ModelCard.from_dict(data, str(path), path=path)
    with staged_file(path) as staging:
        staging.write_text(json.dumps(data, indent=2) + "\n")
