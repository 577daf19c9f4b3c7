"""The session's measurements, per series, saved in the study database."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from medviewer.core.measurements import Measurement


class MeasurementStore(QObject):
    """Measurements of every series, loaded lazily from and saved to the database.

    Parameters
    ----------
    db : StudyDatabase or None
        Where measurements persist; None keeps them in memory (screenshots, tests).
    """

    changed = Signal(str)  # series uid
    selectionChanged = Signal(str)  # measurement id, "" for none

    def __init__(self, db: object | None = None) -> None:
        super().__init__()
        self._db = db
        self._by_series: dict[str, dict[str, Measurement]] = {}
        self.selected = ""

    def for_series(self, series_uid: str) -> list[Measurement]:
        """The measurements of a series, in creation order."""
        return list(self._series(series_uid).values())

    def get(self, measurement_id: str) -> Measurement | None:
        """A measurement by id, from any loaded series."""
        for items in self._by_series.values():
            if measurement_id in items:
                return items[measurement_id]
        return None

    def add(self, measurement: Measurement) -> None:
        """Add or replace a measurement (same id) and save it."""
        self._series(measurement.series_uid)[measurement.id] = measurement
        if self._db is not None:
            self._db.save_measurement(measurement)  # type: ignore[attr-defined]
        self.changed.emit(measurement.series_uid)

    update = add

    def remove(self, measurement_id: str) -> None:
        """Delete a measurement."""
        measurement = self.get(measurement_id)
        if measurement is None:
            return
        del self._by_series[measurement.series_uid][measurement_id]
        if self._db is not None:
            self._db.delete_measurement(measurement_id)  # type: ignore[attr-defined]
        if self.selected == measurement_id:
            self.select("")
        self.changed.emit(measurement.series_uid)

    def select(self, measurement_id: str) -> None:
        """Make one measurement the selected one ("" for none)."""
        if measurement_id != self.selected:
            self.selected = measurement_id
            self.selectionChanged.emit(measurement_id)

    def _series(self, series_uid: str) -> dict[str, Measurement]:
        if series_uid not in self._by_series:
            saved = [] if self._db is None else self._db.measurements(series_uid)  # type: ignore[attr-defined]
            self._by_series[series_uid] = {m.id: m for m in saved}
        return self._by_series[series_uid]
