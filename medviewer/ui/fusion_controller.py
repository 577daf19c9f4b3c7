"""Fusing a PET (or NM) series over the active series, and the toolbar controls of its style.

:class:`FusionController` finds the series of the active view's frame of reference that can
be fused (:meth:`~medviewer.io.database.StudyDatabase.fusable_series`), loads the chosen one
in a worker and hands it to the grid (:meth:`~medviewer.ui.viewer_grid.ViewerGrid.set_fusion`),
which draws it over every view of that slot. :class:`FusionControls` sets its window and
opacity.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QSlider,
    QWidget,
)

from medviewer.core.fusion import COLOR_MAPS, FusionStyle
from medviewer.core.volume import Volume
from medviewer.io.database import StudyDatabase
from medviewer.ui import workers
from medviewer.ui.fusion_layer import Fusion
from medviewer.ui.viewer_grid import ViewerGrid

#: The default window of a PET in SUV (the usual 0-6 of a whole-body FDG reading).
SUV_WINDOW = (0.0, 6.0)


def default_style(volume: Volume) -> FusionStyle:
    """SUV 0-6 for a PET with an SUV factor; else 0 to the 99.5th percentile of its values."""
    if volume.metadata.suv_bw_factor is not None:
        return FusionStyle(*SUV_WINDOW)
    values = volume.array[::4, ::4, ::4]
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    high = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    low = float(min(finite.min(), 0.0)) if finite.size else 0.0
    return FusionStyle(low, high if high > low else low + 1.0)


class FusionController(QObject):
    """Fuses a series of the active view's frame of reference over it (see the module).

    Signals
    -------
    statusMessage(str, int)
        What happened, for the status bar (text, timeout ms).
    fusionChanged()
        A fusion was added, removed or restyled.
    """

    statusMessage = Signal(str, int)
    fusionChanged = Signal()

    def __init__(self, grid: ViewerGrid, db: StudyDatabase, parent: QWidget | None = None):
        super().__init__(parent)
        self.grid, self.db = grid, db
        self._parent = parent
        self.job: workers.Job | None = None

    def candidates(self) -> list[tuple[int, str]]:
        """``(series id, "PT  description")`` of what can be fused over the active series."""
        view = self.grid.active
        volume = view.volume if view is not None else None
        if volume is None:
            return []
        meta = volume.metadata
        return [(int(row["id"]), f"{row['modality']}  {row['description'] or row['series_uid']}")
                for row in self.db.fusable_series(meta.frame_of_reference_uid)
                if row["series_uid"] != meta.series_uid]  # fmt: skip

    def fuse_active(self, series_id: int | None = None) -> workers.Job | None:
        """Fuse `series_id` (default: the only candidate, or the one the user picks)."""
        if series_id is None:
            series_id = self._choose()
        if series_id is None:
            return None
        slot = self.grid.slot_of(self.grid.active)
        db_path = self.db.path

        def task(cancel):
            from medviewer.io.series import load_series

            return load_series(series_id, db=db_path)

        self.statusMessage.emit("Loading the series to fuse…", 0)
        self.job = workers.start(
            task, name="fusion",
            returned=lambda volume: self._loaded(slot, volume),
            errored=lambda exc: self.statusMessage.emit(f"Fusion failed: {exc}", 15000),
        )  # fmt: skip
        return self.job

    def _choose(self) -> int | None:
        found = self.candidates()
        if not found:
            self.statusMessage.emit(
                "Nothing to fuse: no PET or NM series shares this series' frame of reference "
                "(registration is not available yet)", 15000)  # fmt: skip
            return None
        if len(found) == 1:
            return found[0][0]
        names = [name for _, name in found]
        name, ok = QInputDialog.getItem(self._parent, "Fuse", "Series to fuse over the view:",
                                        names, 0, False)  # fmt: skip
        return found[names.index(name)][0] if ok else None

    def _loaded(self, slot: str, volume: Volume) -> None:
        shown = self.grid.set_fusion(slot, Fusion(volume, default_style(volume)))
        meta = volume.metadata
        if shown:
            suv = meta.suv
            note = "" if suv is None or suv.available else f" ({suv.reason})"
            self.statusMessage.emit(f"Fused {meta.modality} {meta.series_description}{note}",
                                    10000)  # fmt: skip
        else:
            self.grid.set_fusion(slot, None)
            self.statusMessage.emit("The series to fuse is not on this frame of reference", 15000)
        self.fusionChanged.emit()

    def remove(self) -> None:
        """No fusion over the active view's slot."""
        self.grid.set_fusion(self.grid.slot_of(self.grid.active), None)
        self.fusionChanged.emit()

    def active_fusion(self) -> Fusion | None:
        """The fusion of the active view's slot, or None."""
        return self.grid.fusions.get(self.grid.slot_of(self.grid.active))

    def set_style(self, style: FusionStyle) -> None:
        """Restyle the active slot's fusion (recolours; no resampling)."""
        fusion = self.active_fusion()
        if fusion is not None and style != fusion.style:
            self.grid.set_fusion(self.grid.slot_of(self.grid.active), replace(fusion, style=style))
            self.fusionChanged.emit()


class FusionControls(QWidget):
    """Toolbar controls of the active fusion: colour map, window top and opacity."""

    def __init__(self, controller: FusionController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.color_map = QComboBox()
        self.color_map.addItems(list(COLOR_MAPS))
        self.high = QDoubleSpinBox()
        self.high.setRange(0.1, 1e7)
        self.high.setDecimals(1)
        self.high.setPrefix("max ")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(80)
        self.opacity.setToolTip("Opacity of the fused series")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(QLabel("Fusion"))
        for widget in (self.color_map, self.high, self.opacity):
            layout.addWidget(widget)
        self._showing = False
        self.color_map.currentTextChanged.connect(lambda _t: self._edited())
        self.high.valueChanged.connect(lambda _v: self._edited())
        self.opacity.valueChanged.connect(lambda _v: self._edited())
        self.sync()

    def sync(self) -> None:
        """Show the active fusion's style (the toolbar hides the controls without one)."""
        fusion = self.controller.active_fusion()
        if fusion is None:
            return
        self._showing = True
        try:
            self.color_map.setCurrentText(fusion.style.color_map)
            self.high.setSuffix(f" {fusion.units}")
            self.high.setValue(fusion.style.high)
            self.opacity.setValue(round(fusion.style.opacity * 100))
        finally:
            self._showing = False

    def _edited(self) -> None:
        fusion = self.controller.active_fusion()
        if self._showing or fusion is None:
            return
        high = max(self.high.value(), fusion.style.low + 1e-3)
        self.controller.set_style(replace(fusion.style, high=high,
                                          opacity=self.opacity.value() / 100.0,
                                          color_map=self.color_map.currentText()))  # fmt: skip
