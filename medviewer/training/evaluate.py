"""Held-out evaluation of the demo models, through the app's own runner.

Each test seed is rendered as the demo study renders it (512 x 512 CT at the case's spacing,
1 mm radiograph) and run with :class:`medviewer.ai.runner.Runner` exactly as the viewer and
``medviewer infer`` run it, so the figures describe what users get, on the series' own grid.

Definitions (also in docs/models.md):
- Lung Dice: per case, on the series grid; reported as mean and minimum over cases.
- Nodule Dice: per truth nodule of at least 6 mm (a connected component of the truth's label
  3), within its bounding box grown by its radius (:func:`metrics.per_nodule_dice`); mean and
  median over nodules, and the pooled Dice (all their voxels together).
- Detection: a truth nodule of at least 6 mm is found when a predicted nodule component
  overlaps it; a predicted component touching no truth nodule is a false positive. Predicted
  components under 14 mm^3 (a 3 mm sphere, the smallest phantom nodule) are not counted.
- Classifier AUC: over cases (radiographs) or over all slices of all cases (CT slices).
- Grad-CAM hit: for true positives (truth and decision both "nodule"), the heatmap maximum lies
  within a projected nodule of at least 8 mm, its radius + 5 mm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.ai.model_card import ModelCard, load_card
from medviewer.core.staging import staged_file
from medviewer.core.volume import VolumeMetadata
from medviewer.synthetic import phantom
from medviewer.training import metrics
from medviewer.training.data import axial_volume, radiograph_volume
from medviewer.training.specs import RECIPES

Log = Callable[[str], None]
MIN_NODULE_MM = 6.0
MIN_CANDIDATE_MM3 = 4.0 / 3.0 * np.pi * 1.5**3  # a 3 mm sphere
HEATMAP_MARGIN_MM = 5.0


def evaluate(
    model_id: str,
    seeds: Iterable[int],
    model_dir: str | None = None,
    device: str = "cpu",
    *,
    record: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Evaluate `model_id` on phantom `seeds`; with `record`, store the figures in its card."""
    from medviewer.ai.registry import ModelRegistry

    seeds = list(seeds)
    _refuse_training_seeds(model_id, seeds)
    card = load_card(model_dir) if model_dir else ModelRegistry().get(model_id).card
    started = time.perf_counter()
    evaluator = {
        "demo-ct-lung-nodule-seg": _segmentation,
        "demo-ct-nodule-cls": _slice_classifier,
        "demo-cxr-nodule-cls": _radiograph_classifier,
    }[model_id]
    result = evaluator(card, seeds, device, log)
    result = {"seeds": f"{seeds[0]}-{seeds[-1]}" if seeds else "", "cases": len(seeds),
              **result, "seconds": round(time.perf_counter() - started, 1)}
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


def _segmentation(card: ModelCard, seeds: list[int], device: str, log: Log) -> dict[str, Any]:
    from medviewer.ai.runner import run_to_end

    runner = _runner(card, device)
    lungs: dict[str, list[float]] = {"left lung": [], "right lung": []}
    nodule_dice: list[tuple[float, float]] = []
    found = missed = false_positives = 0
    pooled = [0, 0]
    seconds = []
    for seed in seeds:
        _case, grid, volume, truth = _ct_case(seed)
        prediction = run_to_end(runner.run(volume))
        labels = prediction.label_map
        seconds.append(prediction.seconds)
        spacing = (float(volume.spacing[2]), grid.pixel_spacing, grid.pixel_spacing)
        lungs["left lung"].append(metrics.dice(labels, truth, phantom.LEFT_LUNG))
        lungs["right lung"].append(metrics.dice(labels, truth, phantom.RIGHT_LUNG))
        per = metrics.per_nodule_dice(labels, truth, spacing, MIN_NODULE_MM)
        nodule_dice.extend(per)
        _pool_overlap(pooled, labels, truth, spacing)
        detection = metrics.match_nodules(
            labels, truth, spacing, MIN_NODULE_MM, min_candidate_mm3=MIN_CANDIDATE_MM3
        )
        found += detection.true_positives
        missed += detection.false_negatives
        false_positives += detection.false_positives
        log(f"seed {seed}: lungs {lungs['left lung'][-1]:.3f}/{lungs['right lung'][-1]:.3f} "
            f"nodules {[round(d, 3) for _, d in per]} TP {detection.true_positives} "
            f"FN {detection.false_negatives} FP {detection.false_positives} "
            f"({prediction.seconds:.1f} s)")
    dices = [d for _, d in nodule_dice]
    return {
        "lung_dice": {name: _stats(values) for name, values in lungs.items()},
        "nodule_dice_ge_6mm": {**_stats(dices), "pooled": _ratio(2 * pooled[0], pooled[1])},
        "detection_ge_6mm": {
            "nodules": found + missed, "found": found,
            "sensitivity": _ratio(found, found + missed),
            "false_positives": false_positives,
            "false_positives_per_case": _ratio(false_positives, len(seeds)),
        },
        "inference_seconds": _stats(seconds),
    }


