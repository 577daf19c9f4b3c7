"""MONAI bundles become cards as data: exact values, skipped expressions, atomic import."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from medviewer.ai.model_card import CARD_FILE, SCHEMA, ModelCard, default_color, verify_weights
from medviewer.ai.monai_bundle import (
    card_from_monai_bundle,
    import_monai_bundle,
    is_monai_bundle,
    slugify,
)
from medviewer.core.errors import ModelCardError


def torchscript_bytes(tag: str = "") -> bytes:
    """A real TorchScript archive of a tiny module; `tag` (an extra file) makes it distinct."""
    import io

    import torch

    from tests.ai.tiny_models import ThresholdSegmenter

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(ThresholdSegmenter()), buffer, _extra_files={"tag": tag})
    return buffer.getvalue()


TORCHSCRIPT = torchscript_bytes("bundle")
PICKLE = b"\x80\x04 a pickle that must never be read"

# The shape of the MONAI bundle specification's example (spleen_ct_segmentation).
METADATA: dict[str, Any] = {
    "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
    "0.8.1/meta_schema_20220324.json",
    "name": "Spleen CT Segmentation",
    "version": "0.5.0",
    "changelog": {"0.5.0": "test"},
    "monai_version": "1.3.0",
    "pytorch_version": "2.1.0",
    "numpy_version": "1.24.0",
    "optional_packages_version": {"nibabel": "5.1.0"},
    "task": "Decathlon spleen segmentation",
    "description": "A pre-trained model for volumetric (3D) segmentation of the spleen from CT",
    "authors": "MONAI team",
    "copyright": "Copyright (c) MONAI Consortium",
    "eval_metrics": {"mean_dice": 0.96},
    "intended_use": "This is an example, not to be used for diagnostic purposes",
    "references": ["Xia, Yingda, et al. 2018", "Kerfoot E., et al. 2019"],
    "network_data_format": {
        "inputs": {
            "image": {
                "type": "image",
                "format": "hounsfield",
                "modality": "ct",
                "num_channels": 1,
                "spatial_shape": [96, 96, 96],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": True,
                "channel_def": {"0": "image"},
            }
        },
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 2,
                "spatial_shape": [96, 96, 96],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": True,
                "channel_def": {"0": "background", "1": "spleen"},
            }
        },
    },
}

INFERENCE: dict[str, Any] = {
    "imports": ["$import glob", "$import os"],
    "bundle_root": ".",
    "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
    "network_def": {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2},
    "network": "$@network_def.to(@device)",
    "preprocessing": {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {
                "_target_": "monai.transforms.Spacingd",
                "keys": "image",
                "pixdim": [1.5, 1.5, 2.0],
                "mode": "bilinear",
            },
            {
                "_target_": "ScaleIntensityRanged",
                "keys": "image",
                "a_min": -57,
                "a_max": 164,
                "b_min": 0,
                "b_max": 1,
                "clip": True,
            },
            {"_target_": "Spacingd", "keys": "label", "pixdim": [9, 9, 9]},
            {"_target_": "ScaleIntensityd", "keys": "image", "minv": 0},
            {"_target_": "EnsureTyped", "keys": "image", "device": "@device"},
        ],
    },
    "inferer": {
        "_target_": "SlidingWindowInferer",
        "roi_size": [96, 96, 96],
        "sw_batch_size": 4,
        "overlap": 0.5,
    },
    "postprocessing": {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing"},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True, "threshold": "$@image"},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "$@bundle_root + '/eval'"},
        ],
    },
    "run": ["$@evaluator.run()"],
}

EXPECTED_WARNINGS = [
    "preprocessing: not imported: ScaleIntensityd",
    "AsDiscreted.threshold: '$@image' is an expression or reference; not evaluated, skipped",
]


def make_bundle(
    root: Path,
    metadata: dict[str, Any] | None = None,
    inference: dict[str, Any] | None = None,
    config_name: str | None = "inference.json",
) -> Path:
    """A bundle folder: configs/metadata.json, an inference config, models/model.{ts,pt}."""
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "docs").mkdir()
    meta = METADATA if metadata is None else metadata
    (root / "configs" / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    config = INFERENCE if inference is None else inference
    if config_name is not None and config_name.endswith(".json"):
        (root / "configs" / config_name).write_text(json.dumps(config), encoding="utf-8")
    elif config_name is not None:
        (root / "configs" / config_name).write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "models" / "model.ts").write_bytes(TORCHSCRIPT)
    (root / "models" / "model.pt").write_bytes(PICKLE)
    (root / "docs" / "README.md").write_text("# Spleen\n", encoding="utf-8")
    return root


def expected_card() -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "id": "spleen-ct-segmentation",
        "name": "Spleen CT Segmentation",
        "version": "0.5.0",
        "description": "A pre-trained model for volumetric (3D) segmentation of the spleen from CT",
        "intended_use": "This is an example, not to be used for diagnostic purposes",
        "license": "Copyright (c) MONAI Consortium",
        "authors": ["MONAI team"],
        "references": ["Xia, Yingda, et al. 2018", "Kerfoot E., et al. 2019"],
        "metrics": {"mean_dice": 0.96},
        "task": "segmentation",
        "modalities": ["CT"],
        "weights": {
            "file": "model.ts",
            "sha256": hashlib.sha256(TORCHSCRIPT).hexdigest(),
            "format": "torchscript",
        },
        "input": {
            "dims": 3,
            "orientation": "RAS",
            "spacing": [1.5, 1.5, 2.0],
            "size": None,
            "patch_size": [96, 96, 96],
            "overlap": 0.5,
            "channels": 1,
            "intensity": [
                {"op": "scale_range", "min": -57.0, "max": 164.0, "to": [0.0, 1.0], "clip": True}
            ],
        },
        "output": {
            "activation": "softmax",
            "labels": {"1": {"name": "spleen", "color": default_color(1)}},
        },
    }


def test_is_monai_bundle(tmp_path: Path) -> None:
    assert is_monai_bundle(make_bundle(tmp_path / "b"))
    assert not is_monai_bundle(tmp_path)
    assert not is_monai_bundle(tmp_path / "missing")


def test_card_from_bundle_exact_values(tmp_path: Path) -> None:
    card, warnings = card_from_monai_bundle(make_bundle(tmp_path / "spleen"))
    assert card == expected_card()
    assert warnings == EXPECTED_WARNINGS
    assert ModelCard.from_dict(card, "bundle").input.spacing == (1.5, 1.5, 2.0)


@pytest.mark.parametrize("name", ["inference.yaml", "inference.yml"])
def test_yaml_inference_config(tmp_path: Path, name: str) -> None:
    card, warnings = card_from_monai_bundle(make_bundle(tmp_path / "spleen", config_name=name))
    assert card == expected_card()
    assert warnings == EXPECTED_WARNINGS


def test_yaml_is_read_as_data_only(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", config_name=None)
    marker = tmp_path / "evaluated"
    (bundle / "configs" / "inference.yaml").write_text(
        f"preprocessing: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8"
    )
    with pytest.raises(ModelCardError, match="invalid YAML") as info:
        card_from_monai_bundle(bundle)
    assert str(bundle / "configs" / "inference.yaml") in str(info.value)
    assert not marker.exists()


def test_bad_json_config_names_file_and_line(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    (bundle / "configs" / "inference.json").write_text('{\n"a": 1,\n}', encoding="utf-8")
    with pytest.raises(ModelCardError, match="line 3") as info:
        card_from_monai_bundle(bundle)
    assert str(bundle / "configs" / "inference.json") in str(info.value)


def test_missing_modality_is_an_error(tmp_path: Path) -> None:
    metadata = copy.deepcopy(METADATA)
    del metadata["network_data_format"]["inputs"]["image"]["modality"]
    bundle = make_bundle(tmp_path / "b", metadata=metadata)
    with pytest.raises(ModelCardError) as info:
        card_from_monai_bundle(bundle)
    assert str(bundle / "configs" / "metadata.json") in str(info.value)
    assert "network_data_format.inputs.image.modality: missing" in str(info.value)


def test_only_torchscript_is_imported(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    (bundle / "models" / "model.ts").unlink()
    with pytest.raises(ModelCardError, match=r"models/model\.ts is missing.*pickle"):
        card_from_monai_bundle(bundle)


def test_missing_metadata_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match=r"not a MONAI bundle: configs/metadata\.json"):
        card_from_monai_bundle(tmp_path)


def test_no_inference_config(tmp_path: Path) -> None:
    card, warnings = card_from_monai_bundle(make_bundle(tmp_path / "b", config_name=None))
    assert card["input"] == {
        "dims": 3,
        "orientation": "RAS",
        "spacing": None,
        "size": None,
        "patch_size": [96, 96, 96],
        "overlap": 0.25,
        "channels": 1,
        "intensity": [],
    }
    assert warnings == [
        "no configs/inference.json or .yaml: preprocessing and inferer not imported",
        "no Orientation transform: the orientation was assumed to be RAS",
    ]
    ModelCard.from_dict(card, "b")


def test_expressions_are_never_evaluated(tmp_path: Path) -> None:
    inference = copy.deepcopy(INFERENCE)
    steps = inference["preprocessing"]["transforms"]
    steps[2] = {"_target_": "Orientationd", "keys": "$@image_key", "axcodes": "LPS"}
    steps[3]["pixdim"] = ["$@spacing", 1.0, 1.0]
    steps[4]["a_min"] = "%configs/common.yaml#a_min"
    inference["inferer"]["roi_size"] = "@roi_size"
    card, warnings = card_from_monai_bundle(make_bundle(tmp_path / "b", inference=inference))
    assert card["input"]["orientation"] == "LPS"
    assert card["input"]["spacing"] is None
    assert card["input"]["intensity"] == []
    assert card["input"]["patch_size"] == [96, 96, 96]  # from spatial_shape (is_patch_data)
    assert warnings == [
        "Orientationd.keys: '$@image_key' is an expression; not evaluated, assumed 'image'",
        "Spacingd.pixdim: ['$@spacing', 1.0, 1.0] is an expression or reference; "
        "not evaluated, skipped",
        "ScaleIntensityRanged.a_min: '%configs/common.yaml#a_min' is an expression or "
        "reference; not evaluated, skipped",
        "intensity: not imported: ScaleIntensityRanged (a value could not be read)",
        "preprocessing: not imported: ScaleIntensityd",
        "SlidingWindowInferer.roi_size: '@roi_size' is an expression or reference; "
        "not evaluated, skipped",
        "AsDiscreted.threshold: '$@image' is an expression or reference; not evaluated, skipped",
    ]


def test_more_intensity_transforms(tmp_path: Path) -> None:
    inference = copy.deepcopy(INFERENCE)
    inference["preprocessing"]["transforms"] = [
        {"_target_": "NormalizeIntensityd", "keys": ["image"], "nonzero": True},
        {
            "_target_": "ScaleIntensityRangePercentilesd",
            "keys": "image",
            "lower": 0.5,
            "upper": 99.5,
            "b_min": -1,
            "b_max": 1,
            "clip": True,
        },
        {"_target_": "ScaleIntensityRange", "a_min": 0, "a_max": 10},
    ]
    card, warnings = card_from_monai_bundle(make_bundle(tmp_path / "b", inference=inference))
    assert card["input"]["intensity"] == [
        {"op": "zscore"},
        {"op": "percentile_scale", "lower": 0.5, "upper": 99.5, "to": [-1.0, 1.0], "clip": True},
        {"op": "scale_range", "min": 0.0, "max": 10.0, "to": [0.0, 1.0], "clip": False},
    ]
    assert (
        warnings[0]
        == "NormalizeIntensityd.nonzero: true is not supported; imported as a plain z-score"
    )
    parsed = ModelCard.from_dict(card, "b")
    assert [op.op for op in parsed.input.intensity] == ["zscore", "percentile_scale", "scale_range"]


def test_sigmoid_bundle_labels_every_channel(tmp_path: Path) -> None:
    metadata = copy.deepcopy(METADATA)
    metadata["name"] = "BraTS MRI segmentation"
    image = metadata["network_data_format"]["inputs"]["image"]
    image.update(modality="MR", num_channels=4, spatial_shape=["8*n", "8*n", "8*n"])
    pred = metadata["network_data_format"]["outputs"]["pred"]
    pred["channel_def"] = {"0": "TC", "1": "WT", "2": "ET"}
    inference = copy.deepcopy(INFERENCE)
    inference["postprocessing"]["transforms"] = [
        {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
        {"_target_": "AsDiscreted", "keys": "pred", "threshold": 0.4},
        {"_target_": "KeepLargestConnectedComponentd", "keys": "pred", "applied_labels": [0]},
    ]
    card, warnings = card_from_monai_bundle(
        make_bundle(tmp_path / "b", metadata=metadata, inference=inference)
    )
    assert card["id"] == "brats-mri-segmentation"
    assert card["modalities"] == ["MR"]
    assert card["input"]["channels"] == 4
    assert card["input"]["patch_size"] == [96, 96, 96]
    assert card["output"] == {
        "activation": "sigmoid",
        "labels": {
            "1": {"name": "TC", "color": default_color(1)},
            "2": {"name": "WT", "color": default_color(2)},
            "3": {"name": "ET", "color": default_color(3)},
        },
        "postprocess": {"1": ["largest_component"]},
        "threshold": 0.4,
    }
    assert (
        "network_data_format.inputs.image.spatial_shape: ['8*n', '8*n', '8*n'] is not a fixed "
        "size; not imported"
    ) in warnings
    ModelCard.from_dict(card, "b")


@pytest.mark.parametrize(
    ("num_components", "steps", "warning"),
    [
        (None, ["largest_component"], None),
        (1, ["largest_component"], None),
        (3, [{"op": "keep_largest", "count": 3}], None),
        ("two", None, "num_components: 'two' not usable; step not imported"),
        (0, None, "num_components: 0 not usable; step not imported"),
    ],
)
def test_keep_largest_imports_its_number_of_components(
    tmp_path: Path, num_components, steps, warning
) -> None:
    """MONAI's ``num_components`` is kept: importing N > 1 as "largest" would drop findings."""
    inference = copy.deepcopy(INFERENCE)
    step = {"_target_": "KeepLargestConnectedComponentd", "keys": "pred", "applied_labels": [1]}
    if num_components is not None:
        step["num_components"] = num_components
    inference["postprocessing"]["transforms"] = [step]
    card, warnings = card_from_monai_bundle(make_bundle(tmp_path / "b", inference=inference))
    assert card["output"].get("postprocess") == (None if steps is None else {"1": steps})
    if warning:
        assert any(warning in w for w in warnings), warnings
    parsed = ModelCard.from_dict(card, "b")
    if steps and isinstance(steps[0], dict):
        assert parsed.output.postprocess[1][0].params == {"count": 3}


