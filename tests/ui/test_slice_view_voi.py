"""A series with VOI LUTs is shown through them, as pydicom maps its files, until the user
chooses a window."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from medviewer.core.windowing import apply_window
from medviewer.io.series import load_series
from medviewer.ui.key_images import KeyImageRenderer, key_image_like
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView
from tests.ui.helpers import drag
from tests.ui.test_main_window import import_and_wait, only_series_id, open_and_wait
from tests.voi_samples import expected_volume_display, signed_series_with_luts
from tests.waits import WAIT_MS

SLICE = 1  # the slice whose values cross the SOFT ramp (see tests.voi_samples)


@pytest.fixture(scope="module")
def voi_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("voi-series")
    signed_series_with_luts(folder)
    return folder


@pytest.fixture(scope="module")
def voi_volume(voi_folder):
    return load_series(voi_folder)


@pytest.fixture(scope="module")
def expected(voi_volume) -> list[np.ndarray]:
    """pydicom's display of each VOI LUT, per slice."""
    return [expected_volume_display(voi_volume, k) for k in range(2)]


def _view(qtbot, volume) -> SliceView:
    view = SliceView(MeasurementStore())
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    view.set_series(OpenSeries(Path("voi"), volume))
    view.set_index(SLICE)
    qtbot.waitUntil(lambda: view.image_item.image is not None, timeout=WAIT_MS)
    assert np.array_equal(view.plane_slice.image, volume.array[SLICE])  # axial = array slice
    return view


def _shown(view: SliceView) -> np.ndarray:
    """The 8-bit image the view draws (uint8 without levels: drawn as is)."""
    return np.asarray(view.image_item.image)


def test_the_image_shows_through_the_first_lut_and_the_others_on_request(
    qtbot, voi_volume, expected
) -> None:
    view = _view(qtbot, voi_volume)
    assert view.state.voi_lut == 0
    np.testing.assert_array_equal(_shown(view), expected[0][SLICE])
    assert len(np.unique(_shown(view))) > 20  # on the ramp, not only its ends
    assert view.annotations.corners["bottom_right"][0] == "VOI LUT: SOFT"
    assert view.set_voi_lut(1)
    np.testing.assert_array_equal(_shown(view), expected[1][SLICE])
    assert view.annotations.corners["bottom_right"][0] == "VOI LUT: WIDE"
    view.set_index(2)  # another slice through the same LUT
    np.testing.assert_array_equal(_shown(view), expected[1][2])
    assert not view.set_voi_lut(2)  # there is no third
    assert view.state.voi_lut == 1


def test_invert_and_monochrome1_apply_to_the_lut(qtbot, voi_volume, expected) -> None:
    view = _view(qtbot, voi_volume)
    qtbot.keyClick(view, Qt.Key.Key_I)
    np.testing.assert_array_equal(_shown(view), 255 - expected[0][SLICE])
    mono1 = replace(voi_volume, metadata=replace(voi_volume.metadata, photometric="MONOCHROME1"))
    view.set_series(OpenSeries(Path("voi-m1"), mono1))
    view.set_index(SLICE)
    assert view.state.invert and view.state.voi_lut == 0
    np.testing.assert_array_equal(_shown(view), 255 - expected[0][SLICE])
    assert view.annotations.corners["bottom_right"][0] == "VOI LUT: SOFT inv"


def test_a_preset_or_a_drag_switches_to_the_linear_window_and_reset_returns(
    qtbot, voi_volume, expected
) -> None:
    view = _view(qtbot, voi_volume)
    image = voi_volume.array[SLICE]
    qtbot.keyClicks(view, "5")  # CT preset 5: Mediastinum, W 350 L 50
    assert (view.state.voi_lut, view.state.center, view.state.width) == (None, 50, 350)
    np.testing.assert_array_equal(_shown(view), apply_window(image, 50, 350))
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert view.state.voi_lut == 0
    np.testing.assert_array_equal(_shown(view), expected[0][SLICE])
    # SOFT's ramp spans -2200..-1201 (1000 entries rising from 0 to 4095): centre -1700.5
    start = (view.state.center, view.state.width)
    assert start == (-1700.5, 999.0)
    centre = QPoint(view.graphics.width() // 2, view.graphics.height() // 2)
    drag(view, centre, centre + QPoint(64, 32), Qt.MouseButton.RightButton)
    # CT: 8 HU per pixel; the drag starts from the LUT's equivalent window
    assert view.state.voi_lut is None
    assert (view.state.center, view.state.width) == (start[0] + 32 * 8, start[1] + 64 * 8)
    np.testing.assert_array_equal(
        _shown(view), apply_window(image, view.state.center, view.state.width)
    )
    assert view.annotations.corners["bottom_right"][0] == "W 1511 L -1444.5"  # as the PDF has it


def test_key_images_keep_the_lut_the_view_shows(qtbot, voi_volume, expected) -> None:
    view = _view(qtbot, voi_volume)
    view.set_voi_lut(1)
    renderer = KeyImageRenderer(pixels=256)
    try:
        key = key_image_like(renderer, view, "lut", None, None)
        np.testing.assert_array_equal(_shown(renderer.view), expected[1][SLICE])
        assert key.voi_lut == "VOI LUT: WIDE" and key.display_text == "VOI LUT: WIDE"
        view.set_window(40, 400)
        key = key_image_like(renderer, view, "linear", None, None)
        assert key.voi_lut == "" and key.display_text == "W 400 L 40"
        np.testing.assert_array_equal(
            _shown(renderer.view), apply_window(voi_volume.array[SLICE], 40, 400)
        )
    finally:
        renderer.close()


def test_the_window_menu_lists_the_luts_of_an_imported_series(qtbot, tmp_path, voi_folder):
    from medviewer.io.database import StudyDatabase
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    window = MainWindow(StudyDatabase(tmp_path / "db.sqlite"), Settings(tmp_path / "s.ini"))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    try:
        import_and_wait(qtbot, window, [voi_folder])  # records from the database this time
        open_and_wait(qtbot, window, only_series_id(window))
        view = window.grid.active
        assert view.state.voi_lut == 0
        window.window_actions.fill_window_menu()
        actions = {a.text(): a for a in window.window_actions.window_menu.actions()}
        assert "VOI LUT: SOFT" in actions and "VOI LUT: WIDE" in actions
        assert "1  Brain  W 80 L 40" in actions  # the window presets stay
        actions["VOI LUT: WIDE"].trigger()
        assert view.state.voi_lut == 1
        actions["1  Brain  W 80 L 40"].trigger()
        assert view.state.voi_lut is None
    finally:
        window.close()
