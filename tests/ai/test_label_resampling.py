"""Labels decided on the volume grid: interpolating only mixed cells equals resampling all."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medviewer.ai.decisions import decide_labels
from medviewer.ai.label_resampling import labels_on_volume
from medviewer.ai.transforms import model_grid_for

SHAPE = (23, 41, 37)  # slices, rows, cols


def _affine(spacing=(0.7, 0.8, 1.5), oblique: bool = False) -> np.ndarray:
    directions = np.eye(3)
    if oblique:  # rotated 20 degrees about the row axis, then mirrored along the slice axis
        t = np.deg2rad(20.0)
        directions = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
        directions[:, 2] *= -1
    affine = np.eye(4)
    affine[:3, :3] = directions * np.asarray(spacing)
    affine[:3, 3] = (-12.0, 30.5, 7.25)
    return affine


def _card(activation: str, channels: int, threshold: float = 0.5) -> SimpleNamespace:
    """What decide_labels reads of a card: softmax channel 0 is the background."""
    count = channels - 1 if activation == "softmax" else channels
    labels = {k: None for k in range(1, count + 1)}
    return SimpleNamespace(output=SimpleNamespace(activation=activation, labels=labels,
                                                  threshold=threshold))


def _probabilities(shape, channels: int, activation: str, seed: int) -> np.ndarray:
    """Smooth random fields (sums of waves): many label edges, no exact ties."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    fields = []
    for _ in range(channels):
        field = np.zeros(shape)
        for _ in range(3):
            k = rng.normal(0.0, 0.35, 3)
            phase = sum(a * g for a, g in zip(k, grids, strict=True))
            field += rng.uniform(0.5, 2.0) * np.sin(phase + rng.uniform(0, 2 * np.pi))
        fields.append(field)
    stacked = np.stack(fields)
    if activation == "softmax":
        e = np.exp(stacked - stacked.max(axis=0))
        return (e / e.sum(axis=0)).astype(np.float32)
    return (1.0 / (1.0 + np.exp(-stacked))).astype(np.float32)


GRIDS = {
    "3D down to 2.5 mm": dict(dims=3, orientation="PLS", spacing=[2.5, 2.5, 2.5], size=None),
    "3D up to 0.5 mm, oblique RAS": dict(dims=3, orientation="RAS", spacing=[0.5, 0.6, 0.9],
                                         size=None, oblique=True),
    "2D slices at 1.25 mm": dict(dims=2, orientation="PLS", spacing=[1.25, 1.25], size=None),
    "3D resized to 16 x 20 x 12": dict(dims=3, orientation="LPS", spacing=None,
                                       size=[16, 20, 12]),
}


@pytest.mark.parametrize("activation,channels", [("softmax", 3), ("sigmoid", 2),
                                                  ("sigmoid", 1)])
@pytest.mark.parametrize("name", list(GRIDS))
def test_mixed_cells_only_equals_resampling_every_channel(name, activation, channels) -> None:
    options = dict(GRIDS[name])
    affine = _affine(oblique=options.pop("oblique", False))
    grid = model_grid_for(affine, SHAPE, SimpleNamespace(**options))
    assert grid.resampled
    card = _card(activation, channels)
    probabilities = _probabilities(grid.shape, channels, activation, seed=len(name) + channels)

    def decide(values):
        return decide_labels(values, card)

    reference = decide_labels([grid.to_volume(c, linear=True) for c in probabilities], card)
    fast = labels_on_volume(grid, probabilities, decide)
    assert fast.shape == SHAPE and fast.dtype == reference.dtype
    assert len(np.unique(reference)) >= 2  # edges to get right
    assert np.array_equal(fast, reference), int((fast != reference).sum())


def test_without_resampling_the_labels_are_permuted_back_exactly() -> None:
    affine = _affine(spacing=(1.0, 1.0, 1.0), oblique=True)
    spec = SimpleNamespace(dims=3, orientation="RAS", spacing=None, size=None)
    grid = model_grid_for(affine, SHAPE, spec)
    assert not grid.resampled
    card = _card("softmax", 3)
    probabilities = _probabilities(grid.shape, 3, "softmax", seed=1)
    expected = grid.to_volume(decide_labels(probabilities, card), linear=False)
    fast = labels_on_volume(grid, probabilities, lambda v: decide_labels(v, card))
    assert np.array_equal(fast, expected)


def test_cancel_is_checked_while_interpolating() -> None:
    grid = model_grid_for(_affine(), SHAPE, SimpleNamespace(**GRIDS["3D down to 2.5 mm"]))
    card = _card("softmax", 3)
    probabilities = _probabilities(grid.shape, 3, "softmax", seed=2)

    class Stop(Exception):
        pass

    def cancel() -> None:
        raise Stop

    with pytest.raises(Stop):
        labels_on_volume(grid, probabilities, lambda v: decide_labels(v, card), cancel)


@pytest.mark.parametrize("dims", [2, 3])
def test_a_single_slice_series(dims) -> None:
    """A radiograph-like series: one voxel along the slice axis, a cell of one voxel there."""
    shape = (1, 41, 37)
    spacing = [1.25, 1.25] if dims == 2 else [1.25, 1.25, 1.0]
    grid = model_grid_for(_affine(), shape,
                          SimpleNamespace(dims=dims, orientation="PLS", spacing=spacing, size=None))
    assert grid.resampled and 1 in grid.shape
    card = _card("softmax", 3)
    probabilities = _probabilities(grid.shape, 3, "softmax", seed=5)
    reference = decide_labels([grid.to_volume(c, linear=True) for c in probabilities], card)
    fast = labels_on_volume(grid, probabilities, lambda v: decide_labels(v, card))
    assert fast.shape == shape and len(np.unique(reference)) >= 2
    assert np.array_equal(fast, reference)