def test_classification_bundle(tmp_path: Path) -> None:
    metadata = copy.deepcopy(METADATA)
    del metadata["name"]
    del metadata["intended_use"]
    metadata["task"] = "Chest X-ray classification"
    image = metadata["network_data_format"]["inputs"]["image"]
    image.update(modality="DX", spatial_shape=[224, 224], is_patch_data=False)
    pred = metadata["network_data_format"]["outputs"]["pred"]
    pred.update(type="probabilities", format="classes", spatial_shape=[2])
    pred["channel_def"] = {"0": "normal", "1": "pneumonia"}
    inference = {
        "preprocessing": {"transforms": [{"_target_": "LoadImaged", "keys": "image"}]},
        "postprocessing": {"transforms": []},
    }
    card, warnings = card_from_monai_bundle(
        make_bundle(tmp_path / "Chest_XRay", metadata=metadata, inference=inference)
    )
    assert card["id"] == "chest_xray"
    assert card["name"] == "Chest_XRay"
    assert card["task"] == "classification"
    assert card["intended_use"] == (
        "Chest X-ray classification. Imported from a MONAI bundle; no intended use was stated."
    )
    assert card["input"]["dims"] == 2
    assert card["input"]["size"] == [224, 224]
    assert card["input"]["patch_size"] is None
    assert card["output"] == {"activation": "softmax", "classes": ["normal", "pneumonia"]}
    assert warnings == ["no Orientation transform: the orientation was assumed to be RAS"]
    ModelCard.from_dict(card, "b")


