"""Radiographs and single non-axial images on screen (issue 18): the image in its own plane,
edge letters from the geometry or from Patient Orientation, no plane name for a radiograph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.io.series import load_series
from medviewer.synthetic.dicom_writer import write_radiograph
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import corner_text
from medviewer.ui.viewer_grid import ViewerGrid

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _grid(qtbot, layout: str) -> ViewerGrid:
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.resize(900, 450)
    grid.set_layout(layout)
    grid.show()
    qtbot.waitExposed(grid)
    return grid


def _file(tmp_path: Path, **tags) -> Path:
    path, _ = write_radiograph(tmp_path, shape=(40, 30), spacing=(0.2, 0.25))
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return path


@pytest.mark.parametrize("layout", ["1x1", "1x3"])
def test_a_sagittal_localizer_opens_in_its_own_plane(qtbot, tmp_path: Path, layout: str) -> None:
    path = _file(
        tmp_path,
        Modality="MR",
        ImageOrientationPatient=["0", "1", "0", "0", "0", "-1"],
        ImagePositionPatient=["12", "-50", "80"],
        PixelSpacing=["0.5", "0.8"],
        FrameOfReferenceUID="1.2.826.0.1.3680043.10.1234.18.10",
    )
    grid = _grid(qtbot, layout)
    grid.show_series(OpenSeries("sag", load_series(path)), grid.views[0])
    view = grid.views[0]
    assert view.state.plane == "sagittal"
    np.testing.assert_array_equal(view.plane_slice.image, pydicom.dcmread(path).pixel_array)
    assert view.annotations.letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert corner_text(view)["top_right"][-1] == "MR sagittal"
    rect = view.image_item.mapRectToParent(view.image_item.boundingRect())
    assert (rect.width(), rect.height()) == pytest.approx((30 * 0.8, 40 * 0.5))
    assert all(other.series is None for other in grid.views[1:])  # no MPR of one image


def test_a_radiograph_shows_patient_orientation_letters_and_no_plane(qtbot, tmp_path) -> None:
    path = _file(tmp_path, PatientOrientation=["L", "F"])
    grid = _grid(qtbot, "1x1")
    grid.show_series(OpenSeries("dx", load_series(path)), grid.views[0])
    view = grid.views[0]
    np.testing.assert_array_equal(view.plane_slice.image, pydicom.dcmread(path).pixel_array)
    assert view.annotations.letters == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    assert corner_text(view)["top_right"][-1] == "DX"
    assert corner_text(view)["bottom_left"] == ["Im 1/1"]  # no slice position to give


def test_a_radiograph_without_patient_orientation_has_no_letters(qtbot, tmp_path) -> None:
    grid = _grid(qtbot, "1x1")
    grid.show_series(OpenSeries("dx", load_series(_file(tmp_path))), grid.views[0])
    assert grid.views[0].annotations.letters == {}
