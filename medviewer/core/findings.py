"""The findings model: what AI runs found on a series, as the user sees and edits it.

Everything the AI panel shows, and everything a report exports, lives here (not in widget
state). numpy only: no Qt, no torch.

- :class:`Prediction` is what one model run returned, every array on the series' own grid.
- :class:`AIResult` is a prediction as the user works with it: its label map may be edited
  (brush, eraser, undo/redo through :class:`~medviewer.core.label_edit.LabelEditHistory`),
  its statistics follow the edits, and it records when it was edited.
- :class:`FindingsModel` holds the results of every open series, one per
  ``(series_uid, model id, model version)``, and tells observers when they change.
- :class:`OverlayStyle` is how results are drawn (opacity, outline, hidden labels, heatmap
  threshold...), shared by every viewport.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from medviewer.core.label_edit import LabelEditHistory

#: Colours given to labels without one (a card entry without colour, an imported SEG), by
#: label order.
DEFAULT_COLORS = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
    "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324",
)  # fmt: skip


def default_color(label: int) -> str:
    """The palette colour of a label (``#rrggbb``), cycling through :data:`DEFAULT_COLORS`.

    Parameters
    ----------
    label : int
        A label value, 1 or more.

    Returns
    -------
    str
        A lower-case ``#rrggbb`` colour.
    """
    return DEFAULT_COLORS[(label - 1) % len(DEFAULT_COLORS)]


@dataclass(frozen=True)
class Segment:
    """One segmentation label: its value, name and ``#rrggbb`` colour."""

    label: int
    name: str
    color: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as ``(r, g, b)`` in 0-255."""
        value = self.color.lstrip("#")
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@dataclass(frozen=True)
class ComponentStats:
    """One connected component of a segment.

    Attributes
    ----------
    index : int
        1-based rank of the component, components ordered by decreasing size.
    voxels : int
        Number of voxels.
    volume_ml : float
        ``voxels`` times the voxel volume, in millilitres.
    longest_diameter_mm : float
        Largest distance between two voxel centres of the component (Feret diameter), in mm;
        approximate (a lower bound) above :data:`EXACT_FERET_MAX_VOXELS` voxels.
    centroid_lps : tuple of float
        Centroid of the voxel centres, LPS mm.
    centroid_index : tuple of float
        The centroid as a continuous ``(col, row, slice)`` index.
    centroid_slice : int
        ``round(centroid_index[2])`` clamped to the volume.
    bbox : tuple of int
        ``(slice0, row0, col0, slice1, row1, col1)``, start inclusive, end exclusive.
    mean_value : float or None
        Mean of the values over the component, None when no values were given.
    """

    index: int
    voxels: int
    volume_ml: float
    longest_diameter_mm: float
    centroid_lps: tuple[float, float, float]
    centroid_index: tuple[float, float, float]
    centroid_slice: int
    bbox: tuple[int, int, int, int, int, int]
    mean_value: float | None


@dataclass(frozen=True)
class SegmentStats:
    """Statistics of one label.

    Attributes
    ----------
    label : int
        The label value.
    name : str
        The segment's name.
    voxels : int
        Number of voxels of the label (all components, also those not listed).
    volume_ml : float
        ``voxels`` times the voxel volume, in millilitres.
    longest_diameter_mm : float
        Largest ``longest_diameter_mm`` of the listed components, 0 when empty.
    centroid_lps : tuple of float or None
        Centroid of all the label's voxel centres, LPS mm; None when the label is empty.
    centroid_slice : int or None
        Slice index nearest the centroid, None when the label is empty.
    mean_value : float or None
        Mean of the values over all the label's voxels; None when empty or no values given.
    components : tuple of ComponentStats
        The largest components, largest first, at most ``max_components`` of them.
    component_count : int
        How many connected components the label has (listed or not).
    """

    label: int
    name: str
    voxels: int
    volume_ml: float
    longest_diameter_mm: float
    centroid_lps: tuple[float, float, float] | None
    centroid_slice: int | None
    mean_value: float | None
    components: tuple[ComponentStats, ...]
    component_count: int = 0


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
    def of(cls, card: Any) -> ModelInfo:
        """The provenance of a :class:`~medviewer.ai.model_card.ModelCard`."""
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
    """A segment's numbers unrounded, so that :mod:`medviewer.core.formatting` applied to
    them gives the text the viewer and the PDF show (no rounding of a rounded number)."""
    return {
        "label": stats.label,
        "volume_ml": float(stats.volume_ml),
        "components": stats.component_count,
        "longest_diameter_mm": float(stats.longest_diameter_mm),
        "centroid_lps": None if stats.centroid_lps is None
        else [float(v) for v in stats.centroid_lps],
        "centroid_slice": stats.centroid_slice,
        "mean_value": None if stats.mean_value is None else float(stats.mean_value),
    }


def _slice_json(prediction: Prediction) -> dict[str, Any] | None:
    if prediction.slice_probabilities is None:
        return None
    return {
        "axis": ("slice", "row", "col")[prediction.slice_axis or 0],
        "probabilities": np.round(prediction.slice_probabilities, 5).tolist(),
    }


ResultKey = tuple[str, str, str]
"""``(series_uid, model id, model version)``: one result per model version and series."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(eq=False)
class AIResult:
    """A model's result on a series as the user works with it.

    Attributes
    ----------
    prediction : Prediction
        What the model returned. Its ``label_map`` array is the one edits change (in place).
    statistics : dict
        Label -> :class:`SegmentStats` of the current label map (after edits).
    edited : str
        ISO 8601 UTC time of the last edit, empty when never edited.
    history : LabelEditHistory
        Undo/redo of the edits of this session.
    version : int
        Bumped on every change of the label map (caches of drawn slices compare it).
    """

    prediction: Prediction
    statistics: dict[int, SegmentStats] = field(default_factory=dict)
    edited: str = ""
    history: LabelEditHistory = field(default_factory=LabelEditHistory)
    version: int = 0
    _heatmap_u8: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, prediction: Prediction) -> AIResult:
        """A fresh, unedited result."""
        return cls(prediction, dict(prediction.statistics))

    @property
    def key(self) -> ResultKey:
        """``(series_uid, model id, model version)``."""
        p = self.prediction
        return (p.series_uid, p.model.id, p.model.version)

    @property
    def task(self) -> str:
        """``"segmentation"`` or ``"classification"``."""
        return self.prediction.task

    @property
    def label_map(self) -> np.ndarray | None:
        """The current label map ``[slices, rows, cols]`` (None for classifiers)."""
        return self.prediction.label_map

    @property
    def heatmap(self) -> np.ndarray | None:
        """The Grad-CAM heatmap ``[slices, rows, cols]`` in [0, 1], or None."""
        return self.prediction.heatmap

    @property
    def segments(self) -> dict[int, Segment]:
        """Label -> :class:`Segment` (name and colour from the card)."""
        return self.prediction.segments

    def heatmap_u8(self) -> np.ndarray | None:
        """The heatmap quantised to 0-255 (computed once), for drawing through a lookup table."""
        heatmap = self.prediction.heatmap
        if heatmap is None:
            return None
        if self._heatmap_u8 is None:
            scaled = np.clip(heatmap, 0.0, 1.0) * 255.0
            self._heatmap_u8 = np.rint(scaled).astype(np.uint8)
        return self._heatmap_u8

    def title(self) -> str:
        """One line naming the model, its version and when it ran (and was edited)."""
        p = self.prediction
        text = f"{p.model.name} {p.model.version}, {_short_time(p.created)}"
        return f"{text}, edited {_short_time(self.edited)}" if self.edited else text

    def edited_label(self) -> str:
        """``"Edited 2026-11-21 10:40 UTC"``, or empty when never edited."""
        return f"Edited {_short_time(self.edited)}" if self.edited else ""

    def snapshot(self) -> AIResult:
        """A detached copy (label map copied) for a worker to save while edits go on."""
        p = self.prediction
        labels = None if p.label_map is None else p.label_map.copy()
        return AIResult(replace(p, label_map=labels), dict(self.statistics), self.edited)

    def touch(self) -> None:
        """Note that the label map changed in place (drawn slices must be re-read)."""
        self.version += 1

    def mark_edited(self, statistics: dict[int, SegmentStats] | None = None) -> None:
        """Record an edit now (and the statistics of the edited label map when known)."""
        self.edited = now_iso()
        self.version += 1
        if statistics is not None:
            self.statistics = dict(statistics)

    def component_rows(self) -> list[ComponentRow]:
        """One row per listed component of every segment, in label then size order."""
        rows = []
        for label in sorted(self.statistics):
            stats = self.statistics[label]
            for component in stats.components:
                rows.append(ComponentRow(label, stats.name, component))
        return rows