def test_slugify() -> None:
    assert slugify("Spleen CT Segmentation") == "spleen-ct-segmentation"
    assert slugify("  --Wholebody (CT) v2.1!  ") == "wholebody-ct-v2.1"
    assert slugify("Ünïcode ☃") == "n-code"
    assert slugify("☃") == "monai-bundle"
    assert len(slugify("x" * 100)) == 64


# -- import -----------------------------------------------------------------------------


def test_import_bundle(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "spleen")
    dest = tmp_path / "models" / "spleen-ct"
    card, warnings = import_monai_bundle(bundle, dest)
    assert warnings == EXPECTED_WARNINGS
    assert card.path == dest / CARD_FILE
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", CARD_FILE, "model.ts"]
    assert (dest / "model.ts").read_bytes() == TORCHSCRIPT
    assert verify_weights(card) == dest / "model.ts"
    assert card == ModelCard.from_dict(expected_card(), "expected")
    assert json.loads((dest / CARD_FILE).read_text(encoding="utf-8")) == card.to_dict()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["spleen-ct"]


def test_import_refuses_an_existing_destination(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ModelCardError, match="already exists"):
        import_monai_bundle(make_bundle(tmp_path / "b"), dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_failed_import_leaves_nothing(tmp_path: Path) -> None:
    inference = copy.deepcopy(INFERENCE)
    inference["preprocessing"]["transforms"][2]["axcodes"] = "RA"
    bundle = make_bundle(tmp_path / "b", inference=inference)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelCardError) as info:
        import_monai_bundle(bundle, out / "model")
    assert str(info.value).startswith(f"{bundle}: input.orientation: ")
    assert list(out.iterdir()) == []


