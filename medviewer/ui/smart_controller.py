"""Click to segment in the viewer: runs the Smart tool's prompts (an
:class:`~medviewer.ai.interactive.InteractiveSession` per series, in a worker) and shows each
object as a label of one result per series, "Click to segment", drawn on every plane and
listed, measured, saved and exported like a model's segmentation.

A newer prompt cancels the older one still running (its mask is never shown). Enter accepts
the object (the next prompt starts another); Escape cancels it (its label goes); Undo and Redo
(Ctrl+Z, Ctrl+Shift+Z) step through its prompts while it is being segmented. While an object
is refined its label is drawn on every view; it is measured (findings table) and saved when it
is accepted or cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from medviewer.ai import regions
from medviewer.ai.interactive import InteractiveSession, Prompt
from medviewer.core.findings import AIResult, ModelInfo, Prediction, Segment, now_iso
from medviewer.ui import workers

MODEL = ModelInfo(
    id="interactive-classical", name="Click to segment (classical)", version="1", sha256="",
    task="segmentation",
    intended_use="Objects segmented interactively from the user's clicks, boxes and scribbles "
                 "(region growing; no trained weights). Reviewed by the user who made them.",
)
COLOURS = ("#ff5050", "#50c8ff", "#ffd24a", "#8cff6e", "#d07cff", "#ff9a3c", "#4affd2")


@dataclass
class _SeriesObjects:
    """The Smart objects of one series: its session, its result and the object under way."""

    session: InteractiveSession
    result: AIResult
    label: int = 0  # the object being segmented (0: none)
    job: workers.Job | None = None
    done: list[int] = field(default_factory=list)
    boxes: dict[int, Box] = field(default_factory=dict)  # where each object's label lies


class SmartController(QObject):
    """Connects the viewports' Smart tool to the engine and the AI results.

    Parameters
    ----------
    grid : ViewerGrid
        Whose ``smartPrompt`` and ``smartCommand`` it follows.
    ai : AIController
        Where the result is shown, measured and saved.
    engine : callable
        Makes the engine for a new series from its volume (default: ``auto``, the promptable
        model installed for the series' modality with the classical engine for what it
        cannot hold, else the classical engine: :func:`~medviewer.ai.interactive_engines.
        engine_named`).

    Signals
    -------
    statusMessage(str, int)
        Text for the status bar and how long to show it (ms).
    objectChanged(object)
        An object's mask changed (its :class:`~medviewer.core.findings.AIResult`).
    """

    statusMessage = Signal(str, int)
    objectChanged = Signal(object)

    def __init__(self, grid: Any, ai: Any, engine: Callable[[Any], Any] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.grid, self.ai = grid, ai
        self._engine = engine or _auto
        self._series: dict[int, _SeriesObjects] = {}
        grid.smartPrompt.connect(self.prompt)
        grid.smartCommand.connect(self.command)

    # -- prompts -------------------------------------------------------------------------

    def prompt(self, view: Any, prompt: Prompt) -> workers.Job | None:
        """Refine the object under way on `view`'s series with `prompt` (a worker); start an
        object when none is under way."""
        objects = self._objects_of(view)
        if objects is None:
            return None
        if objects.label == 0:
            objects.label = self._next_label(objects.result)
        if objects.job is not None and not objects.job.done:
            objects.job.cancel()  # superseded: its mask is never shown
        name, session = _name(objects.label), objects.session

        def task(cancel: Callable[[], bool]) -> tuple[np.ndarray, Box | None, str]:
            mask = session.add_prompt(name, prompt, cancel)
            box = bounding_box(mask)  # here, not on the GUI thread
            voxels = 0 if box is None else int(np.count_nonzero(mask[box]))
            ml = voxels * float(np.prod(session.volume.spacing)) / 1000.0
            engine = getattr(session.engine, "last", "") or session.engine.name
            return mask, box, f"{name}: {ml:.2f} mL ({engine}); Enter accepts, Esc cancels"

        objects.job = workers.start(
            task, name="click to segment",
            returned=lambda found, o=objects, k=objects.label: self._shown(o, k, *found),
            errored=lambda exc: self.statusMessage.emit(f"Click to segment: {exc}", 8000))
        return objects.job

    def command(self, view: Any, command: str) -> None:
        """``"accept"`` or ``"cancel"`` the object under way on `view`'s series."""
        objects = self._series.get(_volume_key(view))
        if objects is None or objects.label == 0:
            return
        if command == "accept":
            self._accept(objects)
        elif command == "cancel":
            self._cancel(objects)

    def accept_all(self) -> None:
        """Accept every object under way (before an export: it is measured and saved, and
        the export waits for the measurement)."""
        for objects in self._series.values():
            if objects.label and _name(objects.label) in objects.session.objects:
                self._accept(objects)

    def undo(self) -> bool:
        """Take back the last prompt of an object under way; False when there is none."""
        return self._step(undo=True)

    def redo(self) -> bool:
        """Put back a prompt taken back; False when there is none."""
        return self._step(undo=False)

    def busy(self) -> bool:
        """Whether a prompt is being run."""
        return any(o.job is not None and not o.job.done for o in self._series.values())

    def objects_of(self, view: Any) -> InteractiveSession | None:
        """The session of `view`'s series (None before its first prompt)."""
        objects = self._series.get(_volume_key(view))
        return objects.session if objects is not None else None

    # -- helpers -------------------------------------------------------------------------

    def _objects_of(self, view: Any) -> _SeriesObjects | None:
        series = getattr(view, "series", None)
        if series is None or not series.complete:
            self.statusMessage.emit("Click to segment: wait until the series has loaded", 5000)
            return None
        key = id(series.volume)
        if key not in self._series:
            volume = series.volume
            session = InteractiveSession(volume, self._engine(volume))
            self._series[key] = _SeriesObjects(session, self._result_for(volume))
        return self._series[key]

    def _result_for(self, volume: Any) -> AIResult:
        """The series' "Click to segment" result: the one shown already (restored from the
        result store), else a new one, added to the AI results."""
        uid = volume.metadata.series_uid
        existing = self.ai.findings.get((uid, MODEL.id, MODEL.version))
        if existing is not None and existing.label_map is not None \
                and existing.label_map.shape == tuple(volume.shape):
            return existing
        prediction = Prediction(
            model=MODEL, task="segmentation", device="cpu", seconds=0.0, created=now_iso(),
            series_uid=uid, affine=volume.affine, shape=tuple(volume.shape),
            label_map=np.zeros(volume.shape, dtype=np.uint8), segments={})
        result = AIResult.of(prediction)
        self.ai.add_result(result)
        return result

    @staticmethod
    def _next_label(result: AIResult) -> int:
        return max(result.segments, default=0) + 1  # every label drawn has its segment

    def _show(self, objects: _SeriesObjects, label: int, mask: np.ndarray | None,
              box: Box | None = None, *, measure: bool = False) -> None:
        """Write `mask` (within `box`) as `label` where no other object is, and tell the
        views. Only the boxes of the old and the new mask are touched (a whole CT is 70 M
        voxels: a pass over it is tens of ms on the GUI thread). The result is re-measured
        and saved only with `measure` (accept, cancel): copying, measuring and saving the
        whole label map after every prompt stalled the event loop."""
        labels = objects.result.label_map
        assert labels is not None
        if mask is not None and box is None:
            box = bounding_box(mask)
        region = _union(objects.boxes.pop(label, None), box)
        if region is not None:
            part = labels[region]
            part[part == label] = 0
            if mask is not None:
                part[mask[region] & (part == 0)] = label
        if mask is not None and box is not None:
            objects.boxes[label] = box
            objects.result.segments[label] = Segment(
                label, _name(label), COLOURS[(label - 1) % len(COLOURS)])
        else:
            objects.result.segments.pop(label, None)
        objects.result.touch()
        if measure:  # re-measured on the box that held it, and saved
            self.ai.labels_changed(objects.result, {label}, region)
        else:
            self.grid.refresh_overlays()  # while the object is refined: drawn only
        self.objectChanged.emit(objects.result)

    def _shown(self, objects: _SeriesObjects, label: int, mask: np.ndarray, box: Box | None,
               status: str) -> None:
        self._show(objects, label, mask, box)
        self.statusMessage.emit(status, 8000)

    def _accept(self, objects: _SeriesObjects) -> None:
        name = _name(objects.label)
        box = objects.boxes.get(objects.label)
        # measured on its box (the findings table) and saved
        self.ai.labels_changed(objects.result, {objects.label}, box)
        objects.done.append(objects.label)
        labels = objects.result.label_map
        if box is not None and labels is not None:
            voxels = int(np.count_nonzero(labels[box] == objects.label))
            ml = voxels * float(np.prod(objects.session.volume.spacing)) / 1000.0
            self.statusMessage.emit(f"{name} accepted: {ml:.2f} mL (its diameter is in the "
                                    "findings table)", 6000)
        objects.label = 0

    def _cancel(self, objects: _SeriesObjects) -> None:
        if objects.job is not None and not objects.job.done:
            objects.job.cancel()
        objects.session.objects.pop(_name(objects.label), None)
        self._show(objects, objects.label, None, measure=True)
        objects.label = 0

    def _step(self, undo: bool) -> bool:
        for objects in self._series.values():
            obj = objects.session.objects.get(_name(objects.label)) if objects.label else None
            if obj is not None and (obj.undo() if undo else obj.redo()):
                self._show(objects, objects.label, obj.mask)
                return True
        return False


Box = tuple[slice, slice, slice]


def bounding_box(mask: np.ndarray) -> Box | None:
    """The smallest box holding every True voxel of `mask` (None when there is none)."""
    found = regions.bounding_box(mask)
    return None if found is None else found.slices


def _union(a: Box | None, b: Box | None) -> Box | None:
    if a is None or b is None:
        return a or b
    joined = [slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True)]
    return (joined[0], joined[1], joined[2])


def _name(label: int) -> str:
    return f"object {label}"


def _volume_key(view: Any) -> int:
    series = getattr(view, "series", None)
    return id(series.volume) if series is not None else 0


def _auto(volume: Any) -> Any:
    from medviewer.ai.interactive_engines import AUTO, engine_named

    return engine_named(AUTO, modality=volume.metadata.modality)
