"""The runner end to end: tiny models with known answers through the whole card pipeline."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai.prediction import Progress
from medviewer.ai.runner import Runner, run_to_end
from medviewer.ai.weights import Network, clear_network_cache
from medviewer.core.errors import CancelledError, InferenceError
from tests.ai.test_transforms import AXIAL, AXIAL_FEET_FIRST, CORONAL, OBLIQUE, SAGITTAL
from tests.ai.tiny_models import (
    MeanClassifier,
    OctantSegmenter,
    ThresholdSegmenter,
    dice,
    make_card,
    make_volume,
    patient_coordinates,
    rotation,
)

DIRECTIONS = {"axial": AXIAL, "feet-first": AXIAL_FEET_FIRST, "sagittal": SAGITTAL,
              "coronal": CORONAL, "oblique": OBLIQUE}
_CODE_VECTORS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0),
                 "S": (0, 0, 1), "I": (0, 0, -1)}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_network_cache()


def run(card, volume, **kwargs):
    device = kwargs.pop("device", "cpu")
    batch = kwargs.pop("batch_size", None)
    return run_to_end(Runner(card, device, batch).run(volume, **kwargs))


def noisy_volume(shape=(10, 24, 20), seed=0, **geometry):
    array = np.random.default_rng(seed).uniform(0, 200, shape).astype(np.float32)
    array[np.abs(array - 100) < 1] = 50  # nothing within reach of the threshold's rounding
    return make_volume(array, **geometry)


def sphere_volume(spacing, directions, shape=(40, 48, 44), radius_mm=14.0):
    base = make_volume(np.zeros(shape, np.float32), spacing, directions, origin=(5.0, -7.0, 3.0))
    world = patient_coordinates(base)
    centre = world[shape[0] // 2, shape[1] // 2, shape[2] // 2] + np.array([1.3, -0.7, 0.4])
    inside = np.linalg.norm(world - centre, axis=-1) < radius_mm
    return base.with_array(np.where(inside, 180.0, 20.0).astype(np.float32)), inside


# ---------------------------------------------------------------------- segmentation geometry


@pytest.mark.parametrize("fmt", ["torchscript"])  # torch.export programs are refused
@pytest.mark.parametrize("dims,codes", [(3, "RAS"), (2, "PLS"), (2, "RAS")])
@pytest.mark.parametrize("name", ["axial", "oblique", "sagittal"])
def test_threshold_segmenter_is_exact_without_resampling(
    tmp_path: Path, fmt: str, dims: int, codes: str, name: str
) -> None:
    volume = noisy_volume(spacing=(0.7, 0.9, 2.5), directions=DIRECTIONS[name])
    example = torch.zeros((2, 1) + (8,) * dims)
    card = make_card(tmp_path / "m", ThresholdSegmenter(100.0, 5.0), fmt, example,
                     dims=dims, orientation=codes)
    prediction = run(card, volume)
    np.testing.assert_array_equal(prediction.label_map, volume.array > 100)
    assert prediction.label_map.dtype == np.uint8
    stats = prediction.statistics[1]
    assert stats.voxels == int((volume.array > 100).sum())
    assert stats.volume_ml == pytest.approx(stats.voxels * 0.7 * 0.9 * 2.5 / 1000)


@pytest.mark.parametrize("name", list(DIRECTIONS))
@pytest.mark.parametrize("codes", ["RAS", "LPS", "SPR"])
def test_octants_land_on_the_anatomical_side_the_codes_name(
    tmp_path: Path, name: str, codes: str
) -> None:
    """Model dim i's first half is the half farthest from code i, in patient space."""
    volume = make_volume(np.zeros((6, 8, 10), np.float32), (0.7, 0.9, 2.5), DIRECTIONS[name])
    labels = {str(k): {"name": f"octant {k}", "color": "#123456"} for k in range(1, 9)}
    card = make_card(tmp_path / "m", OctantSegmenter(), labels=labels, orientation=codes)
    prediction = run(card, volume)
    world = patient_coordinates(volume)
    centre = world.reshape(-1, 3).mean(axis=0)
    expected = np.ones(volume.shape, dtype=int)
    for i, code in enumerate(codes):
        # the volume axis closest to this code, signed toward it
        axes = volume.direction
        k = int(np.argmax(np.abs(axes.T @ _CODE_VECTORS[code])))
        toward = axes[:, k] * np.sign(axes[:, k] @ _CODE_VECTORS[code])
        expected += (2**i) * (((world - centre) @ toward) < 0)
    np.testing.assert_array_equal(prediction.label_map, expected)


