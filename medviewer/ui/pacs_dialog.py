"""The Query/Retrieve window: pick a PACS node, search studies, retrieve a study or a series
into the study database. Every network call runs in a worker; results appear as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.io.database import StudyDatabase
from medviewer.net.dimse import Query
from medviewer.net.nodes import DEFAULT_AE_TITLE, Node, load_nodes, parse_node
from medviewer.ui import workers

COLUMNS = ("Patient", "Patient ID", "Date", "Description", "Modality", "Series / images")
UID_ROLE = Qt.ItemDataRole.UserRole
LEVEL_ROLE = Qt.ItemDataRole.UserRole + 1
FILTERS = (("patient_name", "Patient name"), ("patient_id", "Patient ID"),
           ("accession_number", "Accession"), ("date", "Date (YYYYMMDD-YYYYMMDD)"),
           ("modality", "Modality"), ("description", "Description"))


class QueryRetrieveDialog(QDialog):
    """Search a PACS and retrieve from it into `db`.

    Parameters
    ----------
    db : StudyDatabase
        Where retrieved instances are indexed.
    retrieved : callable, optional
        Called (GUI thread) with the database ids of the series after each batch arrives
        and at the end, e.g. to refresh the study browser.
    open_series : callable, optional
        Called (GUI thread) with a series' database id to show it in the viewer: once its
        first batch is indexed, and again when the retrieve ends with more of it (when
        "Open as it arrives" is ticked).
    parent : QWidget, optional
    """

    def __init__(self, db: StudyDatabase, retrieved: Callable[[list[int]], None] | None = None,
                 parent: QWidget | None = None,
                 open_series: Callable[[int], None] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query / Retrieve")
        self.db = db
        self._retrieved = retrieved or (lambda ids: None)
        self._open_series = open_series
        self.open_check = QCheckBox("Open as it arrives", self)
        self.open_check.setToolTip("Show the first series in the viewer as soon as its first "
                                   "images are here; it is read again when the rest arrived")
        self.open_check.setChecked(open_series is not None)
        self.open_check.setEnabled(open_series is not None)
        self._shown: tuple[int, int] | None = None  # (series id, instances shown) this retrieve
        self._jobs: dict[str, workers.Job] = {}
        self.node_box = QComboBox(self)
        self.node_box.setEditable(True)
        self.node_box.addItems(sorted(configured_nodes()))
        self.node_box.setToolTip("A configured node, AET@HOST:PORT, or an http(s):// DICOMweb URL")
        self.aet_edit = QLineEdit(DEFAULT_AE_TITLE, self)
        self.test_button = QPushButton("Test", self)
        self.test_button.clicked.connect(self.test_node)
        self.save_button = QPushButton("Save as…", self)
        self.save_button.setToolTip("Keep this node under a name (pacs-nodes.json)")
        self.save_button.clicked.connect(self._ask_save)
        self.nodes_button = QPushButton("Nodes…", self)
        self.nodes_button.setToolTip("Add, edit, test and remove PACS nodes (TLS, DICOMweb "
                                     "authentication)")
        self.nodes_button.clicked.connect(self.edit_nodes)
        self.node_settings: Any = None
        self.filters = {key: QLineEdit(self) for key, _ in FILTERS}
        self.search_button = QPushButton("Search", self)
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.itemExpanded.connect(self._expand_study)
        self.retrieve_button = QPushButton("Retrieve", self)
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar(self)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self._lay_out()
        self.resize(900, 560)

    # -- actions ------------------------------------------------------------------------

    def node(self) -> Node:
        """The node the box names (raises :class:`MedviewerError` with the reason)."""
        return parse_node(self.node_box.currentText().strip(), configured_nodes())

    def test_node(self) -> None:
        """C-ECHO (DIMSE) or one QIDO-RS search (DICOMweb) in a worker."""
        node, aet = self._node_or_say(), self.aet_edit.text().strip() or DEFAULT_AE_TITLE
        if node is None:
            return

        def task(cancel: Callable[[], bool]) -> float:
            if node.kind == "dicomweb":
                from medviewer.net.web import probe

                return probe(node)
            from medviewer.net.dimse import echo

            return echo(node, calling_aet=aet)

        self._say(f"Testing {node.describe()}…")
        self._run("test", task, returned=lambda s: self._say(
            f"{node.describe()} answered in {s * 1000:.0f} ms"))

    def save_node(self, name: str) -> bool:
        """Keep the node the box names under `name` in the user's nodes; False (and the
        reason shown) when it cannot be saved."""
        from dataclasses import replace

        from medviewer.net.nodes import save_nodes

        node, name = self._node_or_say(), name.strip()
        if node is None or not name:
            return False
        try:
            nodes = {**load_nodes(), name: replace(node, name=name)}
            save_nodes(nodes)
        except (MedviewerError, OSError) as exc:
            self._say(f"Not saved: {exc}")
            return False
        self.node_box.clear()
        self.node_box.addItems(sorted(nodes))
        self.node_box.setCurrentText(name)
        self._say(f"Saved {node.describe()} as {name!r}")
        return True

    def edit_nodes(self) -> None:
        """Open the node settings; the node box follows what is saved there."""
        from medviewer.ui.pacs_nodes_dialog import NodeSettingsDialog

        if self.node_settings is None:
            self.node_settings = NodeSettingsDialog(self, changed=self._reload_nodes)
        self.node_settings.show()
        self.node_settings.raise_()

    def _reload_nodes(self) -> None:
        current = self.node_box.currentText()
        self.node_box.clear()
        self.node_box.addItems(sorted(configured_nodes()))
        self.node_box.setCurrentText(current)

    def _ask_save(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self, "Save PACS node", "Name:")
        if ok:
            self.save_node(name)

    def search(self) -> None:
        """Query studies with the filters; rows appear as they arrive."""
        node, aet = self._node_or_say(), self.aet_edit.text().strip() or DEFAULT_AE_TITLE
        if node is None:
            return
        query = Query("STUDY", **{key: edit.text().strip() for key, edit in self.filters.items()})
        self.tree.clear()

        def task(cancel: Callable[[], bool]) -> Iterator[dict[str, str]]:
            yield from _find(node, query, aet, cancel)

        self._say(f"Searching {node.describe()}…")
        self._run("search", task, yielded=self._add_study,
                  finished=lambda: self._say(f"{self.tree.topLevelItemCount()} studies"))

    def retrieve_selected(self) -> None:
        """Retrieve the selected study or series into the database."""
        item = self.tree.currentItem()
        node, aet = self._node_or_say(), self.aet_edit.text().strip() or DEFAULT_AE_TITLE
        if item is None or node is None:
            self._say("Select a study or a series first")
            return
        uid, db = str(item.data(0, UID_ROLE)), self.db

        def task(cancel: Callable[[], bool]) -> Generator[Any, None, Any]:
            from medviewer.net.retrieve import retrieve

            return (yield from retrieve(db, node, uid, calling_aet=aet, cancel=cancel,
                                        batch=8))

        self.progress.setRange(0, 0)
        self._shown = None
        self._say(f"Retrieving from {node.describe()}…")
        self._run("retrieve", task, yielded=self._progressed, returned=self._retrieve_done)

    def cancel(self) -> None:
        """Cancel whatever runs (the instances already received are kept and indexed)."""
        for job in self._jobs.values():
            job.cancel()

    def busy(self) -> bool:
        """Whether a network job is still running."""
        return any(not job.done for job in self._jobs.values())

    # -- worker callbacks (GUI thread) ---------------------------------------------------

    def _add_study(self, row: dict[str, str]) -> None:
        item = QTreeWidgetItem([
            row.get("PatientName", ""), row.get("PatientID", ""), row.get("StudyDate", ""),
            row.get("StudyDescription", ""), row.get("ModalitiesInStudy", ""),
            f"{row.get('NumberOfStudyRelatedSeries', '')} / "
            f"{row.get('NumberOfStudyRelatedInstances', '')}"])
        item.setData(0, UID_ROLE, row.get("StudyInstanceUID", ""))
        item.setData(0, LEVEL_ROLE, "STUDY")
        item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        self.tree.addTopLevelItem(item)

    def _expand_study(self, item: QTreeWidgetItem) -> None:
        if item.data(0, LEVEL_ROLE) != "STUDY" or item.childCount():
            return
        node, aet = self._node_or_say(), self.aet_edit.text().strip() or DEFAULT_AE_TITLE
        if node is None:
            return
        query = Query("SERIES", study_uid=str(item.data(0, UID_ROLE)))

        def task(cancel: Callable[[], bool]) -> Iterator[dict[str, str]]:
            yield from _find(node, query, aet, cancel)

        def add(row: dict[str, str]) -> None:
            child = QTreeWidgetItem(["", "", "", row.get("SeriesDescription", ""),
                                     row.get("Modality", ""),
                                     row.get("NumberOfSeriesRelatedInstances", "")])
            child.setData(0, UID_ROLE, row.get("SeriesInstanceUID", ""))
            child.setData(0, LEVEL_ROLE, "SERIES")
            item.addChild(child)

        self._run(f"series {item.data(0, UID_ROLE)}", task, yielded=add)

    def _progressed(self, progress: Any) -> None:
        self.progress.setRange(0, max(progress.total, 1))
        self.progress.setValue(progress.received)
        if progress.new_files:
            self._retrieved([])
        if progress.indexed_series and self._shown is None and self._opens():
            series_id = self.db.series_id_of(progress.indexed_series[0])
            if series_id is not None and self._open_series is not None:
                self._shown = (series_id, len(self.db.series_records(series_id)))
                self._open_series(series_id)
                self._say(f"Showing the first {self._shown[1]} images; the rest are coming")

    def _retrieve_done(self, report: Any) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        text = f"{report.received} received, {report.skipped} already here"
        if report.failed:
            text += f", {len(report.failed)} failed (Retrieve again to complete)"
        self._say(text)
        self._retrieved(list(report.series))
        self._show_whole(list(report.series))

    def _opens(self) -> bool:
        return self._open_series is not None and self.open_check.isChecked()

    def _show_whole(self, series: list[int]) -> None:
        """After a retrieve: read the series shown while arriving again if it gained images,
        or show the first series when none was shown (all arrived in one batch)."""
        if not self._opens() or self._open_series is None:
            return
        if self._shown is None:
            if series:
                self._open_series(series[0])
            return
        series_id, shown = self._shown
        if len(self.db.series_records(series_id)) > shown:
            self._open_series(series_id)

    # -- helpers ------------------------------------------------------------------------

    def _run(self, name: str, task: Callable[..., Any], **callbacks: Any) -> None:
        previous = self._jobs.get(name)
        if previous is not None and not previous.done:
            previous.cancel()
        self._jobs[name] = workers.start(task, name=f"pacs {name}", errored=self._failed,
                                         **callbacks)

    def _failed(self, exc: BaseException) -> None:
        self.progress.setRange(0, 1)
        self._say(f"Failed: {exc}")

    def _node_or_say(self) -> Node | None:
        try:
            return self.node()
        except MedviewerError as exc:
            self._say(str(exc))
            return None

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("PACS", self))
        top.addWidget(self.node_box, 1)
        top.addWidget(QLabel("Our AE title", self))
        top.addWidget(self.aet_edit)
        top.addWidget(self.test_button)
        top.addWidget(self.save_button)
        top.addWidget(self.nodes_button)
        form = QFormLayout()
        for key, label in FILTERS:
            form.addRow(label, self.filters[key])
        buttons = QHBoxLayout()
        buttons.addWidget(self.search_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_check)
        buttons.addWidget(self.progress)
        buttons.addWidget(self.retrieve_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

    def closeEvent(self, event: Any) -> None:
        """Cancel running jobs on close (what arrived stays indexed)."""
        self.cancel()
        super().closeEvent(event)


def configured_nodes() -> dict[str, Node]:
    """The user's configured PACS nodes (none when the settings file is unreadable)."""
    try:
        return load_nodes()
    except MedviewerError:
        return {}


def _find(node: Node, query: Query, aet: str,
          cancel: Callable[[], bool]) -> Iterator[dict[str, str]]:
    if node.kind == "dicomweb":
        from medviewer.net.web import search

        yield from search(node, query)
    else:
        from medviewer.net.dimse import find

        yield from find(node, query, calling_aet=aet, cancel=cancel)


def send_files(node: Node, paths: list[Any], cancel: Callable[[], bool]) -> list[Any]:
    """C-STORE (DIMSE) or STOW-RS (DICOMweb) `paths` to `node` (worker thread); the paths
    stored. A file the PACS refuses raises :class:`MedviewerError` naming it."""
    from medviewer.net.send import send_all

    report = send_all(node, paths, cancel=cancel)
    if report.failed:
        path, why = report.failed[0]
        raise MedviewerError(f"{len(report.failed)} not stored, e.g. {path.name}: {why}")
    return list(report.stored)
