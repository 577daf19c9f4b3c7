"""File > Export report: impression, key images, what to include, folder, de-identification.

The dialog renders the finding key images with the viewer's own code (one per event-loop turn,
so the window stays responsive), then runs :func:`medviewer.report.export.run_export` in a
worker. Nothing is written until every file is ready (see :mod:`medviewer.report.files`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medviewer.core import measurements as mm
from medviewer.core.findings import AIResult, OverlayStyle
from medviewer.core.geometry import reslice
from medviewer.core.measurements import Measurement
from medviewer.core.viewstate import plane_index_of
from medviewer.core.volume import Volume
from medviewer.report import export as ex
from medviewer.report.content import KeyImage, MeasurementLine, ReportContent, ReportHeader
from medviewer.report.deidentify import burned_in_text_warning
from medviewer.ui import workers
from medviewer.ui.key_images import (
    FindingView,
    KeyImageRenderer,
    finding_views,
    render_finding,
)
from medviewer.ui.open_series import OpenSeries

#: The export options offered, in the order shown: (kind, label).
KIND_LABELS = (
    ("pdf", "Annotated PDF report"),
    ("csv", "Findings table (CSV)"),
    ("json", "Findings (JSON)"),
    ("seg", "DICOM SEG of each segmentation"),
    ("sr", "DICOM SR measurement report (TID 1500)"),
    ("key_images_dicom", "Key images as DICOM (secondary capture, overlay burned in)"),
    ("pdf_dicom", "PDF report as DICOM (encapsulated PDF)"),
    ("key_images_png", "Key images as PNG"),
    ("label_maps", "Label maps (NIfTI/NRRD)"),
    ("heatmaps", "Heatmaps (NIfTI/NRRD)"),
)
THUMBNAIL = 160


@dataclass
class ReportDraft:
    """What the user prepared for one series' report (kept while the window is open)."""

    impression: str = ""
    user_images: list[KeyImage] = field(default_factory=list)


