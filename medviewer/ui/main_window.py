"""The main window: composition root of the browser, viewports, tools, workers and settings.

It builds the models, the widgets and the controllers that own each kind of work, and wires
them: opening series (:mod:`~medviewer.ui.series_loader`), imports
(:mod:`~medviewer.ui.import_controller`), AI (:mod:`~medviewer.ui.ai_controller`), reports
(:mod:`~medviewer.ui.report_controller`), regular grids
(:mod:`~medviewer.ui.regular_grid_controller`), menus (:mod:`~medviewer.ui.window_actions`).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QWidget

from medviewer import __version__
from medviewer.ai.registry import ModelRegistry
from medviewer.core.cache import GIGABYTE, VolumeCache
from medviewer.io.database import StudyDatabase
from medviewer.io.results_store import ResultStore
from medviewer.io.series import SeriesSource
from medviewer.ui import workers
from medviewer.ui.ai_controller import AIController
from medviewer.ui.browser import StudyBrowser
from medviewer.ui.compare_controller import CompareController
from medviewer.ui.fusion_controller import FusionController
from medviewer.ui.hanging_controller import HangingController
from medviewer.ui.import_controller import ImportController
from medviewer.ui.measurement_panel import MeasurementPanel
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.regular_grid_controller import RegularGridController
from medviewer.ui.report_controller import ReportController
from medviewer.ui.series_loader import (
    LoadFailed,
    LoadRequest,
    SegmentationRead,
    SeriesLoader,
    SeriesReady,
)
from medviewer.ui.settings import Settings
from medviewer.ui.slice_view import SliceView
from medviewer.ui.smart_controller import SmartController
from medviewer.ui.viewer_grid import LAYOUTS, ViewerGrid
from medviewer.ui.window_actions import WindowActions

if TYPE_CHECKING:  # the report modules (pydicom, highdicom, reportlab) load on first use
    from medviewer.ui.report_dialog import ReportDialog


class MainWindow(QMainWindow):
    """The reading workstation window.

    Parameters
    ----------
    db : StudyDatabase
        The study index the browser shows and imports into.
    settings : Settings
        Persistent settings (window layout, recent folders, cache size...).
    registry : ModelRegistry, optional
        The AI models offered (default: the bundled and user models).
    results : ResultStore, optional
        Where AI results are kept (default: ``results/`` beside the database).
    """

    def __init__(
        self,
        db: StudyDatabase,
        settings: Settings,
        registry: ModelRegistry | None = None,
        results: ResultStore | None = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.settings = settings
        self.registry = registry if registry is not None else ModelRegistry()
        self.results = results if results is not None else ResultStore(db.path.parent / "results")
        self.cache = VolumeCache(int(settings.cache_gb * GIGABYTE))
        self.store = MeasurementStore(db)
        self.setWindowTitle(f"medviewer {__version__}")
        self.setAcceptDrops(True)
        self._build_central()
        self._build_docks()
        self._build_controllers()
        self.window_actions = WindowActions(self)
        self.actions_by_name = self.window_actions.by_name
        self._build_status()
        self._restore()

    # -- construction --------------------------------------------------------------------

    def _build_central(self) -> None:
        self.grid = ViewerGrid(self.store, self)
        self.grid.seriesDropped.connect(lambda view, sid: self.open_series(sid, view))
        self.grid.readout.connect(lambda text: self.readout_label.setText(text))
        self.grid.activeChanged.connect(lambda _v: self._sync_view_actions())
        self.grid.activeStateChanged.connect(lambda _v: self.window_actions.sync_slab())
        self.setCentralWidget(self.grid)

    def _build_docks(self) -> None:
        self.browser = StudyBrowser(self.db)
        self.browser.seriesActivated.connect(lambda sid: self.open_series(sid))
        self.browser_dock = self._dock(
            "Studies", "browser", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.measurements = MeasurementPanel(self.store, self.grid)
        self.measurements_dock = self._dock(
            "Measurements", "measurements", self.measurements, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.ai = AIController(self.grid, self.registry, self.results, self)
        self.ai.panel.toolChanged.connect(self.set_tool)
        self.ai_dock = self._dock("AI", "ai", self.ai.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.measurements_dock, self.ai_dock)
        self.ai_dock.raise_()

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_controllers(self) -> None:
        self.loader = SeriesLoader(self.db, self.cache, self)
        self.loader.seriesReady.connect(self._series_ready)
        self.loader.loadFailed.connect(self._load_failed)
        self.loader.segmentationRead.connect(self._segmentation_read)
        self.imports = ImportController(self.db, self.settings, self.browser, self)
        self.imports.seriesToOpen.connect(lambda sid: self.open_series(sid))
        self.reports = ReportController(self.grid, self.store, self.ai, self)
        self.regular_grid = RegularGridController(self.grid, self)
        self.regular_grid.resampled.connect(lambda done: self._show(done.series, done.view))
        self.smart = SmartController(self.grid, self.ai, parent=self)
        self.fusion = FusionController(self.grid, self.db, self)
        self.hanging = HangingController(self, self.settings.protocols_path, self)
        self.compare = CompareController(self.grid, self)
        self.hanging.apply_on_open = self.settings.hanging_on_open
        for controller in (self.loader, self.imports, self.reports, self.regular_grid,
                           self.smart, self.fusion, self.hanging, self.compare):
            controller.statusMessage.connect(self.statusBar().showMessage)

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.readout_label = QLabel("")
        bar.addWidget(self.readout_label, 1)
        bar.addPermanentWidget(self.imports.progress)
        bar.addPermanentWidget(self.imports.cancel_button)

    # -- settings ------------------------------------------------------------------------

    def _restore(self) -> None:
        geometry, state = self.settings.window_geometry(), self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        if state is not None:
            self.restoreState(state)
        else:
            self.resizeDocks(
                [self.browser_dock, self.ai_dock], [340, 440], Qt.Orientation.Horizontal
            )
        self.set_layout(self.settings.layout if self.settings.layout in LAYOUTS else "1x1")

    def closeEvent(self, event) -> None:
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.imports.shutdown()
        self.browser.shutdown()
        self.ai.shutdown()
        self.loader.shutdown()
        self.grid.close_views()
        self.reports.close()
        workers.shutdown(10_000)
        self.ai.flush()  # after the workers: the last edit is written, never an older copy
        super().closeEvent(event)

    def set_cache_gb(self, gb: float) -> None:
        """Bound the volume cache (evicting as needed) and remember the bound."""
        self.settings.cache_gb = gb
        self.cache.resize(int(gb * GIGABYTE))

    # -- layout, tools and the active view -----------------------------------------------

    def set_layout(self, name: str) -> None:
        """Switch the viewport layout (and remember it)."""
        self.grid.set_layout(name)
        self.actions_by_name[f"layout_{name}"].setChecked(True)
        self.settings.layout = name

    def set_tool(self, tool: str) -> None:
        """The left-button tool of every viewport (navigate, measure, brush...)."""
        self.grid.set_tool(tool)
        action = self.actions_by_name.get(f"tool_{tool}")
        if action is not None and not action.isChecked():
            action.setChecked(True)
        self.ai.panel.edit_controls.set_tool(tool)

    def toggle_cine(self, play: bool) -> None:
        """Play or pause the cine loop of the active view."""
        view = self.grid.active
        if view is None:
            return
        if play:
            view.play_cine(self.window_actions.fps.value())
        else:
            view.stop_cine()

    def resample_active(self) -> workers.Job | None:
        """Resample the active series onto a regular grid (see :class:`RegularGridController`).

        The result replaces it in its slot; opening the series again shows it as acquired.
        """
        return self.regular_grid.resample_active()

    def _sync_view_actions(self) -> None:
        view = self.grid.active
        self.actions_by_name["cine"].setChecked(bool(view is not None and view.playing))
        irregular = self.regular_grid.irregular_series() is not None
        self.actions_by_name["regular_grid"].setEnabled(irregular)
        self.window_actions.sync_slab()
        self.window_actions.sync_fusion()
        self.window_actions.sync_lock()

    def undo_edit(self) -> None:
        """Undo the last prompt of the Smart object under way, else the last label edit."""
        if not self.smart.undo():
            self.ai.undo()

    def redo_edit(self) -> None:
        """Redo a Smart prompt taken back, else a label edit."""
        if not self.smart.redo():
            self.ai.redo()

    # -- opening series ------------------------------------------------------------------

    def open_series(self, series_id: int, view: SliceView | None = None, *,
                    reload: bool = False) -> None:
        """Open a database series in the slot of `view` (default: the active viewport);
        with `reload`, read its files again rather than show a cached volume (a series that
        gained instances, e.g. while retrieved from a PACS).

        A DICOM SEG series opens its source series with the segmentation drawn over it.
        """
        if self.db.series_modality(series_id) == "SEG":
            self.loader.read_segmentation(self.db.first_instance_location(series_id), view)
            return
        if reload:
            self.loader.cache.discard(("db", series_id))
        self.open_source(("db", series_id), series_id, view)

    def open_source(
        self, key: Hashable, source: SeriesSource, view: SliceView | None = None
    ) -> workers.Job | None:
        """Show a series from the cache or load it progressively in the background.

        Opening another series into the same slot cancels this one's unfinished load.
        """
        slot = self.grid.slot_of(view if view is not None else self.grid.active)
        return self.loader.load(LoadRequest(key, source, slot, view))

    def _series_ready(self, ready: SeriesReady) -> None:
        if ready.replaces is None:
            self._show(ready.series, ready.request.view)
        else:  # the loader widened the volume: show it where the first one is
            self._replace_series(ready.replaces, ready.series)

    def _show(self, series: OpenSeries, view: SliceView | None) -> None:
        if view is not None and view not in self.grid.views:
            view = None
        slot = self.grid.show_series(series, view)
        unique = Qt.ConnectionType.UniqueConnection
        series.loadFinished.connect(self._sync_view_actions, type=unique)
        self._sync_view_actions()
        shown = self.grid.views_of(slot)
        self.hanging.series_shown(shown[0] if shown else None)

    def _replace_series(self, previous: OpenSeries, series: OpenSeries) -> None:
        """Put `series` in every slot that shows `previous`."""
        for slot, shown in list(self.grid.slots.items()):
            views = self.grid.views_of(slot)
            if shown is previous and views:
                self.grid.show_series(series, views[0])
            elif shown is previous:
                self.grid.slots[slot] = series  # a slot the layout hides: shown when it returns

    def _load_failed(self, failed: LoadFailed) -> None:
        for view in self.grid.views:
            if failed.series is not None and view.series is failed.series:
                view.render()

    def _segmentation_read(self, read: SegmentationRead) -> None:
        self.ai.add_result(read.result)
        self.open_series(read.source_id, read.view)
        message = f"Segmentation {read.result.title()} on its source series"
        self.statusBar().showMessage(message, 6000)

    # -- importing -----------------------------------------------------------------------

    def import_paths(
        self, paths: Sequence[str | os.PathLike[str]], then_open: bool = False
    ) -> None:
        """Import files/folders in the background; the tree fills in as series are found.

        With `then_open`, the first series of the import is opened when it finishes.
        """
        self.imports.import_paths(paths, then_open)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_paths(paths, then_open=True)

    # -- reports -------------------------------------------------------------------------

    def export_report(self) -> ReportDialog | None:
        """Open the export dialog for the active view's series (accepting the Smart objects
        under way first, so their figures are measured for it)."""
        self.smart.accept_all()
        return self.reports.export()
