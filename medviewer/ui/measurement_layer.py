"""The measurements of a viewport's series, drawn as editable ROIs on the slice they lie on."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt

from medviewer.core import measurements as mm
from medviewer.core.geometry import PlaneSlice
from medviewer.core.measurements import Measurement
from medviewer.core.viewstate import ViewState
from medviewer.core.volume import Volume
from medviewer.ui.measurement_items import MEASURE_PEN, SELECTED_PEN, roi_for, roi_points
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.plane_coords import patient_to_view, view_to_patient


class MeasuredView(Protocol):
    """What the layer reads from its viewport (a :class:`~medviewer.ui.slice_view.SliceView`)."""

    store: MeasurementStore
    series: OpenSeries | None
    state: ViewState | None
    plane_slice: PlaneSlice | None
    viewbox: pg.ViewBox

    @property
    def volume(self) -> Volume | None: ...


class MeasurementLayer(QObject):
    """Keeps one ROI and label per measurement of the shown slice, in step with the store.

    Parameters
    ----------
    view : MeasuredView
        The viewport (its store, series, plane and ViewBox).
    parent : QObject or None
        The viewport as a QObject: the layer stops listening to the store with it.

    Attributes
    ----------
    rois : dict
        Measurement id -> ``(roi, label)`` drawn on the current slice.
    """

    def __init__(self, view: MeasuredView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._view = view
        self.rois: dict[str, tuple[pg.ROI, pg.TextItem]] = {}
        self._labels: dict[Measurement, str] = {}  # results on a fully loaded volume
        view.store.changed.connect(self._on_store_changed)
        view.store.selectionChanged.connect(self._on_selection_changed)

    def add(self, kind: str, points: list[np.ndarray]) -> Measurement | None:
        """Store and select a new measurement of `kind` through LPS `points` on this plane."""
        view = self._view
        if view.volume is None or view.state is None:
            return None
        measurement = Measurement(
            kind=kind,  # type: ignore[arg-type]
            points=tuple(tuple(float(v) for v in p) for p in points),
            plane=view.state.plane,
            series_uid=view.volume.metadata.series_uid,
        )
        view.store.add(measurement)
        view.store.select(measurement.id)
        return measurement

    def visible(self) -> list[Measurement]:
        """The measurements of the series drawn on the current slice."""
        volume, plane_slice = self._view.volume, self._view.plane_slice
        if volume is None or plane_slice is None:
            return []
        return [
            m
            for m in self._view.store.for_series(volume.metadata.series_uid)
            if mm.on_plane(m, plane_slice.affine)
        ]

    def text(self, measurement: Measurement) -> str:
        """The one-line result of a measurement on the current slice."""
        volume, plane_slice = self._view.volume, self._view.plane_slice
        assert plane_slice is not None and volume is not None
        image = None if volume.is_color else plane_slice.image
        meta = volume.metadata
        return mm.summary(measurement, image, plane_slice.affine, meta.units, meta.suv_bw_factor)

    def forget_results(self) -> None:
        """Drop the cached results (another series is shown)."""
        self._labels.clear()

    def sync(self) -> None:
        """Draw exactly the visible measurements, with their current results and selection."""
        wanted = {m.id: m for m in self.visible()}
        viewbox = self._view.viewbox
        for mid in list(self.rois):
            if mid not in wanted:
                roi, label = self.rois.pop(mid)
                viewbox.removeItem(roi)
                viewbox.removeItem(label)
        for mid, measurement in wanted.items():
            if mid not in self.rois:
                self.rois[mid] = self._make_roi(measurement)
            self._refresh_roi(measurement)

    def _label_text(self, m: Measurement) -> str:
        """The label of a measurement, computed once per geometry (ROI stats cost ~2 ms)."""
        series = self._view.series
        if series is None or not series.complete:
            return self.text(m)  # slices still arriving: values may change
        if m not in self._labels:
            self._labels[m] = self.text(m)
        return self._labels[m]

    def _on_store_changed(self, series_uid: str) -> None:
        volume = self._view.volume
        if volume is not None and volume.metadata.series_uid == series_uid:
            self.sync()

    def _on_selection_changed(self, _measurement_id: str) -> None:
        self.sync()

    def _to_view(self, point) -> tuple[float, float, float]:
        assert self._view.plane_slice is not None
        return patient_to_view(self._view.plane_slice, np.asarray(point))

    def _make_roi(self, m: Measurement) -> tuple[pg.ROI, pg.TextItem]:
        roi = roi_for(m.kind, [self._to_view(p)[:2] for p in m.points])
        roi.setZValue(10)
        roi.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        roi.sigClicked.connect(lambda *_: self._view.store.select(m.id))
        roi.sigRegionChangeFinished.connect(lambda r: self._roi_moved(m.id, r))
        label = pg.TextItem(anchor=(0, 1), color="#ffe9a8", fill=pg.mkBrush(0, 0, 0, 150))
        label.setZValue(11)
        self._view.viewbox.addItem(roi, ignoreBounds=True)
        self._view.viewbox.addItem(label, ignoreBounds=True)
        return roi, label

    def _refresh_roi(self, m: Measurement) -> None:
        roi, label = self.rois[m.id]
        roi.setPen(SELECTED_PEN if m.id == self._view.store.selected else MEASURE_PEN)
        label.setText(self._label_text(m))
        x, y, _ = self._to_view(m.points[-1])
        label.setPos(x, y)

    def _roi_moved(self, measurement_id: str, roi: pg.ROI) -> None:
        store, plane_slice = self._view.store, self._view.plane_slice
        m = store.get(measurement_id)
        if m is None or plane_slice is None:
            return
        points = [view_to_patient(plane_slice, x, y) for x, y in roi_points(m.kind, roi)]
        store.update(m.moved(tuple(tuple(float(v) for v in p) for p in points)))
        store.select(measurement_id)
