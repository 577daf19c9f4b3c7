"""Model cards: a full card round-trips, defaults are filled, bad cards name file and field."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medviewer.ai.model_card import (
    CARD_FILE,
    REFUSED_FORMATS,
    SCHEMA,
    TASKS,
    WEIGHT_FORMATS,
    Architecture,
    ExplainSpec,
    IntensityOp,
    ModelCard,
    PostprocessStep,
    Segment,
    default_color,
    file_sha256,
    load_card,
    verify_weights,
)
from medviewer.core.errors import MedviewerError, ModelCardError

WEIGHTS = b"not really a network, only bytes with a known hash"
SHA = hashlib.sha256(WEIGHTS).hexdigest()


def segmentation_card() -> dict[str, Any]:
    """A full segmentation card: every optional field given."""
    return {
        "schema": SCHEMA,
        "id": "lung-ct.v1_test",
        "name": "Lung CT",
        "version": "1.0.0",
        "description": "Segments both lungs.",
        "task": "segmentation",
        "intended_use": "Research only.",
        "license": "Apache-2.0",
        "authors": ["A. Author", "B. Author"],
        "references": ["doi:10/xyz"],
        "modalities": ["ct"],
        "weights": {"file": "model.ts", "sha256": SHA.upper(), "format": "torchscript"},
        "input": {
            "dims": 3,
            "orientation": "ras",
            "spacing": [1.5, 1.5, 2],
            "size": None,
            "patch_size": [96, 96, 64],
            "overlap": 0.5,
            "channels": 1,
            "intensity": [
                {"op": "clip", "min": -1000, "max": 400},
                {"op": "scale_range", "min": -1000, "max": 400, "to": [0, 1], "clip": False},
                {"op": "percentile_scale", "lower": 0.5, "upper": 99.5},
                {"op": "zscore"},
                {"op": "linear", "scale": 2, "offset": -1},
            ],
        },
        "output": {
            "activation": "softmax",
            "labels": {
                "2": {"name": "right lung", "color": "#4AA3DF"},
                "1": {"name": "left lung", "color": "#ff0000"},
            },
            "threshold": 0.4,
            "postprocess": ["largest_component", "fill_holes"],
        },
        "metrics": {"dice": {"left": 0.97, "right": 0.96}},
        "x-notes": "kept nowhere",
    }


def classification_card(**changes: Any) -> dict[str, Any]:
    """A classifier with Grad-CAM (so tensor-only weights with an architecture)."""
    card = {
        "schema": SCHEMA,
        "id": "chest-xray",
        "name": "Chest X-ray",
        "version": "2",
        "task": "classification",
        "intended_use": "Research only.",
        "modalities": ["CR", "DX"],
        "weights": {
            "file": "weights/model.safetensors",
            "sha256": SHA,
            "format": "safetensors",
            "architecture": {
                "name": "monai.networks.nets.DenseNet121",
                "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 2},
            },
        },
        "input": {"dims": 2, "orientation": "LPS", "size": [224, 224]},
        "output": {"activation": "softmax", "classes": ["normal", "nodule"]},
        "explain": {"method": "gradcampp", "layer": "features.denseblock4"},
    }
    card.update(changes)
    return card


def write_card(folder: Path, card: dict[str, Any], weights: bytes = WEIGHTS) -> Path:
    """Write ``card`` as folder/model.json, with a weights file when the card names one."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
    file = card.get("weights", {}).get("file") if isinstance(card.get("weights"), dict) else None
    if isinstance(file, str) and "/" not in file and ".." not in file:
        (folder / file).write_bytes(weights)
    return folder / CARD_FILE


# -- valid cards ------------------------------------------------------------------------


def test_constants() -> None:
    assert SCHEMA == "medviewer.model/1"
    assert CARD_FILE == "model.json"
    assert set(WEIGHT_FORMATS) == {"torchscript", "safetensors", "state_dict", "onnx"}
    assert set(REFUSED_FORMATS) == {"exported"}
    assert set(TASKS) == {"segmentation", "classification", "interactive"}
    assert issubclass(ModelCardError, MedviewerError)


