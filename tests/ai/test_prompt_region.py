"""The promptable model's region: its cube lies where the card says in patient space, the
series is sampled through its affine (oblique and anisotropic), the result goes back onto the
series' own voxels, prompts become the channels the card names; the card's schema; and the
network engine's path from LPS clicks to a mask (its network replaced by one that answers
with its positive-click channel, so the expected mask is known exactly)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from medviewer.ai.interactive import InteractiveSession, Point
from medviewer.ai.model_card import ModelCard
from medviewer.ai.network_engine import NetworkEngine
from medviewer.ai.prompt_region import (
    native_box,
    paste_back,
    prompt_channels,
    roi_grid,
    sample_cube,
)
from medviewer.core.errors import InferenceError, ModelCardError
from medviewer.core.geometry import voxel_to_patient
from medviewer.core.volume import Volume
from medviewer.training.specs import INTERACTIVE
from tests.ai.test_interactive import centre_of, oblique_affine


def card(**changes) -> ModelCard:
    data = copy.deepcopy(INTERACTIVE.card)
    for key, value in changes.items():
        target = data
        *path, last = key.split("__")
        for part in path:
            target = target[part]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    return ModelCard.from_dict(data, "test card")


def lps_of(volume: Volume) -> np.ndarray:
    s, r, c = np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij")
    index = np.stack([c, r, s], axis=-1).reshape(-1, 3).astype(float)
    return voxel_to_patient(volume.affine, index).reshape(*volume.shape, 3)


def test_the_cube_is_centred_on_the_prompt_and_runs_along_the_card_letters():
    spec = card().input
    grid = roi_grid((10.0, -20.0, 35.0), spec)
    assert grid.shape == (48, 48, 48)  # 60 mm at 1.25 mm
    assert np.allclose(grid.to_index([(10.0, -20.0, 35.0)]), 23.5)
    step = grid.to_index([(11.25, -20.0, 35.0)]) - grid.to_index([(10.0, -20.0, 35.0)])
    assert np.allclose(step, [[1.0, 0.0, 0.0]])  # "LPS": d0 toward the left (+x)
    flipped = roi_grid((0.0, 0.0, 0.0), card(input__orientation="RAS").input)
    step = flipped.to_index([(0.0, 1.25, 0.0)]) - flipped.to_index([(0.0, 0.0, 0.0)])
    assert np.allclose(step, [[0.0, -1.0, 0.0]])  # "A": d1 toward anterior (-y)


def test_an_oblique_anisotropic_series_is_sampled_in_patient_space():
    affine = oblique_affine()
    shape = (40, 90, 100)
    volume = Volume(np.zeros(shape, np.float32), affine)
    lps = lps_of(volume)
    weights = np.array([1.0, -2.0, 0.5])
    volume = Volume((lps @ weights).astype(np.float32), affine)  # linear: exact under linear
    centre = centre_of(affine, shape)
    grid = roi_grid(centre, card(input__prompts__roi_mm=[20, 20, 20]).input)
    cube = sample_cube(volume, grid)
    d = np.stack(np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij"), -1)
    expected = voxel_to_patient(grid.affine, d.reshape(-1, 3).astype(float)) @ weights
    assert np.allclose(cube.ravel(), expected, atol=1e-2)


def test_the_result_goes_back_onto_the_series_own_voxels():
    affine = oblique_affine(spacing=(0.8, 0.8, 2.0))
    shape = (40, 90, 100)
    volume = Volume(np.zeros(shape, np.float32), affine)
    point = np.asarray(centre_of(affine, shape, (0.5, 0.4, 0.6)))
    grid = roi_grid(point + 3.0, card().input)  # the object off the cube's centre
    d = np.stack(np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij"), -1)
    where = voxel_to_patient(grid.affine, d.reshape(-1, 3).astype(float))
    ball = (np.linalg.norm(where - point, axis=1) <= 8.0).reshape(grid.shape)
    mask = paste_back(volume, grid, ball.astype(np.float32))
    distance = np.linalg.norm(lps_of(volume) - point, axis=-1)
    assert mask[distance <= 7.0].all()
    assert not mask[distance >= 9.0].any()
    box = native_box(volume, grid, margin=0)
    assert not mask[:box[0].start].any() and not mask[box[0].stop:].any()


def test_clicks_become_gaussians_of_the_card_sigma_in_mm():
    spec = card(input__spacing=[1.0, 2.0, 1.0], input__prompts__roi_mm=[40, 40, 40]).input
    grid = roi_grid((0.0, 0.0, 0.0), spec)
    assert grid.shape == (40, 20, 40)
    channels = prompt_channels(spec.prompts, grid, np.array([[10.0, 10.0, 20.0]]),
                               np.zeros((0, 3)), None)
    positive = channels["positive"]
    assert positive[10, 10, 20] == pytest.approx(1.0)
    sigma = spec.prompts.radius_mm
    assert positive[13, 10, 20] == pytest.approx(np.exp(-9 / (2 * sigma**2)), abs=1e-4)
    assert positive[10, 12, 20] == pytest.approx(np.exp(-16 / (2 * sigma**2)), abs=1e-4)  # 2 mm
    assert not channels["negative"].any() and not channels["previous"].any()
    outside = prompt_channels(spec.prompts, grid, np.array([[-5.0, 0.0, 0.0]]),
                              np.zeros((0, 3)), None)
    assert not outside["positive"].any()  # a click outside the cube does not reach it
    disk = card(input__prompts__encoding="disk").input.prompts
    ball = prompt_channels(disk, grid, np.array([[10.0, 10.0, 20.0]]), np.zeros((0, 3)),
                           None)["positive"]
    assert ball[12, 10, 20] == 1.0 and ball[13, 10, 20] == 0.0  # radius 2.5 mm


def test_the_card_schema_of_an_interactive_model():
    good = card()
    assert good.task == "interactive" and good.input.prompts.channels[0] == "image"
    assert ModelCard.from_dict(good.to_dict(), "round trip") == good
    with pytest.raises(ModelCardError, match=r"input\.prompts: missing"):
        card(input__prompts=None)
    with pytest.raises(ModelCardError, match=r"input\.channels: is 3"):
        card(input__channels=3)
    with pytest.raises(ModelCardError, match="must hold at least 'image' and 'positive'"):
        card(input__prompts__channels=["image", "negative"], input__channels=2)
    with pytest.raises(ModelCardError, match=r"channels\[1\]: must be one of"):
        card(input__prompts__channels=["image", "clicks"], input__channels=2)
    with pytest.raises(ModelCardError, match="only an interactive model"):
        card(task="segmentation")
    with pytest.raises(ModelCardError, match="dims 3"):
        card(input__dims=2, input__spacing=[1.0, 1.0])


class PositiveChannelEngine(NetworkEngine):
    """The engine with a network that answers its positive-click channel as the probability."""

    def _run(self, x: np.ndarray) -> np.ndarray:
        self.seen = x
        return x[self.card.input.prompts.channels.index("positive")]


def test_the_network_engine_puts_its_answer_around_the_lps_click():
    affine = oblique_affine()
    shape = (40, 90, 100)
    volume = Volume(np.random.default_rng(0).normal(0, 20, shape).astype(np.float32), affine)
    click = tuple(voxel_to_patient(affine, np.array([55.0, 40.0, 20.0])))  # a voxel centre
    engine = PositiveChannelEngine(card())
    session = InteractiveSession(volume, engine)
    mask = session.add_prompt("nodule", Point(click))
    # a Gaussian of sigma 2.5 mm is at least 0.5 within sqrt(2 ln 2) * 2.5 = 2.94 mm
    distance = np.linalg.norm(lps_of(volume) - np.asarray(click), axis=-1)
    assert mask[distance <= 2.5].all() and not mask[distance >= 3.4].any()
    assert engine.seen.shape == (4, 48, 48, 48)
    assert engine.seen[0].max() <= 1.0  # the CT scaled as the card says (noise around 0 HU)
    assert not engine.seen[3].any()  # no previous mask on the first click
    second = session.add_prompt("nodule", Point(tuple(np.add(click, (4.0, 0.0, 0.0)))))
    assert engine.seen[3].sum() > 0  # the previous mask reached the network
    assert second[mask].all() and second.sum() > mask.sum()
    # the negative click's channel answers nothing: only removal is possible
    third = session.add_prompt("nodule", Point(click, positive=False))
    assert not (third & ~second).any()


def test_the_network_engine_refuses_a_model_that_takes_no_prompts():
    from medviewer.training.specs import NODULES

    with pytest.raises(InferenceError, match="not a promptable"):
        NetworkEngine(ModelCard.from_dict(NODULES.card, "nodules"))


class ConstantEngine(NetworkEngine):
    """A network that answers `value` everywhere in its cube."""

    value = 1.0

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.full(x.shape[1:], self.value, np.float32)


def test_auto_uses_the_network_unless_it_finds_nothing_or_fills_its_cube():
    from medviewer.ai.classical_engine import ClassicalEngine
    from medviewer.ai.interactive_engines import AutoEngine
    from tests.ai.test_interactive import phantom

    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    centre = centre_of(affine, (40, 90, 100))
    volume, (ball,) = phantom(affine, balls=[(centre, 7.0, 40.0)])
    click = tuple(voxel_to_patient(affine, np.array([50.0, 45.0, 20.0])))
    auto = AutoEngine(PositiveChannelEngine(card()), ClassicalEngine())
    small = InteractiveSession(volume, auto).add_prompt("a", Point(click))
    assert auto.last == "demo-ct-interactive" and 0 < small.sum() < ball.sum()
    classical = InteractiveSession(volume, ClassicalEngine()).add_prompt("a", Point(click))
    for value in (1.0, 0.0):  # the whole cube (a structure larger than it), or nothing
        network = ConstantEngine(card())
        network.value = value
        auto = AutoEngine(network, ClassicalEngine())
        mask = InteractiveSession(volume, auto).add_prompt("a", Point(click))
        assert auto.last == "classical" and np.array_equal(mask, classical)


def test_a_promptable_model_never_runs_on_its_own():
    from medviewer.ai.applicability import check_applicable, why_not_applicable

    volume = Volume(np.zeros((8, 16, 16), np.float32), np.eye(4))
    assert why_not_applicable(card(), volume) == "runs on clicks: the Smart tool (S)"
    with pytest.raises(InferenceError, match="segment-click --engine demo-ct-interactive"):
        check_applicable(card(), volume)


def test_auto_on_ct_takes_the_network_only_for_an_object_that_stands_out():
    """A click in uniform soft tissue (a heart, on CT) gets the classical engine, although the
    network answered a ball; the same ball denser than lung around it is the network's."""
    from dataclasses import replace as changed

    from medviewer.ai.classical_engine import ClassicalEngine
    from medviewer.ai.interactive_engines import AutoEngine
    from medviewer.core.volume import VolumeMetadata
    from tests.ai.test_interactive import phantom

    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    centre = tuple(voxel_to_patient(affine, np.array([50.0, 45.0, 20.0])))
    ct = VolumeMetadata(modality="CT")
    tissue, _ = phantom(affine, background=40.0)
    nodule, _ = phantom(affine, balls=[(centre, 4.0, 30.0)], background=-850.0)
    for volume, expected in ((tissue, "classical"), (nodule, "demo-ct-interactive")):
        auto = AutoEngine(PositiveChannelEngine(card()), ClassicalEngine())
        InteractiveSession(changed(volume, metadata=ct), auto).add_prompt("a", Point(centre))
        assert auto.last == expected


def test_a_card_cannot_ask_for_a_huge_cube():
    with pytest.raises(ModelCardError, match=r"input\.prompts\.roi_mm: is a cube of 8000 x"):
        card(input__prompts__roi_mm=[10000, 10000, 10000])
