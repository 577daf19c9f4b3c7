"""Thick slabs in the viewport: the pixels on screen hold the voxels of the neighbouring
slices where they lie, the corner text and readout say it is a projection, and the keys and
the toolbar set it for the active view only."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent

from medviewer.core.slab import Slab
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView
from medviewer.ui.tools.keys import handle_key
from tests.ui.helpers import grab_rgb, phantom, voxel_widget_pos

BRIGHT = (10, 50, 5)  # (col, row, slice): 2000 HU, one voxel, outside the disk's slices
DARK = (60, 15, 3)  # (col, row, slice): -1000 HU inside the 100 HU block


@pytest.fixture
def view(qtbot) -> SliceView:
    volume = phantom()
    volume.array[BRIGHT[2], BRIGHT[1], BRIGHT[0]] = 2000
    volume.array[DARK[2], DARK[1], DARK[0]] = -1000
    widget = SliceView(MeasurementStore())
    qtbot.addWidget(widget)
    widget.resize(640, 520)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_series(OpenSeries("phantom", volume))
    widget.fit()
    widget.set_window(0, 2000)  # -1000 HU black, 1000 HU and above white, 100 HU mid-grey
    return widget


def _pixel(view: SliceView, voxel) -> np.ndarray:
    pos = voxel_widget_pos(view, view.volume, (voxel[0], voxel[1], view.state.index))
    return grab_rgb(view.graphics.viewport())[pos.y(), pos.x()]


def test_a_mip_shows_a_voxel_of_a_neighbouring_slice_where_it_lies(view: SliceView) -> None:
    view.set_index(7)  # slices are 2 mm; 10 mm = 5 slices: 5..9
    assert _pixel(view, BRIGHT).max() < 140  # the slice itself: background (0 HU)
    view.set_slab(Slab("mip", 10.0))
    assert _pixel(view, BRIGHT).min() > 240
    assert _pixel(view, (BRIGHT[0] + 3, BRIGHT[1], 0)).max() < 140  # 2.4 mm beside it
    assert "MIP 10.0 mm" in view.annotations.corners["bottom_left"]
    view.set_index(8)  # 6..10: the voxel is out of the slab
    assert _pixel(view, BRIGHT).max() < 140
    view.set_index(3)  # 1..5
    assert _pixel(view, BRIGHT).min() > 240


def test_minip_and_average_of_a_dark_voxel(view: SliceView) -> None:
    view.set_index(5)  # 3..7 with 10 mm
    grey = _pixel(view, DARK).astype(int)  # 100 HU: the block
    assert 130 < grey.mean() < 150
    view.set_slab(Slab("minip", 10.0))
    assert _pixel(view, DARK).max() < 10  # -1000 HU
    view.set_slab(Slab("avg", 10.0))  # (4 x 100 - 1000) / 5 = -120 HU
    expected = (-120 + 1000) / 2000 * 255
    assert abs(_pixel(view, DARK).astype(int).mean() - expected) < 3
    assert "Avg 10.0 mm" in view.annotations.corners["bottom_left"]


def test_the_readout_gives_the_projected_value_and_says_so(view: SliceView) -> None:
    view.set_index(7)
    view.set_slab(Slab("mip", 10.0))
    lps = view.volume.affine @ np.array([BRIGHT[0], BRIGHT[1], 7, 1.0])
    from medviewer.ui.slice_annotations import readout_text

    assert readout_text(view, lps[:3]).startswith("2000 HU (MIP)")
    view.set_slab(None)
    assert readout_text(view, lps[:3]).startswith("0 HU ")
    assert not any("MIP" in line for line in view.annotations.corners["bottom_left"])


def _key(view: SliceView, key: Qt.Key) -> None:
    assert handle_key(view, QKeyEvent(QEvent.Type.KeyPress, key, Qt.KeyboardModifier.NoModifier))


def test_the_slab_keys(view: SliceView) -> None:
    _key(view, Qt.Key.Key_M)
    assert view.state.slab == Slab("mip", 10.0)
    _key(view, Qt.Key.Key_BracketRight)
    assert view.state.slab == Slab("mip", 15.0)
    _key(view, Qt.Key.Key_M)
    assert view.state.slab == Slab("minip", 15.0)
    _key(view, Qt.Key.Key_BracketLeft)
    _key(view, Qt.Key.Key_BracketLeft)
    assert view.state.slab == Slab("minip", 8.0)
    _key(view, Qt.Key.Key_M)
    _key(view, Qt.Key.Key_M)
    assert view.state.slab is None


def test_the_toolbar_sets_the_active_views_slab(qtbot, ct_window) -> None:
    window = ct_window
    window.set_layout("1x3")
    axial, coronal, _sagittal = window.grid.views
    controls = window.window_actions.slab
    window.grid._set_active(axial)
    controls.mode.setCurrentIndex(controls.mode.findText("MIP"))
    controls.thickness.setValue(20)
    assert axial.state.slab == Slab("mip", 20.0)
    assert coronal.state.slab is None
    assert any(line.startswith("MIP 2") for line in axial.annotations.corners["bottom_left"])
    window.grid._set_active(coronal)  # the toolbar shows the coronal view's: off
    assert controls.mode.currentData() is None and not controls.thickness.isEnabled()
    coronal.set_slab(Slab("avg", 5.0))  # a key in that view: the toolbar follows
    assert controls.mode.currentText() == "Avg" and controls.thickness.value() == 5
    assert axial.state.slab == Slab("mip", 20.0)
