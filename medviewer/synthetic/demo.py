"""The demo data: synthetic chest CTs and radiographs from :mod:`~medviewer.synthetic.phantom`,
with truth.

:func:`write_demo_data` writes, for each synthetic patient, a CT study and a radiograph (DX)
study as DICOM, and the truth beside them::

    OUT/dicom/DEMO0001/CT/CT0001.dcm ...   axial CT, 512 x 512
    OUT/dicom/DEMO0001/PT/PT0001.dcm ...   FDG PET of the same chest (the CT's study and
                                           frame of reference), 4 mm, in Bq/ml with SUV tags
    OUT/dicom/DEMO0001/DX/DX0001.dcm       PA chest radiograph projected from the same chest
    OUT/truth/<SeriesInstanceUID>/labels.nii.gz   CT labels on the CT's grid
    OUT/truth/truth.json                   nodules and classes, keyed by SeriesInstanceUID

Everything is deterministic from the seed and entirely synthetic: no patient data. Writing is
all or nothing (a hidden staging folder renamed into place: :mod:`medviewer.core.staging`).
:func:`demo_folder` is what ``medviewer --demo`` opens: the DICOM part of the demo, written once
to the user cache.

No Qt and no torch here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
from pydicom.uid import UID

from medviewer.core.staging import staged_folder
from medviewer.synthetic.dicom_writer import AXIAL, CT_IMAGE_STORAGE, DX_STORAGE, uid
from medviewer.synthetic.phantom import (
    NODULE,
    AxialGrid,
    ChestCase,
    Nodule,
    Radiograph,
    chest_case,
    ct_grid,
    nodule_suv,
    pet_grid,
    render_ct,
    render_pet,
    render_radiograph,
)

if TYPE_CHECKING:
    import SimpleITK as sitk
    from pydicom.dataset import Dataset
    from pydicom.valuerep import DSfloat

# The demo case is chosen so the shipped demo models show their workflows working on it:
# 90014 has nodules of 9.0, 21.9 and 6.3 mm (solid) and 5.3 mm on 273 slices 1.33 mm apart;
# the segmentation cascade finds the three of 6 mm or more (nodule Dice 0.87-0.94, no false
# positive), and the radiograph model calls the radiograph "nodule" (p 0.88) with its
# Grad-CAM peak 2.9 mm from the 21.9 mm nodule. Seeds from 90007 were tried in order: 90007
# (the earlier demo) is a radiograph miss (p 0.54, Grad-CAM peak 12 cm away); 90008, 90010
# and 90011 have no nodule of 8 mm or more; 90009 has a single nodule; 90012 is a radiograph
# miss; 90013 (the demo until the 3D cascade) has a 12.3 mm part-solid nodule the cascade
# misses. The models' held-out figures, not this case, say how good they are:
# docs/models.md.
DEMO_SEED = 90014
CT_SIZE = 512
_UID_ARC = 31415  # demo UIDs: UID_ROOT + "31415.<seed>.<patient>.<kind>[.<instance>]"
_CT_WINDOWS = (("LUNG", -600.0, 1500.0), ("MEDIASTINUM", 40.0, 400.0))
# UID kinds (the part after the patient number).
_CT_STUDY, _DX_STUDY, _CT_SERIES, _DX_SERIES, _FRAME_OF_REFERENCE, _CT_SOP, _DX_SOP = range(1, 8)
_PT_SERIES, _PT_SOP = 8, 9
PET_STORAGE = UID("1.2.840.10008.5.1.4.1.1.128")  # Positron Emission Tomography Image Storage
F18_HALF_LIFE_S = 6586.2
PET_DOSE_BQ_PER_KG = 4.0e6  # FDG, 4 MBq/kg
PET_UPTAKE_S = 3600  # from the injection to the PET series (its decay-correction time)
_PET_WINDOW_SUV = (3.0, 6.0)  # centre, width: SUV 0-6
# Bumped when the demo's content changes, so a demo cached by an older version is rewritten.
DEMO_VERSION = 2


class NoduleTruth(TypedDict):
    """A nodule in ``truth.json``: its centre (LPS mm), diameter and kind."""

    centroid_lps: list[float]
    diameter_mm: float
    kind: str


class DxNoduleTruth(NoduleTruth):
    """A nodule of a radiograph's truth, with where its centre projects: (row, col) pixels."""

    pixel_rc: list[float]


