"""Temperature scaling: the fit, the logits recovered from probabilities, and the card written."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import medviewer
from medviewer.ai.model_card import file_sha256, load_card
from medviewer.core.errors import ModelCardError
from medviewer.training import calibration
from medviewer.training.calibration import (
    binary_nll,
    calibration_summary,
    fit_platt,
    fit_temperature,
    logit_difference,
    write_calibration,
)
from medviewer.training.metrics import expected_calibration_error

SHIPPED = Path(medviewer.__file__).parent / "resources" / "models" / "demo-cxr-nodule-cls"


def calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a calibrated model (labels drawn with probability sigmoid(logit))."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, n)
    labels = rng.random(n) < 1.0 / (1.0 + np.exp(-logits))
    return logits, labels


def test_fit_recovers_a_known_temperature() -> None:
    logits, labels = calibrated_sample(20000, 1)
    # an overconfident model: its logits are the calibrated ones times 2.5
    assert fit_temperature(2.5 * logits, labels) == pytest.approx(2.5, rel=0.05)
    # an underconfident one (T < 1) and a calibrated one
    assert fit_temperature(0.5 * logits, labels) == pytest.approx(0.5, rel=0.05)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.05)
    # deterministic
    assert fit_temperature(2.5 * logits, labels) == fit_temperature(2.5 * logits, labels)


def test_fit_minimises_the_nll_and_stays_in_its_bounds() -> None:
    logits, labels = calibrated_sample(2000, 2)
    best = fit_temperature(3.0 * logits, labels)
    for other in (best * 0.97, best * 1.03, 1.0):
        assert binary_nll(3.0 * logits, labels, best) < binary_nll(3.0 * logits, labels, other)
    # separable data: the likelihood keeps improving as T -> 0, so the fit stops at the bound
    separable = np.array([-1.0, -0.5, 0.5, 1.0])
    assert fit_temperature(separable, separable > 0) == pytest.approx(0.05, rel=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        fit_temperature(np.zeros(3), np.zeros(2, bool))


def test_platt_recovers_a_known_temperature_and_prior_offset() -> None:
    logits, labels = calibrated_sample(20000, 3)
    # a model trained on balanced batches: overconfident (x 2) and shifted up by 2.2 nats
    temperature, bias = fit_platt(2.0 * logits + 2.2, labels)
    assert temperature == pytest.approx(2.0, rel=0.05)
    assert bias == pytest.approx(-1.1, abs=0.08)  # z / T + b = logit: b = -2.2 / 2
    # a temperature alone cannot remove the offset: Platt's NLL is clearly lower
    shifted = 2.0 * logits + 2.2
    alone = fit_temperature(shifted, labels)
    platt = binary_nll(shifted, labels, temperature, bias)
    assert platt < binary_nll(shifted, labels, alone) - 0.01
    # it is the minimum: any nearby (T, b) does worse
    best = binary_nll(shifted, labels, temperature, bias)
    for t, b in ((temperature * 1.03, bias), (temperature / 1.03, bias),
                 (temperature, bias + 0.05), (temperature, bias - 0.05)):
        assert binary_nll(shifted, labels, t, b) > best
    # a calibrated model is left alone, deterministically
    assert fit_platt(logits, labels) == pytest.approx((1.0, 0.0), abs=0.05)
    assert fit_platt(shifted, labels) == fit_platt(shifted, labels)


def test_platt_keeps_the_temperature_in_its_bounds() -> None:
    separable = np.array([-1.0, -0.5, 0.5, 1.0, 2.0])
    temperature, bias = fit_platt(separable, separable > 0)
    # the likelihood keeps improving as T -> 0: only the ridge (or the bound) stops it
    assert 0.05 <= temperature < 0.1
    assert np.isfinite(bias)
    with pytest.raises(ValueError, match="one shape"):
        fit_platt(np.zeros(3), np.zeros(2, bool))


def test_binary_nll_by_hand() -> None:
    assert binary_nll(np.array([0.0]), np.array([True])) == pytest.approx(math.log(2))
    # label 1 at logit 2 / T 2: -log sigmoid(1) = log(1 + e^-1); label 0: log(1 + e^1)
    assert binary_nll(np.array([2.0, 2.0]), np.array([True, False]), 2.0) == pytest.approx(
        (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1))) / 2)


def test_logit_difference_inverts_a_float32_softmax() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 3, (200, 2)).astype(np.float32)
    logits[0] = (0.0, 30.0)  # p(nodule) rounds to 1 in float32; p(normal) still holds it
    logits[1] = (25.0, 0.0)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
    assert p[0, 1] == 1.0
    recovered = logit_difference(p[:, 0], p[:, 1])
    np.testing.assert_allclose(recovered, logits[:, 1] - logits[:, 0], rtol=1e-5, atol=1e-5)
    # an underflowed probability is taken as the smallest float32, not infinity
    assert math.isfinite(logit_difference(np.array([0.0]), np.array([1.0]))[0])


def test_summary_shows_the_calibration_gain() -> None:
    logits, labels = calibrated_sample(5000, 3)
    overconfident = 3.0 * logits
    temperature = round(fit_temperature(overconfident, labels), 4)
    summary = calibration_summary(overconfident, labels, temperature, [600, 601], "radiograph")
    assert summary["seeds"] == "600-601" and summary["samples"] == 5000
    assert summary["positives"] == int(labels.sum())
    assert summary["nll_after"] < summary["nll_before"]
    assert summary["ece_after"] < 0.03 < 0.08 < summary["ece_before"]
    assert summary["ece_after"] == pytest.approx(
        expected_calibration_error(1 / (1 + np.exp(-overconfident / temperature)), labels),
        abs=1e-4)


def test_written_card_round_trips_and_keeps_its_weights(tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    weights = folder / "model.safetensors"
    before = file_sha256(weights)
    summary = {"seeds": "600-699", "temperature": 1.75, "nll_before": 0.6, "nll_after": 0.5}
    write_calibration(folder / "model.json", 1.75, summary)
    card = load_card(folder)
    assert card.output.temperature == 1.75
    assert card.metrics["calibration"] == summary
    assert card.metrics["test"]["seeds"] == "5000-5299"  # the rest of the card is kept
    assert file_sha256(weights) == before == card.weights.sha256
    # no staging left beside the card
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in SHIPPED.iterdir())
    # Platt: the bias goes to the second class, and a later fit without one removes it
    write_calibration(folder / "model.json", 1.5, summary, bias=-0.75)
    assert load_card(folder).output.bias == (0.0, -0.75)
    write_calibration(folder / "model.json", 1.75, summary)
    assert load_card(folder).output.bias == ()
    # an invalid temperature is refused before anything is written
    text = (folder / "model.json").read_text()
    with pytest.raises(ModelCardError, match="temperature"):
        write_calibration(folder / "model.json", -1.0, summary)
    assert (folder / "model.json").read_text() == text


def test_calibrate_refuses_seeds_outside_validation_and_the_segmenter() -> None:
    with pytest.raises(ValueError, match="seed 5000 is not a validation seed"):
        calibration.calibrate("demo-cxr-nodule-cls", range(5000, 5002), write=False)
    with pytest.raises(ValueError, match="seed 0 is not a validation seed"):
        calibration.calibrate("demo-ct-nodule-cls", [300, 0], write=False)
    with pytest.raises(ValueError, match="fits the classifiers"):
        calibration.calibrate("demo-ct-lung-nodule-seg", write=False)


def test_cli_choices_are_the_calibrated_classifiers() -> None:
    from medviewer.training.__main__ import CLASSIFIERS

    assert set(CLASSIFIERS) == set(calibration.CLASSIFIERS)


def test_calibrate_command_writes_a_copy_of_the_radiograph_model(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    from medviewer.training.__main__ import main

    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    before = file_sha256(folder / "model.safetensors")
    assert main(["calibrate", "demo-cxr-nodule-cls", "--model", str(folder),
                 "--seeds", "600-603"]) == 0
    printed = json.loads(capsys.readouterr().out)
    card = load_card(folder)
    assert card.metrics["calibration"] == printed
    assert card.output.temperature == printed["temperature"] > 0
    assert card.output.bias in ((), (0.0, printed["bias"]))
    assert (printed["seeds"], printed["samples"], printed["positives"]) == ("600-603", 4, 3)
    assert printed["nll_after"] <= printed["nll_before"]
    assert file_sha256(folder / "model.safetensors") == before
