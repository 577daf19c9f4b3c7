"""Opens series for the viewports: from the volume cache, or loaded progressively in a worker.

A request (:class:`LoadRequest`) is captured on the GUI thread; the load runs in a worker
(:func:`medviewer.ui.workers.start` over :func:`medviewer.io.series.iter_load`) and comes back
as typed results (:class:`SeriesReady`, :class:`LoadFailed`) through Qt signals the window
connects to. A newer request for the same slot supersedes the older one: its job is
cancelled and the events it had already queued are dropped, as napari's ``_LayerSlicer``
drops superseded slice tasks.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from medviewer.core.cache import VolumeCache
from medviewer.core.findings import AIResult
from medviewer.core.volume import Volume
from medviewer.io.database import StudyDatabase
from medviewer.io.series import LoadStarted, SeriesSource, SlicesLoaded, iter_load
from medviewer.ui import workers
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView


@dataclass(frozen=True)
class LoadRequest:
    """A series to show, and where (captured on the GUI thread).

    Attributes
    ----------
    key : hashable
        The volume cache key (``("db", series id)`` or a path).
    source : SeriesSource
        What :func:`~medviewer.io.series.iter_load` reads: a database series id, files, a folder.
    slot : str
        The grid slot the series opens in; a newer request for it supersedes this one.
    view : SliceView or None
        The viewport asked for (None: the active one).
    """

    key: Hashable
    source: SeriesSource
    slot: str
    view: SliceView | None = None


@dataclass(frozen=True)
class SeriesReady:
    """A series to show: the request's first volume, or a widened one replacing it.

    Attributes
    ----------
    request : LoadRequest
        What was asked.
    series : OpenSeries
        The series (its slices may still be loading).
    replaces : OpenSeries or None
        The series it replaces wherever that is shown (the loader widened the volume's
        type mid-load); None for the first volume of a request.
    """

    request: LoadRequest
    series: OpenSeries
    replaces: OpenSeries | None = None


@dataclass(frozen=True)
class LoadFailed:
    """A load that failed.

    Attributes
    ----------
    request : LoadRequest
        What was asked.
    series : OpenSeries or None
        The partly loaded series already shown (now marked failed), if any.
    message : str
        What went wrong, for the user.
    """

    request: LoadRequest
    series: OpenSeries | None
    message: str


@dataclass
class _RunningLoad:
    """The GUI thread's record of one load in a worker."""

    request: LoadRequest
    job: workers.Job
    series: OpenSeries | None = None


@dataclass(frozen=True)
class SegmentationRead:
    """A DICOM SEG read onto its source series (whose volume is now in the cache).

    Attributes
    ----------
    source_id : int
        The database id of the source series.
    result : AIResult
        The segmentation as a result to draw over it.
    view : SliceView or None
        The viewport asked for (None: the active one).
    """

    source_id: int
    result: AIResult
    view: SliceView | None = None


