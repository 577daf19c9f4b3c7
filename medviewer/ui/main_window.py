"""The main window: composition root of the browser, viewports, tools, workers and settings."""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolBar,
    QWidget,
)
from superqt.utils import qthrottled

from medviewer import __version__
from medviewer.ai.registry import ModelRegistry
from medviewer.core import formatting as fmt
from medviewer.core.cache import GIGABYTE, VolumeCache
from medviewer.core.regular_grid import needs_regular_grid, resample_regular
from medviewer.core.viewstate import preset_for_key, voi_lut_names
from medviewer.io.database import ImportReport, StudyDatabase
from medviewer.io.results_store import ResultStore
from medviewer.io.scan import SkippedFile
from medviewer.io.series import LoadStarted, SlicesLoaded, iter_load
from medviewer.ui import workers
from medviewer.ui.ai_controller import AIController
from medviewer.ui.browser import StudyBrowser
from medviewer.ui.measurement_panel import MeasurementPanel
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.settings import Settings
from medviewer.ui.skipped_dialog import SkippedFilesDialog
from medviewer.ui.slice_view import TOOLS, SliceView
from medviewer.ui.viewer_grid import LAYOUTS, ViewerGrid

if TYPE_CHECKING:  # the report modules (pydicom, highdicom, reportlab) load on first use
    from medviewer.ui.key_images import KeyImageRenderer
    from medviewer.ui.report_dialog import ReportDialog, ReportDraft

