"""The demo data writer against the phantom it renders: values, geometry, truth, UIDs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import UID, DigitalXRayImageStorageForPresentation

from medviewer.cli import main
from medviewer.io.series import load_series
from medviewer.synthetic import demo
from medviewer.synthetic.demo import DEMO_SEED, DemoData, DemoSeries, write_demo_data
from medviewer.synthetic.phantom import (
    NODULE,
    RADIOGRAPH_NODULE_MM,
    chest_case,
    ct_grid,
    pet_grid,
    render_ct,
    render_pet,
    render_radiograph,
)
from tests.conftest import hash_tree


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    """Two patients from DEMO_SEED: the demo's case (nodules) and the next one."""
    return write_demo_data(tmp_path_factory.mktemp("two") / "out", DEMO_SEED, cases=2)


@pytest.fixture(scope="module")
def rendered() -> SimpleNamespace:
    """The demo case rendered again, independently of the writer."""
    case = chest_case(DEMO_SEED)
    grid = ct_grid(case)
    hu, labels = render_ct(case, grid)
    return SimpleNamespace(case=case, grid=grid, hu=hu, labels=labels)


def _series(data: DemoData, modality: str, patient: str = "DEMO0001") -> DemoSeries:
    (found,) = [s for s in data.series if s.modality == modality and s.patient_id == patient]
    return found


def _truth(data: DemoData) -> dict:
    return json.loads(data.truth_json.read_text(encoding="utf-8"))


def _grid_affine(rendered: SimpleNamespace) -> np.ndarray:
    grid, case = rendered.grid, rendered.case
    affine = np.diag([grid.pixel_spacing, grid.pixel_spacing, case.slice_spacing_mm, 1.0])
    affine[:3, 3] = (grid.origin_xy[0], grid.origin_xy[1], grid.z_positions[0])
    return affine


def test_demo_seed_has_what_the_demo_needs() -> None:
    case = chest_case(DEMO_SEED)
    assert sum(n.diameter_mm >= 6.0 for n in case.nodules) >= 2 and case.slice_count <= 300
    assert any(n.diameter_mm < 6.0 for n in case.nodules)  # some the table need not list
    assert max(n.diameter_mm for n in case.nodules) >= RADIOGRAPH_NODULE_MM
    assert case.radiograph_class == "nodule"


def test_layout_and_truth_keys(two: DemoData) -> None:
    root = two.root
    assert sorted(p.name for p in root.iterdir()) == ["dicom", "truth"]
    assert sorted(p.name for p in two.dicom.iterdir()) == ["DEMO0001", "DEMO0002"]
    for series in two.series:
        assert series.folder == two.dicom / series.patient_id / series.modality
        assert sorted(series.folder.iterdir()) == sorted(series.files)
        uids = {pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in series.files}
        assert uids == {series.series_uid}
    truth = _truth(two)
    assert set(truth) == {s.series_uid for s in two.series}
    for series in two.series:
        entry = truth[series.series_uid]
        assert entry["modality"] == series.modality and entry["seed"] == series.case_seed
        if series.modality == "CT":
            assert entry["labels"] == f"truth/{series.series_uid}/labels.nii.gz"
            assert (root / entry["labels"]).is_file()
    # Nothing but the truth file and one label map per CT beside the DICOM part.
    labels = sorted(p.relative_to(root).as_posix() for p in (root / "truth").rglob("*.nii.gz"))
    assert labels == sorted(truth[s.series_uid]["labels"] for s in two.series if s.modality == "CT")


def test_ct_values_and_geometry(demo_study: DemoData, rendered: SimpleNamespace) -> None:
    series = _series(demo_study, "CT")
    volume = load_series(series.folder)
    assert volume.shape == (rendered.case.slice_count, 512, 512)
    np.testing.assert_array_equal(volume.array, rendered.hu)
    np.testing.assert_allclose(volume.affine, _grid_affine(rendered), atol=1e-4)
    assert volume.metadata.modality == "CT" and volume.metadata.warnings == ()
    assert [(p.name, p.center, p.width) for p in volume.metadata.window_presets] == [
        ("LUNG", -600.0, 1500.0),
        ("MEDIASTINUM", 40.0, 400.0),
    ]
    ds = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    assert (ds.RescaleIntercept, ds.RescaleSlope) == (-1024, 1)
    assert (ds.BitsStored, ds.PixelRepresentation, ds.BodyPartExamined) == (12, 0, "CHEST")
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert ds.SliceThickness == pytest.approx(rendered.case.slice_spacing_mm)
    assert ds.StudyDescription == "CT CHEST (synthetic demo)"


