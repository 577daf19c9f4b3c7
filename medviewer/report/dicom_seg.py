"""DICOM Segmentation (SEG) export of an AI label map, referencing its source series.

The label map of an :class:`~medviewer.core.findings.AIResult` lies on the source series' own
grid (slice ``i`` is slice ``i`` of the loaded volume), so every SEG frame references exactly
the source image (or source frame) it was drawn on. The SEG is BINARY, one segment per card
segment in label order (empty segments included), and empty frames are omitted.

When the card's labels are exactly ``1..N`` the segment number is the label value; otherwise
the segments are numbered ``1..N`` in label order. Either way every segment's Segment
Description (0062,0006) reads ``"medviewer label <value>"`` so that
:func:`medviewer.io.seg.label_map_from_seg` gives back the card's own label values.
"""

from __future__ import annotations

import numpy as np
from highdicom import UID, AlgorithmIdentificationSequence
from highdicom.color import CIELabColor
from highdicom.seg import SegmentAlgorithmTypeValues, Segmentation, SegmentDescription
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from medviewer.core.findings import AIResult, Segment
from medviewer.io.seg import LABEL_PREFIX
from medviewer.report.dicom_common import equipment, is_positioned, segment_codes
from medviewer.report.sources import SourceImages

DEVICE_SERIAL_NUMBER = "0"
CONTENT_LABEL = "AI_SEG"
EDITED_SUFFIX = " (edited)"


def segmentation_dataset(
    result: AIResult,
    sources: SourceImages,
    *,
    series_uid: str | None = None,
    series_number: int = 901,
    instance_number: int = 1,
    series_description: str | None = None,
) -> Segmentation:
    """A BINARY DICOM SEG of `result`'s label map, referencing the source images.

    Parameters
    ----------
    result : AIResult
        A segmentation result whose label map lies on the grid of `sources`.
    sources : SourceImages
        The headers of the series the result was computed on
        (:func:`medviewer.report.sources.read_source_images`).
    series_uid : str, optional
        SeriesInstanceUID of the SEG; a new UID when None.
    series_number : int
    instance_number : int
    series_description : str, optional
        Defaults to ``"<model name> <version>"``, with ``" (edited)"`` when the user edited
        the label map.

    Returns
    -------
    highdicom.seg.Segmentation
        The SEG dataset (``save_as(path, enforce_file_format=True)`` writes it).

    Raises
    ------
    ValueError
        When the result has no label map or no segments, holds labels the card does not
        describe, its shape differs from the source images, or the sources cannot carry a
        SEG (several multi-frame files, several images without patient position).
    """
    numbered = _numbered_label_map(result, sources)
    images, pixels = _source_arrangement(sources, numbered)
    positioned = _check_positions(images)
    model = result.prediction.model
    seg = Segmentation(
        source_images=images,
        pixel_array=pixels,
        segmentation_type="BINARY",
        segment_descriptions=segment_descriptions(result),
        series_instance_uid=series_uid or UID(),
        series_number=series_number,
        sop_instance_uid=UID(),
        instance_number=instance_number,
        **equipment(),
        device_serial_number=DEVICE_SERIAL_NUMBER,
        content_label=CONTENT_LABEL,
        content_description=_lo(f"AI segmentation by {model.name} {model.version}"),
        omit_empty_frames=bool(pixels.any()),
    )
    seg.SeriesDescription = _lo(series_description or default_series_description(result))
    if not positioned:  # General Image: Type 2C when there is no plane orientation
        seg.PatientOrientation = images[0].get("PatientOrientation", "")
    return seg


def default_series_description(result: AIResult) -> str:
    """``"<model name> <version>"``, with ``" (edited)"`` when the user edited the labels."""
    model = result.prediction.model
    return f"{model.name} {model.version}" + (EDITED_SUFFIX if result.edited else "")


def segment_descriptions(result: AIResult) -> list[SegmentDescription]:
    """One :class:`~highdicom.seg.SegmentDescription` per card segment, numbered 1..N.

    Parameters
    ----------
    result : AIResult

    Returns
    -------
    list of highdicom.seg.SegmentDescription
        In label order; segment ``k`` describes the ``k``-th smallest label.
    """
    model = result.prediction.model
    algorithm = AlgorithmIdentificationSequence(
        name=_lo(model.name),
        family=codes.DCM.ArtificialIntelligence,
        version=_lo(model.version),
        parameters={"model_id": model.id, "sha256": model.sha256},
    )
    kind = (
        SegmentAlgorithmTypeValues.SEMIAUTOMATIC if result.edited
        else SegmentAlgorithmTypeValues.AUTOMATIC
    )
    lung_model = _is_lung_model(result)
    return [
        _describe(number, result.segments[label], kind, algorithm, lung_model, result.edited)
        for number, label in enumerate(sorted(result.segments), start=1)
    ]


