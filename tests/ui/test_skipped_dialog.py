"""The skipped-files dialog: rows, sorting, the copied text, Close."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialogButtonBox

from medviewer.io.scan import SkippedFile
from medviewer.ui.skipped_dialog import SkippedFilesDialog
from tests.waits import WAIT_MS

SKIPPED = [
    SkippedFile("/data/b/report.dcm", "no pixel data (not an image)"),
    SkippedFile("/data/a/notes.txt", "not a DICOM file"),
    SkippedFile("/data/c.zip::x/IM1", "truncated: the file ends\twhere its pixel data starts"),
]


def test_rows_title_and_sorting(qtbot) -> None:
    dialog = SkippedFilesDialog(SKIPPED)
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "3 files skipped"
    assert dialog.rows() == [
        ("/data/a/notes.txt", "not a DICOM file"),
        ("/data/b/report.dcm", "no pixel data (not an image)"),
        ("/data/c.zip::x/IM1", "truncated: the file ends\twhere its pixel data starts"),
    ]
    dialog.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
    assert [reason for _, reason in dialog.rows()] == [
        "truncated: the file ends\twhere its pixel data starts",
        "not a DICOM file",
        "no pixel data (not an image)",
    ]


def test_copy_puts_tab_separated_text_on_the_clipboard(qtbot) -> None:
    dialog = SkippedFilesDialog(SKIPPED)
    qtbot.addWidget(dialog)
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == (
        "Path\tReason\n"
        "/data/a/notes.txt\tnot a DICOM file\n"
        "/data/b/report.dcm\tno pixel data (not an image)\n"
        "/data/c.zip::x/IM1\ttruncated: the file ends where its pixel data starts\n"
    )


def test_single_file_title_and_close(qtbot) -> None:
    dialog = SkippedFilesDialog(SKIPPED[:1])
    qtbot.addWidget(dialog)
    assert dialog.windowTitle() == "1 file skipped"
    dialog.show()
    box = dialog.findChild(QDialogButtonBox)
    with qtbot.waitSignal(dialog.rejected, timeout=WAIT_MS):
        box.button(QDialogButtonBox.StandardButton.Close).click()
    assert not dialog.isVisible()
