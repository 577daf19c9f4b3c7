"""The GUI entry point: exception hook, start-up probe, and the viewer's main loop.

The QApplication itself (names, icon, dark theme) is :mod:`medviewer.ui.application`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from medviewer.ui.application import application

log = logging.getLogger(__name__)


def qt_versions() -> dict[str, str]:
    """PySide6, Qt and pyqtgraph versions (for ``medviewer about``)."""
    import pyqtgraph
    import PySide6
    from PySide6.QtCore import qVersion

    return {"PySide6": PySide6.__version__, "qt": qVersion(), "pyqtgraph": pyqtgraph.__version__}


def _excepthook(kind, value, tb) -> None:
    """Show unexpected errors instead of dying (the GUI must survive a failed action)."""
    text = "".join(traceback.format_exception(kind, value, tb))
    log.error("unhandled error:\n%s", text)
    print(text, file=sys.stderr)
    app = QApplication.instance()
    if app is not None and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        QMessageBox.critical(None, "medviewer: unexpected error", f"{kind.__name__}: {value}")


HEAVY_MODULES = ("torch", "monai", "SimpleITK", "highdicom", "reportlab", "scipy", "skimage",
                 "onnxruntime", "matplotlib")
"""Modules start-up must not import (they load when a model runs or a report is made)."""


class FirstPaintProbe(QObject):
    """Notes when `window` is first painted, writes it to `path` as JSON, then closes it.

    The JSON holds ``painted`` and ``shown`` (``time.monotonic()``, a clock shared by the
    processes of one machine, so a parent that noted the clock before launching gets the
    start-up time), the number of modules loaded and which :data:`HEAVY_MODULES` were.
    ``shown`` is taken by a zero-delay timer after the first paint event, when the frame
    has been handed to the window system.
    """

    def __init__(self, window: QWidget, path: Path) -> None:
        super().__init__(window)
        self._window = window
        self._path = path
        self._painted: float | None = None

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            self._painted is None
            and event.type() == QEvent.Type.Paint
            and isinstance(watched, QWidget)
            and watched.window() is self._window
        ):
            self._painted = time.monotonic()
            QTimer.singleShot(0, self._report)
        return False

    def _report(self) -> None:
        shown = time.monotonic()
        heavy = sorted(m for m in HEAVY_MODULES if m in sys.modules)
        record = {"painted": self._painted, "shown": shown, "modules": len(sys.modules),
                  "heavy_modules": heavy}
        self._path.write_text(json.dumps(record), encoding="utf-8")
        self._window.close()


def freeze_startup_heap() -> None:
    """Take what start-up allocated (modules, widgets) out of the garbage collector's scans.

    Full collections then walk only objects made since, so they stay short: in a large
    process an unfrozen gen-2 collection stalled the event loop for ~50-100 ms during an import.
    """
    import gc

    gc.freeze()


def run_viewer(
    paths: Sequence[str] = (),
    *,
    demo: bool = False,
    db_path: str | None = None,
    settings_path: str | None = None,
    exit_after_ms: int | None = None,
    startup_probe: str | None = None,
) -> int:
    """Open the main window (importing and opening `paths`, or the demo study) and run.

    `exit_after_ms` closes the window after that many milliseconds, once no import runs or
    waits (smoke tests: what they asked to import is indexed whatever the machine's speed).
    `startup_probe` names a JSON file written when the window is first painted, after which
    the window closes (start-up measurements of the installed and frozen application).
    """
    from medviewer.io.database import StudyDatabase
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    app = application()
    sys.excepthook = _excepthook
    window = MainWindow(StudyDatabase(db_path), Settings(settings_path))
    if startup_probe is not None:
        probe = FirstPaintProbe(window, Path(startup_probe))
        app.installEventFilter(probe)
    window.show()
    freeze_startup_heap()
    targets = list(paths)
    if demo:
        from medviewer.synthetic.demo import demo_folder

        targets = [str(demo_folder())]
        window.set_layout("1x3")
    if targets:
        QTimer.singleShot(
            0, lambda: window.import_paths([str(Path(p)) for p in targets], then_open=True)
        )
    if exit_after_ms is not None:
        QTimer.singleShot(exit_after_ms, lambda: _close_when_idle(window))
    return app.exec()


def _close_when_idle(window) -> None:
    """Close `window` once its imports are done (checked again every 50 ms until then)."""
    if window.imports.busy:
        QTimer.singleShot(50, lambda: _close_when_idle(window))
    else:
        window.close()
