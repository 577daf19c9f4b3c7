"""The model's input: leading pointwise ops once, the rest per sample, slices with context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medviewer.ai.model_card import ModelCard
from medviewer.ai.prepare import ModelInput, prepare_input
from tests.ai.tiny_models import card_dict

CLIP = {"op": "clip", "min": 0, "max": 10}
LINEAR = {"op": "linear", "scale": 2.0, "offset": 1.0}


def card(tmp_path: Path, **fields) -> ModelCard:
    tmp_path.mkdir(parents=True, exist_ok=True)
    weights = tmp_path / "model.ts"
    weights.write_bytes(b"weights")
    return ModelCard.from_dict(card_dict(weights, "torchscript", **fields), "test")


def ramp(shape=(3, 2, 4)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_pointwise_ops_before_the_first_statistical_op_run_once(tmp_path: Path) -> None:
    model = card(tmp_path, intensity=[CLIP, LINEAR, {"op": "zscore"}, LINEAR])
    prepared = prepare_input(ramp(), model)
    expected = np.clip(ramp(), 0, 10) * 2 + 1
    np.testing.assert_allclose(prepared.image.numpy(), expected[None])
    assert [op.op for op in prepared.sample_ops] == ["zscore", "linear"]
    assert type(prepared.image) is torch.Tensor


def test_colour_channels_come_first(tmp_path: Path) -> None:
    rgb = ramp((3, 2, 4, 3))
    prepared = prepare_input(rgb, card(tmp_path, dims=2, orientation="PLS", channels=3))
    assert prepared.spatial == (3, 2, 4)
    np.testing.assert_array_equal(prepared.image.numpy(), np.moveaxis(rgb, -1, 0))


def test_slices_apply_the_remaining_ops_per_slice(tmp_path: Path) -> None:
    image = torch.from_numpy(ramp())[None]  # [1, 3, 2, 4]
    zscore = card(tmp_path, dims=2, orientation="PLS", intensity=[{"op": "zscore"}])
    batch = ModelInput(image, zscore.input.intensity).slices(1, 3)
    assert batch.shape == (2, 1, 3, 2)
    for sample in batch:
        assert abs(float(sample.mean())) < 1e-5 and float(sample.std(correction=0)) > 0.99


def test_context_slices_repeat_the_edges() -> None:
    image = torch.arange(4, dtype=torch.float32).reshape(1, 1, 1, 4)  # slice k holds k
    batch = ModelInput(image, context_slices=1).slices(0, 4)
    assert batch.shape == (4, 3, 1, 1)
    np.testing.assert_array_equal(batch[:, :, 0, 0].numpy(),
                                  [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]])


def test_the_whole_volume_is_one_sample_with_its_ops(tmp_path: Path) -> None:
    model = card(tmp_path, intensity=[{"op": "zscore"}])
    whole = prepare_input(ramp(), model).whole()
    assert whole.shape == (1, 1, 3, 2, 4)
    assert abs(float(whole.mean())) < 1e-5


def test_context_batches_of_colour_slices_match_stacking_by_hand(tmp_path: Path) -> None:
    """Slice k of batch [k0, k1) holds slices k-c..k+c (edges repeated), each with its colour
    channels together, per-slice ops applied to each neighbour: built here slice by slice."""
    rng = np.random.default_rng(5)
    image = torch.from_numpy(rng.normal(size=(3, 5, 4, 9)).astype(np.float32))  # [C, d0, d1, d2]
    ops = card(tmp_path, dims=2, orientation="PLS", channels=3,
               intensity=[{"op": "zscore"}]).input.intensity
    prepared = ModelInput(image, ops, context_slices=2)
    for k0, k1 in [(0, 9), (0, 1), (3, 6), (8, 9)]:
        batch = prepared.slices(k0, k1)
        assert batch.shape == (k1 - k0, 15, 5, 4) and batch.is_contiguous()
        for b, k in enumerate(range(k0, k1)):
            for j, n in enumerate(range(k - 2, k + 3)):
                neighbour = image[..., min(max(n, 0), 8)]
                expected = (neighbour - neighbour.mean()) / neighbour.std(correction=0)
                np.testing.assert_allclose(batch[b, 3 * j : 3 * j + 3].numpy(),
                                           expected.numpy(), rtol=0, atol=1e-5)
