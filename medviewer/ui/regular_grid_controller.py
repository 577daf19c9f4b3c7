"""View > Resample onto a regular grid: the active series, from its slices' true positions.

A series whose slices are shown off their true position (gantry tilt, uneven spacing) can be
resampled in a worker onto an orthogonal grid
(:func:`medviewer.core.regular_grid.resample_regular`); the result is shown in the slot it came
from, where MPR, measurements and models work on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from medviewer.core.regular_grid import needs_regular_grid, resample_regular
from medviewer.core.volume import Volume
from medviewer.ui import workers
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView
from medviewer.ui.viewer_grid import ViewerGrid


@dataclass(frozen=True)
class Resampled:
    """A resampled series and the viewport of the slot its source is still shown in.

    Attributes
    ----------
    series : OpenSeries
        The series on a regular grid (key ``("regular grid", source key)``).
    view : SliceView
        Where to show it.
    """

    series: OpenSeries
    view: SliceView


class RegularGridController(QObject):
    """Resamples the active viewport's series onto a regular grid.

    Parameters
    ----------
    grid : ViewerGrid
        The viewports.
    parent : QObject, optional
        The Qt parent.

    Signals
    -------
    resampled(Resampled)
        A resampled series to show (its status message follows).
    statusMessage(str, int)
        Text for the status bar and how long to show it (ms; 0 until replaced).
    """

    resampled = Signal(object)
    statusMessage = Signal(str, int)

    def __init__(self, grid: ViewerGrid, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.grid = grid

    def irregular_series(self) -> OpenSeries | None:
        """The active view's series when it is loaded and some slice is shown off its true
        position (gantry tilt, uneven spacing)."""
        view = self.grid.active
        series = view.series if view is not None else None
        if series is None or series.error or not series.complete:
            return None
        return series if needs_regular_grid(series.volume) else None

    def resample_active(self) -> workers.Job | None:
        """Resample the active series onto a regular grid in a worker.

        Returns the job, or None when the active series needs no resampling.
        """
        source = self.irregular_series()
        if source is None:
            self.statusMessage.emit("The active series is on a regular grid already", 4000)
            return None
        slot, volume = self.grid.slot_of(self.grid.active), source.volume
        self.statusMessage.emit("Resampling onto a regular grid…", 0)
        return workers.start(
            lambda cancel: resample_regular(volume, cancel=cancel),
            name="regular grid",
            returned=lambda regular: self._done(slot, source, regular),
            errored=lambda exc: self.statusMessage.emit(f"Could not resample: {exc}", 15000),
        )

    def _done(self, slot: str, source: OpenSeries, volume: Volume) -> None:
        views = self.grid.views_of(slot)
        if not views or self.grid.slots.get(slot) is not source:
            self.statusMessage.emit("Resampled, but the view shows another series now", 8000)
            return
        self.resampled.emit(Resampled(OpenSeries(("regular grid", source.key), volume), views[0]))
        self.statusMessage.emit(volume.metadata.warnings[0], 15000)