class CtTruth(TypedDict):
    """The truth of a CT series in ``truth.json``: its label map (relative path) and the
    nodules that have voxels in it."""

    modality: str
    seed: int
    labels: str
    nodules: list[NoduleTruth]


class PtNoduleTruth(NoduleTruth):
    """A nodule of the PET truth, with the uptake of its tissue (SUVbw, before blurring)."""

    suv: float


class PtTruth(TypedDict):
    """The truth of a PET series: the SUVbw factor its tags give (g/ml per Bq/ml), the
    weight and dose behind it, and the nodules' uptake."""

    modality: str
    seed: int
    suv_bw_factor: float
    weight_kg: float
    dose_bq: float
    nodules: list[PtNoduleTruth]


DxTruth = TypedDict(
    "DxTruth", {"modality": str, "seed": int, "class": str, "nodules": list[DxNoduleTruth]}
)
"""The truth of a radiograph in ``truth.json``: its class and its case's nodules."""

SeriesTruth = CtTruth | PtTruth | DxTruth


@dataclass(frozen=True)
class DemoSeries:
    """One written series: whose it is, its UIDs and its files."""

    patient_id: str
    modality: str
    series_uid: str
    study_uid: str
    case_seed: int
    folder: Path
    files: tuple[Path, ...]


@dataclass(frozen=True)
class DemoData:
    """What :func:`write_demo_data` wrote under `root`."""

    root: Path
    series: tuple[DemoSeries, ...]

    @property
    def dicom(self) -> Path:
        """The DICOM part (what a viewer imports)."""
        return self.root / "dicom"

    @property
    def truth_json(self) -> Path:
        """The truth file, keyed by SeriesInstanceUID."""
        return self.root / "truth" / "truth.json"


@dataclass(frozen=True)
class _Study:
    uid: str
    date: str
    time: str
    accession: str
    description: str


@dataclass(frozen=True)
class _Patient:
    """Patient `index` (0-based) of a demo written from `seed`, and its made-up demographics."""

    seed: int
    index: int
    case: ChestCase
    birth_date: str
    sex: str
    studies: dict[str, _Study]
    weight_kg: float

    @property
    def name(self) -> str:
        return f"DEMO^PATIENT{self.index + 1}"

    @property
    def id(self) -> str:
        return f"DEMO{self.index + 1:04d}"

    def uid(self, *parts: int) -> str:
        return _uid(self.seed, self.index, *parts)


def _uid(seed: int, index: int, *parts: int) -> str:
    """A demo UID of patient `index`: unique per (seed, patient, kind, instance)."""
    return uid(_UID_ARC, seed, index + 1, *parts)


def write_demo_data(out: str | os.PathLike[str], seed: int = DEMO_SEED, cases: int = 1) -> DemoData:
    """Write `cases` synthetic patients (CT and radiograph studies) and their truth into `out`.

    Parameters
    ----------
    out : path-like
        The folder to create. It may exist only when empty.
    seed : int
        Patient ``i`` (0-based) is the phantom case ``chest_case(seed + i)``.
    cases : int
        How many patients.

    Returns
    -------
    DemoData
        The series written, with their final paths.

    Raises
    ------
    FileExistsError
        When `out` exists and is not an empty folder.
    ValueError
        When `seed` is negative or `cases` is less than 1.
    """
    if seed < 0 or cases < 1:
        raise ValueError(f"need seed >= 0 and cases >= 1, got seed={seed}, cases={cases}")
    out = Path(out).absolute()
    _refuse_existing(out)
    with staged_folder(out) as staging:  # renamed onto `out` (if empty) once all is written
        series, truth = _write_patients(staging, seed, cases)
        _write_json(staging / "truth" / "truth.json", truth)
        _refuse_existing(out)
    return DemoData(out, tuple(_relocated(s, staging, out) for s in series))


