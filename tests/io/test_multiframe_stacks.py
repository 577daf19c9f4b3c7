"""Enhanced multi-frame files that hold several stacks (issue 18).

Temporal positions, diffusion directions, overlapping SEG segments and frames of several
orientations are split into stacks as single-frame series are. Truth is pydicom's own reading
of each frame: every slice of every stack is checked for the frame it came from, its position
(Plane Position of that frame), its orientation and its pixels, and every frame must appear
in exactly one stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence

from medviewer.core.errors import LoadError
from medviewer.core.geometry import slice_normal
from medviewer.io.series import find_stacks, load_series
from tests.corpus import nibabel_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
ROOT = "1.2.826.0.1.3680043.10.1234.18."
ROWS, COLS = 6, 8


def _item(**values) -> Dataset:
    item = Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def _enhanced(
    path: Path, frames: list[dict], pointers: list[int] | None = None, seed: int = 0
) -> pydicom.Dataset:
    """An Enhanced MR file whose frames carry the given functional groups.

    Each frame dict may hold: position, orientation, temporal, stack, in_stack, segment, b,
    gradient, index (Dimension Index Values). Frame k's pixels are k * 100 + a ramp.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.file_meta.MediaStorageSOPInstanceUID = f"{ROOT}{seed}.1"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{ROOT}{seed}.2", f"{ROOT}{seed}.3"
    ds.FrameOfReferenceUID = f"{ROOT}{seed}.4"
    ds.PatientName, ds.PatientID, ds.Modality = "SYNTHETIC^MULTIFRAME", "SYN18", "MR"
    ds.InstanceNumber, ds.NumberOfFrames = 1, len(frames)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLS, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    shared = _item(PixelMeasuresSequence=DicomSequence([_item(PixelSpacing=[0.5, 0.75])]))
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    if pointers:
        ds.DimensionIndexSequence = DicomSequence(
            [_item(DimensionIndexPointer=p, FunctionalGroupPointer=0x00209111) for p in pointers]
        )
    ds.PerFrameFunctionalGroupsSequence = DicomSequence([_frame_item(f) for f in frames])
    ramp = np.arange(ROWS * COLS, dtype=np.uint16).reshape(ROWS, COLS)
    ds.PixelData = np.stack([ramp + 100 * k for k in range(len(frames))]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)


def _frame_item(frame: dict) -> Dataset:
    item = _item(
        PlanePositionSequence=DicomSequence([_item(ImagePositionPatient=list(frame["position"]))]),
        PlaneOrientationSequence=DicomSequence(
            [_item(ImageOrientationPatient=list(frame.get("orientation", AXIAL)))]
        ),
    )
    content = {
        "TemporalPositionIndex": frame.get("temporal"),
        "StackID": frame.get("stack"),
        "InStackPositionNumber": frame.get("in_stack"),
        "DimensionIndexValues": frame.get("index"),
    }
    content = {k: v for k, v in content.items() if v is not None}
    if content:
        item.FrameContentSequence = DicomSequence([_item(**content)])
    if "segment" in frame:
        item.SegmentIdentificationSequence = DicomSequence(
            [_item(ReferencedSegmentNumber=frame["segment"])]
        )
    if "b" in frame:
        diffusion = _item(DiffusionBValue=float(frame["b"]))
        if "gradient" in frame:
            diffusion.DiffusionGradientDirectionSequence = DicomSequence(
                [_item(DiffusionGradientOrientation=list(frame["gradient"]))]
            )
        item.MRDiffusionSequence = DicomSequence([diffusion])
    return item


