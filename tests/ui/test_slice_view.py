"""The viewport against known truth: geometry on screen, input handling, tools, linking."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from medviewer.core.geometry import orientation_letters
from medviewer.core.volume import Volume
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView
from medviewer.ui.viewer_grid import ViewerGrid
from tests.ui.helpers import (
    DISK,
    SHAPE,
    SPACING,
    click,
    drag,
    grab_rgb,
    phantom,
    voxel_widget_pos,
    wheel,
    widget_pos,
)
from tests.waits import WAIT_MS

NO_MOD = Qt.KeyboardModifier.NoModifier


@pytest.fixture
def view(qtbot) -> SliceView:
    widget = SliceView(MeasurementStore())
    qtbot.addWidget(widget)
    widget.resize(600, 500)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_series(OpenSeries("phantom", phantom()))
    widget.fit()
    return widget


def test_physical_aspect_and_middle_slice(view: SliceView) -> None:
    rect = view.image_item.mapRectToParent(view.image_item.boundingRect())
    rows, cols = SHAPE[1], SHAPE[2]
    assert rect.width() == pytest.approx(cols * SPACING[1])
    assert rect.height() == pytest.approx(rows * SPACING[0])
    assert view.state.index == SHAPE[0] // 2
    assert view.state.count == SHAPE[0]


def test_screen_pixels_show_the_disk_where_it_is(view: SliceView) -> None:
    view.set_index(DISK[0])
    view.set_window(500, 1000)  # 0 HU -> 0, 1000 HU -> 255
    pixels = grab_rgb(view.graphics.viewport())
    centre = voxel_widget_pos(view, view.volume, (DISK[2], DISK[1], DISK[0]))
    background = voxel_widget_pos(view, view.volume, (5, 55, DISK[0]))
    assert pixels[centre.y(), centre.x()].min() > 240
    assert pixels[background.y(), background.x()].max() < 15
    # Radiological convention: patient right (low x, col 0) is on the left of the screen.
    left = voxel_widget_pos(view, view.volume, (0, 30, DISK[0]))
    right = voxel_widget_pos(view, view.volume, (SHAPE[2] - 1, 30, DISK[0]))
    assert left.x() < right.x()
    assert view.annotations.letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}


def test_wheel_and_keys_scroll(view: SliceView, qtbot) -> None:
    start = view.state.index
    centre = QPoint(view.graphics.width() // 2, view.graphics.height() // 2)

    def shows(index: int) -> None:
        qtbot.waitUntil(lambda: not view.pending_slice.pending, timeout=WAIT_MS)
        assert view.state.index == index

    wheel(view, centre, -1)
    shows(start + 1)
    wheel(view, centre, 2)
    shows(start - 1)
    qtbot.keyClick(view, Qt.Key.Key_Home)
    shows(0)
    qtbot.keyClick(view, Qt.Key.Key_Up)
    shows(0)  # clamped
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    shows(2)  # 10 % of 20 slices
    qtbot.keyClick(view, Qt.Key.Key_End)
    shows(SHAPE[0] - 1)
    assert view.annotations.corners["bottom_left"][-2] == f"Im {SHAPE[0]}/{SHAPE[0]}"


def test_a_burst_of_scroll_events_draws_one_frame_at_its_sum(view: SliceView, qtbot) -> None:
    """Events that arrive faster than frames are drawn move the target; frames are dropped."""
    start = view.state.index
    renders: list[int] = []
    draw = view.render
    view.render = lambda: (renders.append(view.state.index), draw())  # type: ignore[method-assign]
    for _ in range(4):  # delivered before the event loop runs again, as a fast wheel does
        QApplication.sendEvent(view, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Down, NO_MOD))
    QApplication.sendEvent(view, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Up, NO_MOD))
    assert renders == [] and view.state.index == start
    qtbot.waitUntil(lambda: not view.pending_slice.pending, timeout=WAIT_MS)
    assert renders == [start + 3] and view.state.index == start + 3
    # An explicit slice wins over steps not yet shown.
    view.pending_slice.scroll(5)
    view.set_index(1)
    qtbot.waitUntil(lambda: not view.pending_slice.pending, timeout=WAIT_MS)
    assert view.state.index == 1 and renders[-1] == 1


def test_slice_position_text_is_the_s_coordinate(view: SliceView) -> None:
    view.set_index(5)
    z = view.volume.affine @ np.array([0, 0, 5, 1.0])
    assert view.annotations.corners["bottom_left"][-1] == f"Pos {z[2]:.1f} mm"


def test_ctrl_wheel_zooms_and_middle_drag_pans(view: SliceView) -> None:
    centre = QPoint(view.graphics.width() // 2, view.graphics.height() // 2)
    before = view.zoom
    wheel(view, centre, 3, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom == pytest.approx(before * 1.15**3, rel=1e-3)
    assert view.state.index == SHAPE[0] // 2  # zoom does not scroll
    rect = view.viewbox.viewRect()
    drag(view, centre, centre + QPoint(50, 0), Qt.MouseButton.MiddleButton)
    moved = view.viewbox.viewRect()
    mm_per_px = rect.width() / view.viewbox.width()
    assert moved.left() == pytest.approx(rect.left() - 50 * mm_per_px, rel=0.05)


def test_right_drag_changes_window_and_level(view: SliceView) -> None:
    view.set_window(40, 400)
    centre = QPoint(view.graphics.width() // 2, view.graphics.height() // 2)
    drag(view, centre, centre + QPoint(64, 32), Qt.MouseButton.RightButton)
    # CT: 4096 HU span over 512 px -> 8 HU per pixel; right widens, down raises the level.
    assert view.state.width == pytest.approx(400 + 64 * 8)
    assert view.state.center == pytest.approx(40 + 32 * 8)
    text = view.annotations.corners["bottom_right"][0]
    assert text == f"W {400 + 64 * 8} L {40 + 32 * 8}"


def test_number_keys_apply_the_reading_presets(view: SliceView, qtbot) -> None:
    expected = {
        "1": (40, 80), "2": (80, 200), "3": (40, 40), "4": (-600, 1500),
        "5": (50, 350), "6": (50, 400), "7": (30, 150), "8": (400, 1800),
    }  # fmt: skip
    for key, (level, width) in expected.items():
        qtbot.keyClicks(view, key)
        assert (view.state.center, view.state.width) == (level, width)
    qtbot.keyClick(view, Qt.Key.Key_I)
    assert view.state.invert
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert not view.state.invert


def test_readout_gives_value_and_lps(view: SliceView, qtbot) -> None:
    view.set_index(DISK[0])
    pos = voxel_widget_pos(view, view.volume, (DISK[2], DISK[1], DISK[0]))
    with qtbot.waitSignal(view.readout, timeout=WAIT_MS) as signal:
        click(view, pos, Qt.MouseButton.NoButton)
    xyz = view.volume.affine @ np.array([DISK[2], DISK[1], DISK[0], 1.0])
    text = signal.args[0]
    assert text.startswith("1000 HU")
    assert f"voxel ({DISK[2]}, {DISK[1]}, {DISK[0]})" in text
    assert f"LPS ({xyz[0]:.1f}, {xyz[1]:.1f}, {xyz[2]:.1f}) mm" in text


def test_distance_tool_measures_millimetres(view: SliceView) -> None:
    view.set_tool("distance")
    a, b = (10, 10, 10), (70, 50, 10)  # (col, row, slice)
    view.set_index(10)
    drag(view, voxel_widget_pos(view, view.volume, a), voxel_widget_pos(view, view.volume, b))
    (m,) = view.store.for_series(view.volume.metadata.series_uid)
    truth = np.hypot(60 * SPACING[1], 40 * SPACING[0])
    measured = np.linalg.norm(np.subtract(m.points[1], m.points[0]))
    pixel_mm = max(SPACING[:2]) / view.zoom  # one screen pixel of mouse precision, each end
    assert measured == pytest.approx(truth, abs=2 * pixel_mm)
    assert view.measurement_text(m) == f"Distance {measured:.1f} mm"


def test_ellipse_roi_mean_on_the_uniform_block(view: SliceView) -> None:
    view.set_tool("ellipse")
    view.set_index(4)
    drag(view, voxel_widget_pos(view, view.volume, (53, 8, 4)),
         voxel_widget_pos(view, view.volume, (72, 22, 4)))  # fmt: skip
    (m,) = view.store.for_series(view.volume.metadata.series_uid)
    text = view.measurement_text(m)
    assert text.startswith("Ellipse mean 100.0 HU, SD 0.0")
    assert "min 100, max 100" in text


def test_measurements_show_only_on_their_slice(view: SliceView) -> None:
    view.set_tool("probe")
    view.set_index(DISK[0])
    click(view, voxel_widget_pos(view, view.volume, (DISK[2], DISK[1], DISK[0])))
    assert len(view.visible_measurements()) == 1
    assert "Probe 1000 HU" in view.measurement_text(view.visible_measurements()[0])
    view.scroll(1)
    assert view.visible_measurements() == []
    view.scroll(-1)
    assert len(view.visible_measurements()) == 1


def test_mpr_click_moves_the_other_planes(qtbot) -> None:
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.resize(1200, 420)
    grid.set_layout("1x3")
    grid.show()
    qtbot.waitExposed(grid)
    volume = phantom()
    grid.show_series(OpenSeries("phantom", volume))
    axial, coronal, sagittal = grid.views
    assert [v.state.plane for v in grid.views] == ["axial", "coronal", "sagittal"]
    axial.set_index(DISK[0])
    click(axial, voxel_widget_pos(axial, volume, (DISK[2], DISK[1], DISK[0])))
    # Coronal slices count posterior-ward rows; sagittal slices count leftward columns.
    assert coronal.state.index == DISK[1]
    assert sagittal.state.index == DISK[2]
    voxel = volume.affine @ np.array([DISK[2], DISK[1], DISK[0], 1.0])
    clicked = axial.crosshair_point
    mouse_mm = axial.viewbox.viewRect().width() / axial.viewbox.width()  # one screen pixel
    assert np.abs(clicked - voxel[:3]).max() <= mouse_mm
    for view in (coronal, sagittal):
        assert np.array_equal(view.crosshair_point, clicked)
        x, y, k = view.patient_to_view(clicked)
        assert abs(k) <= 0.5
        assert view.v_line.value() == pytest.approx(x)
        assert view.h_line.value() == pytest.approx(y)
    assert coronal.annotations.letters == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert sagittal.annotations.letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}


def test_linking_across_frames_of_reference_follows_the_comparison_link(qtbot) -> None:
    """One frame of reference: the same point. Another: by table position (the comparison
    link, identity until the user sets an offset), and not at all with the link off."""
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.set_layout("1x2")
    first, second = phantom(), phantom()
    other_frame = Volume(
        second.array, second.affine, type(second.metadata)(**{
            **second.metadata.__dict__, "frame_of_reference_uid": "1.2.3.4"
        })
    )  # fmt: skip
    grid.show_series(OpenSeries("a", first), grid.views[0])
    grid.show_series(OpenSeries("b", first), grid.views[1])
    point = first.affine @ np.array([20, 20, 3, 1.0])
    grid.link_cursor(grid.views[0], point[:3])
    assert grid.views[1].state.index == 3
    grid.show_series(OpenSeries("c", other_frame), grid.views[1])
    grid.comparison.enabled = False
    before = grid.views[1].state.index
    grid.link_cursor(grid.views[0], (first.affine @ np.array([20, 20, 7, 1.0]))[:3])
    assert grid.views[1].state.index == before
    grid.comparison.enabled = True
    grid.link_cursor(grid.views[0], (first.affine @ np.array([20, 20, 7, 1.0]))[:3])
    assert grid.views[1].state.index == 7  # by table position
    from medviewer.core.registration import RigidMap

    grid.set_link(RigidMap(translation=(0.0, 0.0, 2 * 2.0)))  # the prior sits 2 slices higher
    grid.views[0].set_index(5)
    assert grid.views[1].state.index == 7
    grid.views[1].linked = False  # its lock
    grid.views[0].set_index(9)
    assert grid.views[1].state.index == 7


def test_oblique_series_edge_letters(qtbot) -> None:
    # Rows tilted 30 degrees from L toward P; columns 20 degrees from P toward S.
    a, b = np.radians(30), np.radians(20)
    row_dir = np.array([np.cos(a), np.sin(a), 0.0])
    col_dir = np.cross(np.array([0.0, 0.0, 1.0]), row_dir) * np.cos(b) + np.array([0, 0, np.sin(b)])
    col_dir -= row_dir * (row_dir @ col_dir)
    col_dir /= np.linalg.norm(col_dir)
    volume = phantom(orientation=(*row_dir, *col_dir))
    view = SliceView()
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.set_series(OpenSeries("oblique", volume))
    right = view.plane_slice.affine[:3, 0]
    down = view.plane_slice.affine[:3, 1]
    assert view.annotations.letters["right"] == orientation_letters(right) == "LP"
    assert view.annotations.letters["left"] == "RA"
    assert view.annotations.letters["bottom"] == orientation_letters(down)
    assert view.annotations.letters["bottom"] in ("PRI", "PRS", "PR", "PIR", "PSR")
    assert view.annotations.letters["top"][0] == "A"


def test_unpositioned_image_has_no_orientation_letters(qtbot) -> None:
    view = SliceView()
    qtbot.addWidget(view)
    view.set_series(OpenSeries("dx", phantom(positioned=False)))
    assert view.annotations.letters == {}


def test_colour_images_keep_their_colour(qtbot) -> None:
    base = phantom()
    rgb = np.zeros((*SHAPE[:3], 3), np.uint8)
    rgb[..., 0] = 200  # red everywhere
    rgb[:, :, :40, 2] = 255  # blue on the right half of the patient (left of screen)
    volume = Volume(rgb, base.affine, type(base.metadata)(photometric="RGB"))
    view = SliceView()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    view.set_series(OpenSeries("rgb", volume))
    pixels = grab_rgb(view.graphics.viewport())
    left = voxel_widget_pos(view, volume, (10, 30, view.state.index))
    right = voxel_widget_pos(view, volume, (70, 30, view.state.index))
    assert tuple(pixels[left.y(), left.x()]) == pytest.approx((200, 0, 255), abs=2)
    assert tuple(pixels[right.y(), right.x()]) == pytest.approx((200, 0, 0), abs=2)


def test_single_image_gets_no_mpr(qtbot) -> None:
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.set_layout("1x3")
    base = phantom(positioned=False)
    image = Volume(base.array[:1].copy(), base.affine, base.metadata)
    grid.show_series(OpenSeries("dx", image))
    assert grid.views[0].series is not None
    assert grid.views[1].series is None and grid.views[2].series is None
    assert "no MPR" in grid.views[1].annotations.message


def test_progressive_slices_appear_when_loaded(qtbot) -> None:
    volume = phantom()
    filling = Volume(np.zeros_like(volume.array), volume.affine, volume.metadata)
    loaded = np.zeros(SHAPE[0], bool)
    middle = SHAPE[0] // 2
    filling.array[middle] = volume.array[middle]
    loaded[middle] = True
    series = OpenSeries("progressive", filling, loaded)
    view = SliceView()
    qtbot.addWidget(view)
    view.set_series(series)
    assert view.state.index == middle
    assert view.annotations.corners["bottom_left"][0] == f"Loading 1/{SHAPE[0]}"
    view.set_index(DISK[0])
    assert view.plane_slice.image.max() == 0  # not decoded yet
    filling.array[DISK[0]] = volume.array[DISK[0]]
    series.mark_loaded([DISK[0]])
    assert view.image_item.image.max() > 0  # redrawn with the new slice
    assert not series.complete


def test_wrong_tool_name_is_refused(view: SliceView) -> None:
    with pytest.raises(ValueError, match="unknown tool 'lasso'"):
        view.set_tool("lasso")


def test_scale_bar_matches_the_zoom(view: SliceView) -> None:
    length_px, label = view.annotations.scale
    mm_per_px = view.viewbox.viewRect().width() / view.viewbox.width()
    value = float(label.split()[0]) * (10 if label.endswith("cm") else 1)
    assert length_px * mm_per_px == pytest.approx(value)


def test_widget_pos_helper_round_trips(view: SliceView) -> None:
    pos = widget_pos(view, 10.0, 12.0)
    back = view.viewbox.mapSceneToView(view.graphics.mapToScene(pos))
    assert back.x() == pytest.approx(10.0, abs=1.0) and back.y() == pytest.approx(12.0, abs=1.0)


def test_angle_tool_takes_three_clicks(view: SliceView) -> None:
    view.set_tool("angle")
    view.set_index(10)
    # arm end, vertex, arm end: a right angle in patient space (cols along x, rows along y).
    for ijk in ((60, 10, 10), (20, 10, 10), (20, 50, 10)):
        click(view, voxel_widget_pos(view, view.volume, ijk))
    (m,) = view.store.for_series(view.volume.metadata.series_uid)
    assert m.kind == "angle"
    value = float(view.measurement_text(m).split()[1].rstrip("°"))
    assert value == pytest.approx(90.0, abs=1.5)  # mouse precision of one screen pixel


def test_escape_forgets_the_angle_points_clicked_so_far(view: SliceView, qtbot) -> None:
    view.set_tool("angle")
    view.set_index(10)
    for ijk in ((70, 50, 10), (40, 40, 10)):
        click(view, voxel_widget_pos(view, view.volume, ijk))
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    for ijk in ((60, 10, 10), (20, 10, 10), (20, 50, 10)):
        click(view, voxel_widget_pos(view, view.volume, ijk))
    (m,) = view.store.for_series(view.volume.metadata.series_uid)
    value = float(view.measurement_text(m).split()[1].rstrip("°"))
    assert value == pytest.approx(90.0, abs=1.5)  # the three clicks after Escape


def test_moving_an_roi_updates_the_measurement_and_delete_removes_it(view, qtbot) -> None:
    view.set_tool("rectangle")
    view.set_index(4)
    drag(view, voxel_widget_pos(view, view.volume, (53, 8, 4)),
         voxel_widget_pos(view, view.volume, (72, 22, 4)))  # fmt: skip
    (m,) = view.store.for_series(view.volume.metadata.series_uid)
    assert "mean 100.0 HU" in view.measurement_text(m)
    roi, _label = view.measurement_layer.rois[m.id]
    roi.setPos(roi.pos() + type(roi.pos())(-40 * SPACING[1], 0))  # onto the 0 HU background
    roi.sigRegionChangeFinished.emit(roi)
    (moved,) = view.store.for_series(view.volume.metadata.series_uid)
    assert moved.id == m.id
    shift = np.subtract(moved.points[0], m.points[0])
    assert shift == pytest.approx([-40 * SPACING[1], 0, 0], abs=1e-6)  # 40 columns toward R
    assert "mean 0.0 HU" in view.measurement_text(moved)
    assert view.store.selected == m.id
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert view.store.for_series(view.volume.metadata.series_uid) == []
    assert view.measurement_layer.rois == {}


def test_cine_loops_through_the_slices(view, qtbot) -> None:
    view.set_index(SHAPE[0] - 2)
    view.play_cine(50)
    assert view.playing
    qtbot.waitUntil(lambda: view.state.index == 1, timeout=WAIT_MS)  # wrapped around
    view.stop_cine()
    assert not view.playing


def test_dropping_a_browser_series_on_a_view(view, qtbot) -> None:
    from PySide6.QtCore import QMimeData, QPointF
    from PySide6.QtGui import QDropEvent

    from medviewer.ui.browser import SERIES_MIME

    mime = QMimeData()
    mime.setData(SERIES_MIME, b"42")
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)  # fmt: skip
    with qtbot.waitSignal(view.seriesDropped, timeout=WAIT_MS) as dropped:
        view.dropEvent(event)
    assert dropped.args == [42]


def test_rendering_a_slice_that_a_worker_is_still_writing_never_fails(view) -> None:
    """A loading slice is shown while decoded pixels land in it (here: wildly changing)."""
    import threading

    from medviewer.core.volume import VolumeMetadata

    array = np.zeros((1, 256, 256), np.uint16)
    view.set_series(OpenSeries("live", Volume(array, np.eye(4), VolumeMetadata(modality="DX"))))
    stop = threading.Event()

    def decode() -> None:
        rng = np.random.default_rng(0)
        while not stop.is_set():
            array[0] = rng.integers(0, 5000, (256, 256))
            array[0] = 0

    writer = threading.Thread(target=decode)
    writer.start()
    try:
        for _ in range(400):
            view.render()  # before the fix: IndexError from the window's lookup table
    finally:
        stop.set()
        writer.join()
    assert view.image_item.image is not None and view.image_item.image.dtype == np.uint8
