"""The promptable demo network's training data and run: cubes centred on a click inside a
nodule hold that nodule's truth (its volume, at the cube's centre); simulated corrections
put the click on the largest error; a tiny run writes a valid interactive card."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medviewer.ai.model_card import ModelCard, load_card
from medviewer.synthetic import phantom
from medviewer.training import data, interactive, prompting, specs

pytest.importorskip("torch")

SPEC = ModelCard.from_dict(specs.INTERACTIVE.card, "interactive").input


def test_cubes_hold_the_clicked_nodule_at_their_centre():
    extra = data.ExtraNodules(2, 0.0, 0.0)
    images, truths = interactive.case_cubes(1003, SPEC, extra)
    case = phantom.with_extra_nodules(phantom.chest_case(1003), 2)
    nodules = [n for n in case.nodules if n.diameter_mm >= interactive.MIN_DIAMETER_MM]
    assert images.shape[1:] == (48, 48, 48) and len(images) == len(truths) <= 2 * len(nodules)
    assert len(images) >= 2
    first = nodules[0]  # its first cube is centred on its centre
    truth = truths[0].astype(bool)
    assert truth[23:25, 23:25, 23:25].all()
    sphere_mm3 = np.pi / 6 * first.diameter_mm**3
    assert truth.sum() * 1.25**3 == pytest.approx(sphere_mm3, rel=0.3)
    # the image is the CT scaled as the card says: the nodule is soft tissue (above 0.5)
    assert np.median(images[0][truth]) > 0.5 and np.median(images[0][~truth]) < 0.5


def test_a_simulated_correction_clicks_the_largest_error():
    rng = np.random.default_rng(3)
    truth = np.zeros((48, 48, 48), np.uint8)
    truth[18:30, 18:30, 18:30] = 1
    image = truth.astype(np.float32) * 0.7
    first = prompting.simulated_input(rng, SPEC, image, truth, correct=False)
    channels = SPEC.prompts.channels
    assert first.shape == (4, 48, 48, 48)
    assert first[channels.index("positive")][23:25, 23:25, 23:25].min() > 0.9
    assert not first[channels.index("previous")].any()
    for _ in range(6):
        x = prompting.simulated_input(rng, SPEC, image, truth, correct=True)
        previous = x[channels.index("previous")].astype(bool)
        assert previous.any() and not np.array_equal(previous, truth.astype(bool))
        extra, missed = previous & ~truth.astype(bool), truth.astype(bool) & ~previous
        clicks = {name: np.argwhere(x[channels.index(name)] > 0.99)
                  for name in ("positive", "negative")}
        if clicks["negative"].size:
            assert all(extra[tuple(v)] for v in clicks["negative"])
        else:
            assert any(missed[tuple(v)] for v in clicks["positive"])


def test_a_tiny_interactive_run_writes_a_valid_card(tmp_path, monkeypatch):
    from medviewer.training import train

    recipe = dataclasses.replace(specs.INTERACTIVE, train_seeds=range(1000, 1001),
                                 validation_seeds=range(300, 301), iterations=2, batch_size=2)
    monkeypatch.setitem(specs.RECIPES, recipe.id, recipe)
    monkeypatch.setattr(train, "_pool_map", lambda f, items: [f(i) for i in items])
    path = train.train(recipe.id, tmp_path / "out", device="cpu", log=lambda m: None)
    card = load_card(path)
    assert card.task == "interactive" and card.input.prompts.roi_mm == (60.0, 60.0, 60.0)
    validation = card.metrics["validation"]
    assert validation["cubes"] > 0
    assert 0.0 <= validation["dice_3d"]["first_click"] <= 1.0
