"""Receive studies: medviewer's storage SCP inside the viewer, so modalities and PACS can push
studies to this workstation; what arrives is indexed in batches and appears in the browser.

The server runs in a worker (:class:`medviewer.net.scp.StorageServer`, pynetdicom's own
threads behind it) until Stop or the window closes; the AE title and port are kept in the
settings. Register them at the sender: docs/pacs.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.io.database import StudyDatabase
from medviewer.net.nodes import check_ae_title
from medviewer.ui import workers
from medviewer.ui.settings import Settings

if TYPE_CHECKING:
    from medviewer.net.scp import ServerTls

POLL_S = 0.25
"""How often received files are indexed (seconds)."""


def serve(db: StudyDatabase, dest: Path, port: int, ae_title: str, tls: ServerTls | None,
          cancel: Callable[[], bool]) -> Iterator[int]:
    """Run the storage SCP until `cancel`; index what arrives every :data:`POLL_S` and yield
    how many instances each batch held (worker thread). However it ends (closed at a yield,
    too), the server is shut down first and then what it received last is indexed."""
    from medviewer.net.scp import StorageServer

    with StorageServer(dest, port, ae_title=ae_title, tls=tls) as server:
        try:
            yield 0  # listening
            while not cancel():
                time.sleep(POLL_S)
                new = server.receiver.take_new()
                if new:
                    db.import_paths(new)
                    yield len(new)
        finally:
            server.stop()  # no association left: every file is whole
            rest = server.receiver.take_new()
            if rest:
                db.import_paths(rest)


class ListenDialog(QDialog):
    """Start and stop medviewer's storage SCP; `received` is called (GUI thread) after each
    indexed batch, e.g. to refresh the browser."""

    def __init__(self, db: StudyDatabase, settings: Settings,
                 received: Callable[[], None] | None = None,
                 parent: QWidget | None = None, dest: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Receive studies (storage SCP)")
        self.db, self.settings = db, settings
        self._received = received or (lambda: None)
        self._dest = dest
        self._job: workers.Job | None = None
        self.count = 0
        aet, port = settings.listener()
        self.aet_edit = QLineEdit(aet, self)
        self.port_box = QSpinBox(self)
        self.port_box.setRange(1, 65535)
        self.port_box.setValue(port)
        self.cert_edit, self.key_edit, self.ca_edit = (QLineEdit(self) for _ in range(3))
        self.start_button = QPushButton("Start", self)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.status = QLabel("Not listening", self)
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Our AE title", self.aet_edit)
        form.addRow("Port", self.port_box)
        form.addRow("TLS certificate (optional)", self.cert_edit)
        form.addRow("TLS key", self.key_edit)
        form.addRow("Accept only clients of CA", self.ca_edit)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

    def start(self) -> None:
        """Listen with the form's AE title, port and TLS files (the reason shown if not)."""
        from medviewer.net.retrieve import default_store
        from medviewer.net.scp import ServerTls

        aet, port = self.aet_edit.text().strip(), self.port_box.value()
        cert, key, ca = (e.text().strip() for e in (self.cert_edit, self.key_edit, self.ca_edit))
        try:
            check_ae_title(aet, "our AE title")
            if bool(cert) != bool(key) or (ca and not cert):
                raise MedviewerError("TLS needs a certificate and its key (and a CA only with "
                                     "them)")
        except MedviewerError as exc:
            self.status.setText(str(exc))
            return
        tls = ServerTls(cert, key, ca) if cert else None
        self.settings.set_listener(aet, port)
        db, dest = self.db, self._dest or default_store()

        def task(cancel: Callable[[], bool]) -> Iterator[int]:
            yield from serve(db, dest, port, aet, tls, cancel)

        self.count = 0
        self._job = workers.start(task, name="storage SCP", yielded=self._batch,
                                  errored=self._failed, finished=self._stopped)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"Starting on port {port}…")

    def stop(self) -> None:
        """Stop listening (what arrived is indexed as it stops)."""
        if self._job is not None:
            self._job.cancel()

    def listening(self) -> bool:
        """Whether the server runs."""
        return self._job is not None and not self._job.done

    def _batch(self, count: int) -> None:
        self.count += count
        aet, port = self.settings.listener()
        tls = " over TLS" if self.cert_edit.text().strip() else ""
        self.status.setText(f"Listening as {aet} on port {port}{tls}: {self.count} instances "
                            "received")
        if count:
            self._received()

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Not listening: {exc}")

    def _stopped(self) -> None:
        self._received()  # what arrived after the last batch was indexed as it stopped
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if not self.status.text().startswith("Not listening"):
            self.status.setText(f"Stopped; {self.count} instances received")