def test_full_card_values_are_normalised() -> None:
    card = ModelCard.from_dict(segmentation_card(), "mem")
    assert card.id == "lung-ct.v1_test"
    assert card.modalities == ("CT",)
    assert card.authors == ("A. Author", "B. Author")
    assert card.weights.sha256 == SHA
    assert card.weights.architecture is None
    assert card.input.orientation == "RAS"
    assert card.input.spacing == (1.5, 1.5, 2.0)
    assert all(isinstance(s, float) for s in card.input.spacing)
    assert card.input.size is None
    assert card.input.patch_size == (96, 96, 64)
    assert card.input.overlap == 0.5
    assert card.input.intensity == (
        IntensityOp("clip", {"min": -1000.0, "max": 400.0}),
        IntensityOp("scale_range", {"min": -1000.0, "max": 400.0, "to": (0.0, 1.0), "clip": False}),
        IntensityOp(
            "percentile_scale", {"lower": 0.5, "upper": 99.5, "to": (0.0, 1.0), "clip": True}
        ),
        IntensityOp("zscore", {}),
        IntensityOp("linear", {"scale": 2.0, "offset": -1.0}),
    )
    assert list(card.output.labels) == [1, 2]
    assert card.output.labels[1] == Segment(1, "left lung", "#ff0000")
    assert card.output.labels[2] == Segment(2, "right lung", "#4aa3df")
    assert card.output.classes == ()
    assert card.output.threshold == 0.4
    steps = (PostprocessStep("largest_component"), PostprocessStep("fill_holes"))
    assert card.output.postprocess == {1: steps, 2: steps}
    assert card.explain is None
    assert card.metrics == {"dice": {"left": 0.97, "right": 0.96}}
    assert card.path is None


def test_full_card_round_trips() -> None:
    card = ModelCard.from_dict(segmentation_card(), "mem")
    data = card.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = ModelCard.from_dict(data, "again")
    assert again == card
    assert again.to_dict() == data
    assert "x-notes" not in data
    assert data["output"]["postprocess"] == {
        "1": ["largest_component", "fill_holes"],
        "2": ["largest_component", "fill_holes"],
    }
    assert data["input"]["intensity"][1] == {
        "op": "scale_range",
        "min": -1000.0,
        "max": 400.0,
        "to": [0.0, 1.0],
        "clip": False,
    }


def test_classification_card_round_trips() -> None:
    card = ModelCard.from_dict(classification_card(), "mem")
    assert card.task == "classification"
    assert card.weights.architecture == Architecture(
        "monai.networks.nets.DenseNet121", {"spatial_dims": 2, "in_channels": 1, "out_channels": 2}
    )
    assert card.explain == ExplainSpec("gradcampp", "features.denseblock4")
    assert card.output.classes == ("normal", "nodule")
    assert card.output.labels == {}
    assert card.output.postprocess == {}
    assert card.input.size == (224, 224)
    assert ModelCard.from_dict(card.to_dict(), "again") == card


def test_defaults_are_filled() -> None:
    data = segmentation_card()
    for key in ("description", "license", "authors", "references", "metrics", "x-notes"):
        del data[key]
    data["input"] = {"dims": 3, "orientation": "LPS"}
    data["output"] = {"activation": "sigmoid", "labels": {"4": {"name": "nodule"}}}
    card = ModelCard.from_dict(data, "mem")
    assert (card.description, card.license, card.authors, card.references) == ("", "", (), ())
    assert card.explain is None
    assert card.metrics == {}
    assert card.input.spacing is None and card.input.size is None
    assert card.input.patch_size is None
    assert card.input.overlap == 0.25
    assert card.input.channels == 1
    assert card.input.intensity == ()
    assert card.output.threshold == 0.5
    assert card.output.postprocess == {}
    assert card.output.labels == {4: Segment(4, "nodule", default_color(4))}
    assert ModelCard.from_dict(card.to_dict(), "again") == card


