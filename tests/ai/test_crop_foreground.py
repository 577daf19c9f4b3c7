"""input.crop_foreground: the box, the run on it, and the paste back, against known truth."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medviewer.ai.model_card import CropForegroundSpec, ModelCard
from medviewer.ai.model_size import input_shape
from medviewer.ai.regions import Box, above_box, foreground_region, margin_voxels
from medviewer.ai.runner import Runner, run_to_end
from medviewer.ai.weights import clear_network_cache
from medviewer.core.errors import ModelCardError
from tests.ai.test_explain import KWARGS, blob_detector
from tests.ai.test_model_card import segmentation_card
from tests.ai.test_transforms import AXIAL, AXIAL_FEET_FIRST, OBLIQUE, SAGITTAL
from tests.ai.tiny_models import (
    BoxFilterSegmenter,
    ThresholdSegmenter,
    card_dict,
    dice,
    make_card,
    make_volume,
    patient_coordinates,
    write_card,
)

SHAPE = (20, 30, 40)  # slices, rows, cols
SPACING = (0.8, 1.0, 2.5)  # col, row, slice (mm)
OBJECT = (slice(5, 9), slice(10, 15), slice(25, 32))  # off-centre, in array order


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_network_cache()


def run(card: ModelCard, volume: Any, **kwargs: Any) -> Any:
    return run_to_end(Runner(card, "cpu").run(volume, **kwargs))


def object_volume(directions: np.ndarray = AXIAL, value: float = 1000.0) -> Any:
    array = np.zeros(SHAPE, np.float32)
    array[OBJECT] = value
    return make_volume(array, SPACING, directions, origin=(-12.0, 30.0, 7.5))


# ---------------------------------------------------------------------- the card field


def crop_card(crop: Any) -> dict[str, Any]:
    data = segmentation_card()
    data["input"]["crop_foreground"] = crop
    return data


@pytest.mark.parametrize("crop,expected", [
    ({"threshold": -500}, CropForegroundSpec(threshold=-500.0)),
    ({"threshold": 0.5, "margin_mm": 10}, CropForegroundSpec(threshold=0.5, margin_mm=10.0)),
    ({"percentile": 99.5, "margin_mm": 0}, CropForegroundSpec(percentile=99.5)),
    ({"percentile": 0}, CropForegroundSpec(percentile=0.0)),
    ({"percentile": 100}, CropForegroundSpec(percentile=100.0)),
])
def test_crop_foreground_round_trips(crop: dict[str, Any], expected: CropForegroundSpec) -> None:
    card = ModelCard.from_dict(crop_card(crop), "mem")
    assert card.input.crop_foreground == expected
    data = card.to_dict()
    assert json.loads(json.dumps(data)) == data
    key = "threshold" if expected.threshold is not None else "percentile"
    assert data["input"]["crop_foreground"] == {key: crop[key], "margin_mm": expected.margin_mm}
    assert ModelCard.from_dict(data, "again") == card


def test_no_crop_is_not_written() -> None:
    card = ModelCard.from_dict(segmentation_card(), "mem")
    assert card.input.crop_foreground is None
    assert "crop_foreground" not in card.to_dict()["input"]


@pytest.mark.parametrize("crop,field,detail", [
    ({}, "input.crop_foreground", "exactly one of threshold (image units, e.g. HU) or "
     "percentile (0-100), got neither"),
    ({"margin_mm": 3}, "input.crop_foreground", "got neither"),
    ({"threshold": 0, "percentile": 50}, "input.crop_foreground", "got both"),
    ({"threshold": "100"}, "input.crop_foreground.threshold", "must be a number"),
    ({"threshold": True}, "input.crop_foreground.threshold", "must be a number"),
    ({"threshold": math.inf}, "input.crop_foreground.threshold", "must be a number"),
    ({"threshold": math.nan}, "input.crop_foreground.threshold", "must be a number"),
    ({"percentile": 101}, "input.crop_foreground.percentile", "in [0, 100], got 101"),
    ({"percentile": -0.5}, "input.crop_foreground.percentile", "in [0, 100]"),
    ({"threshold": 0, "margin_mm": -1}, "input.crop_foreground.margin_mm", ">= 0 (mm), got -1"),
    ({"threshold": 0, "margin_mm": math.nan}, "input.crop_foreground.margin_mm", ">= 0"),
    ({"threshold": 0, "margin": 3}, "input.crop_foreground.margin", "did you mean 'margin_mm'"),
    ([0], "input.crop_foreground", "must be an object"),
])
def test_bad_crop_foreground_names_the_field(crop: Any, field: str, detail: str) -> None:
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict(crop_card(crop), "card.json")
    message = str(info.value)
    assert message.startswith(f"card.json: {field}: "), message
    assert detail in message


def test_model_size_estimate_ignores_the_crop() -> None:
    plain = ModelCard.from_dict(segmentation_card(), "mem")
    cropped = ModelCard.from_dict(crop_card({"threshold": -500, "margin_mm": 20}), "mem")
    assert input_shape(cropped) == input_shape(plain) == (1, 1, 96, 96, 64)


# ---------------------------------------------------------------------- the box


def test_margin_in_mm_becomes_whole_voxels_per_axis() -> None:
    # spacing along (slice, row, col)
    assert margin_voxels((2.5, 1.0, 0.8), 3.0) == (1, 3, 3)
    assert margin_voxels((2.5, 1.0, 0.8), 2.5) == (1, 2, 3)  # a whole voxel counts
    assert margin_voxels((2.5, 1.0, 0.8), 0.0) == (0, 0, 0)
    assert margin_voxels((0.7, 0.7, 0.7), 2.1) == (3, 3, 3)  # 2.1 / 0.7 = 2.9999999999999996


@pytest.mark.parametrize("margin,start,stop", [
    (0.0, (5, 10, 25), (9, 15, 32)),
    # 3 mm: 1 slice of 2.5 mm, 3 rows of 1 mm, 3 columns of 0.8 mm
    (3.0, (4, 7, 22), (10, 18, 35)),
    # 12 mm: 4 slices, 12 rows, 15 columns, clipped to the image
    (12.0, (1, 0, 10), (13, 27, 40)),
    (1000.0, (0, 0, 0), SHAPE),
])
def test_the_box_is_the_foreground_grown_by_the_margin(
    margin: float, start: tuple[int, ...], stop: tuple[int, ...]
) -> None:
    volume = object_volume()
    region = foreground_region(volume, CropForegroundSpec(threshold=500.0, margin_mm=margin))
    assert region is not None and region.mask is None
    assert region.box == Box(start, stop)


def test_threshold_is_strictly_above_and_any_channel_counts() -> None:
    array = np.zeros((4, 5, 6, 3), np.float32)
    array[1, 2, 3, 2] = 10.0
    array[2, 4, 0, 0] = 9.0
    assert above_box(array, 9.0) == Box((1, 2, 3), (2, 3, 4))
    assert above_box(array, 8.5) == Box((1, 2, 0), (3, 5, 4))
    assert above_box(array, 10.0) is None


def test_the_threshold_is_compared_a_few_slices_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import medviewer.ai.regions as regions

    monkeypatch.setattr(regions, "_CHUNK_VOXELS", 7)  # one slice per step
    volume = object_volume()
    assert above_box(volume.array, 0.0) == Box((5, 10, 25), (9, 15, 32))


def test_percentile_threshold() -> None:
    """The 99.9th percentile of 24 000 voxels is the value at rank 23 975 (linear
    interpolation, as numpy and MONAI): here 50, so the twelve voxels at 60 are above it."""
    rng = np.random.default_rng(3)
    array = rng.uniform(0.0, 1.0, SHAPE).astype(np.float32)
    array[OBJECT] = 50.0  # 140 voxels
    array[6:8, 11:13, 27:30] = 60.0  # 12 of them
    volume = make_volume(array, SPACING)
    assert float(np.percentile(array, 99.9)) == 50.0
    region = foreground_region(volume, CropForegroundSpec(percentile=99.9, margin_mm=1.0))
    assert region is not None
    assert region.box == Box((6, 10, 26), (8, 14, 31))  # grown by 1 row and 1 column
    region = foreground_region(volume, CropForegroundSpec(percentile=99.0))
    assert region is not None
    assert region.box == above_box(array, float(np.percentile(array, 99.0)))


# ---------------------------------------------------------------------- runs


def box_filter_card(folder: Path, crop: dict[str, Any] | None, dims: int = 3,
                    orientation: str = "RAS", **fields: Any) -> ModelCard:
    if crop is not None:
        fields["crop_foreground"] = crop
    return make_card(folder, BoxFilterSegmenter(100.0), dims=dims, orientation=orientation,
                     **fields)


@pytest.mark.parametrize("name,directions", [
    ("axial", AXIAL), ("feet-first", AXIAL_FEET_FIRST), ("sagittal", SAGITTAL),
    ("oblique", OBLIQUE),
])
@pytest.mark.parametrize("dims,orientation", [(3, "RAS"), (2, "PLS"), (2, "RAS")])
def test_a_cropped_run_equals_the_whole_run_voxel_for_voxel(
    tmp_path: Path, name: str, directions: np.ndarray, dims: int, orientation: str
) -> None:
    """A translation-equivariant model on a voxel-aligned crop gives the same label map,
    pasted back at the same voxels, whatever the orientation of the series."""
    volume = object_volume(directions)
    whole = run(box_filter_card(tmp_path / "w", None, dims, orientation), volume)
    # 5 mm keeps at least 2 voxels around the object on every axis (2 of 2.5 mm slices)
    crop = {"threshold": 500, "margin_mm": 5}
    cropped = run(box_filter_card(tmp_path / "c", crop, dims, orientation), volume)
    assert whole.label_map.sum() > OBJECT_VOXELS  # the filter spreads past the object
    np.testing.assert_array_equal(cropped.label_map, whole.label_map)
    assert cropped.statistics[1].voxels == whole.statistics[1].voxels
    assert cropped.statistics[1].centroid_lps == pytest.approx(whole.statistics[1].centroid_lps)
    assert cropped.warnings == whole.warnings == ()


OBJECT_VOXELS = 4 * 5 * 7


def test_a_crop_without_margin_loses_the_edge_the_model_needs(tmp_path: Path) -> None:
    """The test above has teeth: with no margin the box's zero padding changes the labels, and
    nothing outside the box is labelled."""
    volume = object_volume()
    whole = run(box_filter_card(tmp_path / "w", None), volume)
    cropped = run(box_filter_card(tmp_path / "c", {"threshold": 500}), volume)
    outside = np.ones(SHAPE, bool)
    outside[OBJECT] = False
    assert whole.label_map[outside].any()
    assert not cropped.label_map[outside].any()
    np.testing.assert_array_equal(cropped.label_map[OBJECT], whole.label_map[OBJECT])


@pytest.mark.parametrize("directions", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_slices_outside_the_box_are_background_for_a_2d_card(
    tmp_path: Path, directions: np.ndarray
) -> None:
    """A 2D card's box is computed once over the series: only slices 4..9 run."""
    volume = object_volume(directions)
    card = make_card(tmp_path / "m", ThresholdSegmenter(-1.0), dims=2, orientation="PLS",
                     crop_foreground={"threshold": 500, "margin_mm": 3})
    steps: list[str] = []
    prediction = run_to_end(Runner(card, "cpu", 1).run(volume), lambda p: steps.append(p.message))
    # the model labels everything it sees (x > -1): exactly the box
    expected = np.zeros(SHAPE, np.uint8)
    expected[4:10, 7:18, 22:35] = 1
    np.testing.assert_array_equal(prediction.label_map, expected)
    assert "segmenting slice 6/6" in steps