class SeriesLoader(QObject):
    """Loads the series the window opens, one load per grid slot at a time.

    Parameters
    ----------
    db : StudyDatabase
        The study index database series ids refer to.
    cache : VolumeCache
        Recently opened volumes: reopening one shows it without a load.
    parent : QObject, optional
        The Qt parent.

    Signals
    -------
    seriesReady(SeriesReady)
        A series to show.
    loadFailed(LoadFailed)
        A load failed (its status message was sent first).
    segmentationRead(SegmentationRead)
        A SEG file and its source series were read.
    statusMessage(str, int)
        Text for the status bar and how long to show it (ms; 0 until replaced).
    """

    seriesReady = Signal(object)
    loadFailed = Signal(object)
    segmentationRead = Signal(object)
    statusMessage = Signal(str, int)

    def __init__(
        self, db: StudyDatabase, cache: VolumeCache, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.cache = cache
        self._running: dict[str, _RunningLoad] = {}  # slot -> its load

    @property
    def jobs(self) -> dict[str, workers.Job]:
        """The unfinished loads by grid slot."""
        return {slot: load.job for slot, load in self._running.items()}

    def load(self, request: LoadRequest) -> workers.Job | None:
        """Show `request`'s series from the cache, or start loading it in a worker.

        Cancels the unfinished load of the same slot. Returns the load's job (None when the
        cache had the volume).
        """
        self._supersede(request.slot)
        cached = self.cache.get(request.key)
        if cached is not None:
            self.seriesReady.emit(SeriesReady(request, OpenSeries(request.key, cached)))
            return None
        db = self.db

        def task(cancel):
            return (yield from iter_load(request.source, db=db, cancel=cancel))

        job = workers.start(  # its callbacks run on the GUI thread, once `load` is set
            task,
            name=f"load {request.key}",
            yielded=lambda event: self._on_event(load, event),
            returned=lambda volume: self.cache.put(request.key, volume),
            errored=lambda exc: self._on_failed(load, exc),
            finished=lambda: self._forget(load),
        )
        load = self._running[request.slot] = _RunningLoad(request, job)
        return job

    def _supersede(self, slot: str) -> None:
        previous = self._running.pop(slot, None)
        if previous is not None:
            previous.job.cancel()  # switching series cancels the unfinished load

    def _forget(self, load: _RunningLoad) -> None:
        if self._running.get(load.request.slot) is load:
            del self._running[load.request.slot]

    def _on_event(self, load: _RunningLoad, event: LoadStarted | SlicesLoaded) -> None:
        if load.job.is_cancelled():
            return  # superseded: events it queued before the cancel must not show it again
        if isinstance(event, LoadStarted):
            self._started(load, event)
        elif load.series is not None:
            load.series.mark_loaded(event.indices)

    def _started(self, load: _RunningLoad, event: LoadStarted) -> None:
        loaded = [False] * event.volume.array.shape[0]
        for index in event.loaded:
            loaded[index] = True
        series = OpenSeries(load.request.key, event.volume, loaded)  # type: ignore[arg-type]
        previous, load.series = load.series, series
        self.seriesReady.emit(SeriesReady(load.request, series, previous))
        if previous is None:
            for warning in event.volume.metadata.warnings:
                self.statusMessage.emit(f"Warning: {warning}", 8000)

    def _on_failed(self, load: _RunningLoad, exc: BaseException) -> None:
        message = f"Could not open the series: {exc}"
        self.statusMessage.emit(message, 15000)
        if load.series is not None:
            load.series.fail(message)
        self.loadFailed.emit(LoadFailed(load.request, load.series, message))

    def read_segmentation(self, location: str, view: SliceView | None = None) -> workers.Job:
        """Read a SEG file and its source series in a worker (the volume goes to the cache)."""
        db = self.db

        def task(cancel):
            from medviewer.core.errors import LoadError
            from medviewer.io.header import read_location
            from medviewer.io.seg import referenced_series_uid
            from medviewer.io.series import load_series
            from medviewer.report.seg_result import seg_as_result

            seg = read_location(location)
            source_id = db.series_id_of(referenced_series_uid(seg))
            if source_id is None:
                raise LoadError(f"{location}: its source series is not in the database; "
                                "import the source images first")
            volume = load_series(source_id, db=db, cancel=cancel)
            return source_id, volume, seg_as_result(seg, volume)

        self.statusMessage.emit("Opening the segmentation and its source series…", 0)
        return workers.start(
            task, name="open SEG", returned=lambda found: self._segmentation_read(found, view),
            errored=lambda exc: self.statusMessage.emit(f"Could not open the SEG: {exc}", 15000),
        )

    def _segmentation_read(
        self, found: tuple[int, Volume, AIResult], view: SliceView | None
    ) -> None:
        source_id, volume, result = found
        self.cache.put(("db", source_id), volume)
        self.segmentationRead.emit(SegmentationRead(source_id, result, view))

    def shutdown(self) -> None:
        """Cancel every unfinished load (the window is closing)."""
        for load in self._running.values():
            load.job.cancel()
