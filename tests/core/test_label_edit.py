"""Brush/eraser voxels and undo/redo on label maps, against hand-computed truth."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.geometry import reslice
from medviewer.core.label_edit import LabelEditHistory, disk_voxels


def _axial_affine(spacing=(1.0, 1.0, 2.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[0, 0], affine[1, 1], affine[2, 2] = spacing
    return affine


def _dab_mask(affine, shape, plane, index, centre, radius) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    view = reslice(labels, affine, plane, index)
    voxels = disk_voxels(view.affine, view.image.shape[:2], affine, shape, centre, radius)
    mask = np.zeros(labels.size, bool)
    mask[voxels] = True
    return mask.reshape(shape)


def test_axial_disk_is_the_voxels_within_the_radius_on_that_slice_only() -> None:
    affine, shape = _axial_affine(), (5, 20, 20)
    centre = np.array([10.0, 8.0, 4.0])  # col 10, row 8, slice 2 (2 mm slices)
    mask = _dab_mask(affine, shape, "axial", 2, centre, 2.0)
    rows, cols = np.mgrid[0:20, 0:20]
    expected = (cols - 10) ** 2 + (rows - 8) ** 2 <= 4
    assert np.array_equal(mask[2], expected)
    assert mask.sum() == expected.sum() == 13
    assert not mask[[0, 1, 3, 4]].any()


def test_anisotropic_pixels_give_an_ellipse_in_voxels() -> None:
    affine, shape = _axial_affine((0.5, 1.0, 1.0)), (3, 20, 20)  # columns 0.5 mm apart
    centre = np.array([5.0, 10.0, 1.0])  # col 10, row 10
    mask = _dab_mask(affine, shape, "axial", 1, centre, 2.0)
    rows, cols = np.mgrid[0:20, 0:20]
    expected = ((cols - 10) * 0.5) ** 2 + (rows - 10) ** 2 <= 4
    assert np.array_equal(mask[1], expected)
    assert mask[1, 10].sum() == 9  # 4 columns each side at 0.5 mm


def test_coronal_disk_lies_in_the_coronal_plane() -> None:
    affine, shape = _axial_affine(), (10, 12, 12)
    centre = np.array([6.0, 5.0, 8.0])  # LPS: col 6, row 5 (y = 5), slice 4 (z = 8)
    index = 5  # coronal index counts along +y: row 5
    mask = _dab_mask(affine, shape, "coronal", index, centre, 2.0)
    s, r, c = np.nonzero(mask)
    assert set(r.tolist()) == {5}  # one coronal plane: the row of the point
    distance = np.hypot((c - 6) * 1.0, (s - 4) * 2.0)
    assert distance.max() <= 2.0
    assert mask.sum() == 7  # cols 4..8 on slice 4, col 6 on slices 3 and 5


def test_strokes_undo_and_redo_exactly() -> None:
    labels = np.zeros((3, 10, 10), np.uint8)
    labels[1, 2:5, 2:5] = 2
    original = labels.copy()
    history = LabelEditHistory()
    flat = np.ravel_multi_index(([1, 1, 1], [3, 3, 6], [3, 4, 6]), labels.shape)
    assert history.dab(labels, flat[:2], 1, erase=False) == 2
    assert history.dab(labels, flat[1:], 1, erase=False) == 1  # already 1 at flat[1]
    assert history.end_stroke(labels)
    painted = labels.copy()
    assert painted[1, 3, 3] == painted[1, 3, 4] == painted[1, 6, 6] == 1
    assert history.undo(labels) and np.array_equal(labels, original)
    assert history.can_redo and not history.can_undo
    assert history.redo(labels) and np.array_equal(labels, painted)
    assert not history.redo(labels)


def test_eraser_clears_only_the_chosen_label() -> None:
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, 0, :] = [1, 2, 1, 0]
    history = LabelEditHistory()
    everything = np.arange(labels.size)
    assert history.dab(labels, everything, 1, erase=True) == 2
    assert labels[0, 0].tolist() == [0, 2, 0, 0]
    assert history.end_stroke(labels)
    history.undo(labels)
    assert labels[0, 0].tolist() == [1, 2, 1, 0]


def test_a_stroke_that_changes_nothing_is_not_an_undo_step() -> None:
    labels = np.ones((1, 2, 2), np.uint8)
    history = LabelEditHistory()
    history.dab(labels, np.arange(4), 1, erase=False)
    assert not history.end_stroke(labels)
    assert not history.can_undo


def test_non_contiguous_label_maps_are_refused() -> None:
    labels = np.zeros((4, 4, 4), np.uint8)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        LabelEditHistory().dab(labels, np.arange(2), 1, erase=False)


def test_changed_labels_follow_strokes_undo_and_redo() -> None:
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, 0, 0] = 3
    history = LabelEditHistory()
    history.dab(labels, np.array([0, 1]), 2, erase=False)  # 3 -> 2 and 0 -> 2
    history.end_stroke(labels)
    assert history.changed_labels == frozenset({2, 3})
    history.dab(labels, np.array([5]), 1, erase=False)
    history.end_stroke(labels)
    assert history.changed_labels == frozenset({1})
    history.undo(labels)
    assert history.changed_labels == frozenset({1})
    history.undo(labels)
    assert history.changed_labels == frozenset({2, 3})
