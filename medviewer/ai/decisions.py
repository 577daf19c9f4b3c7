"""From a network's raw output to what a prediction reports: probabilities, labels, classes.

The card's output rule lives here once: which channels a network must output
(:func:`expected_channels`, :func:`check_output`), how raw outputs become probabilities
(:func:`activate`), how per-channel probabilities become a label map (:func:`decide_labels`,
for numpy arrays and torch tensors alike) and how class probabilities become a decision
(:func:`aggregate`, :func:`decide_classes`, :func:`target_index`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from medviewer.ai.model_card import ModelCard
from medviewer.core.errors import InferenceError

if TYPE_CHECKING:
    import torch

Probabilities = TypeVar("Probabilities", np.ndarray, "torch.Tensor")


def expected_channels(card: ModelCard) -> tuple[int, ...]:
    """Output channel counts the card allows (the first is the canonical one)."""
    out = card.output
    if card.task == "segmentation":
        return (len(out.labels) + (0 if out.activation == "sigmoid" else 1),)
    if out.activation == "sigmoid" and len(out.classes) == 2:
        return (2, 1)
    return (len(out.classes),)


def check_output(
    card: ModelCard, shape: tuple[int, ...], *, dense: bool, spatial: tuple[int, ...]
) -> None:
    """Raise InferenceError unless a raw output of `shape` suits the card.

    Parameters
    ----------
    card : ModelCard
    shape : tuple of int
        The output's shape, ``[B, K, *spatial]`` (dense) or ``[B, classes(, 1...)]``.
    dense : bool
        True for a segmenter's per-voxel output.
    spatial : tuple of int
        The input's spatial shape, which a dense output must keep.
    """
    if dense and (len(shape) != 2 + len(spatial) or shape[2:] != spatial):
        raise InferenceError(
            f"{card.name}: output shape {shape} does not match its input grid {spatial}"
        )
    if not dense and (len(shape) < 2 or any(n != 1 for n in shape[2:])):
        raise InferenceError(f"{card.name}: a classifier must output [batch, classes], "
                             f"got {shape}")
    expected = expected_channels(card)
    if shape[1] not in expected:
        raise InferenceError(
            f"{card.name}: output has {shape[1]} channels, the card expects "
            f"{' or '.join(str(n) for n in expected)}"
        )


def activate(output: torch.Tensor, card: ModelCard, *, dense: bool) -> torch.Tensor:
    """Probabilities from raw outputs: ``[B, K, ...]`` (dense) or ``[B, classes]``."""
    import torch

    if not dense:
        output = output.reshape(output.shape[0], output.shape[1])
    if card.output.temperature != 1.0:
        output = output / card.output.temperature  # calibrated (temperature scaling)
    if card.output.bias and not dense:  # Platt scaling: a per-class offset after T
        output = output + torch.tensor(card.output.bias, dtype=output.dtype,
                                       device=output.device)
    activation = card.output.activation
    if activation == "softmax":
        return torch.softmax(output, dim=1)
    if activation == "sigmoid":
        probabilities = torch.sigmoid(output)
        if not dense and output.shape[1] == 1 and len(card.output.classes) == 2:
            return torch.cat([1 - probabilities, probabilities], dim=1)
        return probabilities
    return output


def label_dtype(card: ModelCard) -> type[np.unsignedinteger]:
    """The smallest unsigned dtype that holds the card's labels."""
    return np.uint8 if max(card.output.labels) < 256 else np.uint16


def decide_labels(channels: Iterable[Probabilities], card: ModelCard) -> Probabilities:
    """A label map from per-channel probabilities, channel by channel.

    softmax (and no activation): the label is the index of the most probable channel (channel
    0 is the background; ties go to the lower channel). sigmoid: the label is the card's label
    of the most probable channel at or above the threshold (ties go to the later channel),
    0 where none reaches it.

    Parameters
    ----------
    channels : iterable of numpy.ndarray or torch.Tensor
        The K channels in order, each of the label map's shape; a ``[K, ...]`` array iterates
        as such, a generator may resample each channel just before it is used.
    card : ModelCard

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Labels of :func:`label_dtype` (numpy) or uint8/int32 (torch, on the channels' device).
        One pass per channel: on the CPU ~10x faster than an argmax over a leading dim.
    """
    sigmoid = card.output.activation == "sigmoid"
    order = sorted(card.output.labels)
    threshold = card.output.threshold
    labels: Any = None
    best: Any = None
    for channel, value in enumerate(channels):
        if best is None:
            labels = _zero_labels(value, card)
            if sigmoid:
                labels[value >= threshold] = order[0]
            best = value.clip(min=threshold) if sigmoid else _copy(value)
            continue
        wins = value >= best if sigmoid else value > best
        labels[wins] = order[channel] if sigmoid else channel
        _maximum_into(best, value)
    if labels is None:
        raise ValueError("decide_labels needs at least one channel")
    return labels