_SeriesWriter = Callable[[Path, _Patient], tuple[DemoSeries, SeriesTruth]]
"""Renders and writes one series of a patient; returns it and its truth."""


def _write_patients(
    staging: Path, seed: int, cases: int
) -> tuple[list[DemoSeries], dict[str, SeriesTruth]]:
    series: list[DemoSeries] = []
    truth: dict[str, SeriesTruth] = {}
    writers: tuple[_SeriesWriter, ...] = (_write_ct, _write_pt, _write_dx)
    for index in range(cases):
        patient = _patient(seed, index)
        for writer in writers:
            written, entry = writer(staging, patient)
            series.append(written)
            truth[written.series_uid] = entry
    return series, truth


def _refuse_existing(out: Path) -> None:
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; choose a new or empty folder")


def _relocated(series: DemoSeries, staging: Path, out: Path) -> DemoSeries:
    def move(path: Path) -> Path:
        return out / path.relative_to(staging)

    return replace(series, folder=move(series.folder), files=tuple(map(move, series.files)))


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Patients and studies


def _patient(seed: int, index: int) -> _Patient:
    """The made-up demographics and studies of patient `index`, drawn from (seed, index)."""
    rng = np.random.default_rng([seed, index, 3313])
    ct_day = date(2025, 1, 6) + timedelta(days=int(rng.integers(0, 360)))
    dx_day = ct_day - timedelta(days=int(rng.integers(1, 30)))
    birth = ct_day - timedelta(days=int(rng.integers(45 * 365, 80 * 365)))
    accession = f"DM{seed % 10**6:06d}{index + 1:03d}"
    studies = {
        "CT": _Study(
            _uid(seed, index, _CT_STUDY), _day(ct_day), _time(rng), accession + "C", "CT CHEST"
        ),
        "DX": _Study(
            _uid(seed, index, _DX_STUDY), _day(dx_day), _time(rng), accession + "X", "XR CHEST PA"
        ),
    }
    return _Patient(
        seed=seed,
        index=index,
        case=chest_case(seed + index),
        birth_date=_day(birth),
        sex=str(rng.choice(["F", "M"])),
        studies=studies,
        weight_kg=round(float(np.random.default_rng([seed, index, 77]).uniform(55, 95)), 1),
    )


def _day(day: date) -> str:
    return day.strftime("%Y%m%d")


def _time(rng: np.random.Generator) -> str:
    seconds = int(rng.integers(8 * 3600, 18 * 3600))
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def _dataset(
    patient: _Patient, modality: str, sop_class: UID, sop_uid: str, series_uid: str,
    study_of: str | None = None,
) -> Dataset:
    """A dataset with the patient, study, series and SOP attributes every demo image shares
    (the study of `study_of`, default `modality`)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    study = patient.studies[study_of or modality]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.PatientName, ds.PatientID = patient.name, patient.id
    ds.PatientBirthDate, ds.PatientSex = patient.birth_date, patient.sex
    ds.PatientIdentityRemoved = "YES"  # nothing to remove: the patient is synthetic
    ds.DeidentificationMethod = "Synthetic phantom: never a real patient"  # Type 1C with YES
    ds.StudyInstanceUID, ds.StudyID = study.uid, "1"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.time
    ds.AccessionNumber = study.accession
    ds.StudyDescription = f"{study.description} (synthetic demo)"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, 1
    ds.Modality, ds.BodyPartExamined = modality, "CHEST"
    ds.Manufacturer = "medviewer synthetic phantom"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def _ds(value: float) -> DSfloat:
    """A DS value of at most 16 characters."""
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def _save(ds: Dataset, pixels: np.ndarray, path: Path) -> Path:
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# --------------------------------------------------------------------------------------------
# CT


def _write_ct(staging: Path, patient: _Patient) -> tuple[DemoSeries, CtTruth]:
    """Render and write the patient's CT series and its label map; return it and its truth."""
    case = patient.case
    grid = ct_grid(case, size=CT_SIZE)
    hu, labels = render_ct(case, grid)
    folder = staging / "dicom" / patient.id / "CT"
    folder.mkdir(parents=True)
    series_uid = patient.uid(_CT_SERIES)
    stored = np.clip(hu.astype(np.int32) + 1024, 0, 4095).astype(np.uint16)
    files = tuple(
        _save(_ct_slice(patient, grid, k, series_uid), stored[k], folder / f"CT{k + 1:04d}.dcm")
        for k in range(stored.shape[0])
    )
    relative = f"truth/{series_uid}/labels.nii.gz"
    image = _label_image(labels, grid)
    _write_labels(image, staging / relative)
    entry: CtTruth = {
        "modality": "CT",
        "seed": case.seed,
        "labels": relative,
        "nodules": [_nodule_json(n) for n in nodules_in_labels(image, case.nodules)],
    }
    series = DemoSeries(
        patient.id, "CT", series_uid, patient.studies["CT"].uid, case.seed, folder, files
    )
    return series, entry


