"""The output rule: channels, probabilities, label maps and class decisions from a card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai.decisions import (
    activate,
    aggregate,
    averaged_slices,
    check_output,
    decide_classes,
    decide_labels,
    expected_channels,
    label_dtype,
    labels_on_cpu,
    target_index,
)
from medviewer.ai.model_card import ModelCard
from medviewer.core.errors import InferenceError
from tests.ai.tiny_models import card_dict

LABELS = {"2": {"name": "liver"}, "5": {"name": "spleen"}, "9": {"name": "kidney"}}
SOFTMAX_LABELS = {"1": {"name": "liver"}, "2": {"name": "spleen"}, "3": {"name": "kidney"}}


def card(tmp_path: Path, **fields) -> ModelCard:
    tmp_path.mkdir(parents=True, exist_ok=True)
    weights = tmp_path / "model.ts"
    weights.write_bytes(b"weights")
    return ModelCard.from_dict(card_dict(weights, "torchscript", **fields), "test")


def probabilities(shape=(4, 6, 5, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def test_softmax_labels_are_the_argmax(tmp_path: Path) -> None:
    segmenter = card(tmp_path, labels=SOFTMAX_LABELS)
    p = probabilities()
    labels = decide_labels(p, segmenter)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, p.argmax(axis=0))


def test_sigmoid_labels_are_the_best_label_over_the_threshold(tmp_path: Path) -> None:
    segmenter = card(tmp_path, labels=LABELS, activation="sigmoid", threshold=0.7)
    p = probabilities(shape=(3, 6, 5, 3))
    expected = np.where(p.max(axis=0) >= 0.7, np.array([2, 5, 9])[p.argmax(axis=0)], 0)
    np.testing.assert_array_equal(decide_labels(p, segmenter), expected)


def test_ties_go_to_the_lower_channel_for_softmax_the_later_for_sigmoid(tmp_path: Path) -> None:
    p = np.array([[0.4, 0.6], [0.4, 0.6], [0.2, 0.6]], np.float32)  # [K=3, 2 voxels]
    softmax = card(tmp_path / "s", labels={"1": {"name": "a"}, "2": {"name": "b"}})
    np.testing.assert_array_equal(decide_labels(p, softmax), [0, 0])
    sigmoid = card(tmp_path / "g", labels=LABELS, activation="sigmoid", threshold=0.5)
    np.testing.assert_array_equal(decide_labels(p, sigmoid), [0, 9])


def test_numpy_tensors_and_channel_streams_decide_alike(tmp_path: Path) -> None:
    p = probabilities(shape=(3, 7, 6, 5), seed=3)
    p[:, 0, 0, 0] = 0.5  # a three-way tie at the threshold
    p[1, 1, 1, 1] = np.nan
    for name, fields in {"softmax": {}, "sigmoid": {"activation": "sigmoid"}}.items():
        segmenter = card(tmp_path / name, labels=LABELS if name == "sigmoid" else
                         {"1": {"name": "a"}, "2": {"name": "b"}}, **fields)
        reference = decide_labels(p, segmenter)
        streamed = decide_labels((channel.copy() for channel in p), segmenter)
        on_torch = decide_labels(torch.from_numpy(p), segmenter)
        np.testing.assert_array_equal(streamed, reference)
        np.testing.assert_array_equal(on_torch.numpy(), reference)
        np.testing.assert_array_equal(labels_on_cpu(torch.from_numpy(p), segmenter), reference)


def test_deciding_leaves_the_probabilities_alone(tmp_path: Path) -> None:
    p = probabilities()
    before = p.copy()
    decide_labels(p, card(tmp_path, labels=SOFTMAX_LABELS))
    np.testing.assert_array_equal(p, before)


def test_labels_above_255_are_uint16(tmp_path: Path) -> None:
    segmenter = card(tmp_path, labels={"300": {"name": "a"}}, activation="sigmoid")
    assert label_dtype(segmenter) is np.uint16
    p = np.array([[0.2, 0.9]], np.float32)
    labels = labels_on_cpu(torch.from_numpy(p), segmenter)
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels, [0, 300])


def test_expected_channels_and_output_checks(tmp_path: Path) -> None:
    segmenter = card(tmp_path / "s", labels=SOFTMAX_LABELS)
    assert expected_channels(segmenter) == (4,)
    check_output(segmenter, (2, 4, 8, 8), dense=True, spatial=(8, 8))
    with pytest.raises(InferenceError, match="does not match its input grid"):
        check_output(segmenter, (2, 4, 8, 7), dense=True, spatial=(8, 8))
    with pytest.raises(InferenceError, match="output has 3 channels, the card expects 4"):
        check_output(segmenter, (2, 3, 8, 8), dense=True, spatial=(8, 8))
    binary = card(tmp_path / "c", task="classification", activation="sigmoid")
    assert expected_channels(binary) == (2, 1)
    check_output(binary, (1, 1, 1, 1), dense=False, spatial=())
    with pytest.raises(InferenceError, match=r"must output \[batch, classes\]"):
        check_output(binary, (1, 2, 4), dense=False, spatial=())


def test_one_sigmoid_output_of_two_classes_becomes_two_probabilities(tmp_path: Path) -> None:
    binary = card(tmp_path, task="classification", activation="sigmoid")
    p = activate(torch.zeros(3, 1, 1, 1), binary, dense=False)
    np.testing.assert_allclose(p.numpy(), np.full((3, 2), 0.5))


def test_class_decisions(tmp_path: Path) -> None:
    binary = card(tmp_path / "b", task="classification", threshold=0.7)
    assert decide_classes(np.array([0.35, 0.65]), binary) == ("normal",)
    assert decide_classes(np.array([0.3, 0.7]), binary) == ("bright",)
    three = ["normal", "a", "b"]
    multi = card(tmp_path / "m", task="classification", classes=three, activation="sigmoid")
    assert decide_classes(np.array([0.1, 0.6, 0.5]), multi) == ("a", "b")
    exclusive = card(tmp_path / "x", task="classification", classes=three)
    assert decide_classes(np.array([0.1, 0.3, 0.6]), exclusive) == ("b",)


def test_series_probabilities_take_the_least_normal_and_the_most_of_the_rest() -> None:
    per_slice = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(aggregate(per_slice), [0.2, 0.8])
    np.testing.assert_allclose(aggregate(per_slice[:1]), [0.9, 0.1])


def test_target_index(tmp_path: Path) -> None:
    classifier = card(tmp_path, task="classification", classes=["normal", "a", "b"])
    overall = np.array([0.1, 0.3, 0.6])
    assert target_index(classifier, overall, None) == 2
    assert target_index(classifier, overall, "a") == 1
    assert target_index(classifier, overall, 0) == 0
    with pytest.raises(InferenceError, match="unknown class 'c'"):
        target_index(classifier, overall, "c")
    with pytest.raises(InferenceError, match=r"out of range 0\.\.2"):
        target_index(classifier, overall, 3)


def test_a_series_needs_consecutive_slices_when_the_card_says_so():
    """Three slices in a row at 0.7 or more beat one isolated slice at 0.95 (a vessel's
    cross-section): the series probability is what 3 consecutive slices all reach."""
    nodule = np.array([0.1, 0.95, 0.1, 0.1, 0.7, 0.8, 0.75, 0.2])
    per_slice = np.stack([1 - nodule, nodule], axis=1)
    np.testing.assert_allclose(aggregate(per_slice), [0.05, 0.95])
    np.testing.assert_allclose(aggregate(per_slice, consecutive=3), [0.3, 0.7])
    np.testing.assert_allclose(aggregate(per_slice, consecutive=2), [0.25, 0.75])
    np.testing.assert_allclose(aggregate(per_slice[:2], consecutive=3), [0.9, 0.1])  # one run
    assert aggregate(per_slice, consecutive=3).sum() == pytest.approx(1.0)


def test_slice_probabilities_averaged_with_their_neighbours():
    nodule = np.array([0.0, 0.9, 0.3, 0.0])
    per_slice = np.stack([1 - nodule, nodule], axis=1).astype(np.float32)
    averaged = averaged_slices(per_slice, 1)
    np.testing.assert_allclose(averaged[:, 1], [0.3, 0.4, 0.4, 0.1], atol=1e-6)  # ends repeat
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-6)
    assert averaged.dtype == np.float32
    assert averaged_slices(per_slice, 0) is per_slice
