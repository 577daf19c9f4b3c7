"""A DICOM SEG read back as an AI result on its source series (to overlay and measure it)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydicom.dataset import Dataset

from medviewer.core.errors import LoadError
from medviewer.core.findings import AIResult, ModelInfo, Prediction, Segment, now_iso
from medviewer.core.volume import Volume
from medviewer.io.seg import label_map_from_seg
from medviewer.report.sources import read_source_images

#: Model id prefix of results read from SEG files (one per SEG series).
SEG_MODEL_PREFIX = "dicom-seg-"


def seg_as_result(seg: Dataset, volume: Volume) -> AIResult:
    """Read the SEG `seg` onto `volume` (its source series) as an :class:`AIResult`.

    The label map lands on the volume's grid slice by slice through the SEG's references to
    the source images (and frames); the statistics are measured as for a model's result. The
    result's model id is derived from a hash of the SEG's series UID (no UID, no path: they
    would leave a de-identified export carrying them).

    Raises
    ------
    LoadError
        When the SEG references none of the volume's images, or its frames differ in size.
    """
    from medviewer.ai.statistics import segment_statistics

    sources = read_source_images(volume.metadata)
    count = volume.array.shape[0]
    uids = [sources.sop_uid_of_slice(i) for i in range(count)]
    frames = [sources.slice_dataset(i)[1] for i in range(count)]
    found = label_map_from_seg(seg, uids, frames)
    if found.labels.shape != tuple(volume.shape):
        raise LoadError(f"the SEG's frames are {found.labels.shape[1:]}, the series' images "
                        f"{tuple(volume.shape[1:])}")
    segments = {k: Segment(k, name, color) for k, (name, color) in found.segments.items()}
    names = {k: s.name for k, s in segments.items()}
    values = volume.array if volume.array.ndim == 3 else None
    digest = hashlib.sha256(found.series_uid.encode()).hexdigest()[:12]
    model = ModelInfo(
        id=SEG_MODEL_PREFIX + digest, name=found.model_name or "DICOM SEG",
        version=found.model_version or "-", sha256="", task="segmentation",
        intended_use="Segmentation read from a DICOM SEG file.",
    )
    created = _content_time(seg)
    prediction = Prediction(
        model=model, task="segmentation", device="DICOM SEG file", seconds=0.0,
        created=created, series_uid=volume.metadata.series_uid, affine=volume.affine,
        shape=tuple(volume.shape), label_map=found.labels, segments=segments,
        statistics=segment_statistics(found.labels, volume.affine, names, values),
    )
    result = AIResult.of(prediction)
    if found.edited:
        result.edited = created
    return result


def _content_time(seg: Dataset) -> str:
    """The SEG's content date and time as ISO 8601 (now when it has none)."""
    date, time = str(seg.get("ContentDate", "") or ""), str(seg.get("ContentTime", "") or "")
    try:
        stamp = datetime.strptime(date + time[:6].ljust(6, "0"), "%Y%m%d%H%M%S")
    except ValueError:
        return now_iso()
    return stamp.isoformat(timespec="seconds")
