"""The shipped demo models: cards, hashes, metrics, and real predictions on held-out phantoms.

These run the bundled weights through the app's runner on phantom seeds no training run used
(5000 and up), on a few slices to stay fast, and check the answers against the phantom's truth.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from medviewer.ai.model_card import verify_weights
from medviewer.ai.registry import ModelRegistry
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.synthetic import phantom

pytest.importorskip("torch")

IDS = ("demo-ct-lung-nodule-seg", "demo-ct-lungs", "demo-ct-nodule-cls", "demo-cxr-nodule-cls",
       "demo-ct-interactive")


def _entry(model_id: str):
    return ModelRegistry().get(model_id)


def _run(model_id: str, volume: Volume):
    from medviewer.ai.runner import Runner, run_to_end

    return run_to_end(Runner(_entry(model_id).card, "cpu").run(volume))


def _ct_slices(seed: int, z_positions) -> tuple[phantom.ChestCase, Volume, np.ndarray]:
    case = phantom.chest_case(seed)
    grid = replace(phantom.ct_grid(case), z_positions=tuple(float(z) for z in z_positions))
    hu, truth = phantom.render_ct(case, grid)
    steps = np.diff(grid.z_positions)
    even = len(steps) > 0 and np.allclose(steps, steps[0], atol=1e-3)
    affine = np.diag([grid.pixel_spacing, grid.pixel_spacing, steps[0] if even else 1.0, 1.0])
    affine[:3, 3] = (grid.origin_xy[0], grid.origin_xy[1], grid.z_positions[0])
    return case, Volume(hu, affine, VolumeMetadata(modality="CT")), truth


def _first_case(predicate, start: int = 5000) -> int:
    return next(s for s in range(start, start + 200) if predicate(phantom.chest_case(s)))


@pytest.mark.parametrize("model_id", IDS)
def test_bundled_card_is_pinned_and_carries_its_evaluation(model_id):
    from medviewer.training.specs import RECIPES

    entry = _entry(model_id)
    assert entry.source == "bundled"
    card = entry.card
    verify_weights(card)  # sha256 of the shipped file equals the card's
    assert "synthetic" in card.intended_use and "not for diagnosis" in card.intended_use
    training = card.metrics["training"]
    assert training["seeds"] == RECIPES[model_id].seed_ranges()
    assert training["seconds"] > 0 and training["device"]
    test = card.metrics["test"]
    first, last = (int(v) for v in test["seeds"].split("-"))
    assert first in RECIPES[model_id].test_seeds and last in RECIPES[model_id].test_seeds
    assert test["cases"] == last - first + 1


def test_segmentation_cascade_finds_lungs_and_nodules_on_a_held_out_ct():
    """The whole cascade (demo-ct-lungs, then nodules in 3D inside the lungs) on a whole CT."""
    from medviewer.training.evaluate import MIN_CANDIDATE_MM3, MIN_NODULE_MM, _ct_case
    from medviewer.training.metrics import match_nodules, per_nodule_dice

    seed = _first_case(lambda c: any(n.diameter_mm >= 10 and n.kind == "solid"
                                     for n in c.nodules) and c.slice_count <= 200)
    _case, grid, volume, truth = _ct_case(seed)
    labels = _run("demo-ct-lung-nodule-seg", volume).label_map
    assert labels.shape == truth.shape
    for label in (phantom.LEFT_LUNG, phantom.RIGHT_LUNG):
        p, t = labels == label, truth == label
        dice = 2 * (p & t).sum() / (p.sum() + t.sum())
        assert dice > 0.95, (label, dice)
    spacing = (float(volume.spacing[2]), grid.pixel_spacing, grid.pixel_spacing)
    per = per_nodule_dice(labels, truth, spacing, min_diameter_mm=10.0)
    assert per and max(d for _, d in per) > 0.75, per
    found = match_nodules(labels, truth, spacing, MIN_NODULE_MM,
                          min_candidate_mm3=MIN_CANDIDATE_MM3)
    assert found.false_negatives == 0 and found.false_positives <= 1, found


def test_slice_classifier_ranks_nodule_slices_above_clear_slices():
    """A contiguous 60 mm slab around the largest nodule (the model reads 3 neighbours each
    side): the slices through the nodule's middle half rank above the slices with no nodule."""
    from medviewer.training.metrics import roc_auc

    seed = _first_case(lambda c: any(n.diameter_mm >= 10 for n in c.nodules))
    case = phantom.chest_case(seed)
    nodule = max(case.nodules, key=lambda n: n.diameter_mm)
    z = nodule.centre_lps[2]
    slab = [v for v in phantom.ct_grid(case).z_positions if abs(v - z) <= 30.0]
    _, volume, truth = _ct_slices(seed, slab)
    prediction = _run("demo-ct-nodule-cls", volume)
    p = prediction.slice_probabilities[:, 1]
    through = np.array([abs(v - z) < nodule.diameter_mm / 4 for v in slab])
    clear = ~(truth == phantom.NODULE).any(axis=(1, 2))
    assert through.sum() >= 2 and clear.sum() >= 5
    kept = through | clear
    assert roc_auc(p[kept], through[kept]) >= 0.8
    # the series: what 3 consecutive slices all reach (<= their mean, the averaged slices)
    assert 0.5 < prediction.classes["nodule"] <= p.max() + 1e-6


