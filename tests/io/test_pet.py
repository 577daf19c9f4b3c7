"""A PET series' SUV from its files: the demo PET against its truth (the factor, the nodules'
uptake where the CT has them), and the vendors' variants written into copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.core.geometry import patient_to_voxel
from medviewer.io.series import load_series
from medviewer.synthetic.demo import DemoData


def _series(data: DemoData, modality: str):
    (found,) = [s for s in data.series if s.modality == modality]
    return found


@pytest.fixture(scope="module")
def pet(demo_study: DemoData):
    series = _series(demo_study, "PT")
    truth = json.loads(demo_study.truth_json.read_text())[series.series_uid]
    return series, truth, load_series(series.folder)


def test_the_demo_pet_gives_the_suv_factor_of_its_truth(pet) -> None:
    _, truth, volume = pet
    suv = volume.metadata.suv
    assert suv is not None and suv.method == "decay" and suv.scan_time_source == "series"
    assert suv.factor == pytest.approx(truth["suv_bw_factor"], rel=1e-9)
    assert suv.decay_s == 3600.0
    assert volume.metadata.units == "BQML" and volume.metadata.modality == "PT"


def test_the_hottest_nodule_is_hot_where_the_ct_has_it(pet, demo_study: DemoData) -> None:
    """Same frame of reference: the uptake-weighted centre of the hot spot around the largest
    nodule's CT centroid (voxels over half its maximum) is within 2 mm of it (half a PET
    voxel), at an SUV between 60 % (partial volume) and 115 % (noise) of the tissue's uptake."""
    _, truth, volume = pet
    ct = load_series(_series(demo_study, "CT").folder)
    assert ct.metadata.frame_of_reference_uid == volume.metadata.frame_of_reference_uid
    nodule = max(truth["nodules"], key=lambda n: n["diameter_mm"])
    centre = np.asarray(nodule["centroid_lps"])
    suv = volume.array * volume.metadata.suv.factor
    col, row, k = np.round(patient_to_voxel(volume.affine, centre)).astype(int)
    box = suv[k - 3:k + 4, row - 3:row + 4, col - 3:col + 4]
    hot = box > box.max() / 2
    kk, rr, cc = np.nonzero(hot)
    weights = box[hot]
    ijk = np.array([col - 3 + cc, row - 3 + rr, k - 3 + kk], float) @ weights / weights.sum()
    hot_lps = volume.affine[:3, :3] @ ijk + volume.affine[:3, 3]
    assert np.linalg.norm(hot_lps - centre) <= 2.0
    assert 0.6 * nodule["suv"] <= float(box.max()) <= 1.15 * nodule["suv"]  # noise: 3 % SD
    lung_far = suv[k, row, max(col - 12, 0)]  # 48 mm aside, in the lung: background uptake
    assert lung_far < 1.2


def _copy(series, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "pt"
    shutil.copytree(series.folder, folder)
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)
    return folder


def test_philips_counts_with_their_private_factor(pet, tmp_path) -> None:
    series, _truth, _volume = pet

    def philips(ds) -> None:
        ds.Units = "CNTS"
        block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
        block.add_new(0x00, "DS", "0.000551")

    suv = load_series(_copy(series, tmp_path, philips)).metadata.suv
    assert suv.method == "philips" and suv.factor == pytest.approx(0.000551)


def test_a_reprocessed_series_decays_to_ge_private_scan_time(pet, tmp_path) -> None:
    series, truth, _volume = pet
    original = pydicom.dcmread(series.files[0], stop_before_pixels=True)

    def reprocessed(ds) -> None:
        ds.SeriesTime = "235900"  # reconstructed again late in the day
        block = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
        block.add_new(0x0D, "DT", original.SeriesDate + original.SeriesTime)

    suv = load_series(_copy(series, tmp_path, reprocessed)).metadata.suv
    assert suv.scan_time_source == "ge_private" and suv.decay_s == 3600.0
    assert suv.factor == pytest.approx(truth["suv_bw_factor"], rel=1e-9)


def test_without_weight_the_reason_is_given(pet, tmp_path, capsys) -> None:
    series, _truth, _volume = pet
    folder = _copy(series, tmp_path, lambda ds: delattr(ds, "PatientWeight"))
    suv = load_series(folder).metadata.suv
    assert suv.factor is None and "missing Patient's Weight (0010,1030)" in suv.reason
    from medviewer.cli import main

    assert main(["info", str(folder), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["suv"]
    assert reported["suv_bw_factor"] is None and "Patient's Weight" in reported["reason"]


def test_the_inputs_are_not_modified(pet) -> None:
    series, _truth, _volume = pet
    assert pydicom.dcmread(series.files[0], stop_before_pixels=True).Units == "BQML"


def test_roi_statistics_and_the_report_line_give_suv(pet) -> None:
    """An ellipse over the hottest nodule on the demo PET: SUVmax/SUVmean in the viewer's
    text and the PDF's line are the image's values times the SUV factor."""
    from medviewer.core import measurements as mm
    from medviewer.core.geometry import reslice
    from medviewer.core.viewstate import plane_index_of
    from medviewer.report.content import MeasurementLine

    _, truth, volume = pet
    nodule = max(truth["nodules"], key=lambda n: n["diameter_mm"])
    centre = np.asarray(nodule["centroid_lps"])
    index = plane_index_of(volume, "axial", centre)
    plane = reslice(volume.array, volume.affine, "axial", index)
    r = nodule["diameter_mm"] / 2
    z = float(plane.affine[2, 3])  # on the plane shown
    corners = [(centre[0] - r, centre[1] - r, z), (centre[0] + r, centre[1] + r, z)]
    ellipse = mm.Measurement("ellipse", corners, "axial", volume.metadata.series_uid)
    stats = mm.roi_stats(plane.image, plane.affine, ellipse)
    factor = volume.metadata.suv_bw_factor
    line = MeasurementLine.of(ellipse, "BQML", plane.affine, plane.image, factor)
    assert f"SUVmax {stats.max * factor:.2f}, SUVmean {stats.mean * factor:.2f}" in line.text
    assert stats.max * factor > 0.6 * nodule["suv"]
