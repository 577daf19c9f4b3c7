"""The application icon on the window and the taskbar, and the desktop file name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from medviewer.io.database import StudyDatabase
from medviewer.resources import APP_ID, ICON_SIZES, icon_path
from medviewer.ui.application import application_icon, configure_application
from medviewer.ui.main_window import MainWindow
from medviewer.ui.settings import Settings


def _rgba(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    data = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return data.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4].reshape(
        image.height(), image.width(), 4
    ).copy()


def assert_same_icon(shown: np.ndarray, shipped: np.ndarray) -> None:
    """Equal alpha everywhere, equal colour where opaque (Qt premultiplies the edges)."""
    np.testing.assert_array_equal(shown[..., 3], shipped[..., 3])
    opaque = shipped[..., 3] == 255
    assert opaque.mean() > 0.5
    np.testing.assert_array_equal(shown[opaque], shipped[opaque])


def test_the_icon_holds_every_shipped_size_with_its_own_pixels() -> None:
    icon = application_icon()
    sizes = sorted(s.width() for s in icon.availableSizes())
    assert sizes == list(ICON_SIZES)
    for size in (16, 48, 256):
        shown = _rgba(icon.pixmap(size, size).toImage())
        shipped = _rgba(QImage(str(icon_path(size))))
        assert_same_icon(shown, shipped)


def test_the_main_window_shows_the_application_icon(qtbot, tmp_path: Path) -> None:
    app = QApplication.instance()
    configure_application(app)
    assert app.desktopFileName() == APP_ID and app.applicationName() == APP_ID
    window = MainWindow(StudyDatabase(tmp_path / "db.sqlite"), Settings(tmp_path / "s.ini"))
    qtbot.addWidget(window)
    window.show()
    shown = _rgba(window.windowIcon().pixmap(32, 32).toImage())
    assert_same_icon(shown, _rgba(QImage(str(icon_path(32)))))