def labels_on_cpu(probabilities: torch.Tensor, card: ModelCard) -> np.ndarray:
    """:func:`decide_labels` of ``[K, ...]`` probabilities on their device, as a numpy array."""
    if probabilities.device.type == "cpu":
        return decide_labels(probabilities.numpy(), card)
    labels = decide_labels(probabilities, card).cpu().numpy()
    return labels.astype(label_dtype(card), copy=False)


def _zero_labels(like: Any, card: ModelCard) -> Any:
    dtype = label_dtype(card)
    if isinstance(like, np.ndarray):
        return np.zeros(like.shape, dtype)
    import torch

    torch_dtype = torch.uint8 if dtype is np.uint8 else torch.int32
    return torch.zeros(like.shape, dtype=torch_dtype, device=like.device)


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value.clone()


def _maximum_into(best: Any, value: Any) -> None:
    if isinstance(best, np.ndarray):
        np.maximum(best, value, out=best)
        return
    import torch

    torch.maximum(best, value, out=best)


def aggregate(per_sample: np.ndarray, consecutive: int = 1) -> np.ndarray:
    """Series-level probabilities: each finding class the highest value `consecutive`
    neighbouring samples all reach (1: the maximum), the first (reference) class the lowest
    value such a run stays under (1: the minimum), so two classes still sum to 1.

    Fewer samples than `consecutive` count as one run of them all.
    """
    if per_sample.shape[0] == 1:
        return per_sample[0]
    run = max(1, min(int(consecutive), per_sample.shape[0]))
    if run == 1:
        overall = per_sample.max(axis=0)
        overall[0] = per_sample[:, 0].min()
        return overall
    windows = np.lib.stride_tricks.sliding_window_view(per_sample, run, axis=0)  # [n-run+1, K, run]
    overall = windows.min(axis=2).max(axis=0)
    overall[0] = windows[:, 0, :].max(axis=1).min()
    return overall


def averaged_slices(per_sample: np.ndarray, each_side: int) -> np.ndarray:
    """Each sample's probabilities averaged with `each_side` neighbours on each side (the
    ends repeat the first and last sample), so they still sum to 1 per sample."""
    if each_side <= 0 or per_sample.shape[0] <= 1:
        return per_sample
    width = 2 * each_side + 1
    padded = np.concatenate([np.repeat(per_sample[:1], each_side, axis=0), per_sample,
                             np.repeat(per_sample[-1:], each_side, axis=0)])  # fmt: skip
    summed = np.cumsum(np.concatenate([np.zeros_like(padded[:1]), padded]), axis=0,
                       dtype=np.float64)  # fmt: skip
    return ((summed[width:] - summed[:-width]) / width).astype(per_sample.dtype)


#: A slice-by-slice heatmap covers at least this many slices (the most probable ones).
EXPLAINED_MINIMUM = 8


def explained_slices(
    scores: np.ndarray, threshold: float, minimum: int = EXPLAINED_MINIMUM
) -> np.ndarray:
    """The slices a 2D classifier's heatmap is computed on: where the explained class is called.

    Grad-CAM costs a forward and a backward pass per slice, about three times the
    classification, and on a slice the model does not call it shows nothing a reader needs.
    So the slices whose probability reaches `threshold` are explained, and at least the
    `minimum` most probable ones (a negative series still shows where the model looked
    hardest).

    Parameters
    ----------
    scores : numpy.ndarray
        Per slice, the explained class's probability.
    threshold : float
    minimum : int, optional

    Returns
    -------
    numpy.ndarray
        bool per slice.
    """
    scores = np.asarray(scores)
    chosen = scores >= threshold
    if int(chosen.sum()) < minimum:
        chosen[np.argsort(-scores, kind="stable")[:minimum]] = True
    return chosen


def decide_classes(overall: np.ndarray, card: ModelCard) -> tuple[str, ...]:
    """The classes called positive from series-level probabilities.

    Of two classes the second when it reaches the threshold, else the first; of more, those
    at or above the threshold (sigmoid) or the most probable one.
    """
    names = card.output.classes
    if len(names) == 2:
        return (names[1],) if overall[1] >= card.output.threshold else (names[0],)
    if card.output.activation == "sigmoid":
        return tuple(n for n, p in zip(names, overall, strict=True) if p >= card.output.threshold)
    return (names[int(np.argmax(overall))],)


def target_index(card: ModelCard, overall: np.ndarray, target: str | int | None) -> int:
    """The index of the class Grad-CAM explains.

    `target` is a class name or index; None picks the most probable class other than the
    first (reference) one, or the only class of a one-class model.
    """
    names = card.output.classes
    if target is None:
        return 0 if len(names) == 1 else 1 + int(np.argmax(overall[1:]))
    if isinstance(target, str):
        if target not in names:
            raise InferenceError(f"unknown class {target!r}: the model has {', '.join(names)}")
        return names.index(target)
    if not 0 <= target < len(names):
        raise InferenceError(f"class index {target} out of range 0..{len(names) - 1}")
    return int(target)