def segment_label(segment: Segment) -> str:
    """The Segment Label a segment gets in the SEG (its name, cut to 64 characters)."""
    return _lo(segment.name or f"label {segment.label}")


def cielab_of(color: str) -> CIELabColor:
    """The DICOM CIELab colour of an sRGB ``#rrggbb`` colour."""
    value = color.lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return CIELabColor.from_rgb(r, g, b)


def _describe(
    number: int,
    segment: Segment,
    kind: SegmentAlgorithmTypeValues,
    algorithm: AlgorithmIdentificationSequence,
    lung_model: bool,
    edited: str,
) -> SegmentDescription:
    category, property_type, regions = segment_codes(segment.name, lung_model)
    item = SegmentDescription(
        segment_number=number,
        segment_label=segment_label(segment),
        segmented_property_category=category,
        segmented_property_type=property_type,
        algorithm_type=kind,
        algorithm_identification=algorithm,
        anatomic_regions=regions,
        display_color=cielab_of(segment.color),
    )
    text = f"{LABEL_PREFIX}{segment.label}"
    item.SegmentDescription = f"{text}, edited by the user" if edited else text
    return item


def _is_lung_model(result: AIResult) -> bool:
    model = result.prediction.model
    names = [s.name for s in result.segments.values()] + [model.name, model.id]
    return any("lung" in name.lower() for name in names)


def _numbered_label_map(result: AIResult, sources: SourceImages) -> np.ndarray:
    """The label map with labels renumbered 1..N in label order (unchanged when they are)."""
    labels = result.label_map
    if labels is None:
        raise ValueError("the result has no label map (not a segmentation): nothing to export")
    if not result.segments:
        raise ValueError("the result describes no segments: nothing to export")
    first = sources.first
    expected = (len(sources.slices), int(first.Rows), int(first.Columns))
    if labels.shape != expected:
        raise ValueError(
            f"label map shape {labels.shape} differs from the source images' "
            f"(slices, rows, cols) {expected}"
        )
    order = sorted(result.segments)
    described = np.zeros(max(int(labels.max(initial=0)), *order) + 1, bool)
    described[[0, *order]] = True
    stray = ~described[labels]
    if stray.any():
        unknown = np.unique(labels[stray]).tolist()
        raise ValueError(f"label map holds labels the result does not describe: {unknown}")
    if order == list(range(1, len(order) + 1)):
        return labels
    lookup = np.zeros(int(max(order)) + 1, np.uint16 if len(order) > 255 else np.uint8)
    lookup[order] = np.arange(1, len(order) + 1)
    return lookup[labels]


def _source_arrangement(
    sources: SourceImages, labels: np.ndarray
) -> tuple[list[Dataset], np.ndarray]:
    """The source images to pass to highdicom and the label map in their frame order."""
    first = sources.first
    if len(sources.datasets) == 1 and int(first.get("NumberOfFrames", 1)) > 1:
        pixels = np.zeros((int(first.NumberOfFrames), *labels.shape[1:]), labels.dtype)
        for index, (_, frame) in enumerate(sources.slices):
            pixels[frame] = labels[index]
        return [first], pixels
    if any(int(ds.get("NumberOfFrames", 1)) > 1 for ds in sources.datasets):
        raise ValueError(
            "the series was assembled from several multi-frame files; a SEG can reference "
            "either single-frame images or one multi-frame image"
        )
    images = [sources.slice_dataset(i)[0] for i in range(len(sources.slices))]
    return images, labels


def _check_positions(images: list[Dataset]) -> bool:
    """True when the source images have patient positions; ValueError for several without."""
    if is_positioned(images[0]):
        return True
    if len(images) > 1 or int(images[0].get("NumberOfFrames", 1)) > 1:
        raise ValueError(
            "the source images give no patient position (Image Position (Patient) or Plane "
            "Position Sequence), so a SEG can only reference one unpositioned image, not "
            f"{max(len(images), int(images[0].get('NumberOfFrames', 1)))}"
        )
    return False


def _lo(text: str) -> str:
    """`text` cut to the 64 characters of a DICOM LO value."""
    return text[:64]