@pytest.mark.parametrize("name", ["axial", "oblique", "coronal"])
@pytest.mark.parametrize("fields", [
    {"spacing": [1.5, 1.5, 1.5]},
    {"spacing": [1.0, 1.0, 1.5], "size": [32, 48, 64]},
    {"size": [32, 32, 32]},
], ids=["spacing", "spacing+size", "size"])
def test_resampled_segmentation_returns_to_the_original_grid(
    tmp_path: Path, name: str, fields: dict
) -> None:
    """A soft edge (as real models give) is placed to sub-voxel accuracy after resampling."""
    volume, truth = sphere_volume((0.7, 0.9, 2.0), DIRECTIONS[name])
    card = make_card(tmp_path / "m", ThresholdSegmenter(100.0, 0.05), dims=3, **fields)
    prediction = run(card, volume)
    assert prediction.label_map.shape == volume.shape
    assert dice(prediction.label_map == 1, truth) >= 0.98
    centroid = prediction.statistics[1].centroid_lps
    world = patient_coordinates(volume)
    assert np.allclose(centroid, world[truth].mean(axis=0), atol=0.5)


def test_2d_resampling_keeps_the_slices(tmp_path: Path) -> None:
    volume, truth = sphere_volume((0.6, 0.6, 2.0), AXIAL)
    card = make_card(tmp_path / "m", ThresholdSegmenter(100.0, 1.0), dims=2,
                     orientation="PLS", spacing=[1.0, 1.0], size=[64, 64])
    prediction = run(card, volume)
    assert dice(prediction.label_map == 1, truth) >= 0.98
    assert [int(truth[k].any()) for k in range(40)] == [
        int(prediction.label_map[k].any()) for k in range(40)
    ]


def test_sliding_window_matches_the_whole_volume(tmp_path: Path) -> None:
    volume, _ = sphere_volume((0.8, 0.8, 1.5), OBLIQUE)
    card = make_card(tmp_path / "m", ThresholdSegmenter(100.0, 1.0), dims=3,
                     patch_size=[16, 16, 16], overlap=0.5)
    steps = []
    prediction = run_to_end(Runner(card, "cpu", 2).run(volume), steps.append)
    whole = run(make_card(tmp_path / "w", ThresholdSegmenter(100.0, 1.0), dims=3), volume)
    np.testing.assert_array_equal(prediction.label_map, whole.label_map)
    windows = [p for p in steps if "window batch" in p.message]
    assert len(windows) >= 10
    fractions = [p.fraction for p in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_sigmoid_channels_are_independent_labels(tmp_path: Path) -> None:
    volume = noisy_volume()
    labels = {"2": {"name": "bright", "color": "#ff0000"}, "5": {"name": "dim", "color": "#00ff00"}}

    class TwoThresholds(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x - 150.0, 100.0 - x], dim=1)  # label 2: x > 150, label 5: x < 100

    card = make_card(tmp_path / "m", TwoThresholds(), labels=labels, activation="sigmoid")
    label_map = run(card, volume).label_map
    expected = np.where(volume.array > 150, 2, np.where(volume.array < 100, 5, 0))
    np.testing.assert_array_equal(label_map, expected)


