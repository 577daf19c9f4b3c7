"""Read a DICOM Segmentation (SEG) back onto the grid of its source series.

A SEG's frames reference the source images (or source frames) they were drawn on; given
which source image each slice of a loaded volume is, :func:`label_map_from_seg` rebuilds a
``[slices, rows, cols]`` label map on the volume's own grid. highdicom does the frame lookup.

Labels: a SEG written by medviewer records each segment's card label in its Segment
Description (``"medviewer label 3"``); those labels are used when every segment has one, the
segment numbers otherwise. Overlapping segments (allowed in BINARY and FRACTIONAL SEGs):
the segment with the higher segment number wins, i.e. the later segment. FRACTIONAL
segments are binarised at :data:`FRACTIONAL_THRESHOLD`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from highdicom.color import CIELabColor
from highdicom.seg import Segmentation, SegmentationTypeValues
from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage

from medviewer.core.errors import LoadError
from medviewer.core.findings import default_color
from medviewer.io.header import (
    NESTED_TOO_DEEP,
    check_pixel_claims,
    dcmread_bounded,
    memory_problem,
    record_from_dataset,
)
from medviewer.io.header_fields import SkipFile

SEGMENTATION_STORAGE = SegmentationStorage
# Label Map Segmentation Storage (DICOM 2024b) is newer than pydicom 3.0's table.
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
#: A FRACTIONAL segment covers a pixel whose probability/occupancy is at least this.
FRACTIONAL_THRESHOLD = 0.5
#: Segment Description (0062,0006) prefix of a SEG written by medviewer: the card's label.
LABEL_PREFIX = "medviewer label "
_LABEL_RE = re.compile(re.escape(LABEL_PREFIX) + r"([1-9][0-9]*)\b")
_EDITED_TYPES = ("SEMIAUTOMATIC", "MANUAL")
# highdicom's own exceptions for a malformed or unusable SEG
_HIGHDICOM_ERRORS = (ValueError, KeyError, AttributeError, TypeError, RuntimeError, IndexError)


@dataclass(frozen=True, eq=False)
class SegOnGrid:
    """A SEG resampled (by reference, no interpolation) onto a volume's slices.

    Attributes
    ----------
    labels : numpy.ndarray
        ``[slices, rows, cols]`` uint8 (uint16 above label 255); 0 where no segment is, and
        on slices no SEG frame references. Rows and columns are the SEG's, which are those
        of the source images for a SEG that preserves spatial locations.
    segments : dict
        Label -> ``(name, "#rrggbb")`` of every segment, also those without voxels here.
    model_name, model_version : str
        The algorithm of the first segment (empty for a manual SEG).
    series_uid : str
        The SEG's own SeriesInstanceUID.
    referenced_series_uid : str
        The series of the source images (empty when the SEG names none).
    edited : bool
        True when a segment is SEMIAUTOMATIC or MANUAL (drawn or corrected by a person).
    """

    labels: np.ndarray
    segments: dict[int, tuple[str, str]]
    model_name: str = ""
    model_version: str = ""
    series_uid: str = ""
    referenced_series_uid: str = ""
    edited: bool = False


def is_segmentation(ds: Dataset) -> bool:
    """True when `ds` is a Segmentation (or Label Map Segmentation) Storage instance."""
    uid = ds.get("SOPClassUID", "")
    return str(uid) in (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)


def referenced_series_uid(seg_ds: Dataset) -> str:
    """SeriesInstanceUID of the first item of the SEG's Referenced Series Sequence, or ``""``."""
    items = seg_ds.get("ReferencedSeriesSequence") or []
    return str(items[0].get("SeriesInstanceUID", "")) if items else ""


