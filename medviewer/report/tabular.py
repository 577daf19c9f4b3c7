"""Findings as CSV and JSON, label maps and heatmaps as NIfTI/NRRD, key images as PNG.

Every function returns bytes or writes one given path; the exporter decides where (and writes
through :class:`~medviewer.report.files.FileBatch`).

Numbers are written unrounded (Python's shortest exact ``repr``): these files are for
programs, and :mod:`medviewer.core.formatting` applied to a value gives the text the viewer
and the PDF show for it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import replace
from typing import Any

import numpy as np

from medviewer.core.findings import AIResult, ComponentStats, SegmentStats
from medviewer.report.content import KeyImage, ReportContent

#: Columns of the findings CSV, one row per segment, per listed component and per class.
CSV_COLUMNS = (
    "series_uid", "model_id", "model_name", "model_version", "task", "edited", "row_kind",
    "segment_label", "segment", "component", "voxels", "volume_ml", "longest_diameter_mm",
    "mean_value", "units", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "class",
    "probability", "positive", "threshold",
)
#: File suffix of each volume format.
VOLUME_SUFFIXES = {"nifti": ".nii.gz", "nrrd": ".nrrd"}


def findings_csv(content: ReportContent) -> bytes:
    """One CSV of every result's findings (UTF-8, full-precision numbers, LPS mm)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for result in content.results:
        for row in _result_rows(result, content.header.units):
            writer.writerow(row)
    return out.getvalue().encode("utf-8")


def _result_rows(result: AIResult, units: str) -> list[dict[str, Any]]:
    p = result.prediction
    base = {
        "series_uid": p.series_uid, "model_id": p.model.id, "model_name": p.model.name,
        "model_version": p.model.version, "task": p.task, "edited": result.edited,
    }
    rows = []
    for name, probability in p.classes.items():
        rows.append({**base, "row_kind": "class", "class": name, "probability": probability,
                     "positive": name in p.decision, "threshold": p.threshold})
    for _label, stats in sorted(result.statistics.items()):
        rows.append({**base, **_segment_row(stats, units)})
        for component in stats.components:
            rows.append({**base, **_component_row(stats, component, units)})
    return rows


def _segment_row(stats: SegmentStats, units: str) -> dict[str, Any]:
    x, y, z = stats.centroid_lps if stats.centroid_lps is not None else ("", "", "")
    return {
        "row_kind": "segment", "segment_label": stats.label, "segment": stats.name,
        "component": "", "voxels": stats.voxels, "volume_ml": stats.volume_ml,
        "longest_diameter_mm": stats.longest_diameter_mm,
        "mean_value": "" if stats.mean_value is None else stats.mean_value, "units": units,
        "centroid_x_mm": x, "centroid_y_mm": y, "centroid_z_mm": z,
    }


def _component_row(stats: SegmentStats, c: ComponentStats, units: str) -> dict[str, Any]:
    x, y, z = c.centroid_lps
    return {
        "row_kind": "component", "segment_label": stats.label, "segment": stats.name,
        "component": c.index, "voxels": c.voxels, "volume_ml": c.volume_ml,
        "longest_diameter_mm": c.longest_diameter_mm,
        "mean_value": "" if c.mean_value is None else c.mean_value, "units": units,
        "centroid_x_mm": x, "centroid_y_mm": y, "centroid_z_mm": z,
    }


def findings_json(content: ReportContent, files: list[str] | None = None) -> bytes:
    """Header, impression, measurements, key images and every result with its components."""
    return json_bytes(findings_document(content, files))


def findings_document(content: ReportContent, files: list[str] | None = None) -> dict[str, Any]:
    """The object :func:`findings_json` writes (`files`: the export's files, when given)."""
    document = content.to_json()
    document["results"] = [result_json(r) for r in content.results]
    document["disclaimers"] = content.disclaimers()
    if files is not None:
        document["files"] = files
    return document


def json_bytes(document: Any) -> bytes:
    """`document` as indented UTF-8 JSON."""
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")


def result_json(result: AIResult) -> dict[str, Any]:
    """``medviewer infer``'s result.json of the current (possibly edited) result, plus
    each segment's listed components."""
    current = replace(result.prediction, statistics=result.statistics)
    document = current.to_json()
    document["edited"] = result.edited
    for stats in result.statistics.values():
        document["segments"][stats.name]["component_list"] = [
            {"index": c.index, "voxels": c.voxels, "volume_ml": c.volume_ml,
             "longest_diameter_mm": c.longest_diameter_mm,
             "centroid_lps": list(c.centroid_lps), "mean_value": c.mean_value}
            for c in stats.components
        ]
    return document


def write_volume(array: np.ndarray, affine: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write `array` ``[slice, row, col(, channel)]`` on `affine`'s grid as NIfTI, NRRD or
    MetaImage (by suffix).

    The geometry is exact (SimpleITK keeps LPS and converts to NIfTI's RAS itself); no patient
    metadata is written.
    """
    import SimpleITK as sitk

    from medviewer.core.geometry import direction_of, spacing_of

    image = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=array.ndim == 4)
    image.SetSpacing([float(v) for v in spacing_of(affine)])
    image.SetOrigin([float(v) for v in affine[:3, 3]])
    image.SetDirection([float(v) for v in direction_of(affine).ravel()])
    sitk.WriteImage(image, os.fspath(path), useCompression=True)


def key_image_png(key: KeyImage) -> bytes:
    """The key image's pixels as PNG."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(key.rgb, "RGB").save(out, "PNG")
    return out.getvalue()