TREE_REFRESH_MS = 500  # the study tree follows an import at most this often


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
        self.skipped: list[SkippedFile] = []
        self._loads: dict[str, workers.Job] = {}  # slot -> running load
        self._import_job: workers.Job | None = None
        self._import_queue: list[list[str]] = []
        self.report_drafts: dict[str, ReportDraft] = {}  # series UID -> impression, key images
        self.report_dialog: ReportDialog | None = None
        self._key_renderer: KeyImageRenderer | None = None
        self.setWindowTitle(f"medviewer {__version__}")
        self.setAcceptDrops(True)
        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_status()
        self._restore()

    # -- construction --------------------------------------------------------------------

    def _build_central(self) -> None:
        self.grid = ViewerGrid(self.store, self)
        self.grid.seriesDropped.connect(lambda view, sid: self.open_series(sid, view))
        self.grid.readout.connect(lambda text: self.readout_label.setText(text))
        self.grid.activeChanged.connect(lambda _v: self._sync_view_actions())
        self.setCentralWidget(self.grid)

    def _build_docks(self) -> None:
        self.browser = StudyBrowser(self.db)
        self.browser.seriesActivated.connect(lambda sid: self.open_series(sid))
        self._refresh_tree = qthrottled(self.browser.refresh, timeout=TREE_REFRESH_MS, parent=self)
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

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.readout_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_import)
        bar.addWidget(self.readout_label, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _build_actions(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        file_menu = self.menuBar().addMenu("&File")
        tools = QToolBar("Main")
        tools.setObjectName("toolbar_main")
        self.addToolBar(tools)
        self._file_actions(file_menu, tools)
        self._view_actions(self.menuBar().addMenu("&View"), tools)
        self._tool_actions(self.menuBar().addMenu("&Tools"), tools)
        self._ai_actions(self.menuBar().addMenu("&AI"))
        self._window_actions(self.menuBar().addMenu("&Window"))
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("about", "About medviewer", self._about))

    def _action(
        self, name: str, text: str, slot=None, shortcut: str | None = None, checkable: bool = False
    ) -> QAction:
        action = QAction(text, self)
        action.setObjectName(f"action_{name}")
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        if slot is not None:
            (action.toggled if checkable else action.triggered).connect(slot)
        self.actions_by_name[name] = action
        return action

    def _file_actions(self, menu, toolbar: QToolBar) -> None:
        folder = self._action("import_folder", "Import folder…", self.ask_import_folder, "Ctrl+O")
        files = self._action("import_files", "Import files…", self.ask_import_files, "Ctrl+Shift+O")
        menu.addAction(folder)
        menu.addAction(files)
        self.recent_menu = menu.addMenu("Recent folders")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        menu.addAction(self._action("skipped", "Skipped files…", self.show_skipped))
        menu.addAction(
            self._action("screenshot", "Save screenshot…", self.ask_screenshot, "Ctrl+S")
        )
        menu.addSeparator()
        menu.addAction(
            self._action("add_to_report", "Add view to report", self.add_view_to_report, "K")
        )
        menu.addAction(
            self._action("export_report", "Export report…", self.export_report, "Ctrl+E")
        )
        menu.addSeparator()
        menu.addAction(self._action("quit", "Quit", self.close, "Ctrl+Q"))
        toolbar.addAction(folder)
        toolbar.addAction(files)
        toolbar.addSeparator()

    def _view_actions(self, menu, toolbar: QToolBar) -> None:
        group = QActionGroup(self)
        for name in LAYOUTS:
            action = self._action(f"layout_{name}", name, checkable=True)
            action.triggered.connect(lambda _c=False, n=name: self.set_layout(n))
            group.addAction(action)
            menu.addAction(action)
            toolbar.addAction(action)
        toolbar.addSeparator()
        menu.addSeparator()
        crosshair = self._action("crosshair", "Crosshair", self.grid.set_crosshair, "C", True)
        crosshair.setChecked(True)
        for action in (
            crosshair,
            self._action("invert", "Invert", self._invert, "I"),
            self._action("reset", "Reset view", lambda: self._on_active("reset"), "R"),
            self._action("fit", "Fit to window", lambda: self._on_active("fit"), "F"),
        ):
            menu.addAction(action)
            toolbar.addAction(action)
        action = self._action("cine", "Play cine", self.toggle_cine, "Space", True)
        menu.addAction(action)
        toolbar.addAction(action)
        self.fps = QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setSuffix(" fps")
        self.fps.setValue(self.settings.cine_fps)
        self.fps.valueChanged.connect(self._fps_changed)
        toolbar.addWidget(self.fps)
        toolbar.addSeparator()
        menu.addSeparator()
        regular = self._action("regular_grid", "Resample onto a regular grid", self.resample_active)
        regular.setEnabled(False)
        menu.addAction(regular)
        menu.addAction(self._action("cache_size", "Volume cache size…", self.ask_cache_size))
        menu.addAction(self.browser_dock.toggleViewAction())
        menu.addAction(self.measurements_dock.toggleViewAction())
        menu.addAction(self.ai_dock.toggleViewAction())

    def _tool_actions(self, menu, toolbar: QToolBar) -> None:
        group = QActionGroup(self)
        keys = {
            "navigate": "N",
            "distance": "D",
            "angle": "A",
            "ellipse": "E",
            "rectangle": "T",
            "probe": "P",
            "brush": "B",
            "eraser": "X",
        }
        for tool in TOOLS:
            action = self._action(
                f"tool_{tool}", tool.capitalize(), shortcut=keys[tool], checkable=True
            )
            action.triggered.connect(lambda _c=False, t=tool: self.set_tool(t))
            group.addAction(action)
            menu.addAction(action)
            toolbar.addAction(action)
        self.actions_by_name["tool_navigate"].setChecked(True)

    def _ai_actions(self, menu) -> None:
        ai = self.ai
        for action in (
            self._action("run_classify", "Classify", lambda: ai.panel.run_task("classification")),
            self._action("run_segment", "Segment", lambda: ai.panel.run_task("segmentation")),
            self._action("run_all", "Run all applicable", lambda: ai.panel.run_task(None)),
        ):
            menu.addAction(action)
        menu.addSeparator()
        overlays = self._action("overlays", "Show overlays", ai.set_overlays_visible, "O", True)
        overlays.setChecked(True)
        ai.overlaysToggled.connect(overlays.setChecked)
        menu.addAction(overlays)
        menu.addAction(self._action("undo_edit", "Undo label edit", ai.undo, "Ctrl+Z"))
        menu.addAction(self._action("redo_edit", "Redo label edit", ai.redo, "Ctrl+Shift+Z"))
        menu.addAction(self._action("cancel_ai", "Cancel all AI jobs", ai.jobs.cancel_all))

    def set_tool(self, tool: str) -> None:
        """The left-button tool of every viewport (navigate, measure, brush...)."""
        self.grid.set_tool(tool)
        action = self.actions_by_name.get(f"tool_{tool}")
        if action is not None and not action.isChecked():
            action.setChecked(True)
        self.ai.panel.edit_controls.set_tool(tool)

    def _window_actions(self, menu) -> None:
        self.window_menu = menu
        menu.aboutToShow.connect(self._fill_window_menu)

    def _fill_window_menu(self) -> None:
        menu = self.window_menu
        menu.clear()
        view = self.grid.active
        volume = view.volume if view is not None else None
        if volume is not None:
            for key in range(1, 10):
                preset = preset_for_key(volume, key)
                if preset is not None:
                    action = menu.addAction(
                        f"{key}  {preset.name}  {fmt.window(preset.center, preset.width)}"
                    )
                    action.triggered.connect(lambda _c=False, k=key: self._preset(k))
            menu.addAction("0  Auto (robust percentiles)").triggered.connect(
                lambda: self._preset(0)
            )
            self._add_voi_lut_actions(menu, volume)
        menu.addSeparator()
        for name, center, width in self.settings.user_presets():
            action = menu.addAction(f"{name}  {fmt.window(center, width)}")
            action.triggered.connect(lambda _c=False, c=center, w=width: self._set_window(c, w))
        menu.addAction("Save current window as preset", self._save_preset)

    def _add_voi_lut_actions(self, menu, volume) -> None:
        """One menu entry per VOI LUT of the files (grey images only)."""
        if volume.is_color:
            return
        for index, name in enumerate(voi_lut_names(volume.metadata)):
            action = menu.addAction(name)
            action.triggered.connect(lambda _c=False, i=index: self._voi_lut(i))

    def _voi_lut(self, index: int) -> None:
        if self.grid.active is not None:
            self.grid.active.set_voi_lut(index)

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
        self._refresh_tree.cancel()
        self.browser.shutdown()
        self.ai.shutdown()
        for job in [*self._loads.values(), self._import_job]:
            if job is not None:
                job.cancel()
        self.grid.close_views()
        if self._key_renderer is not None:
            self._key_renderer.close()
        workers.shutdown(10_000)
        self.ai.flush()  # after the workers: the last edit is written, never an older copy
        super().closeEvent(event)

    # -- layout and view actions ---------------------------------------------------------

    def set_layout(self, name: str) -> None:
        """Switch the viewport layout (and remember it)."""
        self.grid.set_layout(name)
        self.actions_by_name[f"layout_{name}"].setChecked(True)
        self.settings.layout = name

    def _on_active(self, method: str) -> None:
        view = self.grid.active
        if view is not None:
            getattr(view, method)()

    def _invert(self) -> None:
        view = self.grid.active
        if view is not None and view.state is not None:
            view.set_invert(not view.state.invert)

    def _preset(self, key: int) -> None:
        if self.grid.active is not None:
            self.grid.active.apply_preset(key)

    def _set_window(self, center: float, width: float) -> None:
        if self.grid.active is not None:
            self.grid.active.set_window(center, width)

    def _save_preset(self) -> None:
        view = self.grid.active
        if view is None or view.state is None:
            return
        presets = self.settings.user_presets()
        name = f"User {len(presets) + 1}"
        self.settings.set_user_presets([*presets, (name, view.state.center, view.state.width)])
        self.statusBar().showMessage(f"Saved window preset {name}", 4000)

    def ask_cache_size(self) -> None:
        """Ask for the memory given to recently opened volumes."""
        from PySide6.QtWidgets import QInputDialog

        value, ok = QInputDialog.getDouble(
            self, "Volume cache", "Keep recently opened volumes up to (GB):",
            self.settings.cache_gb, 0.0, 256.0, 1,
        )  # fmt: skip
        if ok:
            self.set_cache_gb(value)

    def set_cache_gb(self, gb: float) -> None:
        """Bound the volume cache (evicting as needed) and remember the bound."""
        self.settings.cache_gb = gb
        self.cache.resize(int(gb * GIGABYTE))

    def toggle_cine(self, play: bool) -> None:
        """Play or pause the cine loop of the active view."""
        view = self.grid.active
        if view is None:
            return
        if play:
            view.play_cine(self.fps.value())
        else:
            view.stop_cine()

    def _fps_changed(self, fps: int) -> None:
        self.settings.cine_fps = fps
        view = self.grid.active
        if view is not None and view.playing:
            view.play_cine(fps)

    def _sync_view_actions(self) -> None:
        view = self.grid.active
        self.actions_by_name["cine"].setChecked(bool(view is not None and view.playing))
        self.actions_by_name["regular_grid"].setEnabled(self._irregular_series() is not None)

    # -- regular grid --------------------------------------------------------------------

    def _irregular_series(self) -> OpenSeries | None:
        """The active view's series when it is loaded and some slice is shown off its true
        position (gantry tilt, uneven spacing)."""
        view = self.grid.active
        series = view.series if view is not None else None
        if series is None or series.error or not series.complete:
            return None
        return series if needs_regular_grid(series.volume) else None

    def resample_active(self) -> workers.Job | None:
        """Resample the active series onto a regular grid from its slices' true positions.

        Runs in a worker, then shows the resampled volume in the same slot (MPR, measurements
        and models then work on it); opening the series again shows it as acquired.
        """
        source = self._irregular_series()
        if source is None:
            self.statusBar().showMessage("The active series is on a regular grid already", 4000)
            return None
        slot, volume = self.grid.slot_of(self.grid.active), source.volume
        self.statusBar().showMessage("Resampling onto a regular grid…")
        return workers.start(
            lambda cancel: resample_regular(volume, cancel=cancel),
            name="regular grid",
            returned=lambda regular: self._show_regular(slot, source, regular),
            errored=lambda exc: self.statusBar().showMessage(f"Could not resample: {exc}", 15000),
        )

    def _show_regular(self, slot: str, source: OpenSeries, volume) -> None:
        views = self.grid.views_of(slot)
        if not views or self.grid.slots.get(slot) is not source:
            self.statusBar().showMessage("Resampled, but the view shows another series now", 8000)
            return
        self._show(OpenSeries(("regular grid", source.key), volume), views[0])
        self.statusBar().showMessage(volume.metadata.warnings[0], 15000)

    # -- opening series ------------------------------------------------------------------

    def open_series(self, series_id: int, view: SliceView | None = None) -> None:
        """Open a database series in the slot of `view` (default: the active viewport).

        A DICOM SEG series opens its source series with the segmentation drawn over it.
        """
        if self.db.series_modality(series_id) == "SEG":
            self.open_segmentation(self.db.first_instance_location(series_id), view)
            return
        self.open_source(("db", series_id), series_id, view)

    def open_segmentation(self, location: str, view: SliceView | None = None) -> workers.Job:
        """Read a SEG file onto its source series (in a worker), then show both."""
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

        def show(found) -> None:
            source_id, volume, result = found
            self.cache.put(("db", source_id), volume)
            self.ai.add_result(result)
            self.open_series(source_id, view)
            self.statusBar().showMessage(f"Segmentation {result.title()} on its source series",
                                         6000)

        self.statusBar().showMessage("Opening the segmentation and its source series…")
        return workers.start(
            task, name="open SEG", returned=show,
            errored=lambda exc: self.statusBar().showMessage(f"Could not open the SEG: {exc}",
                                                             15000),
        )

    def open_source(self, key: Hashable, source, view: SliceView | None = None) -> None:
        """Show a series from the cache or load it progressively in the background."""
        slot = self.grid.slot_of(view if view is not None else self.grid.active)
        previous = self._loads.pop(slot, None)
        if previous is not None:
            previous.cancel()  # switching series cancels the unfinished load
        cached = self.cache.get(key)
        if cached is not None:
            self._show(OpenSeries(key, cached), view)
            return
        state: dict = {}

        def task(cancel):
            return (yield from iter_load(source, db=self.db, cancel=cancel))

        state["job"] = self._loads[slot] = workers.start(
            task,
            name=f"load {key}",
            yielded=lambda event: self._on_load_event(key, view, state, event),
            returned=lambda volume: self._on_loaded(key, volume),
            errored=lambda exc: self._on_load_failed(state, exc),
        )

    def _show(self, series: OpenSeries, view: SliceView | None) -> None:
        if view is not None and view not in self.grid.views:
            view = None
        self.grid.show_series(series, view)
        unique = Qt.ConnectionType.UniqueConnection
        series.loadFinished.connect(self._sync_view_actions, type=unique)
        self._sync_view_actions()

    def _on_load_event(self, key, view, state: dict, event) -> None:
        if state["job"].is_cancelled():
            return  # superseded: events it queued before the cancel must not show it again
        if isinstance(event, LoadStarted):
            loaded = [False] * event.volume.array.shape[0]
            for index in event.loaded:
                loaded[index] = True
            series = OpenSeries(key, event.volume, loaded)  # type: ignore[arg-type]
            previous, state["series"] = state.get("series"), series
            if previous is not None:  # the loader widened the volume: show it where it was
                self._replace_series(previous, series)
                return
            self._show(series, view)
            for warning in event.volume.metadata.warnings:
                self.statusBar().showMessage(f"Warning: {warning}", 8000)
        elif isinstance(event, SlicesLoaded) and "series" in state:
            state["series"].mark_loaded(event.indices)

    def _replace_series(self, previous: OpenSeries, series: OpenSeries) -> None:
        """Put `series` in every slot that shows `previous` (a load's widened volume)."""
        for slot, shown in list(self.grid.slots.items()):
            views = self.grid.views_of(slot)
            if shown is previous and views:
                self.grid.show_series(series, views[0])
            elif shown is previous:
                self.grid.slots[slot] = series  # a slot the layout hides: shown when it returns

    def _on_loaded(self, key, volume) -> None:
        self.cache.put(key, volume)

    def _on_load_failed(self, state: dict, exc: BaseException) -> None:
        message = f"Could not open the series: {exc}"
        self.statusBar().showMessage(message, 15000)
        if "series" in state:
            state["series"].fail(message)
            for view in self.grid.views:
                if view.series is state["series"]:
                    view.render()

    # -- importing -----------------------------------------------------------------------

    def ask_import_folder(self) -> None:
        """Choose a folder and import it."""
        folder = QFileDialog.getExistingDirectory(self, "Import folder")
        if folder:
            self.import_paths([folder])

    def ask_import_files(self) -> None:
        """Choose files (DICOM, DICOMDIR, zip) and import them."""
        files, _ = QFileDialog.getOpenFileNames(self, "Import files")
        if files:
            self.import_paths(files)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_folders():
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _c=False, f=folder: self.import_paths([f]))

    def import_paths(
        self, paths: Sequence[str | os.PathLike[str]], then_open: bool = False
    ) -> None:
        """Import files/folders in the background; the tree fills in as series are found.

        With `then_open`, the first series of the import is opened when it finishes.
        """
        paths = [str(p) for p in paths]
        for path in paths:
            if os.path.isdir(path):
                self.settings.add_recent_folder(str(Path(path).resolve()))
        if self._import_job is not None and not self._import_job.done:
            self._import_queue.append(paths)
            return
        self._start_import(paths, then_open)

    def _start_import(self, paths: list[str], then_open: bool) -> None:
        def task(cancel, progress):
            return self.db.import_paths(paths, progress=progress, cancel=cancel)

        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.statusBar().showMessage(f"Importing {', '.join(paths)}")
        self._import_job = workers.start(
            task,
            name="import",
            progress=self._import_progress,
            returned=lambda report: self._import_done(report, paths, then_open),
            errored=lambda exc: self.statusBar().showMessage(f"Import failed: {exc}", 15000),
            finished=self._import_finished,
        )

    def _import_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self._refresh_tree()

    def _import_done(self, report: ImportReport, paths: list[str], then_open: bool) -> None:
        self.browser.refresh()
        self.skipped = list(report.skipped)
        text = f"Imported {report.read} files ({report.unchanged} unchanged)"
        if report.skipped:
            text += f", {len(report.skipped)} skipped (File > Skipped files…)"
        self.statusBar().showMessage(text, 15000)
        imported = self.db.series_under(paths)
        if then_open and imported:
            self.open_series(imported[0])

    def _import_finished(self) -> None:
        self._refresh_tree.cancel()  # the import's last refresh was _import_done's
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if self._import_queue:
            self._start_import(self._import_queue.pop(0), False)

    def cancel_import(self) -> None:
        """Stop the running import (what was committed stays indexed)."""
        self._import_queue.clear()
        if self._import_job is not None:
            self._import_job.cancel()
            self.statusBar().showMessage("Import cancelled", 5000)

    def show_skipped(self) -> None:
        """Open the report of files the last import skipped (path and reason)."""
        SkippedFilesDialog(self.skipped or self.db.skipped(), self).exec()

    # -- drag and drop of files ----------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_paths(paths, then_open=True)

    # -- misc ----------------------------------------------------------------------------

    def ask_screenshot(self) -> None:
        """Save the viewports as a PNG."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Save screenshot", "medviewer.png", "PNG (*.png)"
        )
        if path:
            self.grid.grab().save(path, "PNG")

    # -- reports -------------------------------------------------------------------------

    def _report_series(self):
        view = self.grid.active
        if view is None or view.series is None:
            self.statusBar().showMessage("Open a series first", 4000)
            return None
        return view

    def add_view_to_report(self) -> None:
        """Add what the active view shows (overlay, zoom, window) as a key image."""
        view = self._report_series()
        if view is None:
            return
        from medviewer.ui.key_images import KeyImageRenderer, key_image_like
        from medviewer.ui.report_dialog import ReportDraft

        uid = view.series.volume.metadata.series_uid
        draft = self.report_drafts.setdefault(uid, ReportDraft())
        if self._key_renderer is None:  # one hidden print-size view, made on first use
            self._key_renderer = KeyImageRenderer(self.store)
        caption = f"Key image {len(draft.user_images) + 1} ({view.state.plane})"
        key = key_image_like(self._key_renderer, view, caption, view.overlay.result,
                             self.ai.style)
        self._key_renderer.view.set_series(None)  # let go of the series
        draft.user_images.append(key)
        self.statusBar().showMessage(
            f"Added to the report ({len(draft.user_images)} key image(s) from the viewer)", 4000
        )

    def export_report(self) -> ReportDialog | None:
        """Open the export dialog for the active view's series."""
        view = self._report_series()
        if view is None:
            return None
        from medviewer.ui.report_dialog import ReportDialog, ReportDraft, report_measurements

        meta = view.series.volume.metadata
        if self.ai.measuring(meta.series_uid):  # export the figures of the last edit
            self.statusBar().showMessage("Measuring the last edit; the export opens after it")

            def again(_result) -> None:
                self.ai.editMeasured.disconnect(again)
                self.export_report()

            self.ai.editMeasured.connect(again)
            return None
        results = self.ai.findings.for_series(meta.series_uid)
        lines = report_measurements(view.series.volume, self.store.for_series(meta.series_uid))
        draft = self.report_drafts.setdefault(meta.series_uid, ReportDraft())
        if self.report_dialog is not None:
            self.report_dialog.close()
        self.report_dialog = ReportDialog(
            view.series, results, lines, draft, folder=default_export_folder(meta),
            style=self.ai.style, window=view.state.linear_window, voi_lut=view.state.voi_lut,
            parent=self,
        )
        self.report_dialog.destroyed.connect(self._report_dialog_gone)
        self.report_dialog.show()
        return self.report_dialog

    def _report_dialog_gone(self) -> None:
        self.report_dialog = None

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About medviewer",
            f"medviewer {__version__}\nDICOM viewer with AI assist. Not for clinical use.",
        )


def default_export_folder(meta) -> Path:
    """``<Documents>/medviewer exports/<patient id>_<study date>_<series number>``."""
    import platformdirs

    from medviewer.report.export import safe_name

    name = safe_name(f"{meta.patient_id or 'series'}_{meta.study_date}_{meta.series_number or ''}")
    return Path(platformdirs.user_documents_dir()) / "medviewer exports" / name

