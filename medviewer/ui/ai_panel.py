"""The AI panel (right dock): models for the open series, runs, results and their findings.

The panel shows and edits what lives elsewhere: models come from the registry, runs from the
:class:`~medviewer.ui.ai_jobs.AIJobQueue`, results from the
:class:`~medviewer.core.findings.FindingsModel`. The main window wires its signals to the
viewports (overlays, jumps, brush) and to saving.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from medviewer.ai.applicability import why_not_applicable
from medviewer.ai.cascade import stages_kept_by
from medviewer.ai.model_card import ModelCard
from medviewer.ai.registry import ModelRegistry
from medviewer.core import formatting as fmt
from medviewer.core.findings import AIResult, ComponentRow, FindingsModel, OverlayStyle
from medviewer.core.viewstate import array_slice_centre, image_numbers_of
from medviewer.core.volume import Volume
from medviewer.ui.ai_jobs import AIJob, AIJobQueue
from medviewer.ui.findings_widgets import (
    ClassProbabilityChart,
    ComponentTable,
    EditControls,
    OverlayControls,
    SliceProbabilityPlot,
)

ERROR_STYLE = "color: #ff8080;"
APPLICABLE_ROLE = Qt.ItemDataRole.UserRole + 1


class ModelCardDialog(QDialog):
    """A model's card: intended use, version, licence, metrics, weights."""

    def __init__(self, card: ModelCard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card: {card.name}")
        self.resize(560, 520)
        self.text = QTextBrowser()
        self.text.setHtml(card_html(card))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)


def card_html(card: ModelCard) -> str:
    """The card as HTML for :class:`ModelCardDialog`."""
    e = html.escape
    rows = [
        ("Id", card.id), ("Version", card.version), ("Task", card.task),
        ("Modalities", ", ".join(card.modalities)), ("Input", f"{card.input.dims}D"),
        ("Licence", card.license), ("Authors", ", ".join(card.authors)),
        ("Weights", f"{card.weights.format}, sha256 {card.weights.sha256[:16]}…"),
    ]  # fmt: skip
    table = "".join(f"<tr><td><b>{e(k)}</b></td><td>{e(v)}</td></tr>" for k, v in rows)
    metrics = e(json.dumps(card.metrics, indent=1)) if card.metrics else "none recorded"
    return (
        f"<h3>{e(card.name)}</h3><p>{e(card.description)}</p>"
        f"<p><b>Intended use.</b> {e(card.intended_use)}</p><table>{table}</table>"
        f"<p><b>Metrics</b></p><pre>{metrics}</pre>"
    )


class JobRow(QFrame):
    """One queued or running job: what, a progress bar with its message, and Cancel."""

    def __init__(self, job: AIJob, queue: AIJobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job = job
        meta = job.volume.metadata
        self.title = QLabel(f"{job.card.name} on {meta.modality} {meta.series_description}".strip())
        self.title.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: queue.cancel(job))
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.addWidget(self.title)
        layout.addLayout(row)
        self.update_from_job()

    def update_from_job(self) -> None:
        """Show the job's state, progress and message."""
        self.bar.setValue(round(self.job.fraction * 1000))
        self.bar.setFormat(f"{self.job.message} %p%" if self.job.state == "running" else
                           self.job.message)  # fmt: skip


