"""RT Dose grids: frames placed by GridFrameOffsetVector, values scaled to dose (issue 18).

Truth is pydicom's own reading of the same file: Image Position (Patient) moved along the
slice normal by each offset (PS3.3 C.8.8.3.2), and stored values times DoseGridScaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.core.geometry import slice_normal
from medviewer.io.series import load_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _truth(ds: pydicom.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's position (in file order) and the dose values, from pydicom."""
    offsets = np.asarray(ds.GridFrameOffsetVector, float)
    normal = slice_normal([float(v) for v in ds.ImageOrientationPatient])
    positions = np.asarray(ds.ImagePositionPatient, float) + np.outer(offsets - offsets[0], normal)
    return positions, ds.pixel_array * float(ds.DoseGridScaling)


def _frame_positions(volume) -> np.ndarray:
    """Where the volume puts the first voxel of each of its slices (LPS mm)."""
    k = np.arange(volume.shape[0])
    voxels = np.stack([np.zeros_like(k), np.zeros_like(k), k, np.ones_like(k)])
    return (volume.affine @ voxels)[:3].T


@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_rle.dcm", "rtdose_expb.dcm"])
def test_pydicom_data_rt_dose_frame_by_frame(name: str) -> None:
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    positions, dose = _truth(ds)
    volume = load_series(path)
    assert volume.shape == (15, 10, 10)
    np.testing.assert_allclose(_frame_positions(volume), positions, atol=1e-6)  # 5 mm apart
    np.testing.assert_allclose(volume.spacing, [10.0, 10.0, 5.0])
    np.testing.assert_allclose(volume.array, dose, rtol=1e-6)
    assert volume.metadata.units == "relative"  # DoseUnits RELATIVE
    assert not any("per-frame" in w for w in volume.metadata.warnings)


def _dose_file(path: Path, offsets: list[float], units: str) -> pydicom.Dataset:
    """pydicom-data's RT Dose with other offsets and units."""
    ds = pydicom.dcmread(get_testdata_file("rtdose.dcm"))
    ds.GridFrameOffsetVector = offsets
    ds.DoseUnits = units
    ds.save_as(path)
    return pydicom.dcmread(path)


def test_absolute_offsets_in_any_order_and_dose_in_gray(tmp_path: Path) -> None:
    """The 'absolute' form: offsets are z coordinates, the first one the first frame's z;
    frames listed from head to feet here, so the loader must sort them."""
    z0 = -761.87
    offsets = [z0 - 5.0 * k for k in range(15)]
    ds = _dose_file(tmp_path / "dose.dcm", offsets, "GY")
    positions, dose = _truth(ds)
    volume = load_series(tmp_path / "dose.dcm")
    order = np.argsort(positions[:, 2])  # the volume runs from feet to head
    np.testing.assert_allclose(_frame_positions(volume), positions[order], atol=1e-6)
    np.testing.assert_allclose(volume.array, dose[order], rtol=1e-6)
    assert volume.origin[2] == pytest.approx(z0 - 70.0)
    assert volume.metadata.units == "Gy"


@pytest.mark.parametrize("name", ["rtdose_1frame.dcm", "rtdose_rle_1frame.dcm"])
def test_a_single_frame_dose_is_scaled_too(name: str) -> None:
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    volume = load_series(path)
    np.testing.assert_allclose(volume.array[0], ds.pixel_array * float(ds.DoseGridScaling),
                               rtol=1e-6)
    assert volume.metadata.units == "relative"


def test_the_scaling_survives_the_study_database_once(tmp_path: Path) -> None:
    """Records are stored as JSON and rebuilt: the scaling is applied once, not twice."""
    from medviewer.io.database import record_from_json, record_to_json
    from medviewer.io.header import read_header

    record = read_header(get_testdata_file("rtdose.dcm"))
    assert record.rescale_slope == pytest.approx(1e-6) and record.rescale_type == "relative"
    again = record_from_json(record_to_json(record))
    assert again == record and again.rescale_slope == record.rescale_slope
