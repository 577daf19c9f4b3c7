"""AI overlays in the viewports against known truth: colours on the right voxels in every plane,
outline, heatmap threshold, caching, brush/eraser geometry and undo, focus on a finding."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, QPointF

from medviewer.core import measurements as mm
from medviewer.core.findings import AIResult, ModelInfo, OverlayStyle, Prediction, Segment
from medviewer.core.geometry import affine_from_dicom, reslice
from medviewer.core.viewstate import plane_index_of
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.ui import overlay_items
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView
from medviewer.ui.viewer_grid import ViewerGrid
from tests.ui.helpers import click, drag, grab_rgb, voxel_widget_pos

UID = "1.2.826.0.1.3680043.8.498.777.1"
FRAME = "1.2.826.0.1.3680043.8.498.777.2"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows run posterior, columns inferior
NODULE = Segment(1, "nodule", "#ff8000")
VESSEL = Segment(2, "vessel", "#00c8ff")
SEGMENTS = {1: NODULE, 2: VESSEL, 3: Segment(3, "lung", "#40ff40")}
PLANES = ("axial", "coronal", "sagittal")


def oblique() -> tuple[float, ...]:
    """Rows tilted 12 degrees from L toward P, columns 8 degrees from P toward S."""
    a, b = np.radians(12), np.radians(8)
    row = np.array([np.cos(a), np.sin(a), 0.0])
    col = np.cross([0.0, 0.0, 1.0], row) * np.cos(b) + np.array([0.0, 0.0, np.sin(b)])
    col -= row * (row @ col)
    return (*row, *(col / np.linalg.norm(col)))


def make_volume(shape=(14, 30, 40), spacing=(0.8, 0.6, 2.0), orientation=AXIAL, uid=UID) -> Volume:
    """Zeros on a grid of (row, col, slice) `spacing` mm; slice step along the normal."""
    affine = affine_from_dicom((-20.0, -15.0, 5.0), orientation, spacing[:2], None)
    affine[:3, 2] *= spacing[2] / np.linalg.norm(affine[:3, 2])
    meta = VolumeMetadata(modality="CT", series_uid=uid, frame_of_reference_uid=FRAME, units="HU")
    return Volume(np.zeros(shape, np.int16), affine, meta)


def make_result(volume: Volume, label_map=None, heatmap=None) -> AIResult:
    """An AIResult on `volume`'s grid (segmentation when a label map is given)."""
    task = "segmentation" if label_map is not None else "classification"
    model = ModelInfo("test.model", "Test model", "1.0", "0" * 64, task, "tests only")
    prediction = Prediction(
        model=model,
        task=task,
        device="CPU",
        seconds=0.0,
        created="2026-01-01T00:00:00+00:00",
        series_uid=volume.metadata.series_uid,
        affine=volume.affine.copy(),
        shape=volume.shape,
        label_map=label_map,
        segments=dict(SEGMENTS) if label_map is not None else {},
        heatmap=heatmap,
    )
    return AIResult.of(prediction)


def lps(volume: Volume, ijk) -> np.ndarray:
    """LPS centre of voxel (col, row, slice)."""
    return (volume.affine @ np.array([*ijk, 1.0]))[:3]


def screen_of(view: SliceView, volume: Volume, ijk) -> tuple[int, int]:
    """(row, col) of voxel (col, row, slice) on the view's current plane (must lie on it)."""
    col, row, k = mm.patient_to_screen(view.plane_slice.affine, lps(volume, ijk))
    assert abs(k) < 1e-6
    return round(float(row)), round(float(col))


def show(view: SliceView, volume: Volume, ijk) -> tuple[int, int]:
    """Move the view to the plane through voxel `ijk`; its (row, col) there."""
    view.set_crosshair(lps(volume, ijk), move=True)
    return screen_of(view, volume, ijk)


def make_view(qtbot, volume: Volume, plane: str = "axial", size=(500, 400)) -> SliceView:
    view = SliceView(MeasurementStore())
    qtbot.addWidget(view)
    view.resize(*size)
    view.show()
    qtbot.waitExposed(view)
    view.set_series(OpenSeries("test", volume), plane)
    return view


def make_grid(qtbot, layout: str = "1x3") -> ViewerGrid:
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.resize(1200, 420)
    grid.set_layout(layout)
    grid.show()
    qtbot.waitExposed(grid)
    return grid