def test_postprocess_keeps_the_largest_component(tmp_path: Path) -> None:
    array = np.zeros((8, 20, 20), np.float32)
    array[2:6, 2:10, 2:10] = 200  # big
    array[2:4, 14:16, 14:16] = 200  # small, apart
    card = make_card(tmp_path / "m", ThresholdSegmenter(100.0, 1.0),
                     postprocess=["largest_component"])
    prediction = run(card, make_volume(array))
    expected = np.zeros(array.shape, bool)
    expected[2:6, 2:10, 2:10] = True
    np.testing.assert_array_equal(prediction.label_map == 1, expected)


def test_card_steps_read_the_series_grid_and_values(tmp_path: Path) -> None:
    """``remove_small`` measures mm^3 on the series' own grid; ``mean_between`` averages the
    series' values: a bright speck and a component of the wrong density go, the rest stays."""
    array = np.zeros((8, 20, 20), np.float32)
    array[2:6, 2:10, 2:10] = 200  # 256 voxels, mean 200: kept
    array[2:4, 14:18, 14:18] = 900  # 32 voxels, mean 900: too dense
    array[7, 18, 1] = 200  # 1 voxel: too small
    card = make_card(tmp_path / "m", ThresholdSegmenter(100.0, 1.0), postprocess=[
        {"op": "remove_small", "min_volume_mm3": 5.0},
        {"op": "mean_between", "max": 500},
    ])  # fmt: skip
    volume = make_volume(array)
    voxel_mm3 = abs(np.linalg.det(volume.affine[:3, :3]))
    assert 1 * voxel_mm3 < 5.0 < 32 * voxel_mm3  # the speck is under the bound, the rest above
    prediction = run(card, volume)
    expected = np.zeros(array.shape, bool)
    expected[2:6, 2:10, 2:10] = True
    np.testing.assert_array_equal(prediction.label_map == 1, expected)
    (stats,) = prediction.statistics.values()
    assert len(stats.components) == 1  # the findings table shows only what survived


class SigmoidGain(torch.nn.Module):
    """One sigmoid logit ``gain * (x - threshold)``."""

    def __init__(self, threshold: float, gain: float) -> None:
        super().__init__()
        self.threshold, self.gain = threshold, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * (x[:, :1] - self.threshold)


@pytest.mark.parametrize("spacing", [None, [0.5, 0.5, 0.5]])
def test_max_probability_keeps_the_components_that_reach_it(tmp_path: Path, spacing) -> None:
    """Hysteresis: the threshold (0.5) outlines both blobs, max_probability keeps the one whose
    peak reaches 0.9, whole; on the series grid and on a resampled model grid, inside a
    foreground crop (the probabilities are read where the model ran)."""
    array = np.zeros((10, 40, 40), np.float32)  # the blobs far from the corner: the crop
    array[2:6, 18:25, 18:25] = 105.0  # p = sigmoid(0.2 * 5) = 0.73: outlined
    array[3:5, 20:23, 20:23] = 110.0  # its peak: p = 0.88, a faint blob
    array[2:7, 29:37, 28:36] = 105.0
    array[4, 32:34, 31:33] = 115.0  # its peak: p = 0.95
    extra = {} if spacing is None else {"spacing": spacing}
    card = make_card(tmp_path / "m", SigmoidGain(100.0, 0.2), activation="sigmoid",
                     labels={"3": {"name": "nodule", "color": "#ff3030"}},
                     postprocess={"3": [{"op": "max_probability", "min": 0.9}]},
                     crop_foreground={"threshold": 50, "margin_mm": 2}, **extra)
    volume = make_volume(array, spacing=(0.8, 0.8, 1.5))
    plain = replace(card, output=replace(card.output, postprocess={}))
    outlined = run(plain, volume).label_map == 3
    kept = run(card, volume).label_map == 3
    near_bright = np.zeros(array.shape, bool)  # its box and a voxel around it
    near_bright[1:8, 28:38, 27:37] = True
    assert outlined[3:5, 20:23, 20:23].all() and outlined[3:6, 30:36, 29:35].all()  # both
    assert kept.any()
    np.testing.assert_array_equal(kept, outlined & near_bright)  # the faint one goes, whole