def test_radiograph_classifier_and_its_heatmap_on_held_out_cases():
    from medviewer.training.data import radiograph_volume

    seed = _first_case(lambda c: any(n.diameter_mm >= 15 for n in c.nodules))
    case = phantom.chest_case(seed)
    radiograph = phantom.render_radiograph(case)
    volume = replace(radiograph_volume(radiograph), metadata=VolumeMetadata(modality="DX"))
    prediction = _run("demo-cxr-nodule-cls", volume)
    assert prediction.decision == ("nodule",)
    heatmap = prediction.heatmap[0]
    peak = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    distances = [
        np.hypot(*(np.subtract(peak, radiograph.project(n.centre_lps)))) * radiograph.pixel_spacing
        for n in case.nodules if n.diameter_mm >= phantom.RADIOGRAPH_NODULE_MM
    ]
    largest = max(n.diameter_mm for n in case.nodules)
    assert min(distances) <= largest / 2 + 10.0
    normal = phantom.chest_case(_first_case(lambda c: not c.nodules))
    volume = replace(radiograph_volume(phantom.render_radiograph(normal)),
                     metadata=VolumeMetadata(modality="DX"))
    assert _run("demo-cxr-nodule-cls", volume).classes["nodule"] < prediction.classes["nodule"]


@pytest.mark.parametrize("model_id", IDS)
def test_bundled_card_is_what_its_training_recipe_writes(model_id):
    """`python -m medviewer.training train ID` reproduces the shipped card (bar hash, metrics)."""
    import json

    from medviewer.training.specs import RECIPES

    shipped = json.loads(_entry(model_id).card.path.read_text())
    recipe = json.loads(json.dumps(RECIPES[model_id].card))
    # a fitted temperature and bias come from `calibrate` after training, with its record
    temperature = shipped["output"].pop("temperature", 1.0)
    bias = shipped["output"].pop("bias", [0.0, 0.0])
    fitted = shipped.get("metrics", {}).get("calibration", {})
    assert temperature == fitted.get("temperature", 1.0)
    assert bias == [0.0, fitted.get("bias", 0.0)]
    for card in (shipped, recipe):
        card["weights"].pop("sha256")
        card.pop("metrics", None)
    assert shipped == recipe


def test_promptable_network_outlines_a_clicked_nodule_on_a_held_out_ct():
    """demo-ct-interactive through the engine the Smart tool runs: one click at a held-out
    nodule's centre outlines it (the part of the CT around it, at the series' own pixels)."""
    from medviewer.ai.interactive import InteractiveSession, Point
    from medviewer.ai.interactive_engines import engine_named
    from medviewer.training import data
    from medviewer.training.click_eval import truth_objects

    seed = _first_case(lambda c: any(n.diameter_mm >= 10 and n.kind == "solid"
                                     for n in c.nodules))
    case = phantom.chest_case(seed)
    nodule = max((n for n in case.nodules if n.kind == "solid"), key=lambda n: n.diameter_mm)
    sub = data._sub_grid(phantom.ct_grid(case), nodule.centre_lps, 50.0)
    hu, labels = phantom.render_ct(case, sub)
    volume = replace(data.axial_volume(hu, sub), metadata=VolumeMetadata(modality="CT"))
    truths = [t for kind, size, t in truth_objects(case, volume, labels)
              if kind == "nodule" and size == nodule.diameter_mm]
    engine = engine_named("demo-ct-interactive", "cpu")
    mask = InteractiveSession(volume, engine).add_prompt("n", Point(nodule.centre_lps))
    truth = truths[0]
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice >= 0.8, dice