def cube(shape, corner, size=5, label=1) -> np.ndarray:
    """A uint8 label map with a `size`-voxel cube of `label` at (slice, row, col) `corner`."""
    labels = np.zeros(shape, np.uint8)
    s, r, c = corner
    labels[s : s + size, r : r + size, c : c + size] = label
    return labels


RGBA_NODULE = (*NODULE.rgb, 255)


def assert_on_the_image_grid(view: SliceView) -> None:
    """Every pixel the label item draws covers the image pixel of the same label exactly."""
    item, image, labels = view.overlay.label_item, view.image_item, view.overlay.label_slice
    drawn = item.image
    for i, j in np.argwhere(drawn > 0):
        for dx, dy in ((0.0, 0.0), (1.0, 1.0), (0.5, 0.5)):  # corners and centre
            pixel = image.mapFromParent(item.mapToParent(QPointF(j + dx, i + dy)))
            assert (pixel.x() - dx, pixel.y() - dy) == pytest.approx(
                (round(pixel.x() - dx), round(pixel.y() - dy)), abs=1e-9
            )
        assert labels[int(pixel.y()), int(pixel.x())] == drawn[i, j]
    assert np.count_nonzero(drawn) == np.count_nonzero(labels)


# -- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [oblique(), SAGITTAL], ids=["oblique_axial", "sagittal"])
def test_label_colour_on_the_voxel_in_all_three_planes(qtbot, orientation) -> None:
    volume = make_volume(orientation=orientation)
    labels = cube(volume.shape, (5, 10, 20), size=3)
    labels[9, 20:25, 5:9] = 2
    result = make_result(volume, labels)
    grid = make_grid(qtbot)
    grid.show_series(OpenSeries("test", volume))
    grid.set_overlay("A", result)
    for view in grid.views:
        row, col = show(view, volume, (21, 11, 6))
        rgba = view.overlay_rgba()
        assert rgba.shape == (*view.plane_slice.image.shape, 4)
        assert tuple(rgba[row, col]) == RGBA_NODULE
        # the 3x3x3 cube shows 9 nodule pixels in every plane through its centre, the rest
        # of the plane (background) is transparent
        assert np.all(rgba == RGBA_NODULE, axis=-1).sum() == 9
        assert np.count_nonzero(rgba[..., 3]) == 9
        assert view.overlay.label_item.isVisible()
        assert_on_the_image_grid(view)
        assert view.overlay.label_item.zValue() > view.image_item.zValue()
        assert view.overlay.label_item.zValue() < view.h_line.zValue()
    for view in grid.views:
        row, col = show(view, volume, (6, 21, 9))
        assert tuple(view.overlay_rgba()[row, col]) == (*VESSEL.rgb, 255)


def test_label_overlay_is_drawn_on_the_screen(qtbot) -> None:
    volume = make_volume(spacing=(1.0, 1.0, 2.0))
    view = make_view(qtbot, volume)
    view.set_window(500, 1000)  # the image is black (0 HU)
    view.set_overlay(make_result(volume, cube(volume.shape, (4, 10, 20), size=7)))
    view.set_overlay_style(OverlayStyle(label_opacity=1.0))
    show(view, volume, (23, 13, 7))
    view.show_crosshair(False)
    pixels = grab_rgb(view.graphics.viewport()).astype(int)
    inside = voxel_widget_pos(view, volume, (23, 13, 7))
    outside = voxel_widget_pos(view, volume, (5, 25, 7))
    assert tuple(pixels[inside.y(), inside.x()]) == pytest.approx(NODULE.rgb, abs=2)
    assert pixels[outside.y(), outside.x()].max() < 5
    view.set_overlay_style(OverlayStyle(label_opacity=1.0, visible=False))
    pixels = grab_rgb(view.graphics.viewport()).astype(int)
    assert pixels[inside.y(), inside.x()].max() < 5


def test_hidden_label_is_transparent(qtbot) -> None:
    volume = make_volume()
    labels = cube(volume.shape, (5, 10, 20), size=3)
    labels[6, 20:25, 5:9] = 2
    view = make_view(qtbot, volume)
    view.set_overlay(make_result(volume, labels))
    view.set_overlay_style(OverlayStyle().with_label(1, shown=False))
    nodule = show(view, volume, (21, 11, 6))
    vessel = screen_of(view, volume, (6, 21, 6))
    rgba = view.overlay_rgba()
    assert rgba[nodule][3] == 0
    assert tuple(rgba[vessel]) == (*VESSEL.rgb, 255)
    view.set_overlay_style(OverlayStyle().with_label(2, shown=False))
    rgba = view.overlay_rgba()
    assert tuple(rgba[nodule]) == RGBA_NODULE
    assert rgba[vessel][3] == 0
    view.set_overlay_style(OverlayStyle(hidden_labels=frozenset({1, 2})))
    assert not view.overlay.label_item.isVisible()  # nothing left to draw on this slice


