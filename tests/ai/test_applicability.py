"""Which models suit a series: one rule, a short reason for the list and a sentence for a run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.applicability import check_applicable, mismatch, why_not_applicable
from medviewer.ai.model_card import ModelCard
from medviewer.core.errors import InferenceError
from medviewer.core.volume import Volume
from tests.ai.tiny_models import card_dict, make_volume


def card(tmp_path: Path, **fields) -> ModelCard:
    tmp_path.mkdir(parents=True, exist_ok=True)
    weights = tmp_path / "model.ts"
    weights.write_bytes(b"weights")
    return ModelCard.from_dict(card_dict(weights, "torchscript", **fields), "test")


def volume(shape=(4, 8, 8), modality="CT", positioned=True) -> Volume:
    base = make_volume(np.zeros(shape, np.float32), modality=modality)
    return Volume(base.array, base.affine, replace(base.metadata, positioned=positioned))


@pytest.mark.parametrize(
    ("fields", "series", "reason", "message"),
    [
        ({"modalities": ("MR",)}, volume(), "for MR; this series is CT",
         "Tiny test model is for MR images; this series is CT"),
        ({"dims": 2, "orientation": "PLS"}, volume((1, 8, 8, 3)),
         "needs 1 channel(s); this series has 3",
         "the model expects 1 channel(s); this series is colour (3 channels)"),
        ({}, volume((1, 8, 8)), "a 3D model; this series is a single image",
         "Tiny test model is a 3D model; this series is a single image"),
        ({}, volume((6, 1, 8)), "a 3D model; this series is a single image",
         "Tiny test model is a 3D model; this series is a single image"),
    ],
)
def test_a_model_that_does_not_suit_gets_a_reason_and_a_message(
    tmp_path: Path, fields, series, reason, message
) -> None:
    model = card(tmp_path, **fields)
    found = mismatch(model, series)
    assert found is not None and (found.reason, found.message) == (reason, message)
    assert why_not_applicable(model, series) == reason
    with pytest.raises(InferenceError) as error:
        check_applicable(model, series)
    assert str(error.value) == message


def test_a_model_that_suits_runs_with_warnings_where_the_series_lacks_context(
    tmp_path: Path,
) -> None:
    model = card(tmp_path, dims=2, orientation="PLS")
    assert why_not_applicable(model, volume((1, 8, 8))) == ""
    assert check_applicable(model, volume()) == []
    warnings = check_applicable(model, volume(modality="", positioned=False))
    assert warnings[0] == "the series has no modality; tiny-model is for CT"
    assert warnings[1].startswith("the series has no patient orientation")
