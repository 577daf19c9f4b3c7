"""How the cards' ``largest_component`` and ``fill_holes`` differ from MONAI's transforms.

docs/models.md ("Post-processing compared with MONAI's transforms") states the differences;
each case here is one of them, with both results written out. medviewer's side always runs.
MONAI's side needs scikit-image (``KeepLargestConnectedComponent``) and SciPy
(``FillHoles``), which medviewer does not depend on, and is skipped without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from medviewer.ai.statistics import fill_holes, keep_largest_component, postprocess_labels


@dataclass(frozen=True)
class Case:
    """`labels` through medviewer's `op` on `label`, and through MONAI's transform."""

    name: str
    op: str  # "largest_component" or "fill_holes"
    labels: np.ndarray
    label: int
    ours: np.ndarray
    monai: np.ndarray  # MONAI's transform with `monai_kwargs` (its defaults when empty)
    monai_kwargs: dict[str, Any] = field(default_factory=dict)


def _diagonal_chain() -> Case:
    labels = np.zeros((1, 5, 5), np.uint8)
    labels[0, 0:2, 0:2] = 1  # a 2x2 block (4 voxels)
    labels[0, 2, 2] = labels[0, 3, 3] = labels[0, 4, 4] = 1  # a chain touching it by corners
    block = labels.copy()
    block[0, 2:, 2:] = 0
    # MONAI's connectivity=None is full connectivity (8 in 2D, 26 in 3D): one component of 7.
    return Case("connectivity", "largest_component", labels, 1, ours=block, monai=labels)


def _tie() -> Case:
    labels = np.array([[[1, 0, 0, 0, 1]]], np.uint8)
    first, last = labels.copy(), labels.copy()
    first[0, 0, 4] = 0
    last[0, 0, 0] = 0
    return Case("tie", "largest_component", labels, 1, ours=first, monai=last)


def _other_label_in_a_hole() -> Case:
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[:] = 1
    labels[1:4, 1:4, 1:4] = 0  # a closed cavity...
    labels[2, 2, 2] = 3  # ...around a nodule
    ours = np.ones_like(labels)
    ours[2, 2, 2] = 3
    return Case("other label in a hole", "fill_holes", labels, 1, ours=ours,
                monai=np.ones_like(labels), monai_kwargs={"applied_labels": [1]})  # fmt: skip


def _hole_open_by_an_edge() -> Case:
    labels = np.zeros((5, 5, 5), np.uint8)
    for offset in np.concatenate([np.eye(3, dtype=int), -np.eye(3, dtype=int)]):
        labels[tuple(np.array([2, 2, 2]) + offset)] = 1  # the six face neighbours of the centre
    filled = labels.copy()
    filled[2, 2, 2] = 1
    # The centre reaches the border through its edge neighbours: a hole for face-connected
    # background (medviewer), not for MONAI's default full connectivity.
    return Case("background connectivity", "fill_holes", labels, 1, ours=filled, monai=labels)


def _single_slice_ring() -> Case:
    labels = np.zeros((1, 7, 7), np.uint8)
    labels[0, 1:6, 1:6] = 2
    labels[0, 2:5, 2:5] = 0
    filled = labels.copy()
    filled[0, 2:5, 2:5] = 2
    # MONAI sees a (1, 7, 7) volume in 3D: every voxel touches the border along the slices.
    return Case("single slice", "fill_holes", labels, 2, ours=filled, monai=labels,
                monai_kwargs={"applied_labels": [2]})  # fmt: skip


DIFFERENCES = [_diagonal_chain(), _tie(), _other_label_in_a_hole(), _hole_open_by_an_edge(),
               _single_slice_ring()]  # fmt: skip


def _monai(op: str, **kwargs: Any) -> Callable[[np.ndarray], np.ndarray]:
    """MONAI's transform for `op`, on a label map without its channel axis (never modified)."""
    pytest.importorskip("skimage.measure" if op == "largest_component" else "scipy.ndimage")
    from monai.transforms import FillHoles, KeepLargestConnectedComponent

    transform = (KeepLargestConnectedComponent if op == "largest_component" else FillHoles)(
        **kwargs
    )
    # MONAI's transforms write into a NumPy input: give them a copy.
    return lambda labels: np.asarray(transform(labels.copy()[None]))[0]


@pytest.mark.parametrize("case", DIFFERENCES, ids=lambda case: case.name)
def test_medviewer_side_of_each_difference(case: Case) -> None:
    out = postprocess_labels(case.labels, {case.label: [case.op]})
    np.testing.assert_array_equal(out, case.ours)
    assert not np.array_equal(case.ours, case.monai)


@pytest.mark.parametrize("case", DIFFERENCES, ids=lambda case: case.name)
def test_monai_side_of_each_difference(case: Case) -> None:
    monai = _monai(case.op, **case.monai_kwargs)
    np.testing.assert_array_equal(monai(case.labels), case.monai)


def _existing_cases() -> list[tuple[str, np.ndarray, int]]:
    """The label maps of tests/ai/test_statistics.py's post-processing tests, no label inside
    another's hole."""
    blobs = np.zeros((6, 8, 8), np.uint8)
    blobs[0:3, 0:3, 0:3] = 1
    blobs[5, 7, 7] = blobs[4, 4, 4] = blobs[3, 3, 3] = 1
    blobs[4:6, 0:2, 5:8] = 2
    s, r, c = np.indices((16, 16, 16)) - 8
    d2 = s * s + r * r + c * c
    sphere = ((d2 <= 36) & (d2 > 9)).astype(np.uint8)
    cup = np.zeros((10, 10, 10), np.uint8)
    cup[2:10, 2:8, 2:8] = 1
    cup[3:10, 3:7, 3:7] = 0
    closed = np.zeros((12, 10, 10), np.uint8)
    closed[:10] = cup
    closed[9, 2:8, 2:8] = 1
    return [("blobs", blobs, 1), ("blobs", blobs, 2), ("hollow sphere", sphere, 1),
            ("open cup", cup, 1), ("closed cup", closed, 1)]  # fmt: skip


@pytest.mark.parametrize(
    "labels, label",
    [(labels, label) for _, labels, label in _existing_cases()],
    ids=[f"{name}, label {label}" for name, _, label in _existing_cases()],
)
def test_monai_with_face_connectivity_agrees_elsewhere(labels, label) -> None:
    """MONAI's transforms with ``connectivity=1`` and ``applied_labels=[label]`` give
    medviewer's results on 3D maps with a unique largest component and no label in a hole."""
    largest = _monai("largest_component", applied_labels=[label], connectivity=1)
    np.testing.assert_array_equal(largest(labels), keep_largest_component(labels, label))
    full = _monai("largest_component", applied_labels=[label])
    np.testing.assert_array_equal(
        full(labels), keep_largest_component(labels, label, fully_connected=True)
    )
    holes = _monai("fill_holes", applied_labels=[label], connectivity=1)
    np.testing.assert_array_equal(holes(labels), fill_holes(labels, label))