def _ct_slice(patient: _Patient, grid: AxialGrid, k: int, series_uid: str) -> Dataset:
    """The header of CT slice `k` (0 = most inferior)."""
    ds = _dataset(patient, "CT", CT_IMAGE_STORAGE, patient.uid(_CT_SOP, k + 1), series_uid)
    z = grid.z_positions[k]
    ds.SeriesDescription = "CT chest (synthetic demo)"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber, ds.AcquisitionNumber = k + 1, 1
    ds.FrameOfReferenceUID = patient.uid(_FRAME_OF_REFERENCE)
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = [_ds(grid.origin_xy[0]), _ds(grid.origin_xy[1]), _ds(z)]
    ds.ImageOrientationPatient = [_ds(v) for v in AXIAL]
    ds.PixelSpacing = [_ds(grid.pixel_spacing)] * 2
    ds.SliceThickness = _ds(patient.case.slice_spacing_mm)
    ds.SliceLocation = _ds(z)
    ds.KVP = "120"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter = [_ds(center) for _, center, _ in _CT_WINDOWS]
    ds.WindowWidth = [_ds(width) for _, _, width in _CT_WINDOWS]
    ds.WindowCenterWidthExplanation = [name for name, _, _ in _CT_WINDOWS]
    return ds


def _label_image(labels: np.ndarray, grid: AxialGrid) -> sitk.Image:
    """`labels` (slices, rows, cols) as a SimpleITK image on the CT's grid (LPS)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(labels)
    image.SetOrigin((grid.origin_xy[0], grid.origin_xy[1], grid.z_positions[0]))
    slice_step = grid.z_positions[1] - grid.z_positions[0] if len(grid.z_positions) > 1 else 1.0
    image.SetSpacing((grid.pixel_spacing, grid.pixel_spacing, slice_step))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return image


def _write_labels(image: sitk.Image, path: Path) -> None:
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def nodules_in_labels(image: sitk.Image, nodules: tuple[Nodule, ...]) -> list[Nodule]:
    """The `nodules` that have voxels in the label image `image` (a SimpleITK image).

    Each connected nodule component (label 3) goes to the nodule whose centre is nearest to
    its centroid; nodules are placed apart, so components never merge.

    Parameters
    ----------
    image : SimpleITK.Image
        Label map with its physical (LPS) geometry.
    nodules : tuple of Nodule
        The case's nodules.

    Returns
    -------
    list of Nodule
        Those with at least one voxel, in the case's order.
    """
    import SimpleITK as sitk

    if not nodules:
        return []
    components = sitk.ConnectedComponent(image == NODULE, True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    centres = np.array([n.centre_lps for n in nodules])
    found = {
        int(np.argmin(np.linalg.norm(centres - np.array(stats.GetCentroid(label)), axis=1)))
        for label in stats.GetLabels()
    }
    return [n for i, n in enumerate(nodules) if i in found]


def _nodule_json(nodule: Nodule) -> NoduleTruth:
    return {
        "centroid_lps": [round(float(v), 2) for v in nodule.centre_lps],
        "diameter_mm": round(float(nodule.diameter_mm), 2),
        "kind": nodule.kind,
    }


# --------------------------------------------------------------------------------------------
# PET


def _write_pt(staging: Path, patient: _Patient) -> tuple[DemoSeries, PtTruth]:
    """Render and write the patient's FDG PET (in the CT study, on its frame of reference)."""
    case = patient.case
    grid = pet_grid(case)
    suv = render_pet(case, grid)
    dose = round(patient.weight_kg * PET_DOSE_BQ_PER_KG, -5)
    factor = patient.weight_kg * 1000.0 / (dose * 2.0 ** (-PET_UPTAKE_S / F18_HALF_LIFE_S))
    activity = suv / factor  # Bq/ml
    folder = staging / "dicom" / patient.id / "PT"
    folder.mkdir(parents=True)
    series_uid = patient.uid(_PT_SERIES)
    files = []
    for k in range(activity.shape[0]):
        slope = max(float(activity[k].max()), 1.0) / 65535.0
        stored = np.rint(activity[k] / slope).astype(np.uint16)
        ds = _pt_slice(patient, grid, k, series_uid, dose, factor)
        ds.RescaleSlope, ds.RescaleIntercept = _ds(float(f"{slope:.10g}")), "0"
        files.append(_save(ds, stored, folder / f"PT{k + 1:04d}.dcm"))
    entry: PtTruth = {
        "modality": "PT",
        "seed": case.seed,
        "suv_bw_factor": factor,
        "weight_kg": patient.weight_kg,
        "dose_bq": dose,
        "nodules": [{**_nodule_json(n), "suv": round(nodule_suv(n), 4)} for n in case.nodules],
    }
    series = DemoSeries(
        patient.id, "PT", series_uid, patient.studies["CT"].uid, case.seed, folder, tuple(files)
    )
    return series, entry