def finding_label(result: AIResult) -> int | None:
    """A segmentation's finding label: its highest label that has voxels (cards list anatomy
    first and findings last, e.g. lungs then nodules)."""
    found = [label for label, s in result.statistics.items() if s.components]
    return max(found) if found else None


def heatmap_peak(result: AIResult) -> np.ndarray | None:
    """LPS point of a result's heatmap maximum, None without a heatmap."""
    heatmap = result.heatmap
    if heatmap is None:
        return None
    s, r, c = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    lps: np.ndarray = (result.prediction.affine @ np.array([c, r, s, 1.0]))[:3]
    return lps


def positive_classes(result: AIResult) -> list[str]:
    """A classification's decided classes other than the reference class (the card's first)."""
    classes = list(result.prediction.classes)
    reference = classes[0] if len(classes) > 1 else None
    return [c for c in result.prediction.decision if c != reference]


@dataclass(frozen=True)
class ComponentRow:
    """A row of the findings table: one connected component of a segment."""

    label: int
    segment: str
    component: ComponentStats

    @property
    def name(self) -> str:
        """E.g. ``"nodule 2"``."""
        return f"{self.segment} {self.component.index}"


def _short_time(iso: str) -> str:
    """``2026-11-21T10:03:44+00:00`` -> ``2026-11-21 10:03 UTC``."""
    if len(iso) >= 16 and iso[10] == "T":
        return f"{iso[:10]} {iso[11:16]} UTC"
    return iso


