"""Send a series from the study database to a PACS (C-STORE or STOW-RS), in a worker.

The files are sent as they are on disk (each in its own transfer syntax); an instance read
from inside a zip archive has no file of its own and is listed as not sent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.io.database import StudyDatabase
from medviewer.net.nodes import DEFAULT_AE_TITLE, parse_node
from medviewer.ui import workers
from medviewer.ui.pacs_dialog import configured_nodes


def series_files(db: StudyDatabase, series_id: int) -> tuple[list[Path], int]:
    """The files of a database series that exist on their own, and how many of its instances
    do not (inside an archive, or gone)."""
    files, other = [], 0
    for record in db.series_records(series_id):
        path = Path(record.path)
        if record.member or not path.is_file():
            other += 1
        else:
            files.append(path)
    return sorted(set(files)), other


class SendSeriesDialog(QDialog):
    """Pick a node and send one database series to it.

    Parameters
    ----------
    db : StudyDatabase
        Where the series is indexed.
    series_id : int
        The series to send.
    parent : QWidget, optional
    """

    def __init__(self, db: StudyDatabase, series_id: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send to PACS")
        self.files, self.not_files = series_files(db, series_id)
        self._job: workers.Job | None = None
        self.node_box = QComboBox(self)
        self.node_box.setEditable(True)
        self.node_box.addItems(sorted(configured_nodes()))
        self.node_box.setToolTip("A configured node, AET@HOST:PORT, or an http(s):// DICOMweb URL")
        self.send_button = QPushButton("Send", self)
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        what = f"{len(self.files)} files"
        if self.not_files:
            what += f" ({self.not_files} instances inside archives or missing are not sent)"
        self.summary = QLabel(what, self)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("To", self))
        row.addWidget(self.node_box, 1)
        row.addWidget(self.send_button)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.resize(560, 140)

    def send(self) -> None:
        """Send the series' files to the node the box names, in a worker."""
        try:
            node = parse_node(self.node_box.currentText().strip(), configured_nodes())
        except MedviewerError as exc:
            self.status.setText(str(exc))
            return
        if not self.files:
            self.status.setText("Nothing to send: the series has no file of its own")
            return
        files = list(self.files)

        def task(cancel: Callable[[], bool]) -> object:
            from medviewer.net.send import send_all

            return send_all(node, files, calling_aet=DEFAULT_AE_TITLE, cancel=cancel)

        self.send_button.setEnabled(False)
        self.status.setText(f"Sending {len(files)} files to {node.describe()}…")
        self._job = workers.start(task, name="send series", returned=self._sent,
                                  errored=self._failed)

    def cancel(self) -> None:
        """Stop between files (what was stored stays stored), or close when idle."""
        if self.busy():
            assert self._job is not None
            self._job.cancel()
            self.status.setText("Cancelled")
            self.send_button.setEnabled(True)
        else:
            self.reject()

    def busy(self) -> bool:
        """Whether a send is still running."""
        return self._job is not None and not self._job.done

    def _sent(self, report: object) -> None:
        stored = list(getattr(report, "stored", []))
        failed = list(getattr(report, "failed", []))
        text = f"{len(stored)} stored"
        if failed:
            path, why = failed[0]
            text += f", {len(failed)} refused (e.g. {Path(path).name}: {why})"
        self.status.setText(text)
        self.send_button.setEnabled(True)

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Not sent: {exc}")
        self.send_button.setEnabled(True)

    def closeEvent(self, event: object) -> None:
        """Cancel a running send on close."""
        if self._job is not None:
            self._job.cancel()
        super().closeEvent(event)  # type: ignore[arg-type]
