"""A DICOM SEG read back as an AI result on its source series (to overlay and measure it)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from medviewer.core.errors import LoadError
from medviewer.core.findings import AIResult, ModelInfo, Prediction, Segment
from medviewer.core.volume import Volume
from medviewer.io.seg import label_map_from_seg
from medviewer.report.sources import read_source_images

#: Model id prefix of results read from SEG files (one per SEG series).
SEG_MODEL_PREFIX = "dicom-seg:"


def seg_as_result(seg_path: str | os.PathLike[str], volume: Volume) -> AIResult:
    """Read the SEG at `seg_path` onto `volume` (its source series) as an :class:`AIResult`.

    The label map lands on the volume's grid slice by slice through the SEG's references to
    the source images; the statistics are measured as for a model's result.

    Raises
    ------
    LoadError
        When the SEG cannot be read or references none of the volume's images.
    """
    from medviewer.ai.statistics import segment_statistics

    sources = read_source_images(volume.metadata)
    count = volume.array.shape[0]
    uids = [sources.sop_uid_of_slice(i) for i in range(count)]
    frames = [sources.slice_dataset(i)[1] for i in range(count)] if sources.multiframe else None
    seg = label_map_from_seg(seg_path, uids, frames)
    if seg.labels.shape != tuple(volume.shape):
        raise LoadError(f"{seg_path}: its frames are {seg.labels.shape[1:]}, the series' images "
                        f"{tuple(volume.shape[1:])}")
    segments = {k: Segment(k, name, color) for k, (name, color) in seg.segments.items()}
    names = {k: s.name for k, s in segments.items()}
    values = volume.array if volume.array.ndim == 3 else None
    model = ModelInfo(
        id=SEG_MODEL_PREFIX + seg.series_uid, name=seg.model_name or "DICOM SEG",
        version=seg.model_version or "-", sha256="", task="segmentation",
        intended_use=f"Segmentation read from the DICOM SEG {os.path.basename(seg_path)}.",
    )
    prediction = Prediction(
        model=model, task="segmentation", device="DICOM SEG file", seconds=0.0,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        series_uid=volume.metadata.series_uid, affine=volume.affine, shape=tuple(volume.shape),
        label_map=seg.labels, segments=segments,
        statistics=segment_statistics(seg.labels, volume.affine, names, values),
    )
    result = AIResult.of(prediction)
    if seg.edited:
        result.edited = prediction.created
    return result