def test_resampled_cards_crop_before_resizing(tmp_path: Path) -> None:
    """A fixed size then covers the foreground only: finer model voxels, same truth."""
    base = make_volume(np.zeros((40, 64, 64), np.float32), (0.7, 0.7, 1.5), OBLIQUE)
    world = patient_coordinates(base)
    centre = world[12, 40, 20]
    truth = np.linalg.norm(world - centre, axis=-1) < 7.0
    volume = base.with_array(np.where(truth, 180.0, 20.0).astype(np.float32))
    fields = {"size": [16, 16, 16]}
    card = make_card(tmp_path / "c", ThresholdSegmenter(100.0, 0.05), dims=3,
                     crop_foreground={"threshold": 100, "margin_mm": 3}, **fields)
    plain = make_card(tmp_path / "p", ThresholdSegmenter(100.0, 0.05), dims=3, **fields)
    cropped, whole = run(card, volume), run(plain, volume)
    assert dice(cropped.label_map == 1, truth) >= 0.97
    assert dice(cropped.label_map == 1, truth) > dice(whole.label_map == 1, truth) + 0.1
    assert np.allclose(cropped.statistics[1].centroid_lps, world[truth].mean(axis=0), atol=0.3)


def test_probabilities_outside_the_box_are_background(tmp_path: Path) -> None:
    volume = object_volume()
    card = box_filter_card(tmp_path / "m", {"threshold": 500, "margin_mm": 5})
    prediction = run(card, volume, keep_probabilities=True)
    probabilities = prediction.probabilities
    assert probabilities.shape == (*SHAPE, 2)
    box = Box((3, 5, 19), (11, 20, 38))  # 2 slices, 5 rows, 6 columns around the object
    outside = np.ones(SHAPE, bool)
    outside[box.slices] = False
    np.testing.assert_array_equal(probabilities[outside], [[1.0, 0.0]] * int(outside.sum()))
    assert probabilities[OBJECT][..., 1].min() > 0.99


