"""Edit > Settings: the viewer's settings in one place (volume cache, cine speed, hanging
protocols, the storage SCP's AE title and port, the user's window presets, PACS nodes).

Changes apply when the dialog is accepted (OK), through the same calls the menus use; Cancel
leaves everything as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medviewer.ui.settings import Settings


class SettingsDialog(QDialog):
    """The settings form (see the module). `apply_cache` and `apply_hanging` carry the
    changes that act on the running viewer (the cache's size, hanging on open)."""

    def __init__(self, settings: Settings, apply_cache: Callable[[float], None],
                 apply_hanging: Callable[[bool], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self._apply_cache, self._apply_hanging = apply_cache, apply_hanging
        self.cache = QDoubleSpinBox()
        self.cache.setRange(0.0, 256.0)
        self.cache.setDecimals(1)
        self.cache.setSuffix(" GB")
        self.cache.setValue(settings.cache_gb)
        self.fps = QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setSuffix(" fps")
        self.fps.setValue(settings.cine_fps)
        self.hanging = QCheckBox("Apply the matching hanging protocol when a series opens")
        self.hanging.setChecked(settings.hanging_on_open)
        protocols = QLabel(f"User protocols: {settings.protocols_path}")
        protocols.setWordWrap(True)
        ae, port = settings.listener()
        self.ae_title = QLineEdit(ae)
        self.ae_title.setMaxLength(16)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(port)
        self.presets = QListWidget()
        self._presets = list(settings.user_presets())
        self._fill_presets()
        remove = QPushButton("Remove preset")
        remove.clicked.connect(self.remove_preset)
        self.nodes_button = QPushButton("PACS nodes…")
        self.nodes_button.clicked.connect(self.edit_nodes)
        form = QFormLayout()
        form.addRow("Volume cache", self.cache)
        form.addRow("Cine speed", self.fps)
        form.addRow("Hanging protocols", self.hanging)
        form.addRow("", protocols)
        form.addRow("Storage SCP AE title", self.ae_title)
        form.addRow("Storage SCP port", self.port)
        form.addRow("Window presets", self.presets)
        row = QHBoxLayout()
        row.addWidget(remove)
        row.addStretch(1)
        row.addWidget(self.nodes_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)  # fmt: skip
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.node_settings: QDialog | None = None

    def _fill_presets(self) -> None:
        self.presets.clear()
        for name, center, width in self._presets:
            self.presets.addItem(f"{name}: W {width:g} L {center:g}")

    def remove_preset(self) -> None:
        """Forget the selected user window preset (on OK)."""
        row = self.presets.currentRow()
        if 0 <= row < len(self._presets):
            del self._presets[row]
            self._fill_presets()

    def edit_nodes(self) -> None:
        """The PACS node settings window (saved as it is edited)."""
        from medviewer.ui.pacs_nodes_dialog import NodeSettingsDialog

        self.node_settings = NodeSettingsDialog(self)
        self.node_settings.show()

    def accept(self) -> None:
        """Store every field, then act on the running viewer."""
        settings = self.settings
        settings.cine_fps = self.fps.value()
        settings.set_listener(self.ae_title.text().strip() or "MEDVIEWER", self.port.value())
        settings.set_user_presets(self._presets)
        settings.hanging_on_open = self.hanging.isChecked()
        settings.sync()
        self._apply_cache(self.cache.value())
        self._apply_hanging(self.hanging.isChecked())
        super().accept()