def label_map_from_seg(
    seg: Dataset | str | os.PathLike[str],
    sop_uids: Sequence[str],
    frames: Sequence[int] | None = None,
) -> SegOnGrid:
    """The label map of a SEG on the slices of a volume.

    Parameters
    ----------
    seg : pydicom.Dataset or path
        The SEG (a dataset is not modified).
    sop_uids : sequence of str
        ``sop_uids[i]``: SOP Instance UID of the source image of slice ``i`` of the volume.
    frames : sequence of int, optional
        ``frames[i]``: 0-based frame of slice ``i`` in its source image (multi-frame sources;
        ``VolumeMetadata.source_frames`` gives them). Only used for source images the SEG
        references by frame number.

    Returns
    -------
    SegOnGrid

    Raises
    ------
    LoadError
        When the file cannot be read, is not a SEG, is malformed, or references none of
        `sop_uids`.
    ValueError
        When `frames` and `sop_uids` differ in length, `sop_uids` is empty, or `frames` is
        missing though the SEG references frames of a multi-frame source image.
    """
    if not sop_uids or (frames is not None and len(frames) != len(sop_uids)):
        raise ValueError("give one SOP Instance UID (and frame) per slice, at least one")
    name, image = _open(seg)
    if not image.segment_numbers:
        raise LoadError(f"{name}: the SEG describes no segments")
    if not {str(u) for u in sop_uids} & {str(ref[2]) for ref in image.get_source_image_uids()}:
        raise LoadError(f"{name}: the SEG references none of the {len(sop_uids)} given images")
    label_of = _segment_labels(image)
    if frames is None and _framed_uids(image) & set(sop_uids):
        raise ValueError(f"{name} references frames of a multi-frame image: give `frames`")
    try:
        numbers = _segment_number_map(image, [str(u) for u in sop_uids], frames)
    except _HIGHDICOM_ERRORS as exc:
        raise LoadError(f"{name}: cannot map the SEG frames onto the images ({exc})") from exc
    lookup = np.zeros(max(int(numbers.max(initial=0)), *label_of) + 1, np.uint16)
    lookup[list(label_of)] = list(label_of.values())
    dtype = np.uint16 if max(label_of.values()) > 255 else np.uint8
    return SegOnGrid(
        labels=lookup[numbers].astype(dtype),
        segments=_segment_table(image, label_of),
        model_name=_algorithm_field(image, "AlgorithmName"),
        model_version=_algorithm_field(image, "AlgorithmVersion"),
        series_uid=str(image.SeriesInstanceUID),
        referenced_series_uid=referenced_series_uid(image),
        edited=any(str(s.SegmentAlgorithmType) in _EDITED_TYPES for s in image.SegmentSequence),
    )


def _open(seg: Dataset | str | os.PathLike[str]) -> tuple[str, Segmentation]:
    """``(name for messages, highdicom Segmentation)``; never modifies a given dataset."""
    if isinstance(seg, Dataset):
        name, ds, copy = str(getattr(seg, "filename", "") or "SEG dataset"), seg, True
    else:
        name, copy = os.fspath(seg), False
        try:
            ds = dcmread_bounded(name, force=False)  # a deflated SEG: inflation bounded
        except SkipFile as exc:
            raise LoadError(f"{name}: {exc}") from None
        except RecursionError:
            raise LoadError(f"{name}: {NESTED_TOO_DEEP}") from None
        except Exception as exc:  # any damage: said with the file, never a crash
            raise LoadError(f"{name}: cannot read the file ({exc})") from exc
    if not is_segmentation(ds):
        kind = ds.get("Modality", "") or ds.get("SOPClassUID", "unknown")
        raise LoadError(f"{name}: not a DICOM Segmentation (SEG) but {kind}")
    _check_claims(name, ds)
    try:
        return name, Segmentation.from_dataset(ds, copy=copy)
    except _HIGHDICOM_ERRORS as exc:
        raise LoadError(f"{name}: malformed SEG ({exc})") from exc


def _check_claims(name: str, ds: Dataset) -> None:
    """Refuse (LoadError) frame sizes and counts the pixel data cannot back, or that would
    not fit in memory, before highdicom decodes anything."""
    record = record_from_dataset(ds, name)
    if not record.pixel_keyword:
        return  # highdicom says what is missing
    try:
        check_pixel_claims(record, len(ds[record.pixel_keyword].value or b""))
    except SkipFile as exc:
        raise LoadError(f"{name}: {exc}") from None


def _segment_labels(image: Segmentation) -> dict[int, int]:
    """Segment number -> label: the recorded medviewer labels, else the segment numbers."""
    numbers = list(image.segment_numbers)
    found = {}
    for item in image.SegmentSequence:
        match = _LABEL_RE.match(str(item.get("SegmentDescription", "")))
        if match:
            found[int(item.SegmentNumber)] = int(match.group(1))
    values = set(found.values())
    if len(found) == len(numbers) and len(values) == len(found) and max(values) <= 0xFFFF:
        return found
    return {n: n for n in numbers}