Listener = Callable[[str], None]


class FindingsModel:
    """The AI results of every series, one per ``(series_uid, model id, model version)``.

    Observers registered with :meth:`subscribe` are called with the series UID whose results
    changed (added, replaced, edited or removed).
    """

    def __init__(self) -> None:
        self._results: dict[ResultKey, AIResult] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(series_uid)`` after every change."""
        self._listeners.append(listener)

    def notify(self, series_uid: str) -> None:
        """Tell the observers that the results of `series_uid` changed (after an edit)."""
        for listener in list(self._listeners):
            listener(series_uid)

    def add(self, result: AIResult) -> AIResult:
        """Add `result`, replacing an earlier one of the same key; returns it."""
        self._results[result.key] = result
        self.notify(result.key[0])
        return result

    def remove(self, key: ResultKey) -> None:
        """Forget a result (no error when absent)."""
        if self._results.pop(key, None) is not None:
            self.notify(key[0])

    def get(self, key: ResultKey) -> AIResult | None:
        """The result of `key`, or None."""
        return self._results.get(key)

    def for_series(self, series_uid: str) -> list[AIResult]:
        """The results of a series, newest first."""
        found = [r for k, r in self._results.items() if k[0] == series_uid]
        return sorted(found, key=lambda r: r.prediction.created, reverse=True)

    def __len__(self) -> int:
        return len(self._results)


@dataclass(frozen=True)
class OverlayStyle:
    """How AI results are drawn over the images (shared by every viewport).

    Attributes
    ----------
    visible : bool
        False hides every overlay (the O key), to compare with the bare image.
    label_opacity : float
        Opacity of the label map, 0-1.
    outline : bool
        Draw only the outline of each label instead of filling it.
    hidden_labels : frozenset of int
        Labels not drawn.
    heatmap_opacity : float
        Opacity of the heatmap, 0-1.
    heatmap_threshold : float
        Heatmap values below this (0-1) are not drawn.
    colormap : str
        Heatmap colormap name (``"inferno"``, ``"turbo"``, ``"viridis"``).
    """

    visible: bool = True
    label_opacity: float = 0.5
    outline: bool = False
    hidden_labels: frozenset[int] = frozenset()
    heatmap_opacity: float = 0.6
    heatmap_threshold: float = 0.2
    colormap: str = "inferno"

    def toggled(self) -> OverlayStyle:
        """The style with overlays shown/hidden."""
        return replace(self, visible=not self.visible)

    def with_label(self, label: int, shown: bool) -> OverlayStyle:
        """The style with `label` shown or hidden."""
        hidden = set(self.hidden_labels)
        (hidden.discard if shown else hidden.add)(label)
        return replace(self, hidden_labels=frozenset(hidden))