def test_probabilities_on_request(tmp_path: Path) -> None:
    volume = noisy_volume()
    card = make_card(tmp_path / "m", ThresholdSegmenter(100.0, 0.05))
    prediction = run(card, volume, keep_probabilities=True)
    assert prediction.probabilities.shape == (*volume.shape, 2)
    expected = 1 / (1 + np.exp(-0.05 * (volume.array - 100)))
    np.testing.assert_allclose(prediction.probabilities[..., 1], expected, atol=1e-5)
    assert run(card, volume).probabilities is None


# ---------------------------------------------------------------------- classification


@pytest.mark.parametrize("name", ["axial", "feet-first"])
def test_slice_probabilities_follow_the_volume_slices(tmp_path: Path, name: str) -> None:
    """A mean classifier on slices of known means gives sigmoid(gain*(mean-c)) per slice."""
    means = np.array([0, 10, 20, 90, 30, 5], np.float32)
    array = np.broadcast_to(means[:, None, None], (6, 12, 10)).copy()
    volume = make_volume(array, directions=DIRECTIONS[name])
    card = make_card(tmp_path / "m", MeanClassifier(25.0, 0.2), task="classification",
                     dims=2, orientation="PLS", size=[16, 16])
    prediction = run(card, volume)
    expected = 1 / (1 + np.exp(-0.2 * (means - 25.0)))
    assert prediction.slice_axis == 0
    np.testing.assert_allclose(prediction.slice_probabilities[:, 1], expected, atol=1e-5)
    assert prediction.classes["bright"] == pytest.approx(expected.max(), abs=1e-5)
    assert prediction.classes["normal"] == pytest.approx(1 - expected.max(), abs=1e-5)
    assert prediction.decision == ("bright",)


def test_temperature_scales_logits_before_the_activation(tmp_path: Path) -> None:
    """A calibrated card: P = sigmoid(logit / T) per slice and overall; the order of slices
    (and so the decision at 0.5) does not change."""
    means = np.array([0, 10, 20, 90, 30, 5], np.float32)
    array = np.broadcast_to(means[:, None, None], (6, 12, 10)).copy()
    card = make_card(tmp_path / "m", MeanClassifier(25.0, 0.2), task="classification",
                     dims=2, orientation="PLS", size=[16, 16], temperature=2.5)  # fmt: skip
    assert card.output.temperature == 2.5
    prediction = run(card, make_volume(array))
    expected = 1 / (1 + np.exp(-0.2 * (means - 25.0) / 2.5))
    np.testing.assert_allclose(prediction.slice_probabilities[:, 1], expected, atol=1e-5)
    assert prediction.classes["bright"] == pytest.approx(expected.max(), abs=1e-5)
    assert prediction.decision == ("bright",)


def test_platt_bias_is_added_after_the_temperature(tmp_path: Path) -> None:
    """P = sigmoid(logit / T + b1 - b0) per slice and overall; a negative bias can turn the
    decision."""
    means = np.array([0, 10, 20, 90, 30, 5], np.float32)
    array = np.broadcast_to(means[:, None, None], (6, 12, 10)).copy()
    card = make_card(tmp_path / "m", MeanClassifier(25.0, 0.2), task="classification",
                     dims=2, orientation="PLS", size=[16, 16], temperature=2.5,
                     bias=[0.5, -6.0])  # fmt: skip
    assert card.output.bias == (0.5, -6.0)
    prediction = run(card, make_volume(array))
    expected = 1 / (1 + np.exp(-(0.2 * (means - 25.0) / 2.5 - 6.5)))
    np.testing.assert_allclose(prediction.slice_probabilities[:, 1], expected, atol=1e-5)
    assert prediction.classes["bright"] == pytest.approx(expected.max(), abs=1e-5)
    assert expected.max() < 0.5 and prediction.decision == ("normal",)


