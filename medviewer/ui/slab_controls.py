"""The toolbar's thick-slab controls: the projection (off, MIP, MinIP, average) and its
thickness in mm, for the active viewport."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QWidget

from medviewer.core.slab import DEFAULT_SLAB_MM, MAX_SLAB_MM, SLAB_MODES, SLAB_NAMES, Slab
from medviewer.core.viewstate import ViewState


class SlabControls(QWidget):
    """A mode box and a thickness slider (1 mm steps) that edit the active view's slab.

    Signals
    -------
    slabChanged(object)
        The user chose a slab (:class:`~medviewer.core.slab.Slab`) or None (off).
    """

    slabChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = QComboBox()
        self.mode.setObjectName("slab_mode")
        self.mode.addItem("Slab off", None)
        for mode in SLAB_MODES:
            self.mode.addItem(SLAB_NAMES[mode], mode)
        self.mode.setToolTip("Thick-slab projection of the active view (M cycles it)")
        self.thickness = QSlider(Qt.Orientation.Horizontal)
        self.thickness.setObjectName("slab_thickness")
        self.thickness.setRange(1, int(MAX_SLAB_MM))
        self.thickness.setValue(int(DEFAULT_SLAB_MM))
        self.thickness.setFixedWidth(110)
        self.thickness.setToolTip("Slab thickness in mm ([ thinner, ] thicker)")
        self.label = QLabel()
        self.label.setMinimumWidth(52)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        for widget in (self.mode, self.thickness, self.label):
            layout.addWidget(widget)
        self.mode.currentIndexChanged.connect(lambda _i: self._edited())
        self.thickness.valueChanged.connect(lambda _v: self._edited())
        self._showing = False
        self._show_label()

    def slab(self) -> Slab | None:
        """The slab the controls describe (None: off)."""
        mode = self.mode.currentData()
        return None if mode is None else Slab(mode, float(self.thickness.value()))

    def show_state(self, state: ViewState | None) -> None:
        """Show the slab of the active view's `state` (without emitting slabChanged)."""
        self._showing = True
        try:
            slab = state.slab if state is not None else None
            self.mode.setCurrentIndex(0 if slab is None else 1 + SLAB_MODES.index(slab.mode))
            if slab is not None:
                self.thickness.setValue(round(slab.thickness_mm))
            self.setEnabled(state is not None and state.count > 1)
        finally:
            self._showing = False
        self._show_label()

    def _edited(self) -> None:
        self._show_label()
        if not self._showing:
            self.slabChanged.emit(self.slab())

    def _show_label(self) -> None:
        self.thickness.setEnabled(self.mode.currentData() is not None)
        self.label.setText(f"{self.thickness.value()} mm")
