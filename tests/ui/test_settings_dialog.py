"""File > Settings: each field is stored on OK and acts on the running viewer; Cancel keeps
everything."""

from __future__ import annotations

from medviewer.ui.settings import Settings


def test_ok_stores_and_applies_every_field(qtbot, ct_window) -> None:
    window = ct_window
    window.settings.set_user_presets([("Mine", 40.0, 400.0), ("Other", -500.0, 1200.0)])
    dialog = window.window_actions.show_settings()
    qtbot.addWidget(dialog)
    dialog.cache.setValue(1.5)
    dialog.fps.setValue(25)
    dialog.hanging.setChecked(True)
    dialog.ae_title.setText("READER1")
    dialog.port.setValue(11999)
    dialog.presets.setCurrentRow(0)
    dialog.remove_preset()
    dialog.accept()
    fresh = Settings(window.settings.path)  # as read back from the file
    assert fresh.cache_gb == 1.5 and fresh.cine_fps == 25 and fresh.hanging_on_open
    assert fresh.listener() == ("READER1", 11999)
    assert fresh.user_presets() == [("Other", -500.0, 1200.0)]
    assert window.cache.max_bytes == int(1.5 * 2**30)
    assert window.hanging.apply_on_open and window.actions_by_name["hang_on_open"].isChecked()
    assert window.window_actions.fps.value() == 25


def test_cancel_keeps_everything(qtbot, ct_window) -> None:
    window = ct_window
    before = (window.settings.cache_gb, window.settings.cine_fps, window.settings.listener())
    dialog = window.window_actions.show_settings()
    qtbot.addWidget(dialog)
    dialog.cache.setValue(9.0)
    dialog.fps.setValue(3)
    dialog.ae_title.setText("NOPE")
    dialog.reject()
    assert (window.settings.cache_gb, window.settings.cine_fps,
            window.settings.listener()) == before  # fmt: skip
