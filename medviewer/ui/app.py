"""QApplication set-up: dark reading-room theme, exception hook, and the GUI entry points."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSize, QTimer
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from medviewer.resources import APP_ID, ICON_SIZES, icon_path

log = logging.getLogger(__name__)

DARK = {
    QPalette.ColorRole.Window: QColor(37, 37, 38),
    QPalette.ColorRole.WindowText: QColor(220, 220, 220),
    QPalette.ColorRole.Base: QColor(24, 24, 25),
    QPalette.ColorRole.AlternateBase: QColor(44, 44, 46),
    QPalette.ColorRole.ToolTipBase: QColor(50, 50, 52),
    QPalette.ColorRole.ToolTipText: QColor(230, 230, 230),
    QPalette.ColorRole.Text: QColor(220, 220, 220),
    QPalette.ColorRole.Button: QColor(45, 45, 48),
    QPalette.ColorRole.ButtonText: QColor(220, 220, 220),
    QPalette.ColorRole.BrightText: QColor(255, 90, 90),
    QPalette.ColorRole.Highlight: QColor(61, 143, 214),
    QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
    QPalette.ColorRole.Link: QColor(90, 170, 240),
    QPalette.ColorRole.PlaceholderText: QColor(130, 130, 130),
}


def application() -> QApplication:
    """The QApplication (created once, with the dark theme)."""
    app = QApplication.instance()
    if app is None:
        _quiet_offscreen_warning()
        app = QApplication(sys.argv[:1])
        configure_application(app)
    return app  # type: ignore[return-value]


def configure_application(app: QApplication) -> None:
    """Names, icon and theme of the application.

    The desktop file name is how Wayland compositors and X11 taskbars match the windows to
    ``medviewer.desktop`` (and so to its icon); the window icon covers the rest.
    """
    app.setApplicationName(APP_ID)
    app.setOrganizationName(APP_ID)
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(application_icon())
    apply_dark_theme(app)


def application_icon() -> QIcon:
    """The application icon with every shipped size (windows, taskbar, dialogs)."""
    icon = QIcon()
    for size in ICON_SIZES:
        icon.addFile(str(icon_path(size)), QSize(size, size))
    return icon


def qt_versions() -> dict[str, str]:
    """PySide6, Qt and pyqtgraph versions (for ``medviewer about``)."""
    import pyqtgraph
    import PySide6
    from PySide6.QtCore import qVersion

    return {"PySide6": PySide6.__version__, "qt": qVersion(), "pyqtgraph": pyqtgraph.__version__}


def _quiet_offscreen_warning() -> None:
    """Drop the offscreen platform's 'propagateSizeHints' notice (noise on headless runs)."""
    from PySide6.QtCore import qInstallMessageHandler

    previous = None

    def handler(mode, context, message: str) -> None:
        if "propagateSizeHints" in message:
            return
        if previous is not None:
            previous(mode, context, message)
        else:
            print(message, file=sys.stderr)

    previous = qInstallMessageHandler(handler)


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark palette (dim surroundings for reading rooms)."""
    app.setStyle("Fusion")
    palette = QPalette()
    for role, color in DARK.items():
        palette.setColor(role, color)
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(110, 110, 110))
    app.setPalette(palette)


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

    `exit_after_ms` closes the window after that many milliseconds (smoke tests).
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
        from medviewer.demo import demo_folder

        targets = [str(demo_folder())]
        window.set_layout("1x3")
    if targets:
        QTimer.singleShot(
            0, lambda: window.import_paths([str(Path(p)) for p in targets], then_open=True)
        )
    if exit_after_ms is not None:
        QTimer.singleShot(exit_after_ms, window.close)
    return app.exec()