def test_pt_values_geometry_and_tags(demo_study: DemoData) -> None:
    """The PET files hold the rendered SUV (to one step of each slice's 16-bit scale) on the
    PET grid, in the CT's study and frame of reference, with the tags SUV is computed from."""
    series, ct = _series(demo_study, "PT"), _series(demo_study, "CT")
    case = chest_case(DEMO_SEED)
    grid = pet_grid(case)
    expected = render_pet(case, grid)
    volume = load_series(series.folder)
    truth = _truth(demo_study)[series.series_uid]
    assert volume.shape == grid.shape and volume.metadata.warnings == ()
    factor = volume.metadata.suv.factor
    assert factor == pytest.approx(truth["suv_bw_factor"], rel=1e-9)
    step = expected.max(axis=(1, 2), keepdims=True) / 65535 * 1.001 + 1e-6
    assert np.all(np.abs(volume.array * factor - expected) <= step)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = (grid.origin_xy[0], grid.origin_xy[1], grid.z_positions[0])
    np.testing.assert_allclose(volume.affine, affine, atol=1e-4)
    ds = pydicom.dcmread(series.files[0], stop_before_pixels=True)
    ct_ds = pydicom.dcmread(ct.files[0], stop_before_pixels=True)
    assert ds.StudyInstanceUID == ct_ds.StudyInstanceUID == series.study_uid
    assert ds.FrameOfReferenceUID == ct_ds.FrameOfReferenceUID
    assert (ds.Units, ds.DecayCorrection, ds.Modality) == ("BQML", "START", "PT")
    drug = ds.RadiopharmaceuticalInformationSequence[0]
    assert float(drug.RadionuclideTotalDose) == truth["dose_bq"]
    assert float(ds.PatientWeight) == truth["weight_kg"]
    assert [n["suv"] for n in truth["nodules"]] == [
        pytest.approx(min(1.5 + 0.35 * n.diameter_mm, 10.0)) for n in case.nodules
    ]


def test_labels_on_the_ct_grid(demo_study: DemoData, rendered: SimpleNamespace) -> None:
    series = _series(demo_study, "CT")
    volume = load_series(series.folder)
    image = sitk.ReadImage(str(demo_study.root / _truth(demo_study)[series.series_uid]["labels"]))
    assert image.GetSize() == tuple(reversed(volume.shape))
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, atol=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), volume.direction)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), rendered.labels)


def test_ct_nodules_match_their_label_components(
    demo_study: DemoData, rendered: SimpleNamespace
) -> None:
    nodules = _truth(demo_study)[_series(demo_study, "CT").series_uid]["nodules"]
    assert len(nodules) >= 2 and max(n["diameter_mm"] for n in nodules) >= 8
    centres = np.array([n["centroid_lps"] for n in nodules])
    voxels = np.argwhere(rendered.labels == NODULE)  # (slice, row, col)
    homogeneous = np.c_[voxels[:, ::-1], np.ones(len(voxels))]
    points = (homogeneous @ _grid_affine(rendered).T)[:, :3]
    nearest = np.argmin(np.linalg.norm(points[:, None] - centres[None], axis=2), axis=1)
    for k, nodule in enumerate(nodules):
        mine = points[nearest == k]
        assert len(mine), f"no label voxels for nodule {nodule}"
        radius = nodule["diameter_mm"] / 2
        assert np.linalg.norm(mine.mean(axis=0) - centres[k]) <= radius
        # Every nodule voxel belongs to a listed nodule: none is left out of the truth.
        assert np.linalg.norm(mine - centres[k], axis=1).max() <= radius * 1.5 + 2.0
        assert nodule["kind"] in ("solid", "part-solid")
    listed = {(n["diameter_mm"], tuple(n["centroid_lps"])) for n in nodules}
    case_nodules = {
        (n.diameter_mm, tuple(round(v, 2) for v in n.centre_lps)) for n in rendered.case.nodules
    }
    assert listed <= case_nodules


