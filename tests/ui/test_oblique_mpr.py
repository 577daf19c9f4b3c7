"""True oblique MPR in the 1x3 layout against known geometry: turning the frame about the
axial normal puts a rod lying along the turned LR axis flat in the coronal view, the planes
stay orthogonal, labels sit on the image's pixels, Alt+drag turns by the angle swept, and
Reset returns to the acquisition's planes."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.oblique import rotation_about
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.tools.crosshair import NavigateTool, swept_degrees
from medviewer.ui.viewer_grid import ViewerGrid
from tests.ui.test_overlays import make_result

CENTRE = np.array([0.0, 0.0, 0.0])
ANGLE = 30.0


def _volume() -> Volume:
    """1 mm voxels around the origin: a rod through the centre along the LR axis turned
    -30 degrees about SI (the frame a +30 degree counter-clockwise drag in the axial view
    gives), and a ball at (12, -8, 5) mm."""
    shape = (41, 61, 61)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-30.0, -30.0, -20.0)
    k, r, c = np.indices(shape, dtype=float)
    lps = np.stack([c - 30.0, r - 30.0, k - 20.0], axis=-1)
    along = rotation_about(np.array([0, 0, 1.0]), -ANGLE) @ np.array([1.0, 0, 0])
    distance = np.linalg.norm(lps - np.outer(lps.reshape(-1, 3) @ along, along).reshape(lps.shape),
                              axis=-1)  # fmt: skip
    array = np.zeros(shape, np.int16)
    array[distance < 1.6] = 1000
    array[np.linalg.norm(lps - np.array([12.0, -8.0, 5.0]), axis=-1) < 4.5] = 600
    meta = VolumeMetadata(modality="CT", series_uid="1.2.3.7", frame_of_reference_uid="1.2.3.8")
    return Volume(array, affine, meta)


@pytest.fixture
def grid(qtbot) -> ViewerGrid:
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.resize(1200, 450)
    grid.set_layout("1x3")
    grid.show()
    grid.show_series(OpenSeries("rod", _volume()), grid.views[0])
    for view in grid.views:
        view.set_crosshair(CENTRE, move=True)
    return grid


def test_turning_about_the_axial_normal_lays_the_rod_flat_in_the_coronal_view(grid) -> None:
    axial, coronal, sagittal = grid.views
    before = coronal.plane_slice.image
    assert (before > 800).sum() < 40  # the rod crosses the acquisition's coronal plane
    grid.rotate(axial, ANGLE)
    normals = np.stack([v.plane_slice.affine[:3, 2] / np.linalg.norm(v.plane_slice.affine[:3, 2])
                        for v in grid.views])  # fmt: skip
    np.testing.assert_allclose(normals @ normals.T, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(normals[0], [0, 0, 1], atol=1e-9)  # the axial plane stays
    image = np.nan_to_num(coronal.plane_slice.image)
    rows, cols = np.nonzero(image > 800)  # the rod (1000), not the ball (600)
    assert cols.max() - cols.min() > 45  # the whole rod, 60 mm long, in the plane
    assert rows.max() - rows.min() <= 3  # flat: one row (and its partial-volume neighbours)
    # the row is the crosshair's: the plane's centre point is the volume's centre
    centre = coronal.plane_slice.affine @ np.array([cols.mean(), rows.mean(), 0, 1.0])
    np.testing.assert_allclose(centre[:3], CENTRE, atol=1.0)
    assert coronal.annotations.letters["right"] in ("LA", "AL")
    assert sagittal.state.rotation == coronal.state.rotation == axial.state.rotation


def test_labels_sit_on_the_image_pixels_on_rotated_planes(grid) -> None:
    axial, coronal, _sagittal = grid.views
    volume = axial.volume
    result = make_result(volume, label_map=(volume.array == 600).astype(np.uint8))
    grid.rotate(axial, ANGLE)
    grid.rotate(coronal, 20.0)
    ball = np.array([12.0, -8.0, 5.0])
    for view in grid.views:
        view.set_crosshair(ball, move=True)
        view.set_overlay(result)
        drawn = view.overlay.label_slice > 0
        image = np.nan_to_num(view.plane_slice.image)
        assert drawn.shape == image.shape
        rows, cols = drawn.shape
        c, r = np.meshgrid(np.arange(cols), np.arange(rows))
        affine = view.plane_slice.affine
        lps = (affine[:3, :3] @ np.stack([c.ravel(), r.ravel(), np.zeros(c.size)])).T
        truth = (np.linalg.norm(lps + affine[:3, 3] - ball, axis=1) < 4.5).reshape(rows, cols)
        union = (drawn | truth).sum()
        assert union > 30 and (drawn & truth).sum() / union > 0.7  # where the ball is
        assert 450 < image[drawn].mean() < 700  # and on the image's ball (600), not beside it


def test_alt_drag_turns_by_the_angle_swept(grid) -> None:
    assert swept_degrees((0.0, 0.0), (10.0, 0.0), (0.0, -10.0)) == pytest.approx(90.0)
    assert swept_degrees((0.0, 0.0), (0.0, -10.0), (10.0, 0.0)) == pytest.approx(-90.0)
    turned: list[float] = []
    from PySide6.QtCore import Qt

    tool = NavigateTool(lambda x, y: np.zeros(3), lambda p: None, turned.append,
                        lambda: (0.0, 0.0), lambda: Qt.KeyboardModifier.AltModifier)
    tool.drag((10.0, 0.0), (10.0, -10.0))
    tool.drag((10.0, 0.0), (0.0, -10.0))
    tool.release((10.0, 0.0), (0.0, -10.0))
    assert sum(turned) == pytest.approx(90.0)


def test_reset_returns_to_the_acquisition_planes(grid) -> None:
    axial, coronal, _sagittal = grid.views
    counts = [v.state.count for v in grid.views]
    grid.rotate(axial, ANGLE)
    assert all(v.state.rotation is not None for v in grid.views)
    grid.set_rotation("A", None)
    assert all(v.state.rotation is None for v in grid.views)
    assert [v.state.count for v in grid.views] == counts
    assert coronal.annotations.letters == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert coronal.plane_slice.image.dtype == np.int16  # the voxels again, not resampled


def test_screenshot_rotate_reads_a_tilted_series_in_true_axial_planes(tmp_path, qapp) -> None:
    """A series acquired with 20-degree tilted slices: --rotate 0,0 shows true axial planes
    (letters R/L/A/P, a rod along the patient's z a round dot at its place)."""
    from medviewer.cli import main
    from medviewer.io.series import load_series
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
    from medviewer.ui.screenshot import render_grid

    tilt = np.radians(20.0)
    orientation = (1.0, 0.0, 0.0, 0.0, np.cos(tilt), np.sin(tilt))
    spec = SeriesSpec(shape=(24, 48, 48), pixel_spacing=(1.0, 1.0), slice_spacing=2.0,
                      orientation=orientation, origin=(-24.0, -24.0, -20.0))
    written = write_series(tmp_path / "tilted", spec)
    volume = load_series(tmp_path / "tilted")
    assert written.affine is not None
    out = tmp_path / "true-axial.png"
    assert main(["screenshot", str(tmp_path / "tilted"), "--out", str(out), "--rotate", "0,0",
                 "--size", "400x400"]) == 0  # fmt: skip
    assert out.stat().st_size > 1000
    grid = render_grid(volume, size=(400, 400), rotation=np.eye(3))
    view = grid.views[0]
    assert view.state.rotation is not None
    assert view.annotations.letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    normal = view.plane_slice.affine[:3, 2]
    np.testing.assert_allclose(normal / np.linalg.norm(normal), [0, 0, 1], atol=1e-9)
    grid.close()


@pytest.mark.parametrize("which", [0, 1, 2])
def test_positive_degrees_turn_the_anatomy_clockwise_on_screen_in_every_plane(grid, which):
    """The same turning sense in the three views (the sagittal slice axis points the other
    way): a point to the right of the crossing moves down-right by the angle."""
    view = grid.views[which]
    x0, y0 = view._crossing()
    lps = view.view_to_patient(x0 + 10.0, y0)
    grid.rotate(view, 15.0)
    x1, y1 = view._crossing()
    x, y, depth = view.patient_to_view(lps)
    angle = np.degrees(np.arctan2(y - y1, x - x1))
    assert angle == pytest.approx(15.0, abs=0.5) and abs(depth) < 0.5
