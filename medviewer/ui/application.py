"""The QApplication: created once, named, with the application icon and the dark theme.

Widgets that need the application (hidden renderers, screenshots) get it from
:func:`application`; the start-up module :mod:`medviewer.ui.app` runs the viewer with it.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from medviewer.resources import APP_ID, ICON_SIZES, icon_path

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
