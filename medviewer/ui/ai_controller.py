"""Wires AI runs, results and their display: the panel, the queue, the findings, the viewports.

The controller owns the :class:`~medviewer.core.findings.FindingsModel` of the window, the
:class:`~medviewer.ui.ai_jobs.AIJobQueue` and the :class:`~medviewer.ui.ai_panel.AIPanel`.
It follows the active viewport's series, reads a series' saved results the first time it is
shown, turns finished runs into results (saved in the background), draws the chosen result
over every viewport of its series, and re-measures segments after each edit off the GUI thread.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from medviewer.ai.registry import ModelRegistry
from medviewer.core.findings import AIResult, ComponentRow, FindingsModel, OverlayStyle
from medviewer.core.viewstate import array_slice_centre
from medviewer.core.volume import Volume
from medviewer.io.results_store import ResultStore
from medviewer.ui import workers
from medviewer.ui.ai_jobs import AIJob, AIJobQueue
from medviewer.ui.ai_panel import AIPanel
from medviewer.ui.slice_view import SliceView
from medviewer.ui.viewer_grid import ViewerGrid

_UNIQUE = Qt.ConnectionType.UniqueConnection
WARM_UP_DELAY_MS = 500


class AIController(QObject):
    """The AI side of a main window.

    Signals
    -------
    overlaysToggled(bool)
        Overlays were shown (True) or hidden.
    resultSaved(object)
        A result (AIResult) was written to the result store.
    editMeasured(object)
        The statistics of an edited result (AIResult) are up to date.
    """

    overlaysToggled = Signal(bool)
    resultSaved = Signal(object)
    editMeasured = Signal(object)

    def __init__(
        self,
        grid: ViewerGrid,
        registry: ModelRegistry,
        results: ResultStore,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.grid = grid
        self.results = results
        self.findings = FindingsModel()
        self.jobs = AIJobQueue(self, registry=registry)
        self.style = OverlayStyle()
        self.panel = AIPanel(registry, self.jobs, self.findings)
        self.panel.set_style(self.style)
        self._read: set[str] = set()
        self._watched: SliceView | None = None
        self._devices_asked = False
        self._warm_up: workers.Job | None = None
        self._dirty: dict[tuple[str, str, str], set[int]] = {}  # labels edited, not yet measured
        self._measuring: dict[tuple[str, str, str], int] = {}  # newest measurement per result
        self._saving: set[tuple[str, str, str]] = set()  # a save is being written
        self._resave: set[tuple[str, str, str]] = set()  # changed again while it was
        self._deleted: set[tuple[str, str, str]] = set()
        self._connect()
        # Import torch and MONAI in a worker once the window is up (see ai.runner.warm_up).
        QTimer.singleShot(WARM_UP_DELAY_MS, self, self._ask_devices)

    def _connect(self) -> None:
        self.jobs.jobFinished.connect(self._job_finished)
        panel = self.panel
        panel.resultShown.connect(self._show_result)
        panel.styleChanged.connect(self.set_style)
        panel.componentActivated.connect(self.focus_component)
        panel.sliceClicked.connect(self.go_to_slice)
        panel.brushChanged.connect(self.grid.set_brush)
        panel.undoRequested.connect(self.undo)
        panel.redoRequested.connect(self.redo)
        panel.fillRequested.connect(self.fill_between_slices)
        panel.deleteRequested.connect(self.delete_result)
        self.grid.activeChanged.connect(self._watch)
        self.grid.labelsEdited.connect(self._labels_edited)
        self._watch(self.grid.active)

    # -- following the active series ----------------------------------------------------

    def _watch(self, view: SliceView | None) -> None:
        if self._watched is not None:
            self._watched.stateChanged.disconnect(self._view_changed)
        self._watched = view
        if view is not None:
            view.stateChanged.connect(self._view_changed)
        self._view_changed()

    def _view_changed(self) -> None:
        view = self._watched
        series = view.series if view is not None else None
        volume = series.volume if series is not None and not series.error else None
        if volume is not None and not series.complete:
            series.loadFinished.connect(self._view_changed, type=_UNIQUE)
            volume = None  # models run on whole series only
        if volume is not self.panel.volume:
            self.panel.set_series(volume)
            if volume is not None:
                self._read_saved(volume)
                self._ask_devices()
        if volume is not None and view is not None and view.plane_slice is not None:
            self._follow_slice(view)

    def _follow_slice(self, view: SliceView) -> None:
        if view.state is not None and view.state.plane == "axial":
            self.panel.set_current_image(view.state.index + 1)

    def _read_saved(self, volume: Volume) -> None:
        uid = volume.metadata.series_uid
        if not uid or uid in self._read:
            return
        self._read.add(uid)
        workers.start(
            lambda cancel: _with_heatmaps(self.results.load_series(uid)),
            name="read AI results",
            returned=self._saved_read,
        )

    def _saved_read(self, saved: list[AIResult]) -> None:
        for result in saved:
            if self.findings.get(result.key) is None:
                self.findings.add(result)

    def _ask_devices(self) -> None:
        if self._devices_asked:
            return
        self._devices_asked = True
        from medviewer.ai.runner import warm_up

        self._warm_up = workers.start(
            lambda cancel: warm_up(),
            name="warm up the AI engine",
            returned=self._warmed_up,
            errored=lambda exc: self.panel.show_message(f"The AI engine did not load: {exc}"),
        )

    def _warmed_up(self, devices: Any) -> None:
        """Show the devices; take what importing torch and MONAI allocated out of the garbage
        collector's scans, as start-up's own heap is (an unfrozen torch made later full
        collections stall the event loop ~90 ms while a PACS series was read: measured)."""
        import gc

        gc.freeze()
        self.panel.set_devices(devices)

    # -- results -------------------------------------------------------------------------

    def _job_finished(self, _job: AIJob, result: AIResult) -> None:
        self.add_result(result)
        self.save(result)

    def add_result(self, result: AIResult) -> None:
        """Show `result` (e.g. a DICOM SEG read back) as the newest result of its series."""
        self._deleted.discard(result.key)
        self.panel.prefer(result.key)
        self.findings.add(result)

    def save(self, result: AIResult) -> None:
        """Write `result` to the result store in the background (a copy: edits may go on).

        One save per result at a time: a save asked for while one runs is made when it ends,
        from the result as it is then, so an older copy never lands after a newer one.
        """
        key = result.key
        if key in self._deleted:
            return
        if key in self._saving:
            self._resave.add(key)
            return
        self._saving.add(key)
        copy = result.snapshot()
        workers.start(
            lambda cancel: self.results.save(copy),
            name="save AI result",
            returned=lambda _path: self.resultSaved.emit(result),
            errored=lambda exc: self.panel.show_message(f"Could not save the result: {exc}"),
            finished=lambda: self._saved(result),
        )

    def _saved(self, result: AIResult) -> None:
        key = result.key
        self._saving.discard(key)
        if key in self._deleted:
            self.results.delete(key)  # deleted while this save was writing
        elif key in self._resave:
            self._resave.discard(key)
            self.save(self.findings.get(key) or result)

    def delete_result(self, result: AIResult) -> None:
        """Forget a result here and on disk (a save or measurement under way is dropped)."""
        key = result.key
        self._deleted.add(key)
        for pending in (self._dirty, self._measuring):
            pending.pop(key, None)
        self._resave.discard(key)
        self.findings.remove(key)
        self.results.delete(key)

    def flush(self) -> None:
        """Write what is not saved yet, now (the window is closing; no worker may run).

        Edits whose statistics were still being measured are measured here first.
        """
        from medviewer.ai.statistics import segment_statistics

        pending = (set(self._dirty) | self._resave | self._saving) - self._deleted
        for key in pending:
            result = self.findings.get(key)
            if result is None:
                continue
            if key in self._dirty and result.label_map is not None:
                names = _names(result, self._dirty[key])
                values = self._values_for(result)
                affine = result.prediction.affine
                stats = segment_statistics(result.label_map, affine, names, values=values)
                result.mark_edited({**result.statistics, **stats})
            self.results.save(result.snapshot())
        self._dirty.clear()
        self._resave.clear()
        self._saving.clear()

    def _show_result(self, result: AIResult | None) -> None:
        volume = self.panel.volume
        if volume is None:
            return
        for slot, series in self.grid.slots.items():
            if series is not None and series.volume is volume:
                self.grid.set_overlay(slot, result)

    def set_style(self, style: OverlayStyle) -> None:
        """Draw every overlay with `style`."""
        changed = style.visible != self.style.visible
        self.style = style
        self.grid.set_overlay_style(style)
        if changed:
            self.overlaysToggled.emit(style.visible)

    def set_overlays_visible(self, visible: bool) -> None:
        """Show or hide every overlay (the O key)."""
        if visible != self.style.visible:
            self.set_style(replace(self.style, visible=visible))
            self.panel.set_style(self.style)

    # -- navigation ----------------------------------------------------------------------

    def focus_component(self, row: ComponentRow) -> None:
        """Move every view to a component's centre and zoom to it."""
        c = row.component
        self.grid.focus_on(np.asarray(c.centroid_lps, float), max(c.longest_diameter_mm, 1.0))

    def go_to_slice(self, index: int) -> None:
        """Show slice `index` of the shown result's slice axis in every view of its series."""
        volume, result = self.panel.volume, self.panel.current_result()
        if volume is None:
            return
        axis = (result.prediction.slice_axis or 0) if result is not None else 0
        point = array_slice_centre(volume, index, axis)
        for view in self.grid.views:
            if view.volume is volume:
                view.set_crosshair(point, move=True)

    # -- edits ---------------------------------------------------------------------------

    def labels_changed(self, result: AIResult, changed: set[int] | None = None,
                       region: tuple[slice, slice, slice] | None = None) -> None:
        """A label map changed outside the brush (click to segment): redraw every view,
        re-measure and save, as after a stroke. With `changed` (labels) and `region` (the
        box that holds all their voxels) only those labels are measured, on that box: a
        copy and a pass over a whole CT's label map are tens of ms each."""
        self.grid.refresh_overlays()
        self._labels_edited(result, changed, region)

    def fill_between_slices(self, method: str = "distance") -> workers.Job | None:
        """Complete the edit panel's label of the shown result on the slices between those
        it is drawn on, across the active view's plane (in a worker); one undo step, onto
        background voxels only."""
        from medviewer.ai.slice_fill import fill_between_slices

        result, label = self.panel.current_result(), self.panel.edit_controls.label()
        view = self.grid.active
        volume = getattr(getattr(view, "series", None), "volume", None)
        labels = None if result is None else result.label_map
        if labels is None or not label or volume is None or labels.shape != volume.shape \
                or view.plane_slice is None:
            self.panel.show_message("Fill between slices: show a segmentation of this series "
                                    "and choose its label")
            return None
        axis = slicing_axis(volume.affine, view.plane_slice.affine[:3, 2])
        spacing = tuple(float(v) for v in volume.spacing[::-1])

        def task(cancel: Any) -> np.ndarray:
            mask = labels == label
            return np.flatnonzero(fill_between_slices(mask, axis, spacing, method) & ~mask)

        return workers.start(task, name="fill between slices",
                             returned=lambda added: self._filled(result, label, added),
                             errored=lambda exc: self.panel.show_message(
                                 f"Fill between slices: {exc}"))

    def _filled(self, result: AIResult, label: int, added: np.ndarray) -> None:
        labels = result.label_map
        if labels is None or result.key in self._deleted:
            return
        added = added[labels.reshape(-1)[added] == 0]  # never over another label
        result.history.dab(labels, added, label, erase=False)
        if not result.history.end_stroke(labels):
            self.panel.show_message("Fill between slices: nothing to fill (draw the label on "
                                    "two or more slices of this plane)")
            return
        result.touch()
        self.grid.refresh_overlays()
        self._labels_edited(result)
        self.panel.show_message(f"Filled {added.size} voxels between slices")

    def undo(self) -> None:
        """Undo the last brush or eraser stroke of the shown result."""
        self._history_step(undo=True)

    def redo(self) -> None:
        """Redo the last undone stroke."""
        self._history_step(undo=False)

    def _history_step(self, undo: bool) -> None:
        result = self.panel.current_result()
        if result is None or result.label_map is None:
            return
        step = result.history.undo if undo else result.history.redo
        if step(result.label_map):
            result.touch()
            self.grid.refresh_overlays()
            self._labels_edited(result)

    def _labels_edited(self, result: AIResult, changed: set[int] | None = None,
                       region: tuple[slice, slice, slice] | None = None) -> None:
        """Re-measure the labels an edit changed, in the background; then mark and save.

        Labels changed by edits not yet measured accumulate; each measurement covers all of
        them on a snapshot of the label map (of `region` only, when it holds every label
        waiting: see :meth:`labels_changed`), and only the newest one is applied (an older
        one finishing late would show stale figures).
        """
        from medviewer.ai.statistics import segment_statistics

        labels = result.label_map
        if labels is None:
            return
        dirty = self._dirty.setdefault(result.key, set())
        waiting = bool(dirty)
        dirty.update(changed if changed is not None
                     else result.history.changed_labels or result.segments)
        names = _names(result, dirty)
        values, affine = self._values_for(result), result.prediction.affine
        if region is not None and not waiting and changed is not None:
            snapshot = labels[region].copy()
            values = None if values is None else values[region]
            affine = _box_affine(affine, region)
        else:
            snapshot = labels.copy()
        self._measuring[result.key] = ticket = self._measuring.get(result.key, 0) + 1
        result.mark_edited()
        self.panel.update_edit_state(result)
        self.save(result)  # the label map now; the statistics follow when measured
        workers.start(
            lambda cancel: segment_statistics(snapshot, affine, names, values=values),
            name="measure segments",
            returned=lambda stats: self._measured(result, stats, ticket),
            errored=lambda exc: self._not_measured(result, exc),
        )

    def _not_measured(self, result: AIResult, exc: BaseException) -> None:
        self._dirty.pop(result.key, None)
        self.panel.show_message(f"Could not measure the edit: {exc}")

    def measuring(self, series_uid: str) -> bool:
        """True while an edit of a result of this series is being re-measured."""
        return any(key[0] == series_uid for key in self._dirty)

    def _values_for(self, result: AIResult) -> np.ndarray | None:
        """The image values under a result's labels (for mean HU), when its series is open."""
        volume = self.panel.volume
        if volume is None or volume.is_color or volume.metadata.series_uid != result.key[0]:
            return None
        return volume.array if volume.array.shape == result.prediction.shape else None

    def _measured(self, result: AIResult, statistics: dict, ticket: int) -> None:
        if result.key in self._deleted or self._measuring.get(result.key) != ticket:
            return  # a newer measurement (covering these labels too) is on its way
        self._dirty.pop(result.key, None)
        merged = {**result.statistics, **statistics}
        result.mark_edited({label: merged[label] for label in sorted(merged)
                            if label in result.segments})
        self.findings.notify(result.key[0])
        self.panel.update_edit_state(result)
        self.save(result)
        self.editMeasured.emit(result)

    def shutdown(self) -> None:
        """Cancel every AI job (the window is closing); then call :meth:`flush`."""
        self.jobs.cancel_all()
        # a warm-up whose timer has not fired yet must not start after the window has closed
        self._devices_asked = True
        if self._warm_up is not None:
            # its answer would reach a panel that is about to be deleted
            self._warm_up.cancel()