def _segment_number_map(
    image: Segmentation, sop_uids: list[str], frames: Sequence[int] | None
) -> np.ndarray:
    """``[slices, rows, cols]`` segment numbers, the highest number winning overlaps."""
    if image.segmentation_type != SegmentationTypeValues.FRACTIONAL:
        dtype = np.uint16 if max(image.segment_numbers) > 255 else np.uint8
        return _fetch(image, sop_uids, frames, combine_segments=True, dtype=dtype)
    shape = (len(sop_uids), int(image.Rows), int(image.Columns))
    problem = memory_problem(shape[0] * shape[1] * shape[2] * 2)
    if problem:
        raise LoadError(f"the SEG's label map is too large to open: {problem}")
    numbers = np.zeros(shape, np.uint16)
    for number in sorted(image.segment_numbers):
        stack = _fetch(image, sop_uids, frames, segment_numbers=[number])
        numbers[stack[..., 0] >= FRACTIONAL_THRESHOLD] = number
    return numbers


def _fetch(
    image: Segmentation, sop_uids: list[str], frames: Sequence[int] | None, **kwargs: Any
) -> np.ndarray:
    """highdicom's pixels of each slice: by frame for framed references, else by instance."""
    options = dict(
        relabel=False, ignore_spatial_locations=True, assert_missing_frames_are_empty=True,
        skip_overlap_checks=True, **kwargs,
    )  # fmt: skip
    frame_of = [] if frames is None else [int(f) for f in frames]
    framed = _framed_uids(image) if frame_of else set()
    plain = [i for i, uid in enumerate(sop_uids) if uid not in framed]
    parts: list[tuple[list[int], np.ndarray]] = []
    if plain:
        uids = [sop_uids[i] for i in plain]
        parts.append((plain, image.get_pixels_by_source_instance(uids, **options)))
    for uid in sorted(framed & set(sop_uids)):
        rows = [i for i, u in enumerate(sop_uids) if u == uid]
        numbers = [frame_of[i] + 1 for i in rows]
        parts.append((rows, image.get_pixels_by_source_frame(uid, numbers, **options)))
    out = np.zeros((len(sop_uids), *parts[0][1].shape[1:]), parts[0][1].dtype)
    for rows, pixels in parts:
        out[rows] = pixels
    return out


def _framed_uids(image: Dataset) -> set[str]:
    """The source images the SEG's frames reference by frame number (multi-frame sources)."""
    found = set()
    for item in image.get("PerFrameFunctionalGroupsSequence") or []:
        for derivation in item.get("DerivationImageSequence") or []:
            for source in derivation.get("SourceImageSequence") or []:
                if "ReferencedFrameNumber" in source:
                    found.add(str(source.ReferencedSOPInstanceUID))
    return found


def _segment_table(image: Segmentation, label_of: dict[int, int]) -> dict[int, tuple[str, str]]:
    """Label -> ``(name, "#rrggbb")``, the default palette where the SEG gives no colour."""
    table = {}
    for index, item in enumerate(sorted(image.SegmentSequence, key=lambda s: s.SegmentNumber)):
        number = int(item.SegmentNumber)
        name = str(item.get("SegmentLabel", "")) or f"segment {number}"
        table[label_of[number]] = (name, _color_of(item, index))
    return table


def _color_of(item: Dataset, index: int) -> str:
    value = item.get("RecommendedDisplayCIELabValue")
    if value is None or len(value) != 3:
        return default_color(index + 1)
    r, g, b = CIELabColor.from_dicom_value([int(v) for v in value]).to_rgb(clip=True)
    return f"#{r:02x}{g:02x}{b:02x}"


def _algorithm_field(image: Segmentation, keyword: str) -> str:
    """A field of the first segment's algorithm identification, or ``""``."""
    for item in image.SegmentSequence:
        algorithms = item.get("SegmentationAlgorithmIdentificationSequence") or []
        if algorithms:
            return str(algorithms[0].get(keyword, ""))
    return ""