def _pt_slice(patient: _Patient, grid: AxialGrid, k: int, series_uid: str, dose: float,
              factor: float) -> Dataset:  # fmt: skip
    """The header of PET slice `k`: geometry, units, decay correction, radiopharmaceutical."""
    from pydicom.dataset import Dataset

    ds = _dataset(patient, "PT", PET_STORAGE, patient.uid(_PT_SOP, k + 1), series_uid, "CT")
    study = patient.studies["CT"]
    scan = _clock(study.time, 600)  # the PET series starts 10 minutes after the CT
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = scan
    ds.AcquisitionDate = study.date
    ds.SeriesNumber = 2
    ds.SeriesDescription = "PET FDG (synthetic demo)"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber = ds.ImageIndex = k + 1
    ds.FrameOfReferenceUID = patient.uid(_FRAME_OF_REFERENCE)
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.PatientWeight = _ds(patient.weight_kg)
    z = grid.z_positions[k]
    ds.ImagePositionPatient = [_ds(grid.origin_xy[0]), _ds(grid.origin_xy[1]), _ds(z)]
    ds.ImageOrientationPatient = [_ds(v) for v in AXIAL]
    ds.PixelSpacing = [_ds(grid.pixel_spacing)] * 2
    ds.SliceThickness = _ds(grid.pixel_spacing)
    ds.SliceLocation = _ds(z)
    ds.BitsStored, ds.HighBit = 16, 15
    ds.Units, ds.DecayCorrection, ds.CountsSource = "BQML", "START", "EMISSION"
    ds.SeriesType = ["WHOLE BODY", "IMAGE"]
    ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
    ds.NumberOfSlices = len(grid.z_positions)
    ds.AttenuationCorrectionMethod = "CT"
    ds.ReconstructionMethod = "OSEM"
    ds.FrameReferenceTime, ds.ActualFrameDuration = "0", 120000
    ds.DecayFactor = "1"
    drug = Dataset()
    drug.Radiopharmaceutical = "Fluorodeoxyglucose"
    injection = _clock(scan, -PET_UPTAKE_S)
    drug.RadiopharmaceuticalStartTime = injection
    drug.RadiopharmaceuticalStartDateTime = study.date + injection
    drug.RadionuclideTotalDose = _ds(dose)
    drug.RadionuclideHalfLife = _ds(F18_HALF_LIFE_S)
    drug.RadionuclidePositronFraction = _ds(0.9673)
    ds.RadiopharmaceuticalInformationSequence = [drug]
    centre, width = _PET_WINDOW_SUV
    ds.WindowCenter, ds.WindowWidth = _ds(round(centre / factor, 1)), _ds(round(width / factor, 1))
    ds.WindowCenterWidthExplanation = "SUV 0-6"
    return ds


