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


def _distance_to_axis(point, tube: phantom.Tube) -> float:
    p0, p1 = np.asarray(tube.p0), np.asarray(tube.p1)
    t = np.clip(np.dot(np.asarray(point) - p0, p1 - p0) / np.dot(p1 - p0, p1 - p0), 0.0, 1.0)
    return float(np.linalg.norm(np.asarray(point) - (p0 + t * (p1 - p0))))


def test_extra_part_solid_nodules_on_vessels_are_drawn_where_asked():
    case = phantom.chest_case(4)
    more = phantom.with_extra_nodules(case, 4, part_solid_share=1.0, on_vessel_share=1.0)
    assert phantom.chest_case(4) == case
    extra = more.nodules[len(case.nodules):]
    assert len(extra) == 4
    for nodule in extra:
        assert nodule.kind == "part-solid" and 8.0 <= nodule.diameter_mm <= 30.0
        assert nodule.core_fraction < 1.0
        # centred on a vessel's axis, in the lung it is labelled with
        assert min(_distance_to_axis(nodule.centre_lps, t) for t in case.vessels) < 1e-6
        assert phantom._inside_lungs(case, np.array([nodule.centre_lps]), nodule.side).all()
    # drawn whole: the rendered slice through its centre holds about its cross-section
    nodule = max(extra, key=lambda n: n.diameter_mm)
    full = phantom.ct_grid(more)
    k = int(np.argmin(np.abs(np.asarray(full.z_positions) - nodule.centre_lps[2])))
    grid = dataclasses.replace(full, z_positions=(full.z_positions[k],))
    _, labels = phantom.render_ct(more, grid)
    x, y = np.meshgrid(grid.xs(), grid.ys())
    near = np.hypot(x - nodule.centre_lps[0], y - nodule.centre_lps[1]) < nodule.diameter_mm
    area = np.count_nonzero((labels[0] == phantom.NODULE) & near) * grid.pixel_spacing**2
    circle = np.pi * (nodule.diameter_mm / 2) ** 2
    assert 0.5 * circle < area < 1.5 * circle
    plain = phantom.with_extra_nodules(case, 4)  # the default shares: as chest_case draws them
    assert all(min(_distance_to_axis(n.centre_lps, t) for t in case.vessels) > 1e-6
               for n in plain.nodules[len(case.nodules):])


def test_branching_negatives_are_patches_at_thick_vessel_ends():
    case = dataclasses.replace(phantom.chest_case(5), nodules=())
    ends = data.vessel_branchings(case)
    assert len(ends) > 10
    thick = {t.p1 for t in case.vessels if t.r1 >= 1.5}
    assert {tuple(p) for p in ends} == thick
    centres = np.array(data.patch_centres(case, 12, 5, branching_share=1.0))
    gaps = np.linalg.norm(centres[:, None] - ends[None], axis=2).min(axis=1)
    assert (gaps <= 4.0 * np.sqrt(3) + 1e-9).all()
    plain = np.array(data.patch_centres(case, 12, 5))
    plain_gaps = np.linalg.norm(plain[:, None] - ends[None], axis=2).min(axis=1)
    assert np.median(plain_gaps) > 4.0 * np.sqrt(3)


def test_mirrored_patches_keep_image_and_labels_together_and_the_slice_axis():
    from medviewer.training.sampling import mirrored

    rng = np.random.default_rng(0)
    image = rng.random((1, 1, 4, 4, 3)).astype(np.float32)
    labels = (image[:, 0] > 0.5).astype(np.uint8)
    seen = set()
    for _ in range(200):
        x, y = mirrored(rng, image, labels)
        assert x.shape == image.shape and y.shape == labels.shape
        np.testing.assert_array_equal(y[0], (x[0, 0] > 0.5).astype(np.uint8))
        # the slice axis stays the slice axis: each slice's values stay in one slice
        assert {frozenset(np.round(x[0, 0, :, :, k].ravel(), 6)) for k in range(3)} <= {
            frozenset(np.round(image[0, 0, :, :, k].ravel(), 6)) for k in range(3)}
        seen.add(x.tobytes())
    assert len(seen) == 16


def test_training_data_is_rendered_afresh_when_the_phantom_code_changes(monkeypatch):
    from medviewer.training import checkpoint

    before = checkpoint.recipe_fingerprint(specs.NODULES, data_only=True)
    monkeypatch.setattr(checkpoint, "_data_code_hash", lambda *cubes: "another phantom")
    assert checkpoint.recipe_fingerprint(specs.NODULES, data_only=True) != before


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


def test_partial_coverage_cuts_a_share_of_samples_to_a_slice_range():
    from medviewer.training.sampling import partial_coverage

    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 1.0, (64, 1, 3, 3, 50)).astype(np.float32)
    images[:, :, 0, 0, 0] = 0.1  # each sample's air value
    labels = np.ones((64, 3, 3, 50), dtype=np.uint8)
    cut_images, cut_labels = partial_coverage(rng, images, labels, 0.5, min_slices=20)
    assert np.array_equal(images[:, :, 0, 0, 0], np.full((64, 1), 0.1, np.float32))  # a copy
    cut = 0
    for k in range(64):
        kept = cut_labels[k].any(axis=(0, 1))  # slices still labelled
        if kept.all():
            np.testing.assert_array_equal(cut_images[k], images[k])
            continue
        cut += 1
        run = np.flatnonzero(kept)
        assert run.size >= 20 and np.all(np.diff(run) == 1)  # one range of >= 20 slices
        np.testing.assert_array_equal(cut_images[k][..., run], images[k][..., run])
        assert (cut_images[k][..., ~kept] == np.float32(0.1)).all()
    assert 20 <= cut <= 44  # about half