def test_intensity_ops_apply_in_order(tmp_path: Path) -> None:
    array = np.full((1, 8, 8), 300.0, np.float32)
    array[0, :4] = -1000.0
    ops = [{"op": "clip", "min": -200, "max": 200},
           {"op": "scale_range", "min": -200, "max": 200, "to": [0, 1]},
           {"op": "linear", "scale": 2.0, "offset": -1.0}]
    card = make_card(tmp_path / "m", MeanClassifier(0.0, 3.0), task="classification", dims=2,
                     orientation="PLS", intensity=ops)
    prediction = run(card, make_volume(array, modality="CT"))
    # clip -> {-200, 200}; scale -> {0, 1}; linear -> {-1, 1}; mean 0 -> p = 0.5
    assert prediction.classes["bright"] == pytest.approx(0.5, abs=1e-6)
    assert prediction.slice_probabilities is None  # a single image has no per-slice list


def test_percentile_and_zscore_run_per_slice_for_2d(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    array = rng.normal(size=(3, 16, 16)).astype(np.float32) * np.array([1, 10, 100])[:, None, None]
    card = make_card(tmp_path / "m", MeanClassifier(0.0, 1.0), task="classification", dims=2,
                     orientation="PLS", intensity=[{"op": "zscore"}])
    prediction = run(card, make_volume(array))
    np.testing.assert_allclose(prediction.slice_probabilities[:, 1], 0.5, atol=1e-5)


# ---------------------------------------------------------------------- control and errors


def test_cancel_stops_within_one_batch(tmp_path: Path) -> None:
    volume = noisy_volume(shape=(40, 16, 16))
    card = make_card(tmp_path / "m", ThresholdSegmenter(), dims=2, orientation="PLS")
    steps = Runner(card, "cpu", batch_size=4).run(volume, cancel=lambda: flag.is_set())
    flag = threading.Event()
    seen: list[Progress] = []
    with pytest.raises(CancelledError):
        for progress in steps:
            seen.append(progress)
            if "slice 8/40" in progress.message:
                flag.set()
    assert seen[-1].message == "segmenting slice 8/40"


def test_cancel_stops_a_sliding_window_and_its_thread(tmp_path: Path) -> None:
    volume, _ = sphere_volume((1.0, 1.0, 1.0), AXIAL)
    card = make_card(tmp_path / "m", ThresholdSegmenter(), dims=3, patch_size=[8, 8, 8])
    flag = threading.Event()
    threads = threading.active_count()
    batches = 0
    with pytest.raises(CancelledError):
        for progress in Runner(card, "cpu", 1).run(volume, cancel=flag.is_set):
            if "window batch" in progress.message:
                batches += 1
                flag.set()
    # the first batch's progress is the last: the relay checks the cancel before each one,
    # even when the worker is windows ahead (it was, 20 of them, on a busy CI machine)
    assert batches == 1
    assert threading.active_count() == threads


def test_the_network_is_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medviewer.ai.weights as weights

    card = make_card(tmp_path / "m", ThresholdSegmenter())
    loads = []
    original = weights._LOADERS["torchscript"]
    monkeypatch.setitem(weights._LOADERS, "torchscript",
                        lambda *a: loads.append(1) or original(*a))
    for _ in range(3):
        run(card, noisy_volume())
    assert len(loads) == 1


def test_out_of_memory_halves_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    card = make_card(tmp_path / "m", ThresholdSegmenter(), dims=2, orientation="PLS")
    model = ThresholdSegmenter()
    sizes = []

    def forward(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        if batch.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return model(batch)

    network = Network(forward, None, torch.device("cpu"), "torchscript")
    monkeypatch.setattr("medviewer.ai.runner.load_network", lambda *a: network)
    volume = noisy_volume(shape=(9, 8, 8))
    prediction = run(card, volume, batch_size=8)
    np.testing.assert_array_equal(prediction.label_map, volume.array > 100)
    assert sizes[:3] == [8, 4, 2]
    assert "batch size lowered to 2" in " ".join(prediction.warnings)


def test_wrong_modality_is_refused(tmp_path: Path) -> None:
    card = make_card(tmp_path / "m", ThresholdSegmenter(), modalities=("CT",))
    volume = make_volume(np.zeros((4, 8, 8), np.float32), modality="MR")
    with pytest.raises(InferenceError, match="is for CT images; this series is MR"):
        run(card, volume)


def test_wrong_channel_count_is_refused(tmp_path: Path) -> None:
    card = make_card(tmp_path / "m", ThresholdSegmenter(), dims=2, orientation="PLS")
    rgb = make_volume(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(InferenceError, match=r"expects 1 channel.*colour"):
        run(card, rgb)


def test_wrong_output_channels_is_a_clear_error(tmp_path: Path) -> None:
    labels = {"1": {"name": "a", "color": "#ff0000"}, "2": {"name": "b", "color": "#00ff00"}}
    card = make_card(tmp_path / "m", ThresholdSegmenter(), labels=labels)
    with pytest.raises(InferenceError, match="output has 2 channels, the card expects 3"):
        run(card, noisy_volume())


def test_model_crash_is_an_inference_error(tmp_path: Path) -> None:
    class Fussy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch._assert(x.shape[-1] == 64, "input must be 64 wide")
            return x

    card = make_card(tmp_path / "m", Fussy(), dims=2, orientation="PLS")
    message = r"failed on a \(4, 1, 24, 20\) input: .*must be 64 wide"
    with pytest.raises(InferenceError, match=message):
        run(card, noisy_volume())


def test_3d_model_refuses_a_single_image(tmp_path: Path) -> None:
    card = make_card(tmp_path / "m", ThresholdSegmenter(), dims=3)
    with pytest.raises(InferenceError, match="3D model"):
        run(card, make_volume(np.zeros((1, 8, 8), np.float32)))


def test_unknown_device_is_refused(tmp_path: Path) -> None:
    card = make_card(tmp_path / "m", ThresholdSegmenter())
    with pytest.raises(InferenceError, match="unknown device"):
        run(card, noisy_volume(), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InferenceError, match="no CUDA device"):
            run(card, noisy_volume(), device="cuda")


def test_rotation_helper_is_a_rotation() -> None:
    r = rotation("y", 33)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)


class _ChannelMeans(torch.nn.Module):
    """Per-slice 'probabilities' = the mean of each input channel (activation none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.mark.parametrize("context", [1, 2])
def test_context_slices_stack_neighbours_in_order_with_edges_repeated(tmp_path, context):
    """2.5D: slice k of a PLS model sees slices k-c..k+c as channels (clamped at the ends)."""
    count = 7
    array = np.broadcast_to((np.arange(count) / 100.0)[:, None, None], (count, 6, 5)).copy()
    width = 2 * context + 1
    card = make_card(tmp_path / "m", _ChannelMeans(), task="classification", dims=2,
                     orientation="PLS", activation="none", context_slices=context,
                     classes=[f"c{i}" for i in range(width)])
    prediction = run_to_end(Runner(card, "cpu", batch_size=3).run(make_volume(array)))
    expected = np.array([[min(max(k + j, 0), count - 1) / 100.0 for j in range(-context,
                                                                             context + 1)]
                         for k in range(count)])
    np.testing.assert_allclose(prediction.slice_probabilities, expected, atol=1e-6)


def test_context_slices_only_for_2d_cards(tmp_path):
    from medviewer.core.errors import ModelCardError

    with pytest.raises(ModelCardError, match=r"input\.context_slices: only allowed when dims is 2"):
        make_card(tmp_path / "m", _ChannelMeans(), task="classification", dims=3,
                  activation="none", context_slices=1)
