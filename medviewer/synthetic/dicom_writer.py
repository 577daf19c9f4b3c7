"""Synthetic DICOM series with known geometry and voxel values.

Used by the tests (known truth for every geometry path), the load benchmark and the
demo study. Every value is made up: no patient data. The voxel pattern is unique per
(slice, row, col) modulo a large period, so a flip, transpose or shift changes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from pydicom.uid import (
    UID,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medviewer.core.geometry import affine_from_dicom, slice_normal

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CT_IMAGE_STORAGE = CTImageStorage
ENHANCED_CT_STORAGE = EnhancedCTImageStorage
DX_STORAGE = DigitalXRayImageStorageForPresentation
UID_ROOT = "1.2.826.0.1.3680043.10.1432."  # a test root; the demo's UIDs are derived from it


@dataclass(frozen=True)
class SeriesSpec:
    """What to write. Positions default to `slice_spacing` steps along the normal."""

    shape: tuple[int, int, int] = (8, 16, 12)
    pixel_spacing: tuple[float, float] = (0.7, 0.9)  # (row spacing, column spacing)
    slice_spacing: float = 2.5
    orientation: tuple[float, ...] = AXIAL
    origin: tuple[float, float, float] = (-100.0, -120.0, 50.0)
    slice_offsets: tuple[float, ...] | None = None  # distances along the normal, if uneven
    slice_step: tuple[float, float, float] | None = None  # per-slice step, if not the normal
    modality: str = "CT"
    rescale_slope: float = 1.0
    rescale_intercept: float = -1024.0
    bits_stored: int = 12
    pattern_bits: int | None = None  # bits the stored pattern spans (default: bits_stored)
    signed: bool = False
    transfer_syntax: str = ExplicitVRLittleEndian
    multiframe: bool = False
    shuffle: bool = True
    seed: int = 0
    patient_name: str = "SYNTHETIC^PATIENT"
    patient_id: str = "SYN0001"
    series_description: str = "synthetic series"
    study_uid: str = ""
    series_uid: str = ""
    acquisition_number: int = 1
    window: tuple[float, float] | None = (40.0, 400.0)
    values: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class WrittenSeries:
    """The truth of a written series: values in modality units in sorted order, and the affine."""

    paths: tuple[Path, ...]
    values: np.ndarray
    affine: np.ndarray
    series_uid: str
    study_uid: str


def uid(seed: int, *parts: int) -> str:
    """A deterministic valid UID under the test root."""
    return UID_ROOT + ".".join(str(int(p)) for p in (seed, *parts))


def pattern(
    shape: tuple[int, int, int], intercept: float, bits_stored: int = 12
) -> npt.NDArray[np.int64]:
    """Stored values unique per voxel (mod 2**bits_stored - 1), for flip/shift detection."""
    s, r, c = np.indices(shape, dtype=np.int64)
    period = 2**bits_stored - 1
    values: npt.NDArray[np.int64] = ((s * 977 + r * 31 + c * 7 + (r * c) % 5) % period).astype(
        np.int64
    )
    return values


def offsets_of(spec: SeriesSpec) -> np.ndarray:
    """Distances along the slice normal of each slice, in acquisition (truth) order."""
    if spec.slice_offsets is not None:
        return np.asarray(spec.slice_offsets, dtype=float)
    return np.arange(spec.shape[0], dtype=float) * spec.slice_spacing


def positions_of(spec: SeriesSpec) -> np.ndarray:
    """Image Position (Patient) of each slice in truth order."""
    if spec.slice_step is not None:
        steps = np.arange(spec.shape[0])[:, None] * np.asarray(spec.slice_step)[None, :]
        stepped: np.ndarray = np.asarray(spec.origin) + steps
        return stepped
    normal = slice_normal(spec.orientation)
    return np.asarray(spec.origin) + offsets_of(spec)[:, None] * normal[None, :]


def stored_values(spec: SeriesSpec) -> np.ndarray:
    """The stored (pre-rescale) integer values, (slices, rows, cols)."""
    if spec.values is not None:
        return np.asarray(spec.values, dtype=np.int64)
    bits = spec.pattern_bits or spec.bits_stored
    stored = pattern(spec.shape, spec.rescale_intercept, bits)
    if spec.signed:
        stored -= 2 ** (bits - 1)
    return stored


def write_series(out_dir: str | os.PathLike[str], spec: SeriesSpec | None = None) -> WrittenSeries:
    """Write `spec` as DICOM files into `out_dir`; return the known truth.

    File names and instance numbers are shuffled when ``spec.shuffle`` so that loaders must
    sort by position.
    """
    spec = spec or SeriesSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study_uid = spec.study_uid or uid(spec.seed, 1)
    series_uid = spec.series_uid or uid(spec.seed, 2, spec.acquisition_number)
    stored = stored_values(spec)
    positions = positions_of(spec)
    paths: tuple[Path, ...]
    if spec.multiframe:
        paths = (_write_enhanced(out, spec, stored, positions, study_uid, series_uid),)
    else:
        paths = _write_single_frames(out, spec, stored, positions, study_uid, series_uid)
    return _truth(spec, stored, positions, paths, study_uid, series_uid)


def _truth(
    spec: SeriesSpec,
    stored: np.ndarray,
    positions: np.ndarray,
    paths: tuple[Path, ...],
    study_uid: str,
    series_uid: str,
) -> WrittenSeries:
    normal = slice_normal(spec.orientation)
    order = np.argsort(positions @ normal, kind="stable")
    values = stored[order] * spec.rescale_slope + spec.rescale_intercept
    step = None
    if len(order) > 1:
        step = (positions[order[-1]] - positions[order[0]]) / (len(order) - 1)
    affine = affine_from_dicom(positions[order[0]], spec.orientation, spec.pixel_spacing, step)
    return WrittenSeries(paths, values, affine, series_uid, study_uid)


def _base_dataset(spec: SeriesSpec, study_uid: str, series_uid: str, sop_class: UID) -> Dataset:
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = UID(UID_ROOT + "99")
    ds.SOPClassUID = sop_class
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
    ds.AccessionNumber = "SYN" + str(spec.seed)
    ds.StudyDescription = "synthetic study"
    ds.SeriesDescription = spec.series_description
    ds.SeriesNumber = spec.acquisition_number
    ds.Modality = spec.modality
    ds.FrameOfReferenceUID = uid(spec.seed, 3)
    ds.Rows, ds.Columns = spec.shape[1], spec.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored = 16, spec.bits_stored
    ds.HighBit = spec.bits_stored - 1
    ds.PixelRepresentation = 1 if spec.signed else 0
    return ds


def _pixels(spec: SeriesSpec, plane: np.ndarray) -> np.ndarray:
    return plane.astype(np.int16 if spec.signed else np.uint16)


def _write_single_frames(
    out: Path,
    spec: SeriesSpec,
    stored: np.ndarray,
    positions: np.ndarray,
    study_uid: str,
    series_uid: str,
) -> tuple[Path, ...]:
    rng = np.random.default_rng(spec.seed)
    n = spec.shape[0]
    names = rng.permutation(n) if spec.shuffle else np.arange(n)
    numbers = rng.permutation(n) + 1 if spec.shuffle else np.arange(n) + 1
    paths = []
    for k in range(n):
        ds = _base_dataset(spec, study_uid, series_uid, CT_IMAGE_STORAGE)
        ds.SOPInstanceUID = uid(spec.seed, 4, spec.acquisition_number, k)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = int(numbers[k])
        ds.AcquisitionNumber = spec.acquisition_number
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
        ds.ImageOrientationPatient = [_ds(v) for v in spec.orientation]
        ds.PixelSpacing = [_ds(v) for v in spec.pixel_spacing]
        ds.SliceThickness = _ds(spec.slice_spacing)
        ds.RescaleSlope, ds.RescaleIntercept = _ds(spec.rescale_slope), _ds(spec.rescale_intercept)
        ds.RescaleType = "HU" if spec.modality == "CT" else "US"
        if spec.window:
            ds.WindowCenter, ds.WindowWidth = _ds(spec.window[0]), _ds(spec.window[1])
        _set_pixels(ds, _pixels(spec, stored[k]), spec.transfer_syntax)
        path = out / f"IM{int(names[k]):05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return tuple(paths)


def _set_pixels(ds: Dataset, pixels: np.ndarray, transfer_syntax: str) -> None:
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    elif transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(
            transfer_syntax, encoding_plugin="pylibjpeg" if "4.9" in transfer_syntax else ""
        )


def _ds(value: float) -> str:
    """A DS string of at most 16 characters that round-trips `value` as closely as it can."""
    for digits in range(16, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return "0"


def _write_enhanced(
    out: Path,
    spec: SeriesSpec,
    stored: np.ndarray,
    positions: np.ndarray,
    study_uid: str,
    series_uid: str,
) -> Path:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    ds = _base_dataset(spec, study_uid, series_uid, ENHANCED_CT_STORAGE)
    ds.SOPInstanceUID = uid(spec.seed, 5, spec.acquisition_number)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 1
    ds.NumberOfFrames = spec.shape[0]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence(
        [
            _item(
                PixelSpacing=[_ds(v) for v in spec.pixel_spacing],
                SliceThickness=_ds(spec.slice_spacing),
            )
        ]
    )
    shared.PlaneOrientationSequence = DicomSequence(
        [_item(ImageOrientationPatient=[_ds(v) for v in spec.orientation])]
    )
    shared.PixelValueTransformationSequence = DicomSequence(
        [
            _item(
                RescaleSlope=_ds(spec.rescale_slope),
                RescaleIntercept=_ds(spec.rescale_intercept),
                RescaleType="HU",
            )
        ]
    )
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    rng = np.random.default_rng(spec.seed)
    frame_order = rng.permutation(spec.shape[0]) if spec.shuffle else np.arange(spec.shape[0])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(
        [
            _item(
                PlanePositionSequence=DicomSequence(
                    [_item(ImagePositionPatient=[_ds(v) for v in positions[k]])]
                )
            )
            for k in frame_order
        ]
    )
    _set_pixels(ds, _pixels(spec, stored[frame_order]), spec.transfer_syntax)
    path = out / "ENHANCED.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _item(**values: object) -> Dataset:
    from pydicom.dataset import Dataset

    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def write_radiograph(
    out_dir: str | os.PathLike[str],
    shape: tuple[int, int] = (64, 48),
    spacing: Sequence[float] = (0.2, 0.2),
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """Write a single-frame DX image (no patient position) and return (path, stored values)."""
    spec = SeriesSpec(shape=(1, *shape), modality="DX", seed=seed, rescale_intercept=0.0)
    ds = _base_dataset(spec, uid(seed, 1), uid(seed, 6), DX_STORAGE)
    ds.SOPInstanceUID = uid(seed, 7)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 1
    ds.ImagerPixelSpacing = [_ds(v) for v in spacing]
    ds.PhotometricInterpretation = "MONOCHROME1"
    values = pattern((1, *shape), 0.0)[0]
    _set_pixels(ds, values.astype(np.uint16), ExplicitVRLittleEndian)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "DX.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, values
