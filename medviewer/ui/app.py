"""QApplication set-up: dark reading-room theme, exception hook, and the GUI entry points."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

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
        app.setApplicationName("medviewer")
        app.setOrganizationName("medviewer")
        apply_dark_theme(app)
    return app  # type: ignore[return-value]


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
) -> int:
    """Open the main window (importing and opening `paths`, or the demo study) and run.

    `exit_after_ms` closes the window after that many milliseconds (smoke tests).
    """
    from PySide6.QtCore import QTimer

    from medviewer.io.database import StudyDatabase
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    app = application()
    sys.excepthook = _excepthook
    window = MainWindow(StudyDatabase(db_path), Settings(settings_path))
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