def _clock(tm: str, seconds: int) -> str:
    """A TM `seconds` later (earlier when negative), within the day (demo times are 8-18 h)."""
    total = int(tm[:2]) * 3600 + int(tm[2:4]) * 60 + int(tm[4:6]) + seconds
    return f"{total // 3600:02d}{total // 60 % 60:02d}{total % 60:02d}"


# --------------------------------------------------------------------------------------------
# Radiograph


def _write_dx(staging: Path, patient: _Patient) -> tuple[DemoSeries, DxTruth]:
    """Render and write the patient's PA radiograph; return it and its truth."""
    case = patient.case
    radiograph = render_radiograph(case)
    folder = staging / "dicom" / patient.id / "DX"
    folder.mkdir(parents=True)
    series_uid = patient.uid(_DX_SERIES)
    ds = _dx_header(patient, radiograph, series_uid)
    path = _save(ds, radiograph.pixels, folder / "DX0001.dcm")
    entry: DxTruth = {
        "modality": "DX",
        "seed": case.seed,
        "class": case.radiograph_class,
        "nodules": [_dx_nodule_json(n, radiograph) for n in case.nodules],
    }
    series = DemoSeries(
        patient.id, "DX", series_uid, patient.studies["DX"].uid, case.seed, folder, (path,)
    )
    return series, entry


def _dx_header(patient: _Patient, radiograph: Radiograph, series_uid: str) -> Dataset:
    """Digital X-Ray, for presentation: PA, columns toward L and rows toward F, no position."""
    ds = _dataset(patient, "DX", DX_STORAGE, patient.uid(_DX_SOP, 1), series_uid)
    ds.SeriesDescription = "Chest PA (synthetic demo)"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.ViewPosition = "PA"
    ds.ImagerPixelSpacing = [_ds(radiograph.pixel_spacing)] * 2
    ds.PixelSpacing = [_ds(radiograph.pixel_spacing)] * 2
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1  # higher values: less beam reached the detector
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    low, high = np.percentile(radiograph.pixels, [1.0, 99.5])
    ds.WindowCenter = _ds(round((low + high) / 2, 1))
    ds.WindowWidth = _ds(round(max(high - low, 1.0), 1))
    ds.WindowCenterWidthExplanation = "PERCENTILES 1-99.5"
    return ds


def _dx_nodule_json(nodule: Nodule, radiograph: Radiograph) -> DxNoduleTruth:
    row, col = radiograph.project(nodule.centre_lps)
    return {**_nodule_json(nodule), "pixel_rc": [round(row, 2), round(col, 2)]}


# --------------------------------------------------------------------------------------------
# The viewer's demo


def demo_root() -> Path:
    """Where the viewer's demo lives: ``<user cache>/demo-<DEMO_SEED>-v<DEMO_VERSION>``."""
    import platformdirs

    return (Path(platformdirs.user_cache_dir("medviewer", appauthor=False))
            / f"demo-{DEMO_SEED}-v{DEMO_VERSION}")


def demo_folder() -> Path:
    """The DICOM part of the viewer's demo, written to the user cache on first use.

    The folder appears complete or not at all (see :func:`write_demo_data`), so its truth file
    marks a finished demo and later calls reuse it. The truth folder is never returned: the
    viewer imports only the DICOM files.
    """
    root = demo_root()
    if not (root / "truth" / "truth.json").is_file():
        try:
            write_demo_data(root, DEMO_SEED, cases=1)
        except FileExistsError:
            if not (root / "truth" / "truth.json").is_file():  # not another process's demo
                raise
    return root / "dicom"