@pytest.mark.parametrize("plane", PLANES)
def test_outline_draws_the_boundary_not_the_interior(qtbot, plane) -> None:
    volume = make_volume()
    view = make_view(qtbot, volume, plane)
    view.set_overlay(make_result(volume, cube(volume.shape, (4, 10, 20))))  # 5x5x5
    view.set_overlay_style(OverlayStyle(outline=True))
    centre = show(view, volume, (22, 12, 6))
    drawn = view.overlay.label_slice
    assert np.count_nonzero(drawn) == 16  # the ring of a 5x5 square
    rows, cols = np.nonzero(drawn)
    assert rows.max() - rows.min() == 4 and cols.max() - cols.min() == 4
    r, c = centre
    assert not drawn[r - 1 : r + 2, c - 1 : c + 2].any()  # the 3x3 interior
    rgba = view.overlay_rgba()
    assert rgba[r, c, 3] == 0
    assert tuple(rgba[r - 2, c]) == RGBA_NODULE
    view.set_overlay_style(OverlayStyle(outline=False))
    assert np.count_nonzero(view.overlay.label_slice) == 25


def test_outline_of_a_label_cut_by_the_image_edge_is_closed() -> None:
    labels = np.zeros((6, 6), np.uint8)
    labels[:3, :3] = 2
    edge = overlay_items.outline(labels)
    assert edge[0, 0] == edge[0, 2] == edge[2, 0] == 2
    assert edge[1, 1] == 0
    assert np.count_nonzero(edge) == 8


# -- heatmap ---------------------------------------------------------------------------------


def gradient_heatmap(shape) -> np.ndarray:
    """Heat rising with the column index, 0 at column 0 and 1 at the last."""
    cols = np.linspace(0.0, 1.0, shape[2], dtype=np.float32)
    return np.broadcast_to(cols, shape).copy()


def lut_colour(name: str, value: float) -> tuple[int, ...]:
    table = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=True)
    return tuple(int(v) for v in table[round(value * 255), :3])


def test_heatmap_below_threshold_is_transparent_above_coloured(qtbot, monkeypatch) -> None:
    volume = make_volume(shape=(6, 20, 11))
    heatmap = gradient_heatmap(volume.shape)  # column c: heat c / 10
    view = make_view(qtbot, volume)
    view.set_overlay(make_result(volume, heatmap=heatmap))
    view.set_overlay_style(OverlayStyle(heatmap_threshold=0.5, colormap="inferno"))
    low = show(view, volume, (2, 5, 3))  # heat 0.2
    high = screen_of(view, volume, (9, 5, 3))  # heat 0.9
    assert view.overlay.label_slice is None
    assert view.overlay.heatmap_slice[low] == 51 and view.overlay.heatmap_slice[high] == 230
    rgba = view.overlay_rgba()
    assert rgba[low][3] == 0
    assert tuple(rgba[high]) == (*lut_colour("inferno", 0.9), 255)
    assert view.overlay.heatmap_item.isVisible()
    assert view.overlay.heatmap_item.opacity() == pytest.approx(OverlayStyle().heatmap_opacity)
    calls = view.overlay.reslices
    view.set_overlay_style(OverlayStyle(heatmap_threshold=0.1, colormap="turbo"))
    rgba = view.overlay_rgba()
    assert tuple(rgba[low]) == (*lut_colour("turbo", 0.2), 255)
    assert view.overlay.reslices == calls  # a new LUT, not a new slice
    view.set_overlay_style(OverlayStyle(colormap="no-such-map"))
    assert tuple(view.overlay_rgba()[high]) == (*lut_colour("inferno", 0.9), 255)


def test_labels_are_drawn_over_the_heatmap(qtbot) -> None:
    volume = make_volume(shape=(6, 20, 11))
    result = make_result(
        volume, cube(volume.shape, (1, 5, 3), size=3), gradient_heatmap(volume.shape)
    )
    view = make_view(qtbot, volume)
    view.set_overlay(result)
    nodule = show(view, volume, (4, 6, 2))
    heat = screen_of(view, volume, (9, 15, 2))
    rgba = view.overlay_rgba()
    assert tuple(rgba[nodule]) == RGBA_NODULE
    assert tuple(rgba[heat]) == (*lut_colour("inferno", 0.9), 255)
    assert view.overlay.label_item.zValue() > view.overlay.heatmap_item.zValue()