def test_dx_pixels_tags_and_truth(demo_study: DemoData) -> None:
    case = chest_case(DEMO_SEED)
    radiograph = render_radiograph(case)
    series = _series(demo_study, "DX")
    ds = pydicom.dcmread(series.files[0])
    np.testing.assert_array_equal(ds.pixel_array, radiograph.pixels)
    assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
    assert (ds.Modality, ds.ViewPosition, ds.BodyPartExamined) == ("DX", "PA", "CHEST")
    assert list(ds.PatientOrientation) == ["L", "F"]
    assert [float(v) for v in ds.ImagerPixelSpacing] == [radiograph.pixel_spacing] * 2
    assert [float(v) for v in ds.PixelSpacing] == [radiograph.pixel_spacing] * 2
    assert (ds.PhotometricInterpretation, ds.BitsStored) == ("MONOCHROME2", 12)
    assert "ImageOrientationPatient" not in ds and "ImagePositionPatient" not in ds
    low, high = np.percentile(radiograph.pixels, [1.0, 99.5])
    assert float(ds.WindowCenter) == pytest.approx((low + high) / 2, abs=0.1)
    assert float(ds.WindowWidth) == pytest.approx(high - low, abs=0.1)
    entry = _truth(demo_study)[series.series_uid]
    assert entry["class"] == case.radiograph_class == "nodule"
    assert [n["diameter_mm"] for n in entry["nodules"]] == [n.diameter_mm for n in case.nodules]


def test_dx_pixel_rc_points_at_each_large_nodule(demo_study: DemoData) -> None:
    case = chest_case(DEMO_SEED)
    radiograph = render_radiograph(case)
    full = radiograph.pixels.astype(np.float64)
    without_all = render_radiograph(dataclasses.replace(case, nodules=())).pixels
    assert (full - without_all).max() > 50  # the nodules add attenuation
    entry = _truth(demo_study)[_series(demo_study, "DX").series_uid]
    large = [
        (n, t)
        for n, t in zip(case.nodules, entry["nodules"], strict=True)
        if n.diameter_mm >= RADIOGRAPH_NODULE_MM
    ]
    assert large
    for nodule, truth in large:
        # Remove only this nodule, so the difference is its own shadow (others cancel out).
        others = tuple(m for m in case.nodules if m is not nodule)
        without = render_radiograph(dataclasses.replace(case, nodules=others)).pixels
        difference = full - without
        peak = np.unravel_index(np.argmax(difference), difference.shape)
        distance_mm = (
            np.linalg.norm(np.subtract(peak, truth["pixel_rc"])) * radiograph.pixel_spacing
        )
        assert distance_mm <= nodule.diameter_mm / 2 + 3.0, (nodule.diameter_mm, peak, truth)


def _headers(data: DemoData) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f, stop_before_pixels=True) for s in data.series for f in s.files]


def test_uids_are_valid_unique_and_per_patient(two: DemoData) -> None:
    headers = _headers(two)
    sops = [ds.SOPInstanceUID for ds in headers]
    assert len(set(sops)) == len(sops)
    names = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"}
    for ds in headers:
        for name in names & set(ds.dir()):
            assert UID(ds[name].value).is_valid, (name, ds[name].value)
    assert len({s.series_uid for s in two.series}) == len(two.series) == 6
    assert len({s.study_uid for s in two.series}) == 4  # a PET/CT and a DX study per patient
    by_patient = {ds.PatientID: ds for ds in headers}
    assert sorted(by_patient) == ["DEMO0001", "DEMO0002"]
    assert [str(by_patient[p].PatientName) for p in sorted(by_patient)] == [
        "DEMO^PATIENT1",
        "DEMO^PATIENT2",
    ]
    studies = {(ds.PatientID, ds.Modality): ds for ds in headers}
    assert studies["DEMO0001", "CT"].StudyDate != studies["DEMO0001", "DX"].StudyDate
    assert len({ds.AccessionNumber for ds in studies.values()}) == 4  # PET shares the CT's
    assert studies["DEMO0001", "PT"].AccessionNumber == studies["DEMO0001", "CT"].AccessionNumber
    ct1, ct2 = (pydicom.dcmread(_series(two, "CT", p).files[0]) for p in ("DEMO0001", "DEMO0002"))
    assert ct1.PixelData != ct2.PixelData and ct1.ImagePositionPatient != ct2.ImagePositionPatient


