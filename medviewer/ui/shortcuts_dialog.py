"""Help > Keyboard shortcuts (F1): every key the viewer answers, searchable.

The rows come from where the keys are defined, so the help cannot drift from them: the main
window's actions that have a shortcut (menus, tools, layouts), the viewport keys
(:data:`medviewer.ui.tools.keys.KEY_HELP`, which covers every key of ``KEY_ACTIONS``), the
number-key window presets, and the mouse with modifiers.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.ui.tools.keys import KEY_HELP

MOUSE_HELP = [
    ("Wheel", "next / previous slice"),
    ("Ctrl+Wheel", "zoom"),
    ("Left click (Navigate)", "move the other planes to that point"),
    ("Right drag", "window / level"),
    ("Middle drag", "pan"),
    ("Click (Smart)", "a point inside the object"),
    ("Shift+click (Smart)", "a point outside it"),
    ("Drag (Smart)", "a box around it"),
    ("Ctrl+drag (Smart)", "a scribble through it (Shift: outside)"),
]
"""The mouse in a viewport, with the Smart tool's prompts."""


def shortcut_rows(actions: dict[str, QAction]) -> list[tuple[str, str, str]]:
    """``(group, keys, what)`` for every key and mouse gesture the viewer answers."""
    rows = []
    for action in actions.values():
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if keys:
            rows.append(("Menus and tools", keys, action.text().replace("&", "").rstrip("…")))
    rows.sort(key=lambda row: row[2].lower())
    for qt_keys, what in KEY_HELP:
        names = " / ".join(QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)
                           for key in qt_keys)
        rows.append(("Viewport", names, what))
    rows.append(("Viewport", "1 … 9, 0", "window presets of the series (Window menu)"))
    rows.extend(("Mouse", gesture, what) for gesture, what in MOUSE_HELP)
    return rows


class ShortcutsDialog(QDialog):
    """The shortcut table with a filter on keys and descriptions."""

    def __init__(self, actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = shortcut_rows(actions)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (e.g. smart, slice, Ctrl)")
        self.filter.textChanged.connect(self._show_matching)
        self.table = QTableWidget(len(self.rows), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "What"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, values in enumerate(self.rows):
            for column, text in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)
        self.resize(640, 560)

    def shown_rows(self) -> list[tuple[str, str, str]]:
        """The rows the filter leaves visible."""
        return [r for i, r in enumerate(self.rows) if not self.table.isRowHidden(i)]

    def _show_matching(self, text: str) -> None:
        needle = text.strip().lower()
        for i, row in enumerate(self.rows):
            self.table.setRowHidden(i, bool(needle) and needle not in " ".join(row).lower())
