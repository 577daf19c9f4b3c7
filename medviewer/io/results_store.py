"""AI results on disk: one compressed ``.npz`` per ``(series, model id, model version)``.

Reopening a study shows its earlier results (and the user's edits) without running the
models again. Each file holds the arrays (label map, heatmap, per-slice probabilities, affine)
and one JSON document with everything else; it is read with ``allow_pickle=False`` and written
through a temporary file and a rename, so a failed save leaves the previous file intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.core.findings import (
    AIResult,
    ComponentStats,
    ModelInfo,
    Prediction,
    ResultKey,
    Segment,
    SegmentStats,
)

log = logging.getLogger(__name__)

FORMAT = "medviewer.result/1"
_ARRAYS = ("label_map", "heatmap", "slice_probabilities")


class ResultStore:
    """The saved AI results in one folder.

    Parameters
    ----------
    root : path
        Folder of the ``.npz`` files (created on the first save).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_of(self, key: ResultKey) -> Path:
        """The file of a result key."""
        digest = hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:32]
        return self.root / f"{digest}.npz"

    def save(self, result: AIResult) -> Path:
        """Write `result` (replacing the file of the same key); returns the file."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path_of(result.key)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp.npz")  # saves may overlap
        try:
            with open(tmp, "wb") as handle:
                # numpy's stub lets a ** dict reach allow_pickle; these keys are array names
                np.savez_compressed(handle, **_arrays(result))  # type: ignore[arg-type]
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def delete(self, key: ResultKey) -> None:
        """Remove the file of `key` (no error when absent)."""
        self.path_of(key).unlink(missing_ok=True)

    def load_series(self, series_uid: str) -> list[AIResult]:
        """Every saved result of a series; unreadable files are logged and skipped."""
        if not series_uid or not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.glob("*.npz")):
            if path.name.startswith("."):
                continue  # a save in progress
            try:
                result = read_result(path, series_uid)
            except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("%s: unreadable AI result skipped: %s", path, exc)
                continue
            if result is not None:
                found.append(result)
        return found


def _arrays(result: AIResult) -> dict[str, np.ndarray]:
    p = result.prediction
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(_meta(result)).encode(), np.uint8),
        "affine": np.asarray(p.affine, np.float64),
    }
    for name in _ARRAYS:
        value = getattr(p, name)
        if value is not None:
            arrays[name] = value.astype(np.float16) if name == "heatmap" else value
    return arrays


def _meta(result: AIResult) -> dict[str, Any]:
    p = result.prediction
    return {
        "format": FORMAT,
        "model": dataclasses.asdict(p.model),
        "task": p.task,
        "device": p.device,
        "seconds": p.seconds,
        "created": p.created,
        "series_uid": p.series_uid,
        "shape": list(p.shape),
        "classes": p.classes,
        "decision": list(p.decision),
        "threshold": p.threshold,
        "slice_axis": p.slice_axis,
        "segments": [dataclasses.asdict(s) for s in p.segments.values()],
        "statistics": [dataclasses.asdict(s) for s in result.statistics.values()],
        "heatmap_class": p.heatmap_class,
        "warnings": list(p.warnings),
        "edited": result.edited,
    }


def read_result(path: Path, series_uid: str | None = None) -> AIResult | None:
    """The result saved in `path` (None when it belongs to another series).

    Raises
    ------
    ValueError, KeyError, OSError
        When the file is not a readable result.
    """
    with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if series_uid is not None and meta["series_uid"] != series_uid:
            return None
        arrays = {name: data[name] for name in _ARRAYS if name in data.files}
        affine = data["affine"]
    if "heatmap" in arrays:
        arrays["heatmap"] = arrays["heatmap"].astype(np.float32)
    return _result(meta, affine, arrays)


def _result(meta: dict[str, Any], affine: np.ndarray, arrays: dict[str, np.ndarray]) -> AIResult:
    statistics = {s["label"]: _segment_stats(s) for s in meta["statistics"]}
    prediction = Prediction(
        model=ModelInfo(**meta["model"]),
        task=meta["task"],
        device=meta["device"],
        seconds=float(meta["seconds"]),
        created=meta["created"],
        series_uid=meta["series_uid"],
        affine=affine,
        shape=tuple(meta["shape"]),
        classes={k: float(v) for k, v in meta["classes"].items()},
        decision=tuple(meta["decision"]),
        threshold=float(meta["threshold"]),
        slice_axis=meta["slice_axis"],
        segments={s["label"]: Segment(**s) for s in meta["segments"]},
        statistics=statistics,
        heatmap_class=meta["heatmap_class"],
        warnings=tuple(meta["warnings"]),
        **arrays,
    )
    return AIResult(prediction, dict(statistics), edited=meta.get("edited", ""))


def _segment_stats(data: dict[str, Any]) -> SegmentStats:
    components = tuple(_component(c) for c in data["components"])
    centroid = data["centroid_lps"]
    centroid = None if centroid is None else tuple(centroid)
    return SegmentStats(**{**data, "components": components, "centroid_lps": centroid})


def _component(data: dict[str, Any]) -> ComponentStats:
    tuples = ("centroid_lps", "centroid_index", "bbox")
    fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
    return ComponentStats(**fields)
