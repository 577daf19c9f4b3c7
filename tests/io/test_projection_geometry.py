"""Projection images and single non-axial images (issue 18).

Radiographs and RT Images have no patient position: their pixel spacing comes from Imager
Pixel Spacing (corrected by the estimated magnification) or Image Plane Pixel Spacing (scaled
to the isocentre), and their edge letters from Patient Orientation. Truth is the file's own
tags read by pydicom and the definitions in PS3.3 C.8.11.4.1.1 and C.8.8.2.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.core.geometry import native_plane, projection_edge_letters, reslice
from medviewer.io.series import load_series
from medviewer.synthetic.dicom_writer import write_radiograph

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _radiograph(tmp_path: Path, **tags) -> tuple[Path, pydicom.Dataset]:
    path, _ = write_radiograph(tmp_path, shape=(40, 30), spacing=(0.2, 0.25))
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)
    return path, pydicom.dcmread(path)


def test_imager_spacing_is_divided_by_the_estimated_magnification(tmp_path: Path) -> None:
    path, ds = _radiograph(tmp_path, EstimatedRadiographicMagnificationFactor="1.25")
    volume = load_series(path)
    imager = [float(v) for v in ds.ImagerPixelSpacing]
    factor = float(ds.EstimatedRadiographicMagnificationFactor)
    # spacing is (col, row, slice); Imager Pixel Spacing is (row, col)
    np.testing.assert_allclose(volume.spacing[:2], [imager[1] / factor, imager[0] / factor])
    assert any("magnification factor 1.25" in w for w in volume.metadata.warnings)


def test_imager_spacing_without_magnification_is_used_and_said(tmp_path: Path) -> None:
    path, _ = _radiograph(tmp_path)
    volume = load_series(path)
    np.testing.assert_allclose(volume.spacing[:2], [0.25, 0.2])
    assert any("at the detector" in w for w in volume.metadata.warnings)


def test_a_magnification_below_one_is_not_applied(tmp_path: Path) -> None:
    path, _ = _radiograph(tmp_path, EstimatedRadiographicMagnificationFactor="0")
    np.testing.assert_allclose(load_series(path).spacing[:2], [0.25, 0.2])


def test_pixel_spacing_wins_over_imager_spacing(tmp_path: Path) -> None:
    path, _ = _radiograph(
        tmp_path, PixelSpacing=["0.1", "0.125"], EstimatedRadiographicMagnificationFactor="1.5"
    )
    volume = load_series(path)
    np.testing.assert_allclose(volume.spacing[:2], [0.125, 0.1])
    assert not any("Imager" in w for w in volume.metadata.warnings)


def _rt_image(tmp_path: Path, sad: str | None, sid: str | None) -> Path:
    path, _ = _radiograph(
        tmp_path,
        ImagerPixelSpacing=None,
        Modality="RTIMAGE",
        ImagePlanePixelSpacing=["0.392", "0.4"],
        RadiationMachineSAD=sad,
        RTImageSID=sid,
    )
    return path


def test_rt_image_plane_spacing_is_scaled_to_the_isocentre(tmp_path: Path) -> None:
    volume = load_series(_rt_image(tmp_path, "1000", "1500"))
    np.testing.assert_allclose(volume.spacing[:2], [0.4 * 1000 / 1500, 0.392 * 1000 / 1500])
    assert any("isocentre (SAD 1000 mm / SID 1500 mm)" in w for w in volume.metadata.warnings)


def test_rt_image_plane_spacing_without_distances_is_at_the_receptor(tmp_path: Path) -> None:
    volume = load_series(_rt_image(tmp_path, None, None))
    np.testing.assert_allclose(volume.spacing[:2], [0.4, 0.392])
    assert any("image receptor" in w for w in volume.metadata.warnings)


def test_patient_orientation_gives_the_edge_letters(tmp_path: Path) -> None:
    path, _ = _radiograph(tmp_path, PatientOrientation=["L", "F"])
    volume = load_series(path)
    assert not volume.metadata.positioned
    assert volume.metadata.patient_orientation == ("L", "F")
    assert projection_edge_letters(volume.metadata.patient_orientation) == {
        "left": "R", "right": "L", "top": "H", "bottom": "F"
    }  # fmt: skip


@pytest.mark.parametrize(("name", "row"), [("RG1_UNCI.dcm", "L"), ("RG3_UNCR.dcm", "R")])
def test_pydicom_data_radiographs_keep_their_patient_orientation(name: str, row: str) -> None:
    data_store = pytest.importorskip("data_store")
    path = Path(os.path.dirname(data_store.__file__)) / "data" / name
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert list(ds.PatientOrientation) == [row, "F"]
    volume = load_series(path)
    assert volume.metadata.patient_orientation == (row, "F")
    letters = projection_edge_letters(volume.metadata.patient_orientation)
    assert (letters["right"], letters["bottom"]) == (row, "F")
    assert letters["left"] == {"L": "R", "R": "L"}[row] and letters["top"] == "H"


def test_a_positioned_image_has_no_patient_orientation_letters(series_dir) -> None:
    folder, _ = series_dir
    assert load_series(folder).metadata.patient_orientation == ()


def _single_image(tmp_path: Path, orientation: list[float], position: list[float]) -> Path:
    """A one-image MR series in its own plane, pixels a ramp."""
    path, _ = _radiograph(
        tmp_path,
        Modality="MR",
        SOPClassUID="1.2.840.10008.5.1.4.1.1.4",
        ImageOrientationPatient=[str(v) for v in orientation],
        ImagePositionPatient=[str(v) for v in position],
        PixelSpacing=["0.5", "0.8"],
        FrameOfReferenceUID="1.2.826.0.1.3680043.10.1234.18.9",
    )
    return path


@pytest.mark.parametrize(
    ("orientation", "plane", "letters"),
    [
        ([0, 1, 0, 0, 0, -1], "sagittal", {"left": "A", "right": "P", "top": "S", "bottom": "I"}),
        ([1, 0, 0, 0, 0, -1], "coronal", {"left": "R", "right": "L", "top": "S", "bottom": "I"}),
        ([1, 0, 0, 0, 1, 0], "axial", {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
    ],
)
def test_a_single_image_is_shown_in_its_own_plane(
    tmp_path: Path, orientation: list[float], plane: str, letters: dict
) -> None:
    path = _single_image(tmp_path, orientation, [-20.0, 30.0, 40.0])
    ds = pydicom.dcmread(path)
    volume = load_series(path)
    assert native_plane(volume.affine) == plane
    shown = reslice(volume.array, volume.affine, plane, 0)
    np.testing.assert_array_equal(shown.image, ds.pixel_array)  # the image, as stored
    assert shown.edge_letters == letters
    assert shown.pixel_spacing == (0.5, 0.8)
    np.testing.assert_allclose(shown.affine[:3, 3], [-20.0, 30.0, 40.0])
    edge_on = reslice(volume.array, volume.affine, "axial" if plane != "axial" else "sagittal", 0)
    assert 1 in edge_on.image.shape  # what the viewer showed before: one row of pixels