def test_hidden_overlay_draws_nothing(qtbot) -> None:
    volume = make_volume()
    view = make_view(qtbot, volume)
    view.set_overlay(
        make_result(volume, cube(volume.shape, (5, 10, 20)), gradient_heatmap(volume.shape))
    )
    show(view, volume, (22, 12, 6))
    assert view.overlay.label_item.isVisible() and view.overlay.heatmap_item.isVisible()
    view.set_overlay_style(OverlayStyle().toggled())
    assert not view.overlay.label_item.isVisible() and not view.overlay.heatmap_item.isVisible()
    assert not view.overlay_rgba()[..., 3].any()
    view.scroll(1)
    assert not view.overlay.label_item.isVisible() and not view.overlay.heatmap_item.isVisible()
    view.set_overlay_style(OverlayStyle())
    assert view.overlay.label_item.isVisible() and view.overlay.heatmap_item.isVisible()


def test_window_zoom_and_redraw_never_reslice_the_overlay(qtbot, monkeypatch) -> None:
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[2:])
        return reslice(*args, **kwargs)

    monkeypatch.setattr(overlay_items, "reslice", counting)
    volume = make_volume()
    view = make_view(qtbot, volume)
    view.set_overlay(
        make_result(volume, cube(volume.shape, (5, 10, 20)), gradient_heatmap(volume.shape))
    )
    assert calls == [("axial", view.state.index)] * 2  # labels and heatmap
    set_images = []
    for item in (view.overlay.label_item, view.overlay.heatmap_item):
        monkeypatch.setattr(item, "setImage", lambda *a, **k: set_images.append(a))
    view.set_window(100, 500)
    view.set_window(-600, 1500)
    view.set_invert(True)
    view.zoom_by(2.0)
    view.render()
    assert len(calls) == 2 and set_images == []
    view.scroll(1)
    assert calls[2:] == [("axial", view.state.index)] * 2
    assert len(set_images) == 2


def test_set_series_clears_the_overlay(qtbot) -> None:
    volume = make_volume()
    view = make_view(qtbot, volume)
    view.set_overlay(make_result(volume, cube(volume.shape, (5, 10, 20))))
    view.set_series(OpenSeries("other", make_volume(uid="1.2.3")))
    assert view.overlay.result is None
    assert not view.overlay.visible


def test_result_of_another_grid_is_not_drawn(qtbot) -> None:
    volume = make_volume()
    other = make_volume(shape=(14, 30, 41))
    view = make_view(qtbot, volume)
    view.set_overlay(make_result(other, cube(other.shape, (5, 10, 20))))
    assert view.overlay.label_slice is None and not view.overlay.visible
    assert view.brush_dab(lps(volume, (21, 11, 6))) == 0


def test_radiograph_is_a_one_slice_volume(qtbot) -> None:
    volume = make_volume(shape=(1, 30, 40), spacing=(0.15, 0.15, 1.0))
    grid = make_grid(qtbot)
    grid.show_series(OpenSeries("dx", volume))
    grid.set_overlay("A", make_result(volume, cube(volume.shape, (0, 10, 20), size=1)))
    view = grid.views[0]
    assert view.series is not None and grid.views[1].series is None
    row, col = screen_of(view, volume, (20, 10, 0))
    assert tuple(view.overlay_rgba()[row, col]) == RGBA_NODULE
    assert np.count_nonzero(view.overlay.label_slice) == 1


# -- brush and eraser ------------------------------------------------------------------------


def disk_mask(shape, centre, radius, spacing=(1.0, 1.0)) -> np.ndarray:
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    d2 = ((rr - centre[0]) * spacing[0]) ** 2 + ((cc - centre[1]) * spacing[1]) ** 2
    return d2 <= radius**2