def _frame_truth(ds: pydicom.Dataset, frame: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """pydicom's reading of one frame's position and orientation (per-frame, else shared)."""
    item = ds.PerFrameFunctionalGroupsSequence[frame]
    shared = ds.SharedFunctionalGroupsSequence[0]
    position = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
    group = item if "PlaneOrientationSequence" in item else shared
    orientation = tuple(float(v) for v in group.PlaneOrientationSequence[0].ImageOrientationPatient)
    return position, orientation


def _check_stacks(path: Path, ds: pydicom.Dataset, expected: int) -> list:
    """Every stack's slices against pydicom, frame by frame; returns the loaded volumes."""
    stacks, _ = find_stacks(path)
    assert len(stacks) == expected
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    seen: list[int] = []
    volumes = [load_series(path, stack=s) for s in range(len(stacks))]
    for volume in volumes:
        frames = [frame for _, frame in volume.metadata.source_frames]
        seen.extend(frames)
        for k, frame in enumerate(frames):
            position, orientation = _frame_truth(ds, frame)
            np.testing.assert_allclose(volume.affine @ [0, 0, k, 1], [*position, 1], atol=1e-6)
            row = volume.affine[:3, 0] / np.linalg.norm(volume.affine[:3, 0])
            col = volume.affine[:3, 1] / np.linalg.norm(volume.affine[:3, 1])
            np.testing.assert_allclose([*row, *col], orientation, atol=1e-6)
            np.testing.assert_array_equal(volume.array[k], pixels[frame])
    assert sorted(seen) == list(range(int(ds.NumberOfFrames)))  # each frame exactly once
    return volumes


def _shuffled(frames: list[dict], seed: int) -> list[dict]:
    order = np.random.default_rng(seed).permutation(len(frames))
    return [frames[k] for k in order]


def test_temporal_positions_become_one_stack_each_in_time_order(tmp_path: Path) -> None:
    frames = [
        {"position": (0.0, 0.0, 4.0 * z), "temporal": t, "in_stack": z + 1, "index": [t, z + 1]}
        for t in (1, 2, 3)
        for z in range(5)
    ]
    path = tmp_path / "4d.dcm"
    ds = _enhanced(path, _shuffled(frames, 1), pointers=[0x00209128, 0x00209057])
    volumes = _check_stacks(path, ds, 3)
    for t, volume in enumerate(volumes, start=1):
        assert volume.shape == (5, ROWS, COLS)
        np.testing.assert_allclose(volume.spacing, [0.75, 0.5, 4.0])
        temporal = {
            ds.PerFrameFunctionalGroupsSequence[f].FrameContentSequence[0].TemporalPositionIndex
            for _, f in volume.metadata.source_frames
        }
        assert temporal == {t}
        assert not any("duplicate" in w for w in volume.metadata.warnings)
    stacks, _ = find_stacks(path)
    assert [s.label for s in stacks] == [f"temporal position {t}" for t in (1, 2, 3)]
    assert "temporal position 2" in stacks[1].describe()
    (said,) = [w for w in volumes[1].metadata.warnings if "stacks" in w]
    assert "holds 3 stacks; loaded 1: MR 8x6x5 (temporal position 2); others: 0: " in said


def test_diffusion_b_values_and_directions_split_without_dimension_index(tmp_path: Path) -> None:
    gradients = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]
    frames = [{"position": (0.0, 0.0, 3.0 * z), "b": 0} for z in range(4)]
    frames += [
        {"position": (0.0, 0.0, 3.0 * z), "b": 1000, "gradient": g}
        for g in gradients
        for z in range(4)
    ]
    path = tmp_path / "dwi.dcm"
    ds = _enhanced(path, _shuffled(frames, 2))
    _check_stacks(path, ds, 3)
    labels = [s.label for s in find_stacks(path)[0]]
    assert labels[0] == "b=0"
    assert set(labels[1:]) == {"b=1000, gradient (1, 0, 0)", "b=1000, gradient (0, 1, 0)"}


def test_frames_of_three_orientations_keep_their_own_orientation(tmp_path: Path) -> None:
    # A tri-plane localizer: taking the last frame's orientation for all put slices off plane.
    frames = [{"position": (-40.0, -40.0, 10.0 * z), "orientation": AXIAL} for z in range(3)]
    frames += [{"position": (-40.0, 5.0 * y, 40.0), "orientation": CORONAL} for y in range(3)]
    frames += [{"position": (7.0 * x, -40.0, 40.0), "orientation": SAGITTAL} for x in range(2)]
    path = tmp_path / "localizer.dcm"
    ds = _enhanced(path, _shuffled(frames, 3))
    volumes = _check_stacks(path, ds, 3)
    normals = {tuple(np.round(_normal(v.affine), 6)) for v in volumes}
    assert normals == {tuple(slice_normal(o)) for o in (AXIAL, CORONAL, SAGITTAL)}
    stacks, _ = find_stacks(path)
    assert sorted(s.label for s in stacks) == ["axial", "coronal", "sagittal"]
    assert [s.shape[0] for s in stacks] == [3, 3, 2]


