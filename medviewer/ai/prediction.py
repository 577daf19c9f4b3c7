"""What a model run yields while it works (Progress) and what it returns (Prediction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medviewer.ai.model_card import ModelCard, Segment
from medviewer.ai.statistics import SegmentStats


@dataclass(frozen=True)
class Progress:
    """How far a run is: `fraction` in [0, 1] and a short message for a status line."""

    fraction: float
    message: str


@dataclass(frozen=True)
class ModelInfo:
    """Which model made a prediction (enough to reproduce and to cite it in a report)."""

    id: str
    name: str
    version: str
    sha256: str
    task: str
    intended_use: str

    @classmethod
    def of(cls, card: ModelCard) -> ModelInfo:
        """The provenance of `card`."""
        return cls(
            card.id, card.name, card.version, card.weights.sha256, card.task, card.intended_use
        )


@dataclass(frozen=True, eq=False)
class Prediction:
    """One model's result on one series, every array on the series' own voxel grid.

    Attributes
    ----------
    model : ModelInfo
    task : str
        ``"segmentation"`` or ``"classification"``.
    device : str
        Where it ran (``"CPU (1 threads)"``, ``"CUDA NVIDIA H100 ... (80 GiB)"``).
    seconds : float
        Wall time of the run, loading excluded when the network was cached.
    created : str
        ISO 8601 UTC time the run finished.
    series_uid : str
        SeriesInstanceUID of the input, empty when unknown.
    affine : numpy.ndarray
        The input volume's affine (``(col, row, slice)`` -> LPS), shared by every array here.
    shape : tuple of int
        The input volume's ``(slices, rows, cols)``.
    classes : dict
        Class name -> probability for the whole series (classification), else empty.
        For a 2D classifier on a volume: the first class (the reference, e.g. "normal") is the
        minimum over slices, every other class the maximum over slices.
    decision : tuple of str
        Classes called positive: the arg-max (softmax) or those >= threshold (sigmoid).
    threshold : float
    slice_probabilities : numpy.ndarray or None
        ``[n, classes]`` per slice of a 2D classifier run on a volume; row ``i`` is index ``i``
        along array axis `slice_axis` of the volume (0: slices, 1: rows, 2: cols).
    slice_axis : int or None
    label_map : numpy.ndarray or None
        ``[slices, rows, cols]`` uint8/uint16 segment labels (0 = background).
    segments : dict
        Label -> :class:`Segment` (name, colour) from the card.
    statistics : dict
        Label -> :class:`SegmentStats` on the original grid.
    probabilities : numpy.ndarray or None
        ``[slices, rows, cols, channels]`` float32 model probabilities, when asked for.
    heatmap : numpy.ndarray or None
        ``[slices, rows, cols]`` float32 Grad-CAM in [0, 1] (1 = the run's strongest evidence).
    heatmap_class : str or None
        The class the heatmap explains.
    warnings : tuple of str
    """

    model: ModelInfo
    task: str
    device: str
    seconds: float
    created: str
    series_uid: str
    affine: np.ndarray
    shape: tuple[int, int, int]
    classes: dict[str, float] = field(default_factory=dict)
    decision: tuple[str, ...] = ()
    threshold: float = 0.5
    slice_probabilities: np.ndarray | None = None
    slice_axis: int | None = None
    label_map: np.ndarray | None = None
    segments: dict[int, Segment] = field(default_factory=dict)
    statistics: dict[int, SegmentStats] = field(default_factory=dict)
    probabilities: np.ndarray | None = None
    heatmap: np.ndarray | None = None
    heatmap_class: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``result.json`` object of ``medviewer infer``."""
        return {
            "model": {"id": self.model.id, "version": self.model.version,
                      "sha256": self.model.sha256, "name": self.model.name},
            "task": self.task,
            "device": self.device,
            "seconds": round(self.seconds, 3),
            "created": self.created,
            "series_uid": self.series_uid,
            "classes": {name: float(p) for name, p in self.classes.items()},
            "decision": list(self.decision),
            "threshold": self.threshold,
            "slice_probabilities": _slice_json(self),
            "segments": {
                self.segments[label].name: _segment_json(stats)
                for label, stats in self.statistics.items()
            },
            "heatmap_class": self.heatmap_class,
            "warnings": list(self.warnings),
        }


def _segment_json(stats: SegmentStats) -> dict[str, Any]:
    return {
        "label": stats.label,
        "volume_ml": round(stats.volume_ml, 4),
        "components": stats.component_count,
        "longest_diameter_mm": round(stats.longest_diameter_mm, 2),
        "centroid_lps": None if stats.centroid_lps is None
        else [round(float(v), 3) for v in stats.centroid_lps],
        "centroid_slice": stats.centroid_slice,
        "mean_value": None if stats.mean_value is None else round(stats.mean_value, 2),
    }


def _slice_json(prediction: Prediction) -> dict[str, Any] | None:
    if prediction.slice_probabilities is None:
        return None
    return {
        "axis": ("slice", "row", "col")[prediction.slice_axis or 0],
        "probabilities": np.round(prediction.slice_probabilities, 5).tolist(),
    }