def test_brush_dab_paints_the_disk_on_the_current_slice_only(qtbot) -> None:
    volume = make_volume(shape=(10, 30, 30), spacing=(1.0, 1.0, 2.0))
    result = make_result(volume, np.zeros(volume.shape, np.uint8))
    view = make_view(qtbot, volume)
    view.set_overlay(result)
    view.set_tool("brush")
    view.brush_radius_mm = 2.0
    assert view.brush_label == 1  # the first segment
    show(view, volume, (15, 12, 4))
    painted, edited = [], []
    view.labelsPainted.connect(painted.append)
    view.labelsEdited.connect(edited.append)
    version = result.version
    assert view.brush_dab(lps(volume, (15, 12, 4))) == 13
    expected = np.zeros(volume.shape, bool)
    expected[4] = disk_mask(volume.shape[1:], (12, 15), 2.0)
    assert np.array_equal(result.label_map == 1, expected)
    assert result.version > version and painted == [result] and edited == []
    row, col = screen_of(view, volume, (15, 14, 4))  # 2 mm away: painted, and drawn
    assert tuple(view.overlay_rgba()[row, col]) == RGBA_NODULE
    assert view.end_brush_stroke() and edited == [result]
    assert result.history.can_undo
    assert result.history.undo(result.label_map)
    assert not result.label_map.any()


def test_eraser_removes_only_the_chosen_label(qtbot) -> None:
    volume = make_volume(shape=(10, 30, 30), spacing=(1.0, 1.0, 2.0))
    labels = np.zeros(volume.shape, np.uint8)
    labels[:, 5:20, 5:15] = 1
    labels[:, 5:20, 15:25] = 2
    before = labels.copy()
    result = make_result(volume, labels)
    view = make_view(qtbot, volume)
    view.set_overlay(result)
    view.set_tool("eraser")
    view.brush_radius_mm = 3.0
    view.brush_label = 1
    show(view, volume, (15, 12, 4))
    view.brush_dab(lps(volume, (15, 12, 4)))
    assert view.end_brush_stroke()
    disk = np.zeros(volume.shape, bool)
    disk[4] = disk_mask(volume.shape[1:], (12, 15), 3.0)
    erased = disk & (before == 1)
    assert erased.sum() == 11  # the 29-voxel disk: 11 left of column 15, 7 on it, 11 right
    assert not result.label_map[erased].any()
    assert np.array_equal(result.label_map[~erased], before[~erased])
    result.history.undo(result.label_map)
    assert np.array_equal(result.label_map, before)


def test_one_mouse_stroke_is_one_undo_step(qtbot) -> None:
    volume = make_volume(shape=(10, 30, 30), spacing=(1.0, 1.0, 2.0))
    labels = np.zeros(volume.shape, np.uint8)
    labels[4, 20:25, 20:25] = 2
    before = labels.copy()
    result = make_result(volume, labels)
    view = make_view(qtbot, volume, size=(600, 600))
    view.set_overlay(result)
    view.set_tool("brush")
    view.brush_radius_mm = 1.5
    show(view, volume, (5, 8, 4))
    view.fit()
    edited = []
    view.labelsEdited.connect(edited.append)
    start = voxel_widget_pos(view, volume, (5, 8, 4))
    end = voxel_widget_pos(view, volume, (20, 8, 4))
    drag(view, start, end, steps=5)
    after = result.label_map.copy()
    assert edited == [result]
    cursor = view.brush_cursor.item  # the brush's outline follows the mouse
    assert cursor.isVisible() and cursor.rect().width() == pytest.approx(3.0)
    x, y, _ = view.patient_to_view(lps(volume, (20, 8, 4)))
    assert cursor.rect().center().x() == pytest.approx(x, abs=0.5)
    assert cursor.rect().center().y() == pytest.approx(y, abs=0.5)
    assert all(after[4, 8, c] == 1 for c in range(5, 21))  # a continuous line along the drag
    assert np.array_equal(after[np.arange(10) != 4], before[np.arange(10) != 4])
    assert np.array_equal(after[4, 20:25, 20:25], before[4, 20:25, 20:25])  # label 2 untouched
    click(view, voxel_widget_pos(view, volume, (10, 20, 4)))  # a click: one dab, one stroke
    assert len(edited) == 2 and result.label_map[4, 20, 10] == 1
    assert result.history.undo(result.label_map)
    assert np.array_equal(result.label_map, after)
    assert result.history.undo(result.label_map)
    assert np.array_equal(result.label_map, before)
    assert not result.history.can_undo
    assert result.history.redo(result.label_map)
    assert np.array_equal(result.label_map, after)
    view.set_tool("navigate")
    assert not cursor.isVisible()