def test_empty_foreground_runs_on_the_whole_series_and_says_so(tmp_path: Path) -> None:
    volume = object_volume()
    card = box_filter_card(tmp_path / "c", {"threshold": 5000, "margin_mm": 5})
    prediction = run(card, volume)
    whole = run(box_filter_card(tmp_path / "w", None), volume)
    np.testing.assert_array_equal(prediction.label_map, whole.label_map)
    assert prediction.warnings == (
        "input.crop_foreground: no voxel of the series is above 5000; the model ran on the "
        "whole series",
    )
    uniform = make_volume(np.full(SHAPE, 7.0, np.float32), SPACING)
    card = box_filter_card(tmp_path / "p", {"percentile": 50})
    assert run(card, uniform).warnings == (
        "input.crop_foreground: no voxel of the series is above its 50th percentile; the model "
        "ran on the whole series",
    )


def test_a_3d_model_gets_at_least_two_voxels_per_axis(tmp_path: Path) -> None:
    array = np.zeros(SHAPE, np.float32)
    array[19, 29, 39] = 1000.0  # one voxel in the last corner
    volume = make_volume(array, SPACING)
    card = make_card(tmp_path / "m", ThresholdSegmenter(-1.0), dims=3,
                     crop_foreground={"threshold": 500})
    prediction = run(card, volume)
    expected = np.zeros(SHAPE, np.uint8)
    expected[18:, 28:, 38:] = 1
    np.testing.assert_array_equal(prediction.label_map, expected)


