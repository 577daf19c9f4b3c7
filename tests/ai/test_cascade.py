"""Cascades (input.roi): a model run inside another model's grown labels, against known truth.

Two small models in a temporary registry: an "upstream" that labels value bands (left lung
150, right lung 250) and downstream models that label everything they see (so their result
*is* the region they ran on), a bright nodule (600), or a translation-equivariant filter.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch import nn

from medviewer.ai.cascade import (
    UPSTREAM_RESULTS,
    UPSTREAM_SHARE,
    UpstreamResults,
    card_key,
    series_key,
    stages_kept_by,
)
from medviewer.ai.model_card import ModelCard, RoiSpec
from medviewer.ai.regions import grown_mask_region
from medviewer.ai.registry import ModelRegistry
from medviewer.ai.runner import Runner, run_to_end
from medviewer.ai.weights import clear_network_cache
from medviewer.core.errors import CancelledError, InferenceError, ModelCardError
from tests.ai.test_model_card import segmentation_card
from tests.ai.test_transforms import AXIAL, AXIAL_FEET_FIRST, OBLIQUE
from tests.ai.tiny_models import (
    BandSegmenter,
    BoxFilterSegmenter,
    MeanClassifier,
    SigmoidThreshold,
    ThresholdSegmenter,
    card_dict,
    make_volume,
    patient_coordinates,
    save_torchscript,
    sha256,
    write_card,
)

SHAPE = (16, 24, 28)  # slices, rows, cols
SPACING = (0.8, 1.0, 2.5)  # col, row, slice (mm)
LEFT = (slice(3, 10), slice(4, 12), slice(3, 12))
RIGHT = (slice(4, 12), slice(5, 15), slice(16, 26))
NODULE = (slice(5, 8), slice(7, 10), slice(6, 10))  # inside the left lung
RIB = (slice(12, 15), slice(18, 22), slice(3, 7))  # as bright as the nodule, outside the lungs
LUNGS = {"1": {"name": "left lung", "color": "#4aa3df"},
         "2": {"name": "right lung", "color": "#e0a030"}}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    clear_network_cache()
    UPSTREAM_RESULTS.clear()


def chest(directions: np.ndarray = AXIAL) -> Any:
    array = np.zeros(SHAPE, np.float32)
    array[LEFT] = 150.0
    array[RIGHT] = 250.0
    array[NODULE] = 600.0
    array[RIB] = 600.0
    return make_volume(array, SPACING, directions, origin=(3.0, -20.0, 11.0))


def add_model(registry: ModelRegistry, model_id: str, module: nn.Module, name: str,
              **fields: Any) -> ModelCard:
    """Save `module` as TorchScript with a card into the registry's user folder."""
    folder = registry.user / model_id
    folder.mkdir(parents=True)
    data = card_dict(save_torchscript(module, folder / "model.ts"), "torchscript",
                     model_id=model_id, **fields)
    data["name"] = name
    return write_card(folder, data)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """A registry holding the upstream "lungs" model (3D, RAS)."""
    models = ModelRegistry(bundled=tmp_path / "bundled", user=tmp_path / "user")
    add_model(models, "lungs", BandSegmenter([100.0, 200.0, 300.0]), "Lungs", labels=LUNGS)
    return models


def everything(registry: ModelRegistry, roi: dict[str, Any], dims: int = 3,
               orientation: str = "RAS", model_id: str = "inside") -> ModelCard:
    """A downstream model that labels every voxel it sees (label 1)."""
    return add_model(registry, model_id, ThresholdSegmenter(-1e6), "Inside", dims=dims,
                     orientation=orientation, roi=roi,
                     labels={"1": {"name": "inside", "color": "#00ff00"}})


def run(card: ModelCard, registry: ModelRegistry, volume: Any, steps: list | None = None,
        **kwargs: Any) -> Any:
    runner = Runner(card, "cpu", kwargs.pop("batch_size", None), registry=registry)
    return run_to_end(runner.run(volume, **kwargs), steps.append if steps is not None else None)


