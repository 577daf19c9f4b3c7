"""The simulated-click protocol: the first click at the object's deepest voxel, the next at the
centre of the largest error region, positive for a miss and negative for an extra."""

from __future__ import annotations

import numpy as np

from medviewer.training.click_eval import ObjectRun, centre_voxel, largest_error, summarise_runs


def test_the_first_click_is_the_deepest_voxel_of_the_object():
    mask = np.zeros((9, 20, 30), bool)
    mask[1:8, 2:18, 3:13] = True  # 7 x 16 x 10 voxels: the thinnest axis bounds the depth
    s, r, c = centre_voxel(mask, np.array([1.0, 1.0, 1.0]))
    assert s == 4 and 5 <= r <= 14 and 6 <= c <= 9  # 3 voxels or more from every side
    s, r, c = centre_voxel(mask, np.array([4.0, 1.0, 1.0]))  # thick slices: columns bound it
    assert c in (7, 8) and 6 <= r <= 13


def test_the_next_click_goes_to_the_largest_error_with_its_sign():
    truth = np.zeros((10, 30, 30), bool)
    truth[2:8, 5:25, 5:25] = True
    prediction = truth.copy()
    prediction[2:8, 5:25, 20:25] = False  # a big miss
    prediction[0:2, 0:3, 0:3] = True  # a small extra
    region, positive = largest_error(prediction, truth)
    assert positive and region.sum() == 6 * 20 * 5
    assert largest_error(truth, truth) is None


def test_runs_are_summarised_per_kind_and_click_over_cases():
    runs = [ObjectRun(0, "nodule", 8.0, (0.8, 0.9), (0.1, 0.1)),
            ObjectRun(1, "nodule", 12.0, (0.6, 0.7), (0.1, 0.3)),
            ObjectRun(1, "lung", 0.0, (0.99, 0.99), (1.0, 1.0))]
    report = summarise_runs(runs, cases=2, clicks=2, engine="classical", seeds="0-1")
    nodule = report["kinds"]["nodule"]
    assert nodule["objects"] == 2
    assert [c["value"] for c in nodule["dice_per_click"]] == [0.7, 0.8]
    assert nodule["min_dice_after_last_click"] == 0.7
    assert report["kinds"]["lung"]["median_seconds_per_click"] == 1.0