def _normal(affine: np.ndarray) -> np.ndarray:
    row = affine[:3, 0] / np.linalg.norm(affine[:3, 0])
    col = affine[:3, 1] / np.linalg.norm(affine[:3, 1])
    return np.cross(row, col) + 0.0


def test_overlapping_segments_of_a_segmentation_are_separate_stacks(tmp_path: Path) -> None:
    frames = [
        {"position": (0.0, 0.0, 2.0 * z), "segment": s, "index": [s, z + 1]}
        for s in (1, 2)
        for z in range(4)
    ]
    path = tmp_path / "seg.dcm"
    ds = _enhanced(path, _shuffled(frames, 4), pointers=[0x0062000B, 0x00200032])
    volumes = _check_stacks(path, ds, 2)
    assert [s.label for s in find_stacks(path)[0]] == ["segment 1", "segment 2"]
    assert all(v.shape[0] == 4 for v in volumes)


def test_repeated_positions_without_any_dimension_split_by_occurrence(tmp_path: Path) -> None:
    frames = [{"position": (0.0, 0.0, 5.0 * z)} for _ in range(2) for z in range(3)]
    path = tmp_path / "repeat.dcm"
    ds = _enhanced(path, frames)
    _check_stacks(path, ds, 2)
    assert [s.label for s in find_stacks(path)[0]] == ["repeat 1", "repeat 2"]


def test_a_varying_index_with_unique_positions_stays_one_stack(tmp_path: Path) -> None:
    # Some scanners number every frame's temporal position: no repeat, so no split.
    frames = [{"position": (0.0, 0.0, 2.5 * z), "temporal": z + 1} for z in range(6)]
    path = tmp_path / "one.dcm"
    ds = _enhanced(path, _shuffled(frames, 5))
    (volume,) = _check_stacks(path, ds, 1)
    assert volume.shape[0] == 6
    assert find_stacks(path)[0][0].label == ""


def test_orientations_differing_by_rounding_stay_one_stack(tmp_path: Path) -> None:
    frames = [
        {"position": (0.0, 0.0, 2.0 * z), "orientation": (1.0, 0.0, 0.0, 0.0, 1.0, 1e-7 * z)}
        for z in range(4)
    ]
    path = tmp_path / "rounding.dcm"
    _enhanced(path, frames)
    assert len(find_stacks(path)[0]) == 1


def test_philips_enhanced_mr_from_nibabel_frame_by_frame(tmp_path: Path) -> None:
    # A scanner's Enhanced MR (Philips, 176 frames, Stack ID and In-Stack Position dimensions).
    path = nibabel_file("philips_mprage.dcm.gz", tmp_path)
    ds = pydicom.dcmread(path)
    stacks, _ = find_stacks(path)
    assert len(stacks) == 1 and stacks[0].label == ""
    volume = load_series(path)
    assert volume.shape == (176, 256, 256)
    slope = float(
        ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence[0].RescaleSlope
    )
    pixels = ds.pixel_array
    for k, (_, frame) in enumerate(volume.metadata.source_frames):
        position, _ = _frame_truth(ds, frame)
        np.testing.assert_allclose(volume.affine @ [0, 0, k, 1], [*position, 1], atol=1e-3)
        if k % 25 == 0:
            np.testing.assert_allclose(volume.array[k], pixels[frame] * slope, rtol=1e-6)


def test_a_malformed_per_frame_value_is_a_load_error_with_the_file(tmp_path: Path) -> None:
    # Referenced Segment Number is one US; a damaged file holds two (or text where a number
    # belongs): the file is refused with its path, never a TypeError out of the scan.
    frames = [{"position": (0.0, 0.0, 2.0 * z), "segment": 1} for z in range(3)]
    path = tmp_path / "damaged.dcm"
    _enhanced(path, frames)
    ds = pydicom.dcmread(path)
    item = ds.PerFrameFunctionalGroupsSequence[1].SegmentIdentificationSequence[0]
    item.ReferencedSegmentNumber = [1, 2]
    ds.save_as(path)
    with pytest.raises(LoadError, match=r"damaged\.dcm: cannot read the frame geometry"):
        find_stacks(path)