def test_failed_copy_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path / "b")
    out = tmp_path / "out"
    out.mkdir()

    def fail(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("medviewer.ai.monai_bundle.os.replace", fail)
    with pytest.raises(ModelCardError, match="disk full"):
        import_monai_bundle(bundle, out / "model")
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------------- CropForeground


def _crop_bundle(tmp_path: Path, steps: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The spleen bundle with `steps` as its preprocessing (after loading)."""
    inference = copy.deepcopy(INFERENCE)
    inference["preprocessing"]["transforms"] = [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        *steps,
    ]
    return card_from_monai_bundle(make_bundle(tmp_path / "b", inference=inference))


SPACING_15 = {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 1.5]}
SCALE_SPLEEN = {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -57,
                "a_max": 164, "b_min": 0, "b_max": 1, "clip": True}


def _crop(**params: Any) -> dict[str, Any]:
    return {"_target_": "CropForegroundd", "keys": ["image"], "source_key": "image", **params}


@pytest.mark.parametrize("steps,expected", [
    # x > 0 after scaling -57..164 to 0..1 is x > -57 HU; 2 voxels of 1.5 mm are 3 mm
    ([SPACING_15, SCALE_SPLEEN, _crop(margin=2)], {"threshold": -57.0, "margin_mm": 3.0}),
    ([SPACING_15, SCALE_SPLEEN, _crop(margin=[2, 2, 2])], {"threshold": -57.0, "margin_mm": 3.0}),
    ([_crop()], {"threshold": 0.0, "margin_mm": 0.0}),  # no margin: no spacing needed
    ([{"_target_": "ScaleIntensityRange", "a_min": 0, "a_max": 10, "b_min": -1, "b_max": 1},
      {"_target_": "CropForeground", "margin": 0}], {"threshold": 5.0, "margin_mm": 0.0}),
    ([{"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0, 2.0]},
      _crop(margin=[4, 4, 2])], {"threshold": 0.0, "margin_mm": 4.0}),
], ids=["spleen", "margin-list", "plain", "array-transform", "anisotropic-pixdim"])
def test_crop_foreground_is_imported(
    tmp_path: Path, steps: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    card, warnings = _crop_bundle(tmp_path, steps)
    assert card["input"]["crop_foreground"] == expected
    assert not [w for w in warnings if "CropForeground" in w]
    parsed = ModelCard.from_dict(card, "bundle")
    assert parsed.input.crop_foreground is not None
    assert parsed.input.crop_foreground.to_dict() == expected


@pytest.mark.parametrize("steps,reason", [
    ([_crop(select_fn="$lambda x: x > 0.2")],
     "select_fn '$lambda x: x > 0.2' is code, never evaluated; only the default (x > 0) maps "
     "to a threshold"),
    ([_crop(source_key="label")], "it crops to the foreground of 'label', not of the image"),
    ([{"_target_": "NormalizeIntensityd", "keys": "image"}, _crop()],
     "its threshold follows a zscore step, which depends on the image, so it has no fixed "
     "value in image units"),
    ([_crop(margin=3)], "its margin of 3 voxels cannot be converted to mm: no Spacing transform "
     "before it gives the voxel size"),
    ([{"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0, 2.0]}, _crop(margin=2)],
     "its margin of 2 voxels at [1.0, 1.0, 2.0] mm is not the same number of mm along every "
     "axis"),
    ([_crop(margin="@margin")], "its margin '@margin' is an expression or reference, never "
     "evaluated"),
    ([{**SCALE_SPLEEN, "b_min": 0.5}, _crop()],
     "after the scale_range step every voxel is above its threshold"),
    ([{**SCALE_SPLEEN, "b_min": 1, "b_max": 0}, _crop()],
     "a scale_range step before it does not increase with the image value"),
], ids=["select_fn", "label", "zscore", "no-spacing", "anisotropic", "expression", "all-above",
        "decreasing"])
def test_crop_foreground_that_cannot_be_mapped_is_reported(
    tmp_path: Path, steps: list[dict[str, Any]], reason: str
) -> None:
    card, warnings = _crop_bundle(tmp_path, steps)
    assert "crop_foreground" not in card["input"]
    name = steps[-1]["_target_"]
    assert f"preprocessing: not imported: {name} ({reason})" in warnings


def test_crop_foreground_extras_are_reported(tmp_path: Path) -> None:
    steps = [_crop(k_divisible=16, channel_indices=[0]), _crop(margin=1)]
    card, warnings = _crop_bundle(tmp_path, steps)
    assert card["input"]["crop_foreground"] == {"threshold": 0.0, "margin_mm": 0.0}
    assert warnings[:3] == [
        "CropForegroundd.k_divisible: 16 is not supported; the box is not padded to a multiple",
        "CropForegroundd.channel_indices: not supported; every channel counts",
        "preprocessing: not imported: CropForegroundd (its margin of 1 voxels cannot be "
        "converted to mm: no Spacing transform before it gives the voxel size)",
    ]