class AIPanel(QWidget):
    """Models, runs, results and findings of the series in the active viewport.

    Signals
    -------
    resultShown(object)
        The result to draw over the series (AIResult), or None.
    styleChanged(object)
        The overlay style (OverlayStyle) changed.
    componentActivated(object)
        A findings-table row (ComponentRow) was clicked.
    sliceClicked(int)
        A slice (array index along the result's slice axis) was clicked in the plot.
    toolChanged(str), brushChanged(float, int), undoRequested(), redoRequested()
        From the correction tools.
    deleteRequested(object)
        The user asked to delete a result (AIResult).
    rerunRequested(object, str)
        Run a classifier again for another heatmap class: (ModelCard, class name).
    """

    resultShown = Signal(object)
    styleChanged = Signal(object)
    componentActivated = Signal(object)
    sliceClicked = Signal(int)
    toolChanged = Signal(str)
    brushChanged = Signal(float, int)
    undoRequested = Signal()
    redoRequested = Signal()
    fillRequested = Signal(str)
    deleteRequested = Signal(object)

    def __init__(
        self,
        registry: ModelRegistry,
        jobs: AIJobQueue,
        findings: FindingsModel,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.registry = registry
        self.jobs = jobs
        self.findings = findings
        self.volume: Volume | None = None
        self.cards: list[ModelCard] = []
        self._shown: dict[str, tuple[str, str, str]] = {}  # series uid -> key shown
        self._job_rows: dict[int, JobRow] = {}
        self._revealed: AIResult | None = None  # the last result whose findings were scrolled to
        self.scrolled_to: AIResult | None = None  # set once that scroll has happened
        self._build()
        jobs.jobAdded.connect(self._job_added)
        jobs.jobChanged.connect(self._job_changed)
        jobs.jobEnded.connect(self._job_ended)
        findings.subscribe(self._findings_changed)
        self.reload_models()
        self.set_series(None)

    # -- construction --------------------------------------------------------------------

    def _build(self) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        for box in (self._models_box(), self._run_box(), self._results_box(),
                    self._findings_box(), self._overlay_box(), self._edit_box()):  # fmt: skip
            layout.addWidget(box)
        layout.addStretch(1)
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def _models_box(self) -> QGroupBox:
        box = QGroupBox("Models for this series")
        self.series_label = QLabel("")
        self.series_label.setWordWrap(True)
        self.model_list = QListWidget()
        self.model_list.setMaximumHeight(110)
        self.model_list.itemDoubleClicked.connect(lambda _i: self.show_card())
        self.card_button = QPushButton("Model card…")
        self.card_button.clicked.connect(self.show_card)
        layout = QVBoxLayout(box)
        layout.addWidget(self.series_label)
        layout.addWidget(self.model_list)
        layout.addWidget(self.card_button, 0, Qt.AlignmentFlag.AlignRight)
        return box

    def _run_box(self) -> QGroupBox:
        box = QGroupBox("Run")
        self.classify_button = QPushButton("Classify")
        self.segment_button = QPushButton("Segment")
        self.run_all_button = QPushButton("Run all applicable")
        self.classify_button.clicked.connect(lambda: self.run_task("classification"))
        self.segment_button.clicked.connect(lambda: self.run_task("segmentation"))
        self.run_all_button.clicked.connect(lambda: self.run_task(None))
        buttons = QHBoxLayout()
        for button in (self.classify_button, self.segment_button, self.run_all_button):
            buttons.addWidget(button)
        self.device_combo = QComboBox()
        self.set_devices([("auto", "Auto"), ("cpu", "CPU")])
        device_row = QHBoxLayout()
        device_row.addWidget(QLabel("Device"))
        device_row.addWidget(self.device_combo, 1)
        self.jobs_layout = QVBoxLayout()
        self.idle_label = QLabel("Idle")
        self.jobs_layout.addWidget(self.idle_label)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet(ERROR_STYLE)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(box)
        layout.addLayout(buttons)
        layout.addLayout(device_row)
        layout.addLayout(self.jobs_layout)
        layout.addWidget(self.message_label)
        return box

    def _results_box(self) -> QGroupBox:
        box = QGroupBox("Results")
        self.result_combo = QComboBox()
        self.result_combo.currentIndexChanged.connect(self._result_chosen)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._delete_result)
        row = QHBoxLayout()
        row.addWidget(self.result_combo, 1)
        row.addWidget(self.delete_button)
        self.provenance = QLabel("")
        self.provenance.setWordWrap(True)
        self.provenance.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(box)
        layout.addLayout(row)
        layout.addWidget(self.provenance)
        return box

    def _findings_box(self) -> QGroupBox:
        self.findings_box = QGroupBox("Findings")
        self.chart = ClassProbabilityChart()
        self.chart.setMinimumHeight(150)
        self.slice_plot = SliceProbabilityPlot()
        self.slice_plot.setMinimumHeight(130)
        self.slice_plot.sliceClicked.connect(self.sliceClicked)
        self.table = ComponentTable()
        self.table.setMinimumHeight(160)
        self.table.componentActivated.connect(self.componentActivated)
        layout = QVBoxLayout(self.findings_box)
        for widget in (self.chart, self.slice_plot, self.table):
            layout.addWidget(widget)
        return self.findings_box

    def _overlay_box(self) -> QGroupBox:
        self.overlay_box = QGroupBox("Overlay")
        self.overlay_controls = OverlayControls()
        self.overlay_controls.styleChanged.connect(self.styleChanged)
        self.overlay_controls.targetClassChanged.connect(self._rerun_for_class)
        QVBoxLayout(self.overlay_box).addWidget(self.overlay_controls)
        return self.overlay_box

    def _edit_box(self) -> QGroupBox:
        self.edit_box = QGroupBox("Correct the label map")
        self.edit_controls = EditControls()
        self.edit_controls.toolChanged.connect(self.toolChanged)
        self.edit_controls.brushChanged.connect(self.brushChanged)
        self.edit_controls.undoRequested.connect(self.undoRequested)
        self.edit_controls.redoRequested.connect(self.redoRequested)
        self.edit_controls.fillRequested.connect(self.fillRequested)
        QVBoxLayout(self.edit_box).addWidget(self.edit_controls)
        return self.edit_box

    # -- models --------------------------------------------------------------------------

    def reload_models(self) -> None:
        """Read the registry again (after a model was added)."""
        self.cards = [entry.card for entry in self.registry.entries()]
        self._fill_models()

    def set_devices(self, devices: Sequence[tuple[str, str]]) -> None:
        """The device choices: ``(name, description)``; the choice made so far is kept."""
        chosen = self.device_combo.currentData()
        self.device_combo.clear()
        for name, text in devices:
            self.device_combo.addItem(text, name)
        index = self.device_combo.findData(chosen)
        self.device_combo.setCurrentIndex(max(index, 0))

    @property
    def device(self) -> str:
        """The chosen device name (``auto``, ``cpu``, ``cuda:0``...)."""
        return self.device_combo.currentData() or "auto"

    def applicable(self, task: str | None = None) -> list[ModelCard]:
        """The models that can run on the open series (of `task` when given)."""
        if self.volume is None:
            return []
        return [
            card for card in self.cards
            if not why_not_applicable(card, self.volume) and task in (None, card.task)
        ]  # fmt: skip

    def _fill_models(self) -> None:
        self.model_list.clear()
        for card in self.cards:
            reason = why_not_applicable(card, self.volume) if self.volume is not None else ""
            text = f"{card.name}  {card.version}"
            item = QListWidgetItem(text if not reason else f"{text}  ({reason})")
            item.setData(Qt.ItemDataRole.UserRole, card.id)
            item.setToolTip(reason or card.description)
            applicable = not reason and self.volume is not None
            item.setData(APPLICABLE_ROLE, applicable)
            if not applicable:  # greyed, but still selectable: its card stays a click away
                item.setForeground(self.palette().color(QPalette.ColorGroup.Disabled,
                                                        QPalette.ColorRole.Text))  # fmt: skip
            self.model_list.addItem(item)
        self._sync_buttons()

    def selected_card(self) -> ModelCard | None:
        """The card selected in the list (or the first one)."""
        item = self.model_list.currentItem() or self.model_list.item(0)
        if item is None:
            return None
        card_id = item.data(Qt.ItemDataRole.UserRole)
        return next((c for c in self.cards if c.id == card_id), None)

    def show_card(self) -> None:
        """Open the selected model's card."""
        card = self.selected_card()
        if card is not None:
            ModelCardDialog(card, self).exec()

    def _sync_buttons(self) -> None:
        self.classify_button.setEnabled(bool(self.applicable("classification")))
        self.segment_button.setEnabled(bool(self.applicable("segmentation")))
        self.run_all_button.setEnabled(bool(self.applicable()))

    # -- runs ----------------------------------------------------------------------------

    def run_task(self, task: str | None) -> list[AIJob]:
        """Queue the applicable models of `task` (every applicable model for None).

        A model that is only a stage of another queued model (a cascade that keeps all its
        labels, :func:`~medviewer.ai.cascade.stages_kept_by`) is left out: the cascade's
        result holds its labels. It can still be run on its own from the model list.

        A run replaces the result of the same model version; when that result was edited
        by the user, :attr:`confirm_replace` is asked first (declined: that model is skipped).
        """
        if self.volume is None:
            return []
        self.message_label.setText("")
        uid = self.volume.metadata.series_uid
        cards = self.applicable(task)
        stages = stages_kept_by(cards)  # a cascade's result holds theirs: not run twice
        cards = [c for c in cards if c.id not in stages]
        edited = [c for c in cards if _edited(self.findings.get((uid, c.id, c.version)))]
        if edited and not self.confirm_replace([c.name for c in edited]):
            cards = [c for c in cards if c not in edited]
        return [self.jobs.submit(c, self.volume, self.device) for c in cards]

    def confirm_replace(self, names: list[str]) -> bool:
        """Ask whether new runs may replace the user's edited results of these models."""
        answer = QMessageBox.question(
            self,
            "Replace edited results?",
            "Running again replaces the edited results of:\n" + "\n".join(names)
            + "\n\nReplace them?",
        )  # fmt: skip
        return answer == QMessageBox.StandardButton.Yes

    def _rerun_for_class(self, name: str) -> None:
        result = self.current_result()
        if result is None or self.volume is None:
            return
        card = next((c for c in self.cards if c.id == result.key[1]), None)
        if card is not None:
            self.jobs.submit(card, self.volume, self.device, target_class=name)

    def _job_added(self, job: AIJob) -> None:
        row = JobRow(job, self.jobs)
        self._job_rows[job.id] = row
        self.jobs_layout.addWidget(row)
        self.idle_label.setVisible(False)

    def _job_changed(self, job: AIJob) -> None:
        row = self._job_rows.get(job.id)
        if row is not None:
            row.update_from_job()

    def _job_ended(self, job: AIJob) -> None:
        row = self._job_rows.pop(job.id, None)
        if row is not None:
            self.jobs_layout.removeWidget(row)
            row.deleteLater()
        self.idle_label.setVisible(not self._job_rows)
        if job.state == "failed":
            self.message_label.setText(f"{job.card.name} failed: {job.error}")
        elif job.state == "cancelled":
            self.message_label.setText(f"{job.card.name}: cancelled, no result kept")

    @property
    def idle(self) -> bool:
        """True when no job is queued or running."""
        return not self._job_rows

    def job_rows(self) -> list[JobRow]:
        """The rows of the queued and running jobs, in the order they were added."""
        return list(self._job_rows.values())

    # -- series and results --------------------------------------------------------------

    def set_series(self, volume: Volume | None) -> None:
        """Show the models and results of `volume` (the active viewport's series)."""
        self.volume = volume
        if volume is None:
            self.series_label.setText("Open a series to run a model on it.")
        else:
            meta = volume.metadata
            shape = "single image" if volume.array.shape[0] == 1 else f"{volume.shape[0]} slices"
            self.series_label.setText(
                f"{meta.modality} {meta.series_description or ''} ({shape})".strip()
            )
        self._fill_models()
        self._fill_results()

    def current_result(self) -> AIResult | None:
        """The result shown for the open series."""
        key = self.result_combo.currentData()
        return None if key is None else self.findings.get(tuple(key))

    def show_result(self, result: AIResult | None) -> None:
        """Select `result` in the results list (and show it)."""
        if result is None:
            self.result_combo.setCurrentIndex(-1)
            return
        for index in range(self.result_combo.count()):
            if tuple(self.result_combo.itemData(index)) == result.key:
                self.result_combo.setCurrentIndex(index)

    def prefer(self, key: tuple[str, str, str]) -> None:
        """Show the result of `key` for its series once it is listed (a new run's result)."""
        self._shown[key[0]] = key

    def show_message(self, text: str) -> None:
        """Show an error or notice in the panel."""
        self.message_label.setText(text)

    def _findings_changed(self, series_uid: str) -> None:
        if self.volume is not None and series_uid == self.volume.metadata.series_uid:
            self._fill_results()

    def _fill_results(self) -> None:
        uid = self.volume.metadata.series_uid if self.volume is not None else ""
        results = self.findings.for_series(uid) if uid else []
        wanted = self._shown.get(uid)
        with signals_blocked(self.result_combo):
            self.result_combo.clear()
            for result in results:
                self.result_combo.addItem(result.title(), list(result.key))
            keys = [r.key for r in results]
            self.result_combo.setCurrentIndex(keys.index(wanted) if wanted in keys else 0)
        self._result_chosen()

    def _result_chosen(self, _index: int = 0) -> None:
        result = self.current_result()
        if result is not None:
            self._shown[result.key[0]] = result.key
        self.delete_button.setEnabled(result is not None)
        self._show_findings(result)
        self.resultShown.emit(result)
        if result is not None and result is not self._revealed:
            self._revealed = result  # a new result, not one re-listed after an edit
            QTimer.singleShot(0, self, lambda: self._reveal_findings(result))

    def _reveal_findings(self, result: AIResult) -> None:
        """Scroll the panel so the findings of the shown result are in view."""
        self.scroll.ensureWidgetVisible(self.findings_box, 0, 0)
        self.scrolled_to = result

    def _delete_result(self) -> None:
        result = self.current_result()
        if result is not None:
            self.deleteRequested.emit(result)

    # -- findings ------------------------------------------------------------------------

    def _show_findings(self, result: AIResult | None) -> None:
        self.provenance.setText(provenance_text(result) if result is not None else "")
        is_cls = result is not None and result.task == "classification"
        is_seg = result is not None and result.label_map is not None
        self.findings_box.setVisible(result is not None)
        self.chart.setVisible(is_cls)
        self.table.setVisible(is_seg)
        slices = result.prediction.slice_probabilities if is_cls else None
        self.slice_plot.setVisible(slices is not None and len(slices) > 1)
        if is_cls:
            self._show_classes(result)
        if is_seg:
            colors = {label: s.color for label, s in result.segments.items()}
            self.table.set_rows(result.component_rows(), colors=colors,
                                image_number=self._component_image_number)  # fmt: skip
        self.overlay_box.setVisible(is_seg or (result is not None and result.heatmap is not None))
        self.overlay_controls.set_segments(result.segments if is_seg else {})
        self._show_heatmap_controls(result)
        self.edit_box.setVisible(is_seg)
        if is_seg:
            self.edit_controls.set_segments(result.segments)
            self.update_edit_state(result)
            # The brush must paint a label of the shown result, not one of the previous result.
            self.brushChanged.emit(self.edit_controls.radius(), self.edit_controls.label())

    def _show_classes(self, result: AIResult) -> None:
        p = result.prediction
        self.chart.set_probabilities(p.classes, p.threshold, p.decision)
        slices = p.slice_probabilities
        if slices is not None and len(slices) > 1:
            names = list(p.classes)
            column = names.index(p.heatmap_class) if p.heatmap_class in names else len(names) - 1
            numbers = self._slice_image_numbers(len(slices), p.slice_axis or 0)
            self.slice_plot.set_curve(slices[:, column], names[column], p.threshold, numbers)

    def _slice_image_numbers(self, count: int, axis: int) -> np.ndarray | None:
        """The axial Im number of each classified slice (None: index + 1)."""
        volume = self.volume
        if volume is None or volume.array.shape[axis] != count:
            return None
        centres = [array_slice_centre(volume, k, axis) for k in range(count)]
        return image_numbers_of(volume, centres)

    def _component_image_number(self, row: ComponentRow) -> int | None:
        if self.volume is None:
            return row.component.centroid_slice + 1
        number = int(image_numbers_of(self.volume, row.component.centroid_lps)[0])
        return number or None

    def _show_heatmap_controls(self, result: AIResult | None) -> None:
        if result is None or result.heatmap is None:
            self.overlay_controls.set_heatmap(None, None)
            return
        self.overlay_controls.set_heatmap(list(result.prediction.classes),
                                          result.prediction.heatmap_class)  # fmt: skip

    def update_edit_state(self, result: AIResult) -> None:
        """Refresh undo/redo, the edited mark and the table after an edit."""
        self.edit_controls.set_undo_state(result.history.can_undo, result.history.can_redo)
        self.edit_controls.set_edited(result.edited_label())

    def set_style(self, style: OverlayStyle) -> None:
        """Show `style` in the overlay controls (without emitting)."""
        self.overlay_controls.set_style(style)

    def set_current_image(self, number: int) -> None:
        """Move the slice plot's marker to the axial view's image ``Im number``."""
        self.slice_plot.set_marker(number)


def _edited(result: AIResult | None) -> bool:
    return result is not None and bool(result.edited)


def provenance_text(result: AIResult) -> str:
    """Which model made a result, where, when, how fast; edits and warnings."""
    p = result.prediction
    lines = [
        f"{p.model.name} {p.model.version} (sha256 {fmt.sha_prefix(p.model.sha256)})",
        f"{p.device}, {fmt.seconds(p.seconds)}, {fmt.iso_time(p.created)}",
    ]
    if p.classes:
        decision = ", ".join(p.decision) or "none"
        lines.append(f"Positive at ≥ {fmt.threshold(p.threshold)}: {decision}")
    if result.edited:
        lines.append(f"Edited by the user {fmt.iso_time(result.edited)}")
    lines.extend(f"Warning: {w}" for w in p.warnings)
    return "\n".join(lines)
