"""Help > Keyboard shortcuts (F1): the table holds the menus' and tools' shortcuts, every
viewport key, the mouse; the filter narrows it; its action is on F1."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence

from medviewer.ui.shortcuts_dialog import ShortcutsDialog
from medviewer.ui.tools.keys import KEY_ACTIONS, KEY_HELP
from tests.waits import WAIT_MS


def test_every_viewport_key_is_described():
    described = {key for keys, _ in KEY_HELP for key in keys}
    assert described == set(KEY_ACTIONS)


def test_f1_opens_the_table_and_the_filter_narrows_it(qtbot, tmp_path):
    from tests.ui.test_ai_workflow import _window

    window = _window(qtbot, tmp_path)
    action = window.window_actions.by_name["shortcuts"]
    assert action.shortcut() == QKeySequence("F1")
    action.trigger()
    qtbot.waitUntil(lambda: window.window_actions.shortcuts_dialog is not None
                    and window.window_actions.shortcuts_dialog.isVisible(), timeout=WAIT_MS)
    dialog: ShortcutsDialog = window.window_actions.shortcuts_dialog
    rows = dialog.rows
    native = QKeySequence.SequenceFormat.NativeText
    assert ("Menus and tools", QKeySequence("Ctrl+O").toString(native), "Import folder") in rows
    assert ("Menus and tools", "S", "Smart") in rows
    assert ("Menus and tools", "F1", "Keyboard shortcuts") in rows
    assert any(r[0] == "Viewport" and "PgDown" in r[1] for r in rows)
    assert any(r[0] == "Mouse" and r[1] == "Ctrl+drag (Smart)" for r in rows)
    dialog.filter.setText("smart")
    shown = dialog.shown_rows()
    assert shown and all("smart" in " ".join(r).lower() for r in shown)
    assert len(shown) < len(rows)
    dialog.filter.setText("")
    assert len(dialog.shown_rows()) == len(rows)
    window.close()
