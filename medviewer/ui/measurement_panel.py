"""The measurement list of the active viewport's series: select, jump to, delete."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from medviewer.core import measurements as mm
from medviewer.core.geometry import reslice
from medviewer.core.measurements import Measurement
from medviewer.core.viewstate import plane_index_of
from medviewer.core.volume import Volume
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.viewer_grid import ViewerGrid


class MeasurementPanel(QWidget):
    """Lists the measurements of the series shown in the active viewport."""

    def __init__(self, store: MeasurementStore, grid: ViewerGrid, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.grid = grid
        self.list = QListWidget()
        self.list.itemSelectionChanged.connect(self._selected)
        self.list.itemActivated.connect(
            lambda item: self.jump_to(item.data(Qt.ItemDataRole.UserRole))
        )
        delete = QPushButton("Delete")
        delete.clicked.connect(self._delete)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(delete)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        store.changed.connect(lambda _uid: self.refresh())
        store.selectionChanged.connect(self._select_row)
        grid.activeChanged.connect(self._watch)
        self._watched = None
        self._listed_volume: Volume | None = None

    def _watch(self, view) -> None:
        if self._watched is not None:
            self._watched.stateChanged.disconnect(self._on_view_changed)
        self._watched = view
        if view is not None:
            view.stateChanged.connect(self._on_view_changed)
        self.refresh()

    def _on_view_changed(self) -> None:
        # Scrolling and window/level do not change the list (each line is computed on the
        # measurement's own slice): only a new series in the view does.
        if self._volume() is not self._listed_volume:
            self.refresh()

    def _volume(self) -> Volume | None:
        view = self.grid.active
        return None if view is None else view.volume

    def refresh(self) -> None:
        """Rebuild the list from the store."""
        volume = self._listed_volume = self._volume()
        wanted = [] if volume is None else self.store.for_series(volume.metadata.series_uid)
        shown = [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]
        texts = [measurement_text(m, volume) for m in wanted]  # type: ignore[arg-type]
        if shown == [m.id for m in wanted] and texts == self.texts():
            return
        with signals_blocked(self.list):
            self.list.clear()
            for m, text in zip(wanted, texts, strict=True):
                item = QListWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, m.id)
                self.list.addItem(item)
        self._select_row(self.store.selected)

    def texts(self) -> list[str]:
        """The listed lines (for tests)."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _selected(self) -> None:
        items = self.list.selectedItems()
        if items:
            measurement_id = items[0].data(Qt.ItemDataRole.UserRole)
            self.store.select(measurement_id)
            self.jump_to(measurement_id)

    def _select_row(self, measurement_id: str) -> None:
        with signals_blocked(self.list):
            for i in range(self.list.count()):
                item = self.list.item(i)
                item.setSelected(item.data(Qt.ItemDataRole.UserRole) == measurement_id)

    def jump_to(self, measurement_id: str) -> None:
        """Show the measurement's slice in the views of its plane."""
        m = self.store.get(measurement_id)
        view = self.grid.active
        if m is None or view is None or view.series is None:
            return
        centre = np.mean(np.asarray(m.points, float), axis=0)
        view.set_crosshair(centre, move=True)
        self.grid.link_cursor(view, centre)

    def _delete(self) -> None:
        if self.store.selected:
            self.store.remove(self.store.selected)


def measurement_text(m: Measurement, volume: Volume) -> str:
    """A measurement's summary, with ROI statistics on the slice it was drawn on."""
    index = plane_index_of(volume, m.plane, np.mean(np.asarray(m.points, float), axis=0))  # type: ignore[arg-type]
    if index is None or volume.is_color:
        return mm.summary(m, units=volume.metadata.units)
    plane = reslice(volume.array, volume.affine, m.plane, index)  # type: ignore[arg-type]
    if not mm.on_plane(m, plane.affine):  # drawn on a rotated plane: its pixels are not these
        return mm.summary(m, units=volume.metadata.units)
    meta = volume.metadata
    return mm.summary(m, plane.image, plane.affine, meta.units, meta.suv_bw_factor)