def grown_truth(volume: Any, mask: np.ndarray, margin_mm: float) -> np.ndarray:
    """Voxels whose centre lies within `margin_mm` of a voxel centre of `mask`, in LPS."""
    world = patient_coordinates(volume).reshape(-1, 3)
    inside = world[mask.reshape(-1)]
    nearest = np.full(world.shape[0], np.inf)
    for chunk in np.array_split(inside, max(1, len(inside) // 64)):
        distances = np.linalg.norm(world[:, None, :] - chunk[None, :, :], axis=-1)
        nearest = np.minimum(nearest, distances.min(axis=1))
    return (nearest <= margin_mm + 1e-6).reshape(mask.shape)


def left_lung_mask() -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[LEFT] = True
    mask[NODULE] = False  # the upstream model labels the nodule's voxels 0
    return mask


# ---------------------------------------------------------------------- the card field


def roi_card(roi: Any, **changes: Any) -> dict[str, Any]:
    data = segmentation_card()
    data["input"]["roi"] = roi
    data.update(changes)
    return data


def test_roi_round_trips() -> None:
    card = ModelCard.from_dict(roi_card({"model": "lungs", "labels": [2, 1], "margin_mm": 5}),
                               "mem")
    assert card.input.roi == RoiSpec("lungs", (1, 2), 5.0, False)
    data = card.to_dict()
    assert data["input"]["roi"] == {"model": "lungs", "labels": [1, 2], "margin_mm": 5.0,
                                    "keep_labels": False}
    assert json.loads(json.dumps(data)) == data
    assert ModelCard.from_dict(data, "again") == card
    kept = roi_card({"model": "lungs", "labels": [3], "keep_labels": True})
    assert ModelCard.from_dict(kept, "mem").input.roi == RoiSpec("lungs", (3,), 0.0, True)


@pytest.mark.parametrize("roi,changes,field,detail", [
    ({"labels": [1]}, {}, "input.roi.model", "missing"),
    ({"model": "lungs"}, {}, "input.roi.labels", "missing"),
    ({"model": "Lungs!", "labels": [1]}, {}, "input.roi.model", "must be 1-64 characters"),
    ({"model": "lungs", "labels": []}, {}, "input.roi.labels", "at least one label"),
    ({"model": "lungs", "labels": [0]}, {}, "input.roi.labels[0]", ">= 1 (a label of that"),
    ({"model": "lungs", "labels": ["1"]}, {}, "input.roi.labels[0]", "must be an integer"),
    ({"model": "lungs", "labels": [1, 1]}, {}, "input.roi.labels", "names a label twice"),
    ({"model": "lungs", "labels": 1}, {}, "input.roi.labels", "must be a list"),
    ({"model": "lungs", "labels": [1], "margin_mm": -2}, {}, "input.roi.margin_mm", ">= 0"),
    ({"model": "lungs", "labels": [1], "keep_labels": 1}, {}, "input.roi.keep_labels",
     "true or false"),
    ({"model": "lungs", "labels": [1], "margins": 1}, {}, "input.roi.margins",
     "did you mean 'margin_mm'"),
    ({"model": "lung-ct.v1_test", "labels": [1]}, {}, "input.roi.model",
     "names this model itself ('lung-ct.v1_test')"),
    ({"model": "lungs", "labels": [2, 5], "keep_labels": True}, {}, "input.roi.labels",
     "label 2 is also this card's label 2 ('right lung'); with keep_labels the other model's "
     "labels join this card's, so their ids must differ"),
])
def test_bad_roi_names_the_field(roi: Any, changes: dict[str, Any], field: str,
                                 detail: str) -> None:
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict(roi_card(roi, **changes), "card.json")
    message = str(info.value)
    assert message.startswith(f"card.json: {field}: "), message
    assert detail in message


def test_roi_and_crop_foreground_exclude_each_other() -> None:
    data = roi_card({"model": "lungs", "labels": [1]})
    data["input"]["crop_foreground"] = {"threshold": 0}
    with pytest.raises(ModelCardError, match=r"card\.json: input\.roi: not allowed with "
                                             r"input\.crop_foreground"):
        ModelCard.from_dict(data, "card.json")


def test_keep_labels_needs_a_segmentation_model() -> None:
    from tests.ai.test_model_card import classification_card

    data = classification_card()
    data["input"]["roi"] = {"model": "lungs", "labels": [1], "keep_labels": True}
    with pytest.raises(ModelCardError, match=r"input\.roi\.keep_labels: only a segmentation"):
        ModelCard.from_dict(data, "card.json")
    data["input"]["roi"]["keep_labels"] = False
    assert ModelCard.from_dict(data, "card.json").input.roi == RoiSpec("lungs", (1,))


# ---------------------------------------------------------------------- geometry


@pytest.mark.parametrize("directions", [AXIAL, AXIAL_FEET_FIRST, OBLIQUE],
                         ids=["axial", "feet-first", "oblique"])
@pytest.mark.parametrize("margin", [0.0, 3.0])
@pytest.mark.parametrize("dims,orientation", [(3, "RAS"), (2, "PLS")])
def test_the_model_runs_exactly_inside_the_grown_labels(
    registry: ModelRegistry, directions: np.ndarray, margin: float, dims: int, orientation: str
) -> None:
    """A model that labels all it sees returns the region: the upstream label grown by the
    margin (Euclidean, in patient mm), pasted back on the series in place."""
    volume = chest(directions)
    card = everything(registry, {"model": "lungs", "labels": [1], "margin_mm": margin}, dims,
                      orientation)
    prediction = run(card, registry, volume)
    truth = grown_truth(volume, left_lung_mask(), margin)
    np.testing.assert_array_equal(prediction.label_map, truth.astype(np.uint8))
    assert prediction.statistics[1].voxels == int(truth.sum())
    assert prediction.shape == SHAPE and prediction.warnings == ()
    if margin:
        assert truth[NODULE].all() and truth.sum() > left_lung_mask().sum() + 300


def test_the_labels_of_the_region_are_a_union(registry: ModelRegistry) -> None:
    volume = chest()
    card = everything(registry, {"model": "lungs", "labels": [1, 2], "margin_mm": 2.0})
    prediction = run(card, registry, volume)
    lungs = left_lung_mask()
    lungs[RIGHT] = True
    np.testing.assert_array_equal(prediction.label_map == 1, grown_truth(volume, lungs, 2.0))


def test_grown_mask_box_and_anisotropic_margin() -> None:
    mask = np.zeros((9, 11, 13), bool)
    mask[4, 5, 6] = True
    region = grown_mask_region(mask, (2.5, 1.0, 0.8), 2.6)  # slice, row, col spacing
    assert region is not None
    assert region.box.start == (3, 3, 3) and region.box.stop == (6, 8, 10)
    assert region.mask is not None
    # along each axis alone: 1 slice (2.5 mm), 2 rows (2 mm), 3 columns (2.4 mm)
    assert region.mask[:, 2, 3].tolist() == [True, True, True]
    assert region.mask[1, :, 3].tolist() == [True, True, True, True, True]
    assert region.mask[1, 2, :].tolist() == [True] * 7
    # corners are farther: (1 slice, 1 row) is 2.69 mm > 2.6
    assert not region.mask[0, 1, 3] and region.mask[1, 1, 2]  # (1 row, 1 col): 1.28 mm
    assert grown_mask_region(np.zeros((3, 3, 3), bool), (1, 1, 1), 5.0) is None


def test_a_translation_equivariant_model_gives_its_whole_series_labels(
    registry: ModelRegistry,
) -> None:
    """The filter's labels inside the region equal its labels on the whole series: the box is
    cut and pasted back at the right voxels, with the real neighbours inside the margin."""
    volume = chest(OBLIQUE)
    add_model(registry, "filter", BoxFilterSegmenter(400.0), "Filter")
    card = add_model(registry, "filter-roi", BoxFilterSegmenter(400.0), "Filter in lungs",
                     roi={"model": "lungs", "labels": [1], "margin_mm": 5.0})
    whole = run(registry.find("filter").card, registry, volume).label_map
    inside = run(card, registry, volume).label_map
    region = grown_truth(volume, left_lung_mask(), 5.0)
    assert whole[RIB].any() and not inside[RIB].any()
    np.testing.assert_array_equal(inside, np.where(region, whole, 0))
    assert inside[NODULE].any()


# ---------------------------------------------------------------------- keep_labels


def nodules(registry: ModelRegistry, keep: bool = True, **roi: Any) -> ModelCard:
    spec = {"model": "lungs", "labels": [1, 2], "margin_mm": 2.0, "keep_labels": keep, **roi}
    return add_model(registry, "nodules", SigmoidThreshold(500.0), "Nodules",
                     activation="sigmoid", labels={"3": {"name": "nodule", "color": "#ff0000"}},
                     roi=spec)


def test_keep_labels_gives_lungs_and_nodules_in_one_result(registry: ModelRegistry) -> None:
    volume = chest()
    prediction = run(nodules(registry), registry, volume)
    expected = np.zeros(SHAPE, np.uint8)
    expected[LEFT] = 1
    expected[RIGHT] = 2
    expected[NODULE] = 3  # the nodule inside the lung; the rib outside the lungs is not
    np.testing.assert_array_equal(prediction.label_map, expected)
    assert [(k, s.name) for k, s in prediction.segments.items()] == [
        (1, "left lung"), (2, "right lung"), (3, "nodule")]
    assert {k: s.voxels for k, s in prediction.statistics.items()} == {
        1: 7 * 8 * 9 - 36, 2: 8 * 10 * 10, 3: 36}
    assert prediction.model.id == "nodules"


def test_without_keep_labels_only_the_downstream_labels(registry: ModelRegistry) -> None:
    prediction = run(nodules(registry, keep=False), registry, chest())
    expected = np.zeros(SHAPE, np.uint8)
    expected[NODULE] = 3
    np.testing.assert_array_equal(prediction.label_map, expected)
    assert list(prediction.segments) == [3]


# ---------------------------------------------------------------------- errors


def test_a_missing_upstream_model(registry: ModelRegistry) -> None:
    card = everything(registry, {"model": "no-such-model", "labels": [1]})
    with pytest.raises(ModelCardError) as info:
        run(card, registry, chest())
    assert str(info.value) == (f"{card.path}: input.roi.model: unknown model 'no-such-model'; "
                               "known models: inside, lungs")


def test_an_upstream_model_that_does_not_segment(registry: ModelRegistry) -> None:
    add_model(registry, "classifier", MeanClassifier(), "Classifier", task="classification")
    card = everything(registry, {"model": "classifier", "labels": [1]})
    with pytest.raises(ModelCardError, match=r"input.roi.model: 'classifier' is a classification "
                                             r"model; a region of interest needs a segmentation "
                                             r"model's labels"):
        run(card, registry, chest())


def test_labels_the_upstream_model_does_not_have(registry: ModelRegistry) -> None:
    card = everything(registry, {"model": "lungs", "labels": [2, 4, 7]})
    with pytest.raises(ModelCardError) as info:
        run(card, registry, chest())
    assert str(info.value) == (f"{card.path}: input.roi.labels: model 'lungs' has no label 4, 7 "
                               "(its labels: 1 left lung, 2 right lung)")


def test_a_cycle_is_refused_before_anything_runs(registry: ModelRegistry) -> None:
    a = everything(registry, {"model": "b", "labels": [1]}, model_id="a")
    everything(registry, {"model": "c", "labels": [1]}, model_id="b")
    everything(registry, {"model": "a", "labels": [1]}, model_id="c")
    with pytest.raises(ModelCardError, match=r"the models name each other in a cycle "
                                             r"\(a -> b -> c -> a\); none of them can run"):
        run(a, registry, chest())


def test_a_chain_of_cascades_runs(registry: ModelRegistry) -> None:
    """lungs -> inside (the grown left lung) -> inner (inside's label, no margin)."""
    everything(registry, {"model": "lungs", "labels": [1], "margin_mm": 3.0})
    card = add_model(registry, "inner", ThresholdSegmenter(-1e6), "Inner",
                     roi={"model": "inside", "labels": [1]},
                     labels={"1": {"name": "inner", "color": "#00ff00"}})
    volume = chest()
    prediction = run(card, registry, volume)
    np.testing.assert_array_equal(prediction.label_map == 1,
                                  grown_truth(volume, left_lung_mask(), 3.0))


def test_an_empty_region_is_an_empty_result_with_a_note(registry: ModelRegistry) -> None:
    volume = make_volume(np.zeros(SHAPE, np.float32), SPACING)
    prediction = run(nodules(registry), registry, volume)
    assert not prediction.label_map.any() and prediction.label_map.shape == SHAPE
    assert list(prediction.segments) == [1, 2, 3]
    assert all(s.voxels == 0 for s in prediction.statistics.values())
    assert prediction.warnings == ("Lungs found no left lung, right lung on this series: "
                                   "Nodules did not run and its result is empty",)


def test_an_empty_region_cannot_be_classified(registry: ModelRegistry) -> None:
    card = add_model(registry, "lung-cls", MeanClassifier(), "Lung classifier",
                     task="classification", roi={"model": "lungs", "labels": [2]})
    with pytest.raises(InferenceError, match="Lungs found no right lung on this series: there "
                                             "is nothing for Lung classifier to classify"):
        run(card, registry, make_volume(np.zeros(SHAPE, np.float32), SPACING))
    # with a right lung, it classifies the box of the right lung only: mean 250 > 200
    card = add_model(registry, "lung-cls-200", MeanClassifier(200.0, 1.0), "Lung classifier",
                     task="classification", roi={"model": "lungs", "labels": [2]})
    prediction = run(card, registry, chest())
    assert prediction.classes["bright"] > 0.99


# ---------------------------------------------------------------------- control


def slow_upstream(registry: ModelRegistry) -> ModelCard:
    """A 2D upstream (batches of one slice) and a downstream card on it."""
    add_model(registry, "lungs-2d", BandSegmenter([100.0, 200.0, 300.0]), "Lungs 2D", dims=2,
              orientation="PLS", labels=LUNGS)
    return add_model(registry, "nodules-2d", SigmoidThreshold(500.0), "Nodules",
                     activation="sigmoid", labels={"3": {"name": "nodule", "color": "#ff0000"}},
                     roi={"model": "lungs-2d", "labels": [1, 2], "margin_mm": 2.0,
                          "keep_labels": True})


def test_progress_covers_both_stages(registry: ModelRegistry) -> None:
    steps: list = []
    prediction = run(slow_upstream(registry), registry, chest(), steps, batch_size=1)
    fractions = [p.fraction for p in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    upstream = [p for p in steps if p.message.startswith("Lungs 2D: ")]
    assert [p.message for p in upstream][1:4] == [
        "Lungs 2D: preparing the image", "Lungs 2D: segmenting slice 1/16",
        "Lungs 2D: segmenting slice 2/16"]
    assert max(p.fraction for p in upstream) == pytest.approx(UPSTREAM_SHARE)
    downstream = steps[len(upstream):]
    assert downstream[0].message == "loading Nodules"
    assert min(p.fraction for p in downstream) == pytest.approx(UPSTREAM_SHARE)
    assert prediction.label_map[NODULE].min() == 3


def test_cancel_reaches_the_upstream_stage(registry: ModelRegistry) -> None:
    card = slow_upstream(registry)
    flag = threading.Event()
    seen: list[str] = []
    steps = Runner(card, "cpu", 1, registry=registry).run(chest(), cancel=flag.is_set)
    with pytest.raises(CancelledError):
        for progress in steps:
            seen.append(progress.message)
            if progress.message == "Lungs 2D: segmenting slice 3/16":
                flag.set()
    assert seen[-1] == "Lungs 2D: segmenting slice 3/16"
    assert not [m for m in seen if not m.startswith("Lungs 2D: ")]
    assert UPSTREAM_RESULTS.get((series_key(chest()), _key(registry, "lungs-2d"))) is None


def _key(registry: ModelRegistry, model_id: str) -> str:
    return card_key(registry.find(model_id).card)


def test_the_upstream_result_is_reused_on_the_same_series(registry: ModelRegistry) -> None:
    card = nodules(registry)
    volume = chest()
    first: list = []
    second: list = []
    a = run(card, registry, volume, first)
    b = run(card, registry, volume, second)
    np.testing.assert_array_equal(a.label_map, b.label_map)
    assert any(p.message == "Lungs: segmenting done" for p in first)
    assert [p.message for p in second][:2] == ["Lungs: its result on this series reused",
                                               "loading Nodules"]
    # the upstream run is not measured (only its labels are used); the cascade's result is
    cached = UPSTREAM_RESULTS.get((series_key(volume), _key(registry, "lungs")))
    assert cached is not None and cached.statistics == {}
    assert set(a.statistics) == set(np.unique(a.label_map).tolist()) - {0}
    # another series (one voxel changed) runs the upstream model again
    other = volume.with_array(volume.array.copy())
    other.array[0, 0, 0] = 1.0
    third: list = []
    run(card, registry, other, third)
    assert any(p.message == "Lungs: segmenting done" for p in third)


def test_new_upstream_weights_are_not_served_from_the_cache(registry: ModelRegistry) -> None:
    card = nodules(registry)
    volume = chest()
    before = run(card, registry, volume)
    folder = registry.user / "lungs"
    # the lungs model now calls 120..200 the left lung, 200..300 the right one (same labels)
    data = json.loads((folder / "model.json").read_text())
    save_torchscript(BandSegmenter([120.0, 140.0, 300.0]), folder / "model.ts")
    data["weights"]["sha256"] = sha256(folder / "model.ts")
    (folder / "model.json").write_text(json.dumps(data))
    after = run(card, registry, volume)
    assert (before.label_map == 1).sum() == 7 * 8 * 9 - 36
    assert (after.label_map == 1).sum() == 0 and (after.label_map == 2).sum() > 0


def test_upstream_warnings_are_carried_with_its_id(registry: ModelRegistry) -> None:
    no_modality = make_volume(chest().array, SPACING, modality="")
    prediction = run(nodules(registry), registry, no_modality)
    assert prediction.warnings == (
        "the series has no modality; nodules is for CT",
        "lungs: the series has no modality; lungs is for CT",
    )


def test_the_results_cache_forgets_the_oldest() -> None:
    cache = UpstreamResults(size=2)
    predictions = [object() for _ in range(3)]
    for i, item in enumerate(predictions):
        cache.put((str(i), "card"), item)  # type: ignore[arg-type]
    assert cache.get(("0", "card")) is None
    assert cache.get(("2", "card")) is predictions[2]


# ---------------------------------------------------------------------- Segment's list


def test_a_stage_whose_labels_a_cascade_keeps_is_not_run_again(registry) -> None:
    lungs = registry.get("lungs").card

    def downstream(model_id: str, roi: dict[str, Any]) -> ModelCard:
        return add_model(registry, model_id, ThresholdSegmenter(500.0), model_id, roi=roi,
                         activation="sigmoid",
                         labels={"3": {"name": "nodule", "color": "#ff3030"}})

    keeping = downstream("keeping", {"model": "lungs", "labels": [1, 2], "keep_labels": True})
    part = downstream("part", {"model": "lungs", "labels": [1], "keep_labels": True})
    dropping = downstream("dropping", {"model": "lungs", "labels": [1, 2]})
    assert stages_kept_by([lungs, keeping, dropping]) == {"lungs"}
    assert stages_kept_by([lungs, part, dropping]) == set()  # the right lung is not kept
    assert stages_kept_by([lungs, dropping]) == set()
    assert stages_kept_by([keeping]) == set()  # the stage is not among the cards