def test_second_patient_is_the_next_case(two: DemoData) -> None:
    truth = _truth(two)
    case = chest_case(DEMO_SEED + 1)
    ct, dx = (truth[_series(two, m, "DEMO0002").series_uid] for m in ("CT", "DX"))
    assert ct["seed"] == dx["seed"] == DEMO_SEED + 1
    assert dx["class"] == case.radiograph_class
    assert len(dx["nodules"]) == len(case.nodules) >= len(ct["nodules"])
    assert len(_series(two, "CT", "DEMO0002").files) == case.slice_count


def test_same_seed_writes_the_same_files(demo_study: DemoData, two: DemoData) -> None:
    assert hash_tree(demo_study.dicom / "DEMO0001") == hash_tree(two.dicom / "DEMO0001")
    first, again = _truth(demo_study), _truth(two)
    assert {uid: again[uid] for uid in first} == first


def _tiny_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 24 x 24 CT grid and a 16 mm PET grid, so a test can write a whole demo in about a
    second."""
    monkeypatch.setattr(demo, "ct_grid", lambda case, size=512: ct_grid(case, size=24))
    monkeypatch.setattr(demo, "pet_grid", lambda case: pet_grid(case, spacing_mm=16.0))


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="out exists and is not empty"):
        write_demo_data(tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        write_demo_data(tmp_path / "file")
    with pytest.raises(ValueError):
        write_demo_data(tmp_path / "new", cases=0)


def test_an_empty_folder_is_filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_grid(monkeypatch)
    (tmp_path / "out").mkdir()
    data = write_demo_data(tmp_path / "out", seed=5)
    assert data.truth_json.is_file() and data.root == tmp_path / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left


def test_a_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_grid(monkeypatch)

    def fail(*args: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(demo, "_write_dx", fail)  # after the CT and its labels are written
    with pytest.raises(RuntimeError, match="injected"):
        write_demo_data(tmp_path / "out", seed=DEMO_SEED)
    assert list(tmp_path.iterdir()) == []


def test_demo_folder_is_written_once_and_holds_only_dicom(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _tiny_grid(monkeypatch)
    monkeypatch.setattr(demo, "demo_root", lambda: tmp_path / "cache" / "demo")
    folder = demo.demo_folder()
    assert folder == tmp_path / "cache" / "demo" / "dicom"
    assert sorted(p.name for p in folder.iterdir()) == ["DEMO0001"]
    before = hash_tree(folder)
    monkeypatch.setattr(demo, "write_demo_data", lambda *a, **k: pytest.fail("written twice"))
    assert demo.demo_folder() == folder
    assert hash_tree(folder) == before


def test_cli_demo_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _tiny_grid(monkeypatch)
    out = tmp_path / "out"
    assert main(["demo-data", str(out), "--seed", "7", "--cases", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert [line.split()[0] for line in lines[:-1]] == ["CT", "PT", "DX", "CT", "PT", "DX"]
    assert [line.split()[1] for line in lines[:-1]] == list(truth)
    assert lines[0].split()[2] == str(out / "dicom" / "DEMO0001" / "CT")
    assert lines[-1] == f"truth: {out / 'truth' / 'truth.json'}"
    assert {entry["seed"] for entry in truth.values()} == {7, 8}
    assert main(["demo-data", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["demo-data", str(tmp_path / "new"), "--cases", "0"]) == 2
