"""Imports files and folders into the study database in the background, one import at a time.

The controller owns the import queue, the running import's job, its progress bar and Cancel
button (which the window puts in its status bar) and the files the last import skipped. The
study tree follows an import at most every :data:`TREE_REFRESH_MS`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QProgressBar, QPushButton, QWidget
from superqt.utils import qthrottled

from medviewer.io.database import ImportReport, StudyDatabase
from medviewer.io.scan import SkippedFile
from medviewer.ui import workers
from medviewer.ui.browser import StudyBrowser
from medviewer.ui.settings import Settings
from medviewer.ui.skipped_dialog import SkippedFilesDialog

if TYPE_CHECKING:
    from medviewer.ui.pacs_dialog import QueryRetrieveDialog
    from medviewer.ui.pacs_listen_dialog import ListenDialog

TREE_REFRESH_MS = 500  # the study tree follows an import at most this often


class ImportController(QObject):
    """The import side of a main window.

    Parameters
    ----------
    db : StudyDatabase
        The study index imported into.
    settings : Settings
        Where imported folders are remembered as recent folders.
    browser : StudyBrowser
        The study tree, refreshed as series are found.
    parent : QWidget
        The window: Qt parent and parent of the file dialogs.

    Signals
    -------
    seriesToOpen(int)
        The first series of an import asked to be opened (database series id).
    statusMessage(str, int)
        Text for the status bar and how long to show it (ms; 0 until replaced).
    """

    seriesToOpen = Signal(int)
    statusMessage = Signal(str, int)

    def __init__(
        self, db: StudyDatabase, settings: Settings, browser: StudyBrowser, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.settings = settings
        self.browser = browser
        self._window = parent
        self.skipped: list[SkippedFile] = []
        self._job: workers.Job | None = None
        self._queue: list[list[str]] = []
        self._pacs: QueryRetrieveDialog | None = None
        self._send: QWidget | None = None
        self._listener: ListenDialog | None = None
        self._refresh_tree = qthrottled(browser.refresh, timeout=TREE_REFRESH_MS, parent=self)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def job(self) -> workers.Job | None:
        """The running (or last) import's job; None before the first import."""
        return self._job

    @property
    def busy(self) -> bool:
        """Whether an import runs or waits in the queue."""
        return bool(self._queue) or (self._job is not None and not self._job.done)

    def ask_folder(self) -> None:
        """Choose a folder and import it."""
        folder = QFileDialog.getExistingDirectory(self._window, "Import folder")
        if folder:
            self.import_paths([folder])

    def open_pacs(self) -> None:
        """Show the Query/Retrieve window; what it retrieves appears in the browser."""
        from medviewer.ui.pacs_dialog import QueryRetrieveDialog

        if self._pacs is None:
            self._pacs = QueryRetrieveDialog(
                self.db, retrieved=lambda _ids: self._refresh_tree(), parent=self._window,
                open_series=lambda series_id: self._window.open_series(series_id,
                                                                       reload=True))
        self._pacs.show()
        self._pacs.raise_()

    def open_listener(self) -> None:
        """Show the storage SCP window (receive pushed studies; they appear in the browser).
        Closing it leaves the server running; the window stops it when the viewer closes."""
        from medviewer.ui.pacs_listen_dialog import ListenDialog

        if self._listener is None:
            self._listener = ListenDialog(self.db, self.settings, received=self._refresh_tree,
                                          parent=self._window)
        self._listener.show()

    def send_series(self) -> None:
        """Send the browser's current series to a PACS (a small window picks the node)."""
        from medviewer.ui.pacs_send_dialog import SendSeriesDialog

        series_id = self.browser.current_series_id()
        if series_id is None:
            self.statusMessage.emit("Select a series in the study browser first", 6000)
            return
        self._send = SendSeriesDialog(self.db, series_id, parent=self._window)
        self._send.show()

    def ask_files(self) -> None:
        """Choose files (DICOM, DICOMDIR, zip) and import them."""
        files, _ = QFileDialog.getOpenFileNames(self._window, "Import files")
        if files:
            self.import_paths(files)

    def import_paths(
        self, paths: Sequence[str | os.PathLike[str]], then_open: bool = False
    ) -> None:
        """Import files/folders in the background (after the running import, if any).

        With `then_open`, the first series of the import is opened when it finishes.
        """
        paths = [str(p) for p in paths]
        for path in paths:
            if os.path.isdir(path):
                self.settings.add_recent_folder(str(Path(path).resolve()))
        if self._job is not None and not self._job.done:
            self._queue.append(paths)
            return
        self._start(paths, then_open)

    def _start(self, paths: list[str], then_open: bool) -> None:
        db = self.db

        def task(cancel, progress):
            return db.import_paths(paths, progress=progress, cancel=cancel)

        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.statusMessage.emit(f"Importing {', '.join(paths)}", 0)
        self._job = workers.start(
            task,
            name="import",
            progress=self._progressed,
            returned=lambda report: self._done(report, paths, then_open),
            errored=lambda exc: self.statusMessage.emit(f"Import failed: {exc}", 15000),
            finished=self._finished,
        )

    def _progressed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self._refresh_tree()

    def _done(self, report: ImportReport, paths: list[str], then_open: bool) -> None:
        self.browser.refresh()
        self.skipped = list(report.skipped)
        text = f"Imported {report.read} files ({report.unchanged} unchanged)"
        if report.skipped:
            text += f", {len(report.skipped)} skipped (File > Skipped files…)"
        self.statusMessage.emit(text, 15000)
        imported = self.db.series_under(paths)
        if then_open and imported:
            self.seriesToOpen.emit(imported[0])

    def _finished(self) -> None:
        self._refresh_tree.cancel()  # the import's last refresh was _done's
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if self._queue:
            self._start(self._queue.pop(0), False)

    def cancel(self) -> None:
        """Stop the running import and drop the queued ones (what was committed stays)."""
        self._queue.clear()
        if self._job is not None:
            self._job.cancel()
            self.statusMessage.emit("Import cancelled", 5000)

    def show_skipped(self) -> None:
        """Open the report of files the last import skipped (path and reason)."""
        SkippedFilesDialog(self.skipped or self.db.skipped(), self._window).exec()

    def shutdown(self) -> None:
        """Stop refreshing the tree and cancel the running import (the window is closing)."""
        self._refresh_tree.cancel()
        if self._job is not None:
            self._job.cancel()
