"""A dialog listing the files an import could not use, and why."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from medviewer.io.scan import SkippedFile

HEADERS = ("Path", "Reason")


def skipped_title(count: int) -> str:
    """``"1 file skipped"`` / ``"N files skipped"``."""
    return f"{count} file skipped" if count == 1 else f"{count} files skipped"


class SkippedFilesDialog(QDialog):
    """A sortable table of skipped files (Path | Reason) with Copy and Close.

    Parameters
    ----------
    skipped : sequence of SkippedFile
        The files and the reasons they were skipped.
    parent : QWidget, optional
    """

    def __init__(self, skipped: Sequence[SkippedFile], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(skipped_title(len(skipped)))
        self.model = QStandardItemModel(0, len(HEADERS), self)
        self.model.setHorizontalHeaderLabels(list(HEADERS))
        for entry in skipped:
            self.model.appendRow([_cell(entry.path), _cell(entry.reason)])
        self.table = _table(self.model, self)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the list as tab-separated text")
        self.copy_button.clicked.connect(self.copy)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(_explanation(len(skipped)), self))
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(800, 400)

    def rows(self) -> list[tuple[str, str]]:
        """(path, reason) of every row, in the order the table shows them."""
        table = self.table.model()
        return [
            (table.index(row, 0).data(), table.index(row, 1).data())
            for row in range(table.rowCount())
        ]

    def text(self) -> str:
        """The table as tab-separated text: a header line, then one line per row."""
        lines = ["\t".join(HEADERS), *("\t".join(_one_line(v) for v in r) for r in self.rows())]
        return "\n".join(lines) + "\n"

    def copy(self) -> None:
        """Put :meth:`text` on the clipboard."""
        QGuiApplication.clipboard().setText(self.text())


def _cell(text: str) -> QStandardItem:
    item = QStandardItem(text)
    item.setEditable(False)
    item.setToolTip(text)
    return item


def _one_line(value: str) -> str:
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _explanation(count: int) -> str:
    if not count:
        return "Every file was imported."
    return "These files were not imported (they stay untouched on disk):"


def _table(model: QStandardItemModel, parent: QWidget) -> QTableView:
    table = QTableView(parent)
    table.setModel(model)
    table.setSortingEnabled(True)
    table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setWordWrap(False)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    header.resizeSection(0, 480)
    return table
