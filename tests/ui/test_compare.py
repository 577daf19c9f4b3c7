"""Comparing two studies in the grid: registration in a worker links the prior so scrolling
the current study brings the prior to the same anatomy; windows follow between different
series and not between two views of one series."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.viewstate import plane_index_of
from medviewer.ui.compare_controller import CompareController
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.viewer_grid import ViewerGrid
from tests.core.test_registration import moved_pair
from tests.waits import WAIT_MS


def _grid(qtbot) -> ViewerGrid:
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.resize(900, 450)
    grid.set_layout("1x2")
    grid.show()
    return grid


def test_registration_links_the_prior_to_the_same_anatomy(qtbot) -> None:
    grid = _grid(qtbot)
    current, prior, truth = moved_pair()
    grid.show_series(OpenSeries("current", current), grid.views[0])
    grid.show_series(OpenSeries("prior", prior), grid.views[1])
    compare = CompareController(grid)
    messages: list[str] = []
    compare.statusMessage.connect(lambda text, _ms: messages.append(text))
    job = compare.register()
    qtbot.waitUntil(lambda: job.done, timeout=WAIT_MS)
    assert grid.comparison.map.method == "registration"
    assert "Registered (rigid): rotation" in messages[-1] and "Mattes MI" in messages[-1]
    left, right = grid.views
    for index in (10, 20, 28):
        left.set_index(index)
        rows, cols = left.plane_slice.image.shape
        centre = (left.plane_slice.affine @ np.array([(cols - 1) / 2, (rows - 1) / 2, 0, 1]))[:3]
        assert right.state.index == plane_index_of(prior, "axial", truth.apply(centre))


def test_windows_follow_between_different_series_only(qtbot) -> None:
    grid = _grid(qtbot)
    current, prior, _truth = moved_pair()
    series = OpenSeries("current", current)
    grid.show_series(series, grid.views[0])
    grid.show_series(OpenSeries("prior", prior), grid.views[1])
    left, right = grid.views
    left.set_window(-600, 1500)
    assert right.state.linear_window == (-600, 1500)
    grid.show_series(series, right)  # one series in both: lung | mediastinum stays
    right.set_window(50, 350)
    left.set_window(-600, 1500)
    assert right.state.linear_window == (50, 350)
    left.set_index(12)
    assert right.state.index == 12  # but scrolling follows


def test_link_at_the_crosshairs(qtbot) -> None:
    grid = _grid(qtbot)
    current, prior, _truth = moved_pair()
    grid.show_series(OpenSeries("current", current), grid.views[0])
    grid.show_series(OpenSeries("prior", prior), grid.views[1])
    compare = CompareController(grid)
    assert compare.link_at_crosshairs() is None  # no crosshair yet
    grid.views[0].crosshair_point = np.array([25.0, -10.0, 12.0])
    grid.views[1].crosshair_point = np.array([34.0, -16.0, 16.0])
    link = compare.link_at_crosshairs()
    assert link.translation == (9.0, -6.0, 4.0)


def test_zoom_and_pan_follow_through_the_link(qtbot) -> None:
    grid = _grid(qtbot)
    current, prior, _truth = moved_pair()
    grid.show_series(OpenSeries("current", current), grid.views[0])
    grid.show_series(OpenSeries("prior", prior), grid.views[1])
    from medviewer.core.registration import RigidMap

    grid.set_link(RigidMap(translation=(9.0, -6.0, 4.0)))
    left, right = grid.views
    left.zoom_by(2.0)
    rect_left, rect_right = left.viewbox.viewRect(), right.viewbox.viewRect()
    assert rect_right.width() == pytest.approx(rect_left.width(), rel=1e-6)
    centre = left.view_to_patient(rect_left.center().x(), rect_left.center().y())
    shown = right.view_to_patient(rect_right.center().x(), rect_right.center().y())
    np.testing.assert_allclose(shown[:2], centre[:2] + np.array([9.0, -6.0]), atol=1e-6)
    right.linked = False
    left.zoom_by(2.0)
    assert right.viewbox.viewRect().width() == pytest.approx(rect_right.width(), rel=1e-6)


def test_a_series_opened_in_the_second_slot_joins_the_first_and_leaves_it_alone(qtbot) -> None:
    grid = _grid(qtbot)
    current, prior, _truth = moved_pair()
    grid.show_series(OpenSeries("current", current), grid.views[0])
    left, right = grid.views
    left.set_index(5)
    left.set_window(-600, 1500)
    grid.show_series(OpenSeries("prior", prior), right)
    assert (left.state.index, left.state.linear_window) == (5, (-600, 1500))
    assert right.state.linear_window == (-600, 1500)
    rows, cols = left.plane_slice.image.shape
    centre = (left.plane_slice.affine @ np.array([(cols - 1) / 2, (rows - 1) / 2, 0, 1]))[:3]
    assert right.state.index == plane_index_of(prior, "axial", centre)  # by table position