def _with_heatmaps(results: list[AIResult]) -> list[AIResult]:
    """Quantise the heatmaps of read results (in the worker, not on the GUI thread)."""
    for result in results:
        result.heatmap_u8()
    return results


def slicing_axis(affine: np.ndarray, normal: np.ndarray) -> int:
    """The array axis (0 slice, 1 row, 2 col) of a volume with `affine` that runs closest to
    a plane's `normal` (LPS): the axis a view of that plane steps across."""
    directions = np.asarray(affine, float)[:3, :3]
    directions = directions / np.linalg.norm(directions, axis=0)
    along = np.abs(directions.T @ np.asarray(normal, float))  # col, row, slice
    return {0: 2, 1: 1, 2: 0}[int(np.argmax(along))]


def _box_affine(affine: np.ndarray, region: tuple[slice, slice, slice]) -> np.ndarray:
    """The affine of the box `region` ((slice, row, col) slices) of a grid with `affine`."""
    moved = np.array(affine, dtype=float, copy=True)
    first = np.array([region[2].start, region[1].start, region[0].start], dtype=float)
    moved[:3, 3] = moved[:3, :3] @ first + moved[:3, 3]
    return moved


def _names(result: AIResult, labels: set[int]) -> dict[int, str]:
    """Label -> segment name of the `labels` that are segments of `result`."""
    return {label: result.segments[label].name for label in labels if label in result.segments}