def test_brush_without_a_segmentation_does_nothing(qtbot) -> None:
    volume = make_volume()
    view = make_view(qtbot, volume)
    view.set_tool("brush")
    centre = QPoint(view.graphics.width() // 2, view.graphics.height() // 2)
    drag(view, centre, centre + QPoint(30, 10))
    click(view, centre)
    assert view.brush_dab(lps(volume, (20, 15, 7))) == 0
    view.set_overlay(make_result(volume, heatmap=gradient_heatmap(volume.shape)))
    drag(view, centre, centre + QPoint(30, 10))
    assert view.brush_dab(lps(volume, (20, 15, 7))) == 0
    assert not view.end_brush_stroke()


def test_brush_on_the_coronal_view_paints_the_coronal_plane(qtbot) -> None:
    volume = make_volume(shape=(10, 30, 30), spacing=(1.0, 1.0, 2.0))
    result = make_result(volume, np.zeros(volume.shape, np.uint8))
    grid = make_grid(qtbot)
    grid.show_series(OpenSeries("test", volume))
    grid.set_overlay("A", result)
    grid.set_brush(2.0, 2)
    grid.set_tool("brush")
    axial, coronal, _ = grid.views
    point = lps(volume, (15, 12, 4))
    axial.set_crosshair(point, move=True)
    coronal.set_crosshair(point, move=True)
    edited = []
    grid.labelsEdited.connect(edited.append)
    assert coronal.brush_dab(point) == 7
    assert coronal.end_brush_stroke() and edited == [result]
    s, r, c = np.nonzero(result.label_map)
    assert set(r.tolist()) == {12} and set(result.label_map[s, r, c].tolist()) == {2}
    # 2 mm slices: the disk covers 5 columns on slice 4 and one voxel on slices 3 and 5
    assert sorted(zip(s.tolist(), c.tolist(), strict=True)) == sorted(
        [(4, col) for col in range(13, 18)] + [(3, 15), (5, 15)]
    )
    # the axial view of slice 4 was refreshed through labelsPainted
    assert np.count_nonzero(axial.overlay.label_slice == 2) == 5


# -- the grid --------------------------------------------------------------------------------


def test_grid_keeps_the_overlay_of_its_series(qtbot) -> None:
    volume = make_volume()
    result = make_result(volume, cube(volume.shape, (5, 10, 20)))
    grid = make_grid(qtbot, "1x1")
    series = OpenSeries("test", volume)
    grid.show_series(series)
    grid.set_overlay("A", result)
    assert grid.views[0].overlay.result is result
    grid.set_layout("1x3")
    assert [v.overlay.result for v in grid.views] == [result] * 3
    grid.show_series(OpenSeries("other", make_volume(uid="1.2.3.4")))
    assert [v.overlay.result for v in grid.views] == [None] * 3
    grid.show_series(series)
    assert [v.overlay.result for v in grid.views] == [result] * 3
    style = OverlayStyle(label_opacity=0.25)
    grid.set_overlay_style(style)
    grid.set_layout("2x2")
    assert all(v.overlay.style == style for v in grid.views)
    assert grid.views[0].overlay.label_item.opacity() == pytest.approx(0.25)
    assert grid.views[3].overlay.result is None  # slot B


def test_refresh_overlays_rereads_an_edited_label_map(qtbot) -> None:
    volume = make_volume()
    result = make_result(volume, np.zeros(volume.shape, np.uint8))
    grid = make_grid(qtbot, "1x1")
    grid.show_series(OpenSeries("test", volume))
    grid.set_overlay("A", result)
    view = grid.views[0]
    row, col = show(view, volume, (21, 11, 6))
    result.label_map[6, 11, 21] = 1  # changed in place, e.g. an undo
    grid.refresh_overlays()
    assert tuple(view.overlay_rgba()[row, col]) == RGBA_NODULE


def test_focus_on_shows_the_point_zoomed_in_every_plane(qtbot) -> None:
    volume = make_volume(shape=(14, 60, 80))
    grid = make_grid(qtbot)
    grid.show_series(OpenSeries("test", volume))
    point = lps(volume, (60, 12, 3))
    for size, side in ((4.0, 30.0), (20.0, 60.0)):
        grid.focus_on(point, size)
        for view in grid.views:
            assert view.state.index == plane_index_of(volume, view.state.plane, point)
            assert np.allclose(view.crosshair_point, point)
            x, y, k = view.patient_to_view(point)
            assert abs(k) < 1e-6
            rect = view.viewbox.viewRect()
            assert rect.contains(x, y)
            assert rect.center().x() == pytest.approx(x, abs=1e-6)
            assert rect.center().y() == pytest.approx(y, abs=1e-6)
            assert min(rect.width(), rect.height()) == pytest.approx(side, rel=1e-3)
    assert grid.views[0].state.index == 3