class ReportDialog(QDialog):
    """Prepare and export the report of one series.

    Signals
    -------
    exported(object)
        The export finished (its :class:`~medviewer.report.export.ExportSummary`).
    """

    exported = Signal(object)

    def __init__(
        self,
        series: OpenSeries,
        results: list[AIResult],
        measurements: list[MeasurementLine],
        draft: ReportDraft,
        *,
        folder: str | Path,
        style: OverlayStyle | None = None,
        window: tuple[float, float] | None = None,
        voi_lut: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export report")
        # modal: what is exported is what the dialog shows (no edits meanwhile), and closed
        # dialogs free their copies of the results and images
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.series = series
        self.results = [r.snapshot() for r in results]
        self.measurements = measurements
        self.draft = draft
        self.style = style or OverlayStyle()
        self.window = window
        self.voi_lut = voi_lut  # shown through this VOI LUT of the series when no window
        self.finding_images: list[KeyImage] = []
        self.summary: ex.ExportSummary | None = None
        self.error = ""
        self.job: workers.Job | None = None
        self.send_job: workers.Job | None = None
        self._pending: list[FindingView] = finding_views(self.results)
        self._renderer: KeyImageRenderer | None = None
        self._rendered = False
        self._named_folder = Path(folder)
        self._anonymous_folder = Path(folder).parent / f"deidentified-{uuid.uuid4().hex[:8]}"
        self._build(Path(folder))
        self.resize(760, 820)
        QTimer.singleShot(0, self._render_next)

    # -- construction --------------------------------------------------------------------

    def _build(self, folder: Path) -> None:
        layout = QVBoxLayout(self)
        meta = self.series.volume.metadata
        layout.addWidget(QLabel(
            f"<b>{meta.patient_name.replace('^', ' ')}</b> ({meta.patient_id}) — "
            f"{meta.study_description or 'study'} — {meta.modality} "
            f"#{meta.series_number or ''} {meta.series_description}"
        ))
        layout.addWidget(QLabel("Impression"))
        self.impression = QPlainTextEdit(self.draft.impression)
        self.impression.setPlaceholderText("Your impression, as it should appear in the report")
        self.impression.textChanged.connect(self._impression_changed)
        self.impression.setMaximumHeight(110)
        layout.addWidget(self.impression)
        layout.addWidget(self._results_box())
        layout.addWidget(self._images_box())
        layout.addWidget(self._include_box())
        layout.addLayout(self._folder_row(folder))
        layout.addWidget(self._privacy_box())
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons.addWidget(self.export_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)

    def _results_box(self) -> QGroupBox:
        box = QGroupBox("AI results in the report")
        column = QVBoxLayout(box)
        self.result_checks: list[QCheckBox] = []
        for result in self.results:
            check = QCheckBox(result.title())
            check.setChecked(True)
            self.result_checks.append(check)
            column.addWidget(check)
        if not self.results:
            column.addWidget(QLabel("No AI results on this series."))
        return box

    def _images_box(self) -> QGroupBox:
        box = QGroupBox("Key images (unticked ones are left out)")
        column = QVBoxLayout(box)
        self.image_list = QListWidget()
        self.image_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.image_list.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.image_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.image_list.setMinimumHeight(THUMBNAIL + 60)
        self.image_list.setWordWrap(True)
        column.addWidget(self.image_list)
        self.images_note = QLabel("Rendering the finding key images…" if self._pending else "")
        column.addWidget(self.images_note)
        for key in self.draft.user_images:
            self._add_item(key)
        return box

    def _include_box(self) -> QGroupBox:
        box = QGroupBox("Include")
        grid = QGridLayout(box)
        self.kind_checks: dict[str, QCheckBox] = {}
        for i, (kind, label) in enumerate(KIND_LABELS):
            check = QCheckBox(label)
            check.setChecked(kind in ex.DEFAULT_KINDS)
            self.kind_checks[kind] = check
            grid.addWidget(check, i // 2, i % 2)
        self.volume_format = QComboBox()
        self.volume_format.addItem("NIfTI (.nii.gz)", "nifti")
        self.volume_format.addItem("NRRD (.nrrd)", "nrrd")
        form = QFormLayout()
        form.addRow("Label map / heatmap format", self.volume_format)
        grid.addLayout(form, (len(KIND_LABELS) + 1) // 2, 0, 1, 2)
        return box

    def _folder_row(self, folder: Path) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Folder"))
        self.folder_edit = QLineEdit(str(folder))
        row.addWidget(self.folder_edit, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(browse)
        return row

    def _privacy_box(self) -> QGroupBox:
        box = QGroupBox("Privacy and files")
        column = QVBoxLayout(box)
        self.deidentify = QCheckBox(
            "De-identify (DICOM PS3.15 basic profile: patient replaced by a pseudonym, UIDs "
            "remapped consistently, dates and descriptions removed)"
        )
        self.source_copies = QCheckBox("Also write de-identified copies of the source images")
        self.source_copies.setEnabled(False)
        self.deidentify.toggled.connect(self._deidentify_toggled)
        self.overwrite = QCheckBox("Replace existing files")
        meta = self.series.volume.metadata
        warning = burned_in_text_warning(meta.modality)
        self.burned_in = QLabel(warning or "")
        self.burned_in.setWordWrap(True)
        self.burned_in.setStyleSheet("color: #c0392b")
        self.burned_in.setVisible(False)
        for widget in (self.deidentify, self.source_copies, self.burned_in, self.overwrite):
            column.addWidget(widget)
        column.addLayout(self._send_row())
        return box

    def _send_row(self) -> QHBoxLayout:
        """"Send the DICOM files to PACS" and the node (configured names, or typed)."""
        from medviewer.ui.pacs_dialog import configured_nodes

        self.send_check = QCheckBox("Then send the DICOM files (SEG, SR, PDF, key images) to")
        self.send_node = QComboBox()
        self.send_node.setEditable(True)
        self.send_node.addItems(sorted(configured_nodes()))
        self.send_node.setToolTip("A configured node, AET@HOST:PORT or an http(s):// URL")
        self.send_node.setMinimumWidth(240)
        row = QHBoxLayout()
        row.addWidget(self.send_check)
        row.addWidget(self.send_node, 1)
        return row

    # -- key images ----------------------------------------------------------------------

    def _render_next(self) -> None:
        """Render the next finding's key image (one per event-loop turn: the GUI stays live)."""
        if not self._pending:
            self._close_renderer()
            self._rendered = True
            count = len(self.finding_images)
            self.images_note.setText(f"{count} finding key image(s), "
                                     f"{len(self.draft.user_images)} added from the viewer.")
            return
        if self._renderer is None:
            self._renderer = KeyImageRenderer()
        key = render_finding(self._renderer, self.series, self._pending.pop(0),
                             window=self.window, voi_lut=self.voi_lut, style=self.style)
        self.finding_images.append(key)
        self._add_item(key, row=len(self.finding_images) - 1)
        QTimer.singleShot(0, self._render_next)

    def _close_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def _add_item(self, key: KeyImage, row: int | None = None) -> None:
        who = "added from the viewer" if key.origin == "user" else "finding"
        item = QListWidgetItem(QIcon(thumbnail(key.rgb)), f"{key.caption}\n({who})")
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked)
        item.setData(Qt.ItemDataRole.UserRole, key)
        item.setToolTip(f"{key.caption}\n{key.slice_text}")
        if row is None:
            self.image_list.addItem(item)
        else:
            self.image_list.insertItem(row, item)

    @property
    def rendering(self) -> bool:
        """True while finding key images are still being rendered."""
        return not self._rendered

    # -- what is exported ----------------------------------------------------------------

    def _impression_changed(self) -> None:
        self.draft.impression = self.impression.toPlainText()

    def _deidentify_toggled(self, on: bool) -> None:
        # the proposed folder is named after the patient: de-identified exports get another
        shown = Path(self.folder_edit.text())
        if on and shown == self._named_folder:
            self.folder_edit.setText(str(self._anonymous_folder))
        elif not on and shown == self._anonymous_folder:
            self.folder_edit.setText(str(self._named_folder))
        self.source_copies.setEnabled(on)
        if not on:
            self.source_copies.setChecked(False)
        self.burned_in.setVisible(on and bool(self.burned_in.text()))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def chosen_kinds(self) -> set[str]:
        """The kinds ticked (plus source copies when asked)."""
        kinds = {kind for kind, check in self.kind_checks.items() if check.isChecked()}
        if self.source_copies.isChecked():
            kinds.add("source_copies")
        return kinds

    def chosen_images(self) -> list[KeyImage]:
        """The ticked key images, in the list's order."""
        items = [self.image_list.item(i) for i in range(self.image_list.count())]
        return [item.data(Qt.ItemDataRole.UserRole) for item in items
                if item.checkState() == Qt.CheckState.Checked]

    def content(self) -> ReportContent:
        """The report as the dialog stands."""
        meta = self.series.volume.metadata
        results = tuple(r for r, check in zip(self.results, self.result_checks, strict=True)
                        if check.isChecked())
        chosen = {r.key for r in results}
        images = tuple(k for k in self.chosen_images()
                       if k.result_key is None or k.result_key in chosen)
        return ReportContent(
            header=ReportHeader.of(meta),
            results=results, key_images=images, measurements=tuple(self.measurements),
            impression=self.impression.toPlainText().strip(),
        )

    def plan(self) -> list[ex.PlannedFile]:
        """The files the export would write."""
        meta = self.series.volume.metadata
        return ex.plan_export(
            self.content(), self.folder_edit.text(), self.chosen_kinds(),
            volume_format=self.volume_format.currentData(),
            source_files=ex.source_file_count(meta),
        )

    # -- export --------------------------------------------------------------------------

    def start_export(self) -> None:
        """Export in a worker (after the key images are rendered)."""
        if self.job is not None and not self.job.done:
            return
        if self.rendering:
            self.status.setText("Key images are still being rendered; try again in a moment.")
            return
        try:
            plan = self.plan()
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        if not plan:
            self.status.setText("Nothing to export: tick at least one kind of file.")
            return
        content, meta = self.content(), self.series.volume.metadata
        deidentify, overwrite = self.deidentify.isChecked(), self.overwrite.isChecked()

        def task(cancel):
            return (yield from ex.run_export(content, meta, plan, deidentify=deidentify,
                                             overwrite=overwrite))

        self.summary, self.error = None, ""
        self.export_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, len(plan))
        self.job = workers.start(task, name="export report", yielded=self._on_progress,
                                 returned=self._on_done, errored=self._on_error,
                                 finished=self._on_finished)

    def _on_progress(self, step: ex.ExportProgress) -> None:
        self.progress.setRange(0, max(step.total, 1))
        self.progress.setValue(step.done)
        self.status.setText(step.step.capitalize() + "…")

    def _on_done(self, summary: ex.ExportSummary) -> None:
        self.summary = summary
        folder = self.folder_edit.text()
        lines = [f"Wrote {len(summary.files)} files into {folder}."]
        if summary.deidentified:
            lines.append("De-identified: no patient name, ID, birth date or original UID.")
        lines += [f"Warning: {w}" for w in summary.warnings]
        self.status.setText("\n".join(lines))
        self.exported.emit(summary)
        if self.send_check.isChecked():
            self._send(summary)

    def _send(self, summary: ex.ExportSummary) -> None:
        """Send the export's DICOM files to the chosen PACS node in a worker."""
        from medviewer.core.errors import MedviewerError
        from medviewer.net.nodes import parse_node
        from medviewer.ui.pacs_dialog import configured_nodes, send_files

        if summary.deidentified:
            self._append_status("Not sent: a de-identified export does not go back to the "
                                "PACS (it would file a pseudonymous patient).")
            return
        try:
            node = parse_node(self.send_node.currentText().strip(), configured_nodes())
        except MedviewerError as exc:
            self._append_status(f"Not sent: {exc}")
            return
        paths = [p.path for p in summary.files if p.path.suffix == ".dcm"]

        def task(cancel):
            return send_files(node, paths, cancel)

        self._append_status(f"Sending {len(paths)} DICOM files to {node.describe()}…")
        self.send_job = workers.start(
            task, name="send to PACS",
            returned=lambda sent: self._append_status(
                f"Sent {len(sent)} of {len(paths)} files to {node.describe()}."),
            errored=lambda exc: self._append_status(f"Sending failed: {exc}"))

    def _append_status(self, line: str) -> None:
        self.status.setText(f"{self.status.text()}\n{line}".strip())

    def _on_error(self, exc: BaseException) -> None:
        self.error = str(exc)
        self.status.setText(f"Export failed, nothing was written: {exc}")

    def _on_finished(self) -> None:
        self.export_button.setEnabled(True)
        self.progress.setVisible(False)

    def done(self, result: int) -> None:
        """Close (an export still running is cancelled; it then writes nothing)."""
        if self.job is not None and not self.job.done:
            self.job.cancel()
        self._pending.clear()
        self._close_renderer()
        self._rendered = True
        super().done(result)


def report_measurements(volume: Volume, measurements: list[Measurement]) -> list[MeasurementLine]:
    """The report lines of a series' measurements, each measured on the plane it was drawn on
    (ROIs get their area and outline from that plane's geometry)."""
    lines = []
    for m in measurements:
        index = plane_index_of(volume, m.plane, m.points[0])
        plane = None if index is None else reslice(volume.array, volume.affine, m.plane, index)
        if plane is not None and not mm.on_plane(m, plane.affine):
            plane = None  # drawn on a rotated plane: not measured on the acquisition's pixels
        affine, image = (None, None) if plane is None else (plane.affine, plane.image)
        lines.append(MeasurementLine.of(m, volume.metadata.units, affine, image,
                                        volume.metadata.suv_bw_factor))
    return lines


def thumbnail(rgb: np.ndarray, size: int = THUMBNAIL) -> QPixmap:
    """A small pixmap of an RGB array."""
    rgb = np.ascontiguousarray(rgb)
    rows, cols, _ = rgb.shape
    image = QImage(rgb.data, cols, rows, cols * 3, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