# ---------------------------------------------------------------------- classifiers


def blob_series() -> tuple[Any, tuple[slice, slice, slice]]:
    """Ten slices of noise with a bright blob on slices 3..5 (rows 12..20, columns 22..30)."""
    rng = np.random.default_rng(5)
    array = rng.uniform(0, 0.2, (10, 48, 40)).astype(np.float32)
    yy, xx = np.mgrid[:48, :40]
    blob = 2.0 * np.exp(-((yy - 16) ** 2 + (xx - 26) ** 2) / (2 * 2.0**2))
    array[3:6] += blob
    return make_volume(array, (1.0, 1.0, 2.0)), (slice(3, 6), slice(12, 21), slice(22, 31))


def test_a_cropped_classifier_pastes_slices_and_heatmap_back(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    folder = tmp_path / "blob"
    folder.mkdir()
    save_file(blob_detector().state_dict(), str(folder / "model.safetensors"))
    data = card_dict(
        folder / "model.safetensors", "safetensors", task="classification", dims=2,
        orientation="PLS", classes=["normal", "blob"],
        architecture={"name": "medviewer.ai.nets.ConvClassifier", "kwargs": KWARGS},
        explain={"method": "gradcam", "layer": "features.block0"},
        crop_foreground={"threshold": 0.5, "margin_mm": 4},
    )
    card = write_card(folder, data)
    volume, blob = blob_series()
    prediction = run(card, volume)
    region = foreground_region(volume, card.input.crop_foreground)
    assert region is not None
    box = region.box
    assert box.start[0] == 1 and box.stop[0] == 8  # 2 slices of 2 mm on each side
    rows = prediction.slice_probabilities
    assert prediction.slice_axis == 0 and rows.shape == (10, 2)
    np.testing.assert_array_equal(rows[[0, 8, 9]], [[1.0, 0.0]] * 3)
    assert rows[3:6, 1].min() > 0.9 and rows[[1, 2, 6, 7], 1].max() < 0.5
    assert prediction.decision == ("blob",)
    heatmap = prediction.heatmap
    outside = np.ones(volume.shape, bool)
    outside[box.slices] = False
    assert heatmap.max() == pytest.approx(1.0) and not heatmap[outside].any()
    peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    assert all(s.start <= p < s.stop for p, s in zip(peak, blob, strict=True))
