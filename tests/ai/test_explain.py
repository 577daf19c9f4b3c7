"""Grad-CAM through the runner: a classifier that learnt to find a bright blob points at it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai.nets import ConvClassifier
from medviewer.ai.runner import Runner, run_to_end
from medviewer.core.errors import InferenceError
from tests.ai.tiny_models import card_dict, make_volume, write_card

ROWS, COLS = 48, 40
KWARGS = {"spatial_dims": 2, "in_channels": 1, "num_classes": 2, "channels": [1], "norm": False}


def blob_detector() -> ConvClassifier:
    """A classifier whose evidence is known: features = ReLU(3x3 mean - 0.5), logit = 40 * mean.

    Only voxels of a bright blob (> 0.5 after a 3x3 mean) activate the feature map, and the
    class-1 logit grows with their mean, so Grad-CAM must light up the blob and nothing else.
    """
    model = ConvClassifier(**KWARGS).eval()
    conv = model.features.block0[0]
    linear = model.head[2]
    with torch.no_grad():
        conv.weight.fill_(1 / 9)
        conv.bias.fill_(-0.5)
        linear.weight.copy_(torch.tensor([[0.0], [400.0]]))
        linear.bias.copy_(torch.tensor([0.0, -2.0]))
    return model


@pytest.fixture(scope="module")
def blob_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blob detector as safetensors + a card that resizes to 32x32 and explains block0."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("blob")
    save_file(blob_detector().state_dict(), str(folder / "model.safetensors"))
    card = card_dict(
        folder / "model.safetensors", "safetensors", task="classification", dims=2,
        orientation="PLS", modalities=("DX", "CT"), classes=["normal", "blob"], size=[32, 32],
        architecture={"name": "medviewer.ai.nets.ConvClassifier", "kwargs": KWARGS},
        explain={"method": "gradcam", "layer": "features.block0"},
    )
    write_card(folder, card)
    return folder


def _image_with_blob(centre: tuple[int, int], seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 0.2, (ROWS, COLS)).astype(np.float32)
    yy, xx = np.mgrid[:ROWS, :COLS]
    image += 2.0 * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * 3.0**2))
    return image


@pytest.mark.parametrize("centre", [(10, 30), (30, 8), (40, 33)])
def test_gradcam_peaks_on_the_blob(blob_model: Path, centre: tuple[int, int]) -> None:
    from medviewer.ai.model_card import load_card

    volume = make_volume(_image_with_blob(centre)[None], modality="DX")
    prediction = run_to_end(Runner(load_card(blob_model), "cpu").run(volume))
    assert prediction.decision == ("blob",)
    assert prediction.classes["blob"] > 0.9
    assert prediction.heatmap_class == "blob"
    heatmap = prediction.heatmap[0]
    assert heatmap.shape == (ROWS, COLS) and heatmap.max() == pytest.approx(1.0)
    peak = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert np.hypot(peak[0] - centre[0], peak[1] - centre[1]) <= 2
    distance = np.hypot(*(np.mgrid[:ROWS, :COLS] - np.array(centre)[:, None, None]))
    assert heatmap[distance > 12].max() < 0.05


def test_heatmap_of_a_volume_is_hottest_on_the_blob_slice(blob_model: Path) -> None:
    from medviewer.ai.model_card import load_card

    rng = np.random.default_rng(5)
    array = rng.uniform(0, 0.2, (7, ROWS, COLS)).astype(np.float32)
    array[4] = _image_with_blob((20, 28), seed=9)
    volume = make_volume(array, spacing=(0.8, 0.8, 3.0))
    prediction = run_to_end(Runner(load_card(blob_model), "cpu").run(volume))
    assert int(np.argmax(prediction.slice_probabilities[:, 1])) == 4
    assert prediction.classes["blob"] == pytest.approx(prediction.slice_probabilities[4, 1])
    peak = np.unravel_index(np.argmax(prediction.heatmap), prediction.heatmap.shape)
    assert peak[0] == 4
    assert np.hypot(peak[1] - 20, peak[2] - 28) <= 2


def test_a_slice_heatmap_covers_the_called_slices_and_at_least_the_most_probable(
    blob_model: Path,
) -> None:
    """Grad-CAM runs where the class is called (p >= threshold) and on at least the 8 most
    probable slices; every other slice has no heatmap."""
    from medviewer.ai.decisions import explained_slices
    from medviewer.ai.model_card import load_card

    rng = np.random.default_rng(6)
    array = rng.uniform(0, 0.2, (20, ROWS, COLS)).astype(np.float32)
    for k, centre in ((3, (12, 10)), (15, (30, 25))):
        array[k] = _image_with_blob(centre, seed=k)
    array[9] += 0.25 * _image_with_blob((24, 20), seed=9)  # a faint one
    volume = make_volume(array, spacing=(0.8, 0.8, 3.0))
    prediction = run_to_end(Runner(load_card(blob_model), "cpu").run(volume))
    p = prediction.slice_probabilities[:, 1]
    called = p >= 0.5
    assert list(np.flatnonzero(called)) == [3, 15]
    chosen = explained_slices(p, 0.5)
    assert chosen.sum() == 8 and chosen[[3, 15]].all()
    assert (p[chosen].min() >= p[~chosen].max())  # the 8 most probable
    hot = prediction.heatmap.reshape(20, -1).max(axis=1) > 0
    assert not hot[~chosen].any()  # nothing where it was not computed
    assert hot[3] and hot[15]
    for k, centre in ((3, (12, 10)), (15, (30, 25))):
        peak = np.unravel_index(np.argmax(prediction.heatmap[k]), (ROWS, COLS))
        assert np.hypot(peak[0] - centre[0], peak[1] - centre[1]) <= 2


def test_explained_slices_are_the_called_ones_when_there_are_enough() -> None:
    from medviewer.ai.decisions import explained_slices

    scores = np.array([0.9, 0.1, 0.6, 0.7, 0.2, 0.95])
    assert list(explained_slices(scores, 0.5, minimum=2)) == [1, 0, 1, 1, 0, 1]
    assert list(explained_slices(scores, 0.5, minimum=5)) == [1, 0, 1, 1, 1, 1]
    assert explained_slices(scores, 0.99, minimum=10).all()  # fewer slices than the minimum


def test_target_class_can_be_chosen(blob_model: Path) -> None:
    from medviewer.ai.model_card import load_card

    volume = make_volume(_image_with_blob((24, 24))[None], modality="DX")
    runner = Runner(load_card(blob_model), "cpu")
    prediction = run_to_end(runner.run(volume, target_class="normal"))
    assert prediction.heatmap_class == "normal"
    with pytest.raises(InferenceError, match="unknown class 'tumour'"):
        run_to_end(runner.run(volume, target_class="tumour"))


def test_a_missing_layer_is_a_clear_error(blob_model: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from medviewer.ai.model_card import load_card

    folder = tmp_path / "copy"
    shutil.copytree(blob_model, folder)
    card = json.loads((folder / "model.json").read_text())
    card["explain"]["layer"] = "features.block9"
    (folder / "model.json").write_text(json.dumps(card))
    volume = make_volume(_image_with_blob((24, 24))[None], modality="DX")
    with pytest.raises(InferenceError, match=r"features\.block9"):
        run_to_end(Runner(load_card(folder), "cpu").run(volume))


def test_conv_classifier_max_pooling_keeps_a_small_finding_whole():
    """Global max pooling: the head sees a one-pixel finding at full strength wherever it is."""
    import torch

    from medviewer.ai.nets import ConvClassifier

    torch.manual_seed(0)
    net = ConvClassifier(2, 1, 2, channels=(4, 8), norm=False, pooling="max").eval()
    features = net.features
    image = torch.zeros(1, 1, 64, 64)
    shifted = image.clone()
    image[0, 0, 10, 10] = 5.0
    shifted[0, 0, 40, 50] = 5.0
    with torch.no_grad():
        a, b = features(image).amax(dim=(2, 3)), features(shifted).amax(dim=(2, 3))
        torch.testing.assert_close(a, b)  # translation does not change the pooled evidence
        torch.testing.assert_close(net(image), net.head[2](a))
    with pytest.raises(ValueError, match="pooling"):
        ConvClassifier(2, 1, 2, pooling="median")


def test_a_3d_heatmap_explains_the_input_the_network_saw(tmp_path: Path) -> None:
    """A 3D classifier whose card z-scores the volume: Grad-CAM runs on the z-scored input
    (on raw CT values the detector fires everywhere and the heatmap would be flat)."""
    from safetensors.torch import save_file

    kwargs = {**KWARGS, "spatial_dims": 3}
    model = ConvClassifier(**kwargs).eval()
    with torch.no_grad():
        model.features.block0[0].weight.fill_(1 / 27)
        model.features.block0[0].bias.fill_(-0.5)
        model.head[2].weight.copy_(torch.tensor([[0.0], [400.0]]))
        model.head[2].bias.copy_(torch.tensor([0.0, -2.0]))
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    card = write_card(tmp_path, card_dict(
        tmp_path / "model.safetensors", "safetensors", task="classification", dims=3,
        orientation="LPS", classes=["normal", "blob"], intensity=[{"op": "zscore"}],
        architecture={"name": "medviewer.ai.nets.ConvClassifier", "kwargs": kwargs},
        explain={"method": "gradcam", "layer": "features.block0"},
    ))  # fmt: skip
    array = np.full((16, 20, 24), 100.0, np.float32)  # (slices, rows, cols): soft tissue
    array[10:14, 4:8, 15:19] = 300.0  # a dense blob
    prediction = run_to_end(Runner(card).run(make_volume(array)))
    assert prediction.heatmap_class == "blob"
    heatmap = prediction.heatmap
    assert heatmap.shape == array.shape and heatmap.max() == pytest.approx(1.0)
    peak = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert 9 <= peak[0] <= 14 and 3 <= peak[1] <= 8 and 14 <= peak[2] <= 19
    far = np.ones(array.shape, bool)
    far[7:16, 1:11, 12:22] = False
    assert heatmap[far].max() < 0.05


def test_runs_of_chosen_slices() -> None:
    from medviewer.ai.runner import _runs

    chosen = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert _runs(chosen) == [(0, 2), (4, 5), (6, 9)]
    assert _runs(np.zeros(3, bool)) == [] and _runs(np.ones(1, bool)) == [(0, 1)]
