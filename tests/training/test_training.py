"""Training data geometry, a tiny end-to-end training run, and the evaluation's seed guard."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from medviewer.ai.model_card import ModelCard, file_sha256, load_card
from medviewer.synthetic import phantom
from medviewer.training import data, specs
from medviewer.training.__main__ import _seed_range

pytest.importorskip("torch")


def _spec(recipe: specs.ModelRecipe):
    return ModelCard.from_dict(recipe.card, recipe.id).input


def test_every_recipe_card_is_valid_and_seed_ranges_are_disjoint():
    for recipe in specs.RECIPES.values():
        card = ModelCard.from_dict(recipe.card, recipe.id)
        assert card.id == recipe.id
        assert "not for diagnosis" in card.intended_use
        seen = set(recipe.train_seeds) | set(recipe.validation_seeds)
        assert not seen & set(recipe.test_seeds)
        assert not set(recipe.train_seeds) & set(recipe.validation_seeds)


def test_ct_training_slices_keep_anatomy_on_its_side():
    spec = dataclasses.replace(_spec(specs.SEGMENTATION), context_slices=2)  # 2.5D samples
    images, labels = data.ct_case_slices(3, spec, 12)
    case = phantom.chest_case(3)
    grid = phantom.ct_grid(case)
    assert images.shape[:2] == (12, 2 * spec.context_slices + 1) and labels.shape[0] == 12
    centre = images[:, spec.context_slices]
    # neighbours are other slices (not copies), except where the series ends
    assert not np.array_equal(images[:, 0], centre)
    images = centre
    # 1.25 mm model pixels over the 512-pixel field of view
    expected = int(np.floor((grid.cols - 1) * grid.pixel_spacing / 1.25 + 0.5)) + 1
    assert images.shape[1:] == (expected, expected)
    _, cols = np.indices(labels.shape[1:])
    centre = (expected - 1) / 2
    left, right = labels == phantom.LEFT_LUNG, labels == phantom.RIGHT_LUNG
    # PLS: columns run toward the patient's left, so the left lung is on the high-column side
    assert cols[left.any(axis=0)].mean() > centre > cols[right.any(axis=0)].mean()
    # lung pixels carry lung intensities after scale_range(-1000..400 -> 0..1)
    lung_values = images[left | right]
    assert 0.0 < np.median(lung_values) < (-700 + 1000) / 1400
    assert images.min() >= 0.0 and images.max() <= 1.0
    # half of the slices go through nodules when the case has any
    assert case.nodules and (labels == phantom.NODULE).any(axis=(1, 2)).sum() >= 3


def test_radiograph_samples_pair_each_nodule_case_with_its_nodule_free_twin():
    spec = _spec(specs.RADIOGRAPH_CLASSIFIER)
    seed = next(s for s in range(50) if phantom.chest_case(s).radiograph_class == "nodule")
    samples = data.radiograph_samples(seed, spec)
    assert [target for _, target, _ in samples] == [1, 0]
    (with_nodule, _, centres), (without, _, _) = samples
    difference = with_nodule - without
    peak = np.unravel_index(np.argmax(difference), difference.shape)
    # nodule positions are in model pixels (1.5 mm)
    assert any(np.hypot(peak[0] - r, peak[1] - c) * 1.5 < d / 2 + 3 for r, c, d in centres)


def test_fit_centres_crop_and_pad():
    a = np.arange(5 * 7, dtype=float).reshape(5, 7)
    out = data.fit(a, 6, -1.0)
    assert out.shape == (6, 6)
    # rows: 5 -> 6 pads one row at the bottom ((6 - 5) // 2 = 0 on top); cols: 7 -> 6 crops
    assert out[5].tolist() == [-1.0] * 6
    np.testing.assert_array_equal(out[:5], a[:, 0:6])


def test_tiny_training_run_writes_a_card_the_runner_loads(tmp_path, monkeypatch):
    from medviewer.ai.runner import Runner, run_to_end
    from medviewer.training import train

    recipe = dataclasses.replace(
        specs.RADIOGRAPH_CLASSIFIER, train_seeds=range(0, 3), validation_seeds=range(600, 603),
        iterations=2, batch_size=4,
    )
    monkeypatch.setitem(specs.RECIPES, recipe.id, recipe)
    monkeypatch.setattr(train, "_pool_map", lambda f, items: [f(i) for i in items])
    path = train.train(recipe.id, tmp_path / "m", device="cpu", log=lambda m: None)
    card = load_card(path)
    assert card.weights.sha256 == file_sha256(tmp_path / "m" / "model.safetensors")
    written = json.loads(path.read_text())["metrics"]
    assert written["training"]["seeds"] == {"train": "0-2", "validation": "600-602",
                                            "test": "5000-5299"}
    assert written["training"]["iterations"] == 2
    assert "torch" in written["training"]["libraries"]
    assert 0.0 <= written["validation"]["auc"] <= 1.0
    radiograph = phantom.render_radiograph(phantom.chest_case(9))
    prediction = run_to_end(Runner(card, "cpu").run(data.radiograph_volume(radiograph)))
    assert set(prediction.classes) == {"normal", "nodule"}
    assert prediction.heatmap is not None
    assert prediction.heatmap.shape[1:] == radiograph.pixels.shape


def test_evaluation_refuses_training_seeds():
    from medviewer.training.evaluate import evaluate

    with pytest.raises(ValueError, match="used to train or validate"):
        evaluate("demo-cxr-nodule-cls", range(590, 605), log=lambda m: None)


def test_seed_range_parsing():
    assert _seed_range("5000-5009") == range(5000, 5010)
    assert _seed_range("7") == range(7, 8)
    with pytest.raises(ValueError):
        _seed_range("9-3")
    with pytest.raises(ValueError):
        _seed_range("a-b")


def test_evidence_target_marks_the_cells_over_each_nodule_after_fit():
    from medviewer.training.data import evidence_target

    # a 228 x 288 image padded to 288 rows: 30 rows added on top
    target = evidence_target((228, 288), [(50.0, 100.0, 24.0)], crop=288, spacing=1.5)
    assert target.shape == (36, 36)
    # centre (80, 100) model pixels; radius max(8 px, 0.75 cell) = 8 px; cell centres 8i + 3.5:
    # only (75.5, 99.5) and (83.5, 99.5) lie within 8 px
    assert sorted(zip(*np.nonzero(target), strict=True)) == [(9, 12), (10, 12)]
    assert evidence_target((228, 288), [], crop=288, spacing=1.5).sum() == 0


def test_evidence_classifier_decides_from_its_map():
    import torch

    from medviewer.ai.nets import EvidenceClassifier

    torch.manual_seed(0)
    net = EvidenceClassifier(2, 1, 2, channels=(4, 8)).eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        logits = net(x)
        evidence = net.evidence_map(x)
    assert evidence.shape == (3, 1, 16, 16)
    torch.testing.assert_close(logits[:, 0], torch.zeros(3))
    torch.testing.assert_close(logits[:, 1], evidence.flatten(1).amax(dim=1))


def test_label_evidence_marks_the_cells_holding_nodule_voxels():
    from medviewer.training.sampling import label_evidence

    labels = np.zeros((2, 32, 24), dtype=np.uint8)
    labels[0, 9:11, 15] = 3  # rows 9-10 (cell 1), column 15 (cell 1)
    labels[0, 16, 16] = 3  # cell (2, 2)
    labels[0, 0:8, 0:8] = 1  # a lung is not evidence
    labels[1, 31, 23] = 3  # the last cell
    cells = label_evidence(labels)
    assert cells.shape == (2, 4, 3) and cells.dtype == np.uint8
    assert sorted(zip(*np.nonzero(cells[0]), strict=True)) == [(1, 1), (2, 2)]
    assert sorted(zip(*np.nonzero(cells[1]), strict=True)) == [(3, 2)]


def test_evidence_windows_keep_each_positive_nodule_and_align_image_and_map():
    from medviewer.training.sampling import evidence_windows

    rng = np.random.default_rng(0)
    images = np.zeros((2, 288, 288), np.float32)
    maps = np.zeros((2, 36, 36), np.uint8)
    maps[0, 30, 2] = 1  # a nodule cell near the bottom-left corner
    images[0, 240:248, 16:24] = 7.0  # its pixels (cell 30, 2 of 8 pixels)
    images[1, :, :] = np.arange(288)[None, :]  # a negative: columns numbered
    for _ in range(20):
        windows, cells = evidence_windows(rng, images, maps, 160)
        assert windows.shape == (2, 160, 160) and cells.shape == (2, 20, 20)
        assert cells[0].sum() == 1  # the positive's window always holds its nodule
        r, c = np.argwhere(cells[0])[0]
        assert (windows[0, r * 8:r * 8 + 8, c * 8:c * 8 + 8] == 7.0).all()
        assert windows[0].sum() == 7.0 * 64  # and nothing else
        first = windows[1, 0, 0]  # the negative's window starts on a cell boundary
        assert first % 8 == 0 and first + 159 <= 287
        assert cells[1].sum() == 0
    with pytest.raises(ValueError, match="train_window 296"):
        evidence_windows(rng, images, maps, 296)


def test_render_workers_follow_the_setting_and_refuse_nonsense(monkeypatch):
    from medviewer.training import train

    monkeypatch.setattr(train.os, "cpu_count", lambda: 64)
    monkeypatch.delenv("MEDVIEWER_TRAIN_WORKERS", raising=False)
    assert train.render_workers() == 8  # capped: each worker holds a whole CT
    monkeypatch.setenv("MEDVIEWER_TRAIN_WORKERS", "15")
    assert train.render_workers() == 15
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("MEDVIEWER_TRAIN_WORKERS", bad)
        with pytest.raises(ValueError, match="MEDVIEWER_TRAIN_WORKERS"):
            train.render_workers()
