"""3D training data (patches and whole CTs on the model grid) and resumable training runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medviewer.ai.model_card import ModelCard
from medviewer.synthetic import phantom
from medviewer.training import data, specs

pytest.importorskip("torch")


def _spec(recipe: specs.ModelRecipe):
    return ModelCard.from_dict(recipe.card, recipe.id).input


def test_extra_nodules_leave_the_case_and_its_own_nodules_as_they_were():
    case = phantom.chest_case(1)
    more = phantom.with_extra_nodules(case, 3)
    assert phantom.chest_case(1) == case  # drawing extra nodules changes no held-out case
    assert more.nodules[: len(case.nodules)] == case.nodules
    assert len(more.nodules) > len(case.nodules)
    extra = more.nodules[len(case.nodules):]
    for nodule in extra:  # apart from every other nodule, as chest_case places them
        for other in more.nodules:
            if other is not nodule:
                gap = np.linalg.norm(np.subtract(nodule.centre_lps, other.centre_lps))
                assert gap >= (nodule.diameter_mm + other.diameter_mm) / 2
    assert phantom.with_extra_nodules(case, 3) == more  # reproducible


def test_a_patch_is_centred_where_asked_on_the_model_grid():
    spec = _spec(specs.NODULES)
    case = phantom.with_extra_nodules(phantom.chest_case(3), 2)
    nodule = max(case.nodules, key=lambda n: n.diameter_mm)
    image, labels = data.ct_patch(case, nodule.centre_lps, spec, 48)
    assert image.shape == labels.shape == (48, 48, 48)
    voxels = np.argwhere(labels == phantom.NODULE)
    # the nodule (lobulated by up to 12 %) sits at the cube's centre, 23.5, within a voxel
    np.testing.assert_allclose(voxels.mean(axis=0), [23.5] * 3, atol=1.2)
    # its volume at 1.25 mm matches its nominal diameter within 35 % (lobes, edges)
    volume = len(voxels) * 1.25**3
    assert volume == pytest.approx(np.pi / 6 * nodule.diameter_mm**3, rel=0.35)
    # solid nodules are soft tissue after scale_range(-1000..400 -> 0..1)
    if nodule.kind == "solid":
        inside = image[labels == phantom.NODULE]
        assert np.median(inside) == pytest.approx((nodule.hu + 1000) / 1400, abs=0.06)


def test_a_patch_moved_along_an_axis_moves_its_content_the_other_way():
    spec = _spec(specs.NODULES)
    case = phantom.chest_case(3)
    nodule = case.nodules[0]
    centre = np.asarray(nodule.centre_lps)
    _, here = data.ct_patch(case, tuple(centre), spec, 48)
    # PLS model axes: d0 toward P (+y), d1 toward L (+x), d2 toward S (+z)
    for axis_lps, model_axis in ((0, 1), (1, 0), (2, 2)):
        moved = centre.copy()
        moved[axis_lps] += 10.0  # 8 model voxels
        _, there = data.ct_patch(case, tuple(moved), spec, 48)
        a = np.argwhere(here == phantom.NODULE).mean(axis=0)
        b = np.argwhere(there == phantom.NODULE).mean(axis=0)
        expected = np.zeros(3)
        expected[model_axis] = -8.0
        # each cube starts at the model voxel nearest its corner: up to half a voxel each
        np.testing.assert_allclose(b - a, expected, atol=1.0)


def test_a_patch_beyond_the_series_is_padded_with_air_and_background():
    spec = _spec(specs.NODULES)
    case = phantom.chest_case(3)
    grid = phantom.ct_grid(case)
    top = grid.z_positions[-1]
    image, labels = data.ct_patch(case, (0.0, 0.0, top + 20.0), spec, 48)
    # 20 mm above the last slice: the upper 4 mm of the cube is beyond the series
    beyond = image[:, :, -3:]
    assert (beyond == image.min()).all() and (labels[:, :, -3:] == 0).all()


def test_training_resumes_where_it_was_interrupted_and_ends_as_an_uninterrupted_run(
    tmp_path, monkeypatch
):
    from safetensors.numpy import load_file

    from medviewer.training import checkpoint, train

    recipe = dataclasses.replace(
        specs.NODULES, train_seeds=range(0, 2), validation_seeds=range(300, 301),
        iterations=4, batch_size=2, patch=32, patches_per_case=2,
    )
    monkeypatch.setitem(specs.RECIPES, recipe.id, recipe)
    monkeypatch.setattr(train, "_pool_map", lambda f, items: [f(i) for i in items])
    monkeypatch.setattr(checkpoint, "EVERY", 2)
    whole = train.train(recipe.id, tmp_path / "whole", device="cpu", log=lambda m: None)
    # a finished run keeps its rendered data, not its checkpoint
    assert not (tmp_path / "whole" / ".training" / "checkpoint.pt").exists()
    assert (tmp_path / "whole" / ".training" / "data" / "index.json").is_file()

    optimise = train._optimise

    def stop_at_step_3(optimiser, scheduler, loss, step, recipe, log):
        if step == 3:
            raise KeyboardInterrupt
        optimise(optimiser, scheduler, loss, step, recipe, log)

    monkeypatch.setattr(train, "_optimise", stop_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train.train(recipe.id, tmp_path / "resumed", device="cpu", log=lambda m: None)
    assert (tmp_path / "resumed" / ".training" / "checkpoint.pt").is_file()
    monkeypatch.setattr(train, "_optimise", optimise)
    logged: list[str] = []
    resumed = train.train(recipe.id, tmp_path / "resumed", device="cpu", log=logged.append)
    assert "resuming at step 2" in logged and any("cached data" in m for m in logged)
    a = load_file(str(whole.parent / "model.safetensors"))
    b = load_file(str(resumed.parent / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_other_settings_is_not_resumed_but_their_data_is_reused(tmp_path):
    from medviewer.training.checkpoint import TrainingState

    first = TrainingState(tmp_path, specs.NODULES, log=lambda m: None)
    sets = {"train": (np.arange(4.0),)}
    first.data(lambda: sets)
    (first.root / "checkpoint.pt").write_bytes(b"not a checkpoint")
    longer = dataclasses.replace(specs.NODULES, iterations=specs.NODULES.iterations + 1)
    logged: list[str] = []
    state = TrainingState(tmp_path, longer, log=logged.append)
    assert not (first.root / "checkpoint.pt").exists()
    assert any("another recipe's checkpoint" in m for m in logged)
    np.testing.assert_array_equal(state.data(lambda: {})["train"][0], np.arange(4.0))
    other_seeds = dataclasses.replace(longer, train_seeds=range(0, 10))
    logged.clear()
    state = TrainingState(tmp_path, other_seeds, log=logged.append)
    assert any("another recipe's data" in m for m in logged)
    assert state.data(lambda: {"train": (np.zeros(2),)})["train"][0].tolist() == [0.0, 0.0]


def test_a_lungs_model_learns_each_nodule_as_part_of_its_lung():
    case = phantom.chest_case(1)
    nodule = max(case.nodules, key=lambda n: n.diameter_mm)
    grid = phantom.ct_grid(case)
    k = int(np.argmin(np.abs(grid.zs() - nodule.centre_lps[2])))
    one = dataclasses.replace(grid, z_positions=(grid.z_positions[k],))
    _, labels = phantom.render_ct(case, one, noise=False)
    assert (labels == phantom.NODULE).any()
    lungs = data.nodules_as_lung(case, one, labels)
    was_nodule = labels == phantom.NODULE
    assert (lungs[was_nodule] == nodule.side).all()
    np.testing.assert_array_equal(lungs[~was_nodule], labels[~was_nodule])


def test_whole_ct_samples_of_the_lungs_model_are_centred_cubes_without_nodule_labels():
    from medviewer.training import train

    spec = _spec(specs.LUNGS)
    image, labels = train._ct_whole((1, spec, specs.LUNGS))
    assert image.shape == (1, 1, 160, 160, 160) and labels.shape == (1, 160, 160, 160)
    assert set(np.unique(labels)) == {0, phantom.LEFT_LUNG, phantom.RIGHT_LUNG}
    # PLS: d1 runs toward the patient's left; the cube is centred on the series
    assert np.nonzero(labels[0] == phantom.LEFT_LUNG)[1].mean() > 79.5
    assert np.nonzero(labels[0] == phantom.RIGHT_LUNG)[1].mean() < 79.5
