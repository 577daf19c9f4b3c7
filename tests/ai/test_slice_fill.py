"""Fill between slices: the slices between drawn ones get the shape between theirs (known
geometry: concentric disks, in mm on anisotropic pixels), the drawn slices stay as drawn,
nothing is added beyond the first and last drawn slice; the contour method when ITK's module
is installed; and the evaluation's drawing of every n-th slice."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.slice_fill import available_methods, drawn_slices, fill_between_slices
from medviewer.training.fill_eval import drawn_every, fill_dice


def disk(shape, centre, radius_mm, spacing) -> np.ndarray:
    rows, cols = np.indices(shape)
    return ((rows - centre[0]) * spacing[0]) ** 2 + ((cols - centre[1]) * spacing[1]) ** 2 \
        <= radius_mm**2


def test_distance_fill_blends_the_drawn_outlines_in_mm():
    spacing = (2.0, 0.5, 1.0)  # slice, row, col (mm): anisotropic in plane too
    mask = np.zeros((14, 80, 100), dtype=bool)
    mask[2] = disk(mask.shape[1:], (40, 50), 6.0, spacing[1:])
    mask[12] = disk(mask.shape[1:], (40, 50), 16.0, spacing[1:])
    before = mask.copy()
    filled = fill_between_slices(mask, 0, spacing, "distance")
    assert np.array_equal(mask, before)  # the input is not modified
    assert np.array_equal(filled[[2, 12]], before[[2, 12]])
    assert not filled[:2].any() and not filled[13:].any()
    for k in range(3, 12):
        radius = 6.0 + (16.0 - 6.0) * (k - 2) / 10
        expected = disk(mask.shape[1:], (40, 50), radius, spacing[1:])
        # a disk of this radius, to within one pixel along its edge
        assert (filled[k] ^ expected).sum() <= 2 * np.pi * radius / 0.5 * 0.6, k
        # its equivalent radius within a third of the coarser pixel (1 mm)
        equivalent = np.sqrt(filled[k].sum() * 0.5 * 1.0 / np.pi)
        assert equivalent == pytest.approx(radius, abs=0.35), k


def test_fill_across_another_axis_and_with_too_few_slices():
    mask = np.zeros((20, 30, 40), dtype=bool)
    mask[5:15, 10:20, 3] = True
    mask[5:15, 10:20, 30] = True
    filled = fill_between_slices(mask, 2, (1.0, 1.0, 1.0), "distance")
    assert filled[5:15, 10:20, 3:31].all() and filled.sum() == 10 * 10 * 28
    one = np.zeros_like(mask)
    one[5:15, 10:20, 3] = True
    assert np.array_equal(fill_between_slices(one, 2, (1.0, 1.0, 1.0)), one)
    with pytest.raises(ValueError, match="unknown fill method"):
        fill_between_slices(mask, 0, (1.0, 1.0, 1.0), "spline")


@pytest.mark.skipif("contour" not in available_methods(),
                    reason="ITK's MorphologicalContourInterpolation is not installed")
def test_contour_fill_keeps_a_constant_section():
    mask = np.zeros((12, 40, 40), dtype=bool)
    mask[1, 10:25, 12:30] = True
    mask[10, 10:25, 12:30] = True
    filled = fill_between_slices(mask, 0, (1.0, 1.0, 1.0), "contour")
    assert all(np.array_equal(filled[k], mask[1]) for k in range(1, 11))
    assert not filled[0].any() and not filled[11].any()


def test_the_evaluation_draws_every_nth_slice_and_scores_the_filled_ones():
    spacing = np.array([1.0, 0.7, 0.7])
    truth = np.zeros((30, 60, 60), dtype=bool)
    for k in range(5, 26):  # a cylinder: every method should fill it exactly
        truth[k] = disk((60, 60), (30, 30), 8.0, spacing[1:])
    drawn = drawn_every(truth, 4)
    assert drawn_slices(drawn, 0).tolist() == [5, 9, 13, 17, 21, 25]
    assert fill_dice(truth, spacing, 4.0, "distance") == pytest.approx(1.0)


def test_the_contour_method_is_offered_when_its_itk_module_is_on_disk(tmp_path, monkeypatch):
    """Found from the files ITK's package installs, without importing ITK."""
    import sys

    config = tmp_path / "itk" / "Configuration"
    config.mkdir(parents=True)
    (tmp_path / "itk" / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "itk", raising=False)
    assert available_methods() == ("distance",)  # ITK without the contour module
    (config / "MorphologicalContourInterpolationConfig.py").write_text("")
    assert available_methods() == ("distance", "contour")
    assert "itk" not in sys.modules