def test_sigmoid_classifier_may_have_one_class() -> None:
    output = {"activation": "sigmoid", "classes": ["nodule"], "threshold": 0.3}
    card = ModelCard.from_dict(classification_card(output=output), "mem")
    assert card.output.classes == ("nodule",)
    assert card.output.threshold == 0.3


def test_postprocess_per_label() -> None:
    data = segmentation_card()
    data["output"]["postprocess"] = {"2": ["fill_holes"], "1": []}
    card = ModelCard.from_dict(data, "mem")
    assert card.output.postprocess == {2: (PostprocessStep("fill_holes"),)}


def test_temperature_round_trips_and_defaults_to_one() -> None:
    data = segmentation_card()
    assert ModelCard.from_dict(data, "mem").output.temperature == 1.0
    assert "temperature" not in ModelCard.from_dict(data, "mem").to_dict()["output"]
    data["output"]["temperature"] = 1.7
    card = ModelCard.from_dict(data, "mem")
    assert card.output.temperature == 1.7
    assert card.to_dict()["output"]["temperature"] == 1.7
    assert ModelCard.from_dict(card.to_dict(), "again") == card


def test_bias_round_trips_on_a_classifier() -> None:
    data = classification_card()
    assert ModelCard.from_dict(data, "mem").output.bias == ()
    assert "bias" not in ModelCard.from_dict(data, "mem").to_dict()["output"]
    data["output"]["bias"] = [0, -1.25]
    card = ModelCard.from_dict(data, "mem")
    assert card.output.bias == (0.0, -1.25)
    assert card.to_dict()["output"]["bias"] == [0.0, -1.25]
    assert ModelCard.from_dict(card.to_dict(), "again") == card


def test_slice_rules_round_trip_on_a_classifier() -> None:
    data = classification_card()
    plain = ModelCard.from_dict(data, "mem")
    assert (plain.output.slice_average, plain.output.series_consecutive) == (0, 1)
    assert not {"slice_average", "series_consecutive"} & set(plain.to_dict()["output"])
    data["output"].update(slice_average=1, series_consecutive=3)
    card = ModelCard.from_dict(data, "mem")
    assert (card.output.slice_average, card.output.series_consecutive) == (1, 3)
    assert ModelCard.from_dict(card.to_dict(), "again") == card


def test_postprocess_steps_with_parameters_round_trip() -> None:
    data = segmentation_card()
    data["output"]["postprocess"] = {
        "1": ["fill_holes", {"op": "keep_largest", "count": 2}],
        "2": [{"op": "remove_small", "min_volume_mm3": 30}, {"op": "mean_between", "min": -500}],
    }
    card = ModelCard.from_dict(data, "mem")
    assert card.output.postprocess == {
        1: (PostprocessStep("fill_holes"), PostprocessStep("keep_largest", {"count": 2})),
        2: (
            PostprocessStep("remove_small", {"min_volume_mm3": 30.0}),
            PostprocessStep("mean_between", {"min": -500.0}),
        ),
    }
    assert card.to_dict()["output"]["postprocess"] == {
        "1": ["fill_holes", {"op": "keep_largest", "count": 2}],
        "2": [
            {"op": "remove_small", "min_volume_mm3": 30.0},
            {"op": "mean_between", "min": -500.0},
        ],
    }
    assert ModelCard.from_dict(card.to_dict(), "again") == card


def test_dims_2_card_with_two_entry_spacing() -> None:
    data = segmentation_card()
    data["input"] = {"dims": 2, "orientation": "SAR", "spacing": [0.7, 0.7], "size": [256, 256]}
    card = ModelCard.from_dict(data, "mem")
    assert card.input.orientation == "SAR"
    assert card.input.spacing == (0.7, 0.7)