def _pool_overlap(pooled: list[int], labels: np.ndarray, truth: np.ndarray, spacing) -> None:
    """Accumulate intersection and size sums over truth nodules >= 6 mm (pooled Dice)."""
    for component in metrics.nodule_components(truth, spacing):
        if component.equivalent_diameter_mm < MIN_NODULE_MM:
            continue
        box = component.bounding_box
        t = truth[box] == phantom.NODULE
        p = labels[box] == phantom.NODULE
        pooled[0] += int((t & p).sum())
        pooled[1] += int(t.sum() + p.sum())


def _slice_classifier(card: ModelCard, seeds: list[int], device: str, log: Log) -> dict[str, Any]:
    from medviewer.ai.runner import run_to_end

    runner = _runner(card, device)
    scores, targets, case_scores, case_targets = [], [], [], []
    for seed in seeds:
        _case, _grid, volume, truth = _ct_case(seed)
        prediction = run_to_end(runner.run(volume))
        per_slice = prediction.slice_probabilities[:, 1]
        present = (truth == phantom.NODULE).any(axis=(1, 2))
        scores.append(per_slice)
        targets.append(present)
        case_scores.append(prediction.classes["nodule"])
        case_targets.append(bool(present.any()))
        log(f"seed {seed}: {int(present.sum())} nodule slices of {len(present)}, "
            f"series p(nodule) {prediction.classes['nodule']:.3f}")
    all_scores, all_targets = np.concatenate(scores), np.concatenate(targets)
    sens, spec = metrics.sensitivity_specificity(all_scores, all_targets, card.output.threshold)
    return {
        "slice_auc": round(metrics.roc_auc(all_scores, all_targets), 4),
        "slices": int(all_targets.size), "nodule_slices": int(all_targets.sum()),
        "slice_sensitivity": round(sens, 4), "slice_specificity": round(spec, 4),
        "series_auc": _safe_auc(case_scores, case_targets),
        "series_positive": int(sum(case_targets)),
    }


def _radiograph_classifier(card: ModelCard, seeds: list[int], device: str, log: Log) -> dict:
    from medviewer.ai.runner import run_to_end

    runner = _runner(card, device)
    scores, targets, hits, distances = [], [], [], []
    for seed in seeds:
        case = phantom.chest_case(seed)
        radiograph = phantom.render_radiograph(case)
        volume = replace(radiograph_volume(radiograph), metadata=VolumeMetadata(modality="DX"))
        prediction = run_to_end(runner.run(volume))
        positive = radiograph.label == "nodule"
        scores.append(prediction.classes["nodule"])
        targets.append(positive)
        if positive and "nodule" in prediction.decision and prediction.heatmap is not None:
            hit, distance = _heatmap_hit(prediction.heatmap[0], radiograph, case)
            hits.append(hit)
            distances.append(distance)
    sens, spec = metrics.sensitivity_specificity(
        np.array(scores), np.array(targets), card.output.threshold
    )
    log(f"{sum(targets)} nodule radiographs of {len(targets)}")
    return {
        "auc": round(metrics.roc_auc(np.array(scores), np.array(targets)), 4),
        "positives": int(sum(targets)), "negatives": int(len(targets) - sum(targets)),
        "sensitivity": round(sens, 4), "specificity": round(spec, 4),
        "gradcam_hit_rate": _ratio(sum(hits), len(hits)),
        "gradcam_true_positives": len(hits),
        "gradcam_distance_mm": _stats(distances),
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


def _safe_auc(scores: list[float], targets: list[bool]) -> float | None:
    if len(set(targets)) < 2:
        return None
    return round(metrics.roc_auc(np.array(scores), np.array(targets)), 4)


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(a / b, 4)


def _stats(values: list[float]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in metrics.summarise(values).items()}


def _record(card: ModelCard, result: dict[str, Any]) -> None:
    """Write `result` into the card file as ``metrics.test`` (validated before replacing)."""
    path = Path(card.path)
    data = json.loads(path.read_text())
    data.setdefault("metrics", {})["test"] = result
    ModelCard.from_dict(data, str(path), path=path)
    with staged_file(path) as staging:
        staging.write_text(json.dumps(data, indent=2) + "\n")