def test_card_paths(tmp_path: Path) -> None:
    card_file = write_card(tmp_path / "lung", segmentation_card())
    by_folder, by_file = load_card(tmp_path / "lung"), load_card(card_file)
    assert by_folder == by_file
    assert by_folder.path == card_file
    assert by_folder.folder == tmp_path / "lung"
    assert by_folder.weights_path == tmp_path / "lung" / "model.ts"
    with pytest.raises(ModelCardError, match="not read from a file"):
        _ = ModelCard.from_dict(segmentation_card(), "mem").folder


# -- bad cards --------------------------------------------------------------------------


def _set(dotted: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(card: dict[str, Any]) -> dict[str, Any]:
        *parents, last = dotted.split(".")
        target = card
        for key in parents:
            target = target[key]
        target[last] = value
        return card

    return mutate


def _all(
    *mutators: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(card: dict[str, Any]) -> dict[str, Any]:
        for mutator in mutators:
            card = mutator(card)
        return card

    return mutate


def _del(dotted: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(card: dict[str, Any]) -> dict[str, Any]:
        *parents, last = dotted.split(".")
        target = card
        for key in parents:
            target = target[key]
        del target[last]
        return card

    return mutate


def _rename(old: str, new: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(card: dict[str, Any]) -> dict[str, Any]:
        card[new] = card.pop(old)
        return card

    return mutate


def _rename_output(old: str, new: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(card: dict[str, Any]) -> dict[str, Any]:
        card["output"][new] = card["output"].pop(old)
        return card

    return mutate


def _classifier(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda _: classification_card(**changes)


TORCHSCRIPT_WEIGHTS = {"file": "model.ts", "sha256": SHA, "format": "torchscript"}
BAD_CARDS = [
    ("missing sha256", _del("weights.sha256"), "weights.sha256", "missing"),
    ("missing name", _del("name"), "name", "missing"),
    ("missing input", _del("input"), "input", "missing"),
    ("missing dims", _del("input.dims"), "input.dims", "missing"),
    ("name not a string", _set("name", 5), "name", "got 5"),
    ("authors not a list", _set("authors", "me"), "authors", "must be a list"),
    ("overlap bool", _set("input.overlap", True), "input.overlap", "got True"),
    ("spacing bool", _set("input.spacing", [1, True, 1]), "input.spacing[1]", "got True"),
    ("dims bool", _set("input.dims", True), "input.dims", "got True"),
    ("dims 4", _set("input.dims", 4), "input.dims", "2 or 3"),
    ("bad id", _set("id", "Lung CT"), "id", "'Lung CT'"),
    ("id too long", _set("id", "a" * 65), "id", "1-64"),
    ("orientation RRS", _set("input.orientation", "RRS"), "input.orientation", "'RRS'"),
    ("orientation RA", _set("input.orientation", "RA"), "input.orientation", "'RA'"),
    ("orientation RAX", _set("input.orientation", "RAX"), "input.orientation", "L/R"),
    ("spacing length", _set("input.spacing", [1.0, 1.0]), "input.spacing", "3 entries"),
    ("negative spacing", _set("input.spacing", [1, 1, -1]), "input.spacing[2]", "> 0, got -1"),
    ("size float", _set("input.size", [96.5, 96, 96]), "input.size[0]", "integer"),
    (
        "patch_size with dims 2",
        _set("input", {"dims": 2, "orientation": "RAS", "patch_size": [64, 64]}),
        "input.patch_size",
        "dims is 3",
    ),
    ("channels 0", _set("input.channels", 0), "input.channels", ">= 1"),
    ("overlap 1", _set("input.overlap", 1), "input.overlap", "[0, 1)"),
    (
        "unknown intensity op",
        _set("input.intensity", [{"op": "gamma", "value": 2}]),
        "input.intensity[0].op",
        "'gamma'",
    ),
    (
        "unknown intensity param",
        _set("input.intensity", [{"op": "clip", "min": 0, "max": 1, "gamma": 2}]),
        "input.intensity[0].gamma",
        "unknown field",
    ),
    (
        "clip min > max",
        _set("input.intensity", [{"op": "clip", "min": 5, "max": 1}]),
        "input.intensity[0].max",
        "greater than min",
    ),
    (
        "scale_range min == max",
        _set("input.intensity", [{"op": "scale_range", "min": 1, "max": 1, "to": [0, 1]}]),
        "input.intensity[0].max",
        "differ",
    ),
    (
        "scale_range to of 3",
        _set("input.intensity", [{"op": "scale_range", "min": 0, "max": 1, "to": [0, 1, 2]}]),
        "input.intensity[0].to",
        "2 numbers",
    ),
    (
        "percentiles reversed",
        _set("input.intensity", [{"op": "percentile_scale", "lower": 90, "upper": 10}]),
        "input.intensity[0].upper",
        "greater than lower",
    ),
    (
        "percentile above 100",
        _set("input.intensity", [{"op": "percentile_scale", "lower": 1, "upper": 101}]),
        "input.intensity[0].upper",
        "[0, 100]",
    ),
    (
        "linear scale bool",
        _set("input.intensity", [{"op": "linear", "scale": True, "offset": 0}]),
        "input.intensity[0].scale",
        "got True",
    ),
    (
        "bad colour",
        _set("output.labels.1.color", "red"),
        "output.labels.1.color",
        "'#rrggbb', got 'red'",
    ),
    ("label key 0", _set("output.labels.0", {"name": "bg"}), "output.labels.0", "integers >= 1"),
    ("label key x", _set("output.labels.x", {"name": "x"}), "output.labels.x", "integers >= 1"),
    (
        "label misspelt",
        _set("output.labels.1", {"name": "a", "colour": "#000000"}),
        "output.labels.1.colour",
        "did you mean 'color'",
    ),
    (
        "label without name",
        _set("output.labels.1", {"color": "#000000"}),
        "output.labels.1.name",
        "missing",
    ),
    ("no labels", _set("output.labels", {}), "output.labels", "at least one"),
    (
        "softmax not contiguous",
        _set("output.labels", {"1": {"name": "a"}, "3": {"name": "b"}}),
        "output.labels",
        "exactly 1..2",
    ),
    (
        "classes with segmentation",
        _set("output.classes", ["a", "b"]),
        "output.classes",
        "not allowed",
    ),
    ("segmentation without labels", _del("output.labels"), "output.labels", "missing"),
    ("threshold 1", _set("output.threshold", 1.0), "output.threshold", "between 0 and 1"),
    ("activation relu", _set("output.activation", "relu"), "output.activation", "'relu'"),
    (
        "postprocess unknown label",
        _set("output.postprocess", {"7": ["fill_holes"]}),
        "output.postprocess.7",
        "no such label",
    ),
    (
        "postprocess unknown step",
        _set("output.postprocess", ["dilate"]),
        "output.postprocess[0]",
        "'dilate'",
    ),
    (
        "postprocess twice",
        _set("output.postprocess", ["fill_holes", "fill_holes"]),
        "output.postprocess",
        "twice",
    ),
    (
        "temperature zero",
        _set("output.temperature", 0),
        "output.temperature",
        "number > 0",
    ),
    (
        "temperature without an activation",
        _set("output", {"activation": "none", "labels": {"1": {"name": "a"}}, "temperature": 2}),
        "output.temperature",
        "this card has none",
    ),
    (
        "bias on a segmentation model",
        _set("output.bias", [0, 1]),
        "output.bias",
        "is for classifiers",
    ),
    (
        "bias of the wrong length",
        _classifier(output={"activation": "softmax", "classes": ["a", "b"], "bias": [0.0]}),
        "output.bias",
        "list of 2 numbers",
    ),
    (
        "bias that is not a number",
        _classifier(output={"activation": "softmax", "classes": ["a", "b"], "bias": [0, "x"]}),
        "output.bias[1]",
        "must be a number",
    ),
    (
        "slice average on a segmentation model",
        _set("output.slice_average", 1),
        "output.slice_average",
        "is for classifiers run slice by slice",
    ),
    (
        "slice average that is not a small integer",
        _classifier(output={"activation": "softmax", "classes": ["a", "b"],
                            "slice_average": 1.5}),
        "output.slice_average",
        "integer from 0 to 10",
    ),
    (
        "no consecutive slices",
        _classifier(output={"activation": "softmax", "classes": ["a", "b"],
                            "series_consecutive": 0}),
        "output.series_consecutive",
        "integer from 1 to 20",
    ),
    (
        "bias with a sigmoid",
        _classifier(output={"activation": "sigmoid", "classes": ["a", "b"], "bias": [0, 1]}),
        "output.bias",
        "activation is sigmoid",
    ),
    (
        "postprocess step that needs parameters, by name",
        _set("output.postprocess", ["remove_small"]),
        "output.postprocess[0]",
        "needs parameters",
    ),
    (
        "keep_largest count zero",
        _set("output.postprocess", [{"op": "keep_largest", "count": 0}]),
        "output.postprocess[0].count",
        "integer > 0",
    ),
    (
        "remove_small without its volume",
        _set("output.postprocess", [{"op": "remove_small"}]),
        "output.postprocess[0].min_volume_mm3",
        "missing",
    ),
    (
        "remove_small misspelt",
        _set("output.postprocess", [{"op": "remove_small", "min_volume": 30}]),
        "output.postprocess[0].min_volume",
        "did you mean 'min_volume_mm3'",
    ),
    (
        "mean_between without bounds",
        _set("output.postprocess", [{"op": "mean_between"}]),
        "output.postprocess[0]",
        "needs min, max or both",
    ),
    (
        "mean_between bounds reversed",
        _set("output.postprocess", [{"op": "mean_between", "min": 100, "max": -100}]),
        "output.postprocess[0].max",
        "greater than min (100)",
    ),
    (
        "mean_between on a colour model",
        _all(_set("output.postprocess", [{"op": "mean_between", "min": 0}]),
             _set("input.channels", 3)),
        "output.postprocess.1[0]",
        "needs a 1-channel (greyscale) model; input.channels is 3",
    ),
    (
        "max_probability without its bound",
        _set("output.postprocess", [{"op": "max_probability"}]),
        "output.postprocess[0].min",
        "missing",
    ),
    (
        "max_probability over 1",
        _set("output.postprocess", [{"op": "max_probability", "min": 1.5}]),
        "output.postprocess[0].min",
        "must be a probability in (0, 1], got 1.5",
    ),
    (
        "max_probability of 0",
        _set("output.postprocess", [{"op": "max_probability", "min": 0}]),
        "output.postprocess[0].min",
        "must be a probability in (0, 1]",
    ),
    (
        "max_probability without probabilities",
        _all(_set("output.postprocess", [{"op": "max_probability", "min": 0.9}]),
             _set("output.activation", "none")),
        "output.postprocess.1[0]",
        "needs probabilities: output.activation 'softmax' or 'sigmoid', got 'none'",
    ),
    (
        "fill_holes with a parameter",
        _set("output.postprocess", [{"op": "fill_holes", "size": 3}]),
        "output.postprocess[0].size",
        "unknown field",
    ),
    (
        "unknown output key",
        _rename_output("labels", "label"),
        "output.label",
        "did you mean 'labels'",
    ),
    (
        "explain on segmentation",
        _set("explain", {"method": "gradcam", "layer": "x"}),
        "explain",
        "classification",
    ),
    (
        "explain with torchscript",
        _classifier(weights=TORCHSCRIPT_WEIGHTS),
        "explain",
        "TorchScript",
    ),
    (
        "explain misspelt",
        _classifier(explain={"method": "gradcam", "layr": "x"}),
        "explain.layr",
        "unknown field",
    ),
    (
        "explain method",
        _classifier(explain={"method": "lime", "layer": "x"}),
        "explain.method",
        "'lime'",
    ),
    (
        "classifier without classes",
        _classifier(output={"activation": "softmax"}),
        "output.classes",
        "missing",
    ),
    (
        "softmax single class",
        _classifier(output={"activation": "softmax", "classes": ["a"]}),
        "output.classes",
        "at least 2",
    ),
    (
        "duplicate classes",
        _classifier(output={"activation": "sigmoid", "classes": ["a", "a"]}),
        "output.classes",
        "distinct",
    ),
    (
        "empty class",
        _classifier(output={"activation": "sigmoid", "classes": ["a", ""]}),
        "output.classes[1]",
        "non-empty",
    ),
    (
        "labels on classifier",
        _classifier(
            output={"activation": "sigmoid", "classes": ["a"], "labels": {"1": {"name": "a"}}}
        ),
        "output.labels",
        "not allowed",
    ),
    (
        "architecture missing",
        _classifier(weights={"file": "m.safetensors", "sha256": SHA, "format": "safetensors"}),
        "weights.architecture",
        "missing",
    ),
    (
        "architecture for torchscript",
        _set("weights.architecture", {"name": "monai.networks.nets.UNet", "kwargs": {}}),
        "weights.architecture",
        "not allowed",
    ),
    (
        "architecture os.system",
        _classifier(
            weights={
                "file": "m.safetensors",
                "sha256": SHA,
                "format": "safetensors",
                "architecture": {"name": "os.system"},
            }
        ),
        "weights.architecture.name",
        "'os.system'",
    ),
    (
        "architecture injection",
        _classifier(
            weights={
                "file": "m.safetensors",
                "sha256": SHA,
                "format": "safetensors",
                "architecture": {"name": "monai.networks.nets.UNet(); x"},
            }
        ),
        "weights.architecture.name",
        "got",
    ),
    ("weights ../x", _set("weights.file", "../x"), "weights.file", "'../x'"),
    ("weights absolute", _set("weights.file", "/etc/passwd"), "weights.file", "absolute"),
    ("weights backslash", _set("weights.file", "sub\\model.ts"), "weights.file", "'/'"),
    ("weights format", _set("weights.format", "pickle"), "weights.format", "'pickle'"),
    ("weights exported", _set("weights.format", "exported"), "weights.format",
     "'exported': torch.export programs (.pt2) are refused: loading one unpickles"),
    ("sha256 not hex", _set("weights.sha256", "z" * 64), "weights.sha256", "64 hexadecimal"),
    ("sha256 short", _set("weights.sha256", SHA[:63]), "weights.sha256", "64 hexadecimal"),
    ("unknown weights key", _set("weights.sha", SHA), "weights.sha", "unknown field"),
    ("unknown top-level key", _rename("modalities", "modalites"), "modalites", "unknown field"),
    ("no modalities", _set("modalities", []), "modalities", "at least one"),
    ("schema", _set("schema", "medviewer.model/2"), "schema", "medviewer.model/1"),
    ("task", _set("task", "detection"), "task", "'detection'"),
    ("empty version", _set("version", ""), "version", "non-empty"),
    ("metrics list", _set("metrics", [1]), "metrics", "object"),
    ("input not object", _set("input", [3]), "input", "object"),
]


@pytest.mark.parametrize(
    ("mutate", "field", "detail"),
    [pytest.param(m, f, d, id=name) for name, m, f, d in BAD_CARDS],
)
def test_bad_card_names_file_and_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], dict[str, Any]], field: str, detail: str
) -> None:
    card_file = write_card(tmp_path / "bad", mutate(segmentation_card()))
    with pytest.raises(ModelCardError) as info:
        load_card(card_file)
    message = str(info.value)
    assert message.startswith(f"{card_file}: {field}: "), message
    assert detail in message


def test_bad_cards_are_many_and_distinct() -> None:
    assert len(BAD_CARDS) >= 25
    assert len({name for name, *_ in BAD_CARDS}) == len(BAD_CARDS)


def test_from_dict_names_the_source() -> None:
    data = segmentation_card()
    data["input"]["spacing"] = [1, 1, -1]
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict(data, "/x/model.json")
    assert str(info.value) == "/x/model.json: input.spacing[2]: must be a number > 0, got -1"


def test_from_dict_refuses_a_non_object() -> None:
    with pytest.raises(ModelCardError, match=r"^src: the card must be a JSON object, got \[1\]"):
        ModelCard.from_dict([1], "src")  # type: ignore[arg-type]


def test_unknown_x_keys_are_allowed_only_at_the_top() -> None:
    data = segmentation_card()
    data["input"]["x-note"] = 1
    with pytest.raises(ModelCardError, match=r"^mem: input\.x-note: unknown field"):
        ModelCard.from_dict(data, "mem")


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    card_file = tmp_path / CARD_FILE
    card_file.write_text('{\n  "schema": "medviewer.model/1",\n  "id": ,\n}\n', encoding="utf-8")
    with pytest.raises(ModelCardError) as info:
        load_card(tmp_path)
    assert str(card_file) in str(info.value)
    assert "invalid JSON at line 3" in str(info.value)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    card_file = tmp_path / CARD_FILE
    card_file.write_text('{"id": "a", "id": "b"}', encoding="utf-8")
    with pytest.raises(ModelCardError, match="'id' appears twice"):
        load_card(card_file)


def test_missing_card_names_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    assert str(folder / CARD_FILE) in str(info.value)
    with pytest.raises(ModelCardError, match="no model card"):
        load_card(tmp_path / "nowhere" / CARD_FILE)


# -- weights ----------------------------------------------------------------------------


def test_file_sha256_streams_large_files(tmp_path: Path) -> None:
    data = bytes(range(256)) * (10 * 1024 + 7)  # 2.5 MiB and a bit: several 1 MiB chunks
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()


def test_verify_weights_ok(tmp_path: Path) -> None:
    card = load_card(write_card(tmp_path / "m", segmentation_card()))
    assert verify_weights(card) == tmp_path / "m" / "model.ts"


def test_verify_weights_mismatch(tmp_path: Path) -> None:
    card = load_card(write_card(tmp_path / "m", segmentation_card(), weights=b"tampered"))
    actual = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(ModelCardError) as info:
        verify_weights(card)
    assert str(info.value) == (
        f"{tmp_path / 'm' / 'model.ts'}: sha256 mismatch: card says {SHA[:12]}..., "
        f"file is {actual[:12]}...; the model is refused"
    )


def test_verify_weights_missing(tmp_path: Path) -> None:
    card = load_card(write_card(tmp_path / "m", segmentation_card()))
    (tmp_path / "m" / "model.ts").unlink()
    with pytest.raises(ModelCardError, match="weights file missing") as info:
        verify_weights(card)
    assert str(tmp_path / "m" / "model.ts") in str(info.value)


def test_verify_weights_in_a_subfolder(tmp_path: Path) -> None:
    card_file = write_card(tmp_path / "c", classification_card())
    (tmp_path / "c" / "weights").mkdir()
    (tmp_path / "c" / "weights" / "model.safetensors").write_bytes(WEIGHTS)
    card = load_card(card_file)
    assert verify_weights(card) == tmp_path / "c" / "weights" / "model.safetensors"


def test_cards_are_not_shared_with_their_input() -> None:
    data = classification_card()
    card = ModelCard.from_dict(data, "mem")
    data["weights"]["architecture"]["kwargs"]["spatial_dims"] = 3
    assert card.weights.architecture is not None
    assert card.weights.architecture.kwargs["spatial_dims"] == 2
    exported = card.to_dict()
    exported["weights"]["architecture"]["kwargs"]["in_channels"] = 9
    assert card.weights.architecture.kwargs["in_channels"] == 1
    assert copy.deepcopy(card) == card
