"""The main window's menus and toolbar: its named actions and what they do to the active view.

:class:`WindowActions` builds the File, View, Tools, AI, Window and Help menus and the main
toolbar of a :class:`MenuHost` (the main window), and keeps every action by name
(``actions["tool_brush"]``). The Window menu is filled each time it opens: the window presets
of the active series (keys 1-9), its VOI LUTs, and the user's presets.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QMenu,
    QMenuBar,
    QMessageBox,
    QSpinBox,
    QStatusBar,
    QToolBar,
    QWidget,
)

from medviewer import __version__
from medviewer.core import formatting as fmt
from medviewer.core.oblique import IDENTITY
from medviewer.core.slab import Slab
from medviewer.core.viewstate import preset_for_key, voi_lut_names
from medviewer.core.volume import Volume
from medviewer.ui.ai_controller import AIController
from medviewer.ui.compare_controller import CompareController
from medviewer.ui.fusion_controller import FusionController, FusionControls
from medviewer.ui.hanging_controller import HangingController
from medviewer.ui.import_controller import ImportController
from medviewer.ui.report_controller import ReportController
from medviewer.ui.settings import Settings
from medviewer.ui.settings_dialog import SettingsDialog
from medviewer.ui.slab_controls import SlabControls
from medviewer.ui.slice_view import TOOLS
from medviewer.ui.tag_browser import TagBrowser, shown_file
from medviewer.ui.viewer_grid import LAYOUTS, ViewerGrid

TOOL_KEYS = {
    "navigate": "N",
    "distance": "D",
    "angle": "A",
    "ellipse": "E",
    "rectangle": "T",
    "probe": "P",
    "brush": "B",
    "eraser": "X",
    "smart": "S",
}


class MenuHost(Protocol):
    """What the menus act on: the main window's parts and commands."""

    grid: ViewerGrid
    settings: Settings
    ai: AIController
    imports: ImportController
    reports: ReportController
    browser_dock: QDockWidget
    measurements_dock: QDockWidget
    ai_dock: QDockWidget
    fusion: FusionController
    hanging: HangingController
    compare: CompareController

    def window(self) -> QWidget:
        """The window itself (``QWidget.window``): parent of the actions and dialogs."""
        ...

    def menuBar(self) -> QMenuBar: ...

    def addToolBar(self, toolbar: QToolBar) -> None: ...

    def statusBar(self) -> QStatusBar: ...

    def close(self) -> bool: ...

    def set_layout(self, name: str) -> None: ...

    def set_tool(self, tool: str) -> None: ...

    def toggle_cine(self, play: bool) -> None: ...

    def resample_active(self) -> object: ...

    def set_cache_gb(self, gb: float) -> None: ...

    def undo_edit(self) -> None: ...

    def export_report(self) -> object: ...

    def redo_edit(self) -> None: ...


class WindowActions:
    """Builds the menus and the main toolbar of `window` and keeps the actions by name.

    Parameters
    ----------
    window : MenuHost
        The main window.

    Attributes
    ----------
    by_name : dict of str to QAction
        Every action by name (``"import_folder"``, ``"layout_1x3"``, ``"tool_brush"``...).
    fps : QSpinBox
        The cine speed on the toolbar.
    window_menu : QMenu
        The Window menu (window presets and VOI LUTs of the active series).
    """

    def __init__(self, window: MenuHost) -> None:
        self._host = window
        self._parent = window.window()
        self.by_name: dict[str, QAction] = {}
        menus = window.menuBar()
        toolbar = QToolBar("Main")
        toolbar.setObjectName("toolbar_main")
        window.addToolBar(toolbar)
        self._file_actions(menus.addMenu("&File"), toolbar)
        self._view_actions(menus.addMenu("&View"), toolbar)
        self._tool_actions(menus.addMenu("&Tools"), toolbar)
        self._ai_actions(menus.addMenu("&AI"))
        self.window_menu = menus.addMenu("&Window")
        self.window_menu.aboutToShow.connect(self.fill_window_menu)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self._action("shortcuts", "Keyboard shortcuts…", self.show_shortcuts,
                                         "F1"))
        help_menu.addAction(self._action("about", "About medviewer", self._about))
        self.shortcuts_dialog: QDialog | None = None
        self.tag_browser: TagBrowser | None = None
        self.settings_dialog: SettingsDialog | None = None

    def _action(
        self,
        name: str,
        text: str,
        slot: Callable | None = None,
        shortcut: str | None = None,
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self._parent)
        action.setObjectName(f"action_{name}")
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        if slot is not None:
            (action.toggled if checkable else action.triggered).connect(slot)
        self.by_name[name] = action
        return action

    # -- menus ---------------------------------------------------------------------------

    def _file_actions(self, menu: QMenu, toolbar: QToolBar) -> None:
        host, imports, reports = self._host, self._host.imports, self._host.reports
        folder = self._action("import_folder", "Import folder…", imports.ask_folder, "Ctrl+O")
        files = self._action("import_files", "Import files…", imports.ask_files, "Ctrl+Shift+O")
        menu.addAction(folder)
        menu.addAction(files)
        self.recent_menu = menu.addMenu("Recent folders")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        menu.addAction(self._action("pacs", "Query / Retrieve (PACS)…", imports.open_pacs,
                                    "Ctrl+Shift+P"))
        menu.addAction(self._action("send_series", "Send series to PACS…", imports.send_series))
        menu.addAction(self._action("listen", "Receive studies (storage SCP)…",
                                    imports.open_listener))
        menu.addAction(self._action("skipped", "Skipped files…", imports.show_skipped))
        menu.addAction(self._action("tags", "DICOM tags of the image…", self.show_tags,
                                    "Ctrl+Shift+T"))
        menu.addAction(
            self._action("screenshot", "Save screenshot…", self._ask_screenshot, "Ctrl+S")
        )
        menu.addSeparator()
        menu.addAction(self._action("add_to_report", "Add view to report", reports.add_view, "K"))
        menu.addAction(self._action("export_report", "Export report…", host.export_report,
                                    "Ctrl+E"))
        menu.addSeparator()
        menu.addAction(self._action("settings", "Settings…", self.show_settings, "Ctrl+,"))
        menu.addAction(self._action("quit", "Quit", host.close, "Ctrl+Q"))
        toolbar.addAction(folder)
        toolbar.addAction(files)
        toolbar.addSeparator()

    def _view_actions(self, menu: QMenu, toolbar: QToolBar) -> None:
        self._layout_actions(menu, toolbar)
        crosshair = self._action("crosshair", "Crosshair", self._host.grid.set_crosshair, "C", True)
        crosshair.setChecked(True)
        for action in (
            crosshair,
            self._action("invert", "Invert", self._invert, "I"),
            self._action("reset", "Reset view", lambda: self._on_active("reset"), "R"),
            self._action("fit", "Fit to window", lambda: self._on_active("fit"), "F"),
            self._action("cine", "Play cine", self._host.toggle_cine, "Space", True),
        ):
            menu.addAction(action)
            toolbar.addAction(action)
        self.fps = QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setSuffix(" fps")
        self.fps.setValue(self._host.settings.cine_fps)
        self.fps.valueChanged.connect(self._fps_changed)
        toolbar.addWidget(self.fps)
        toolbar.addSeparator()
        self.slab = SlabControls()
        self.slab.slabChanged.connect(self._slab_changed)
        toolbar.addWidget(self.slab)
        toolbar.addSeparator()
        self.fusion_controls = FusionControls(self._host.fusion)
        self.fusion_action = toolbar.addWidget(self.fusion_controls)
        self._host.fusion.fusionChanged.connect(self.sync_fusion)
        self.fusion_action.setVisible(False)
        menu.addSeparator()
        self._view_menu_tail(menu)

    def _layout_actions(self, menu: QMenu, toolbar: QToolBar) -> None:
        group = QActionGroup(self._parent)
        for name in LAYOUTS:
            action = self._action(f"layout_{name}", name, checkable=True)
            action.triggered.connect(lambda _c=False, n=name: self._host.set_layout(n))
            group.addAction(action)
            menu.addAction(action)
            toolbar.addAction(action)
        toolbar.addSeparator()
        menu.addSeparator()

    def _view_menu_tail(self, menu: QMenu) -> None:
        host = self._host
        regular = self._action("regular_grid", "Resample onto a regular grid", host.resample_active)
        regular.setEnabled(False)
        menu.addAction(regular)
        menu.addSeparator()
        menu.addAction(self._action("fuse", "Fuse PET/NM over the series…",
                                    lambda: host.fusion.fuse_active(), "Ctrl+Shift+F"))
        menu.addAction(self._action("unfuse", "Remove fusion", host.fusion.remove))
        menu.addSeparator()
        mpr = menu.addMenu("MPR axes")
        mpr.addAction(self._action("reset_axes", "Reset MPR axes (acquisition planes)",
                                   lambda: self._set_rotation(None), "Ctrl+Shift+R"))
        mpr.addAction(self._action("patient_axes", "True axial/coronal/sagittal (resampled)",
                                   lambda: self._set_rotation(IDENTITY)))
        self._hanging_menu(menu.addMenu("Hanging protocol"))
        self._compare_menu(menu.addMenu("Compare"))
        menu.addSeparator()
        menu.addAction(self._action("cache_size", "Volume cache size…", self._ask_cache_size))
        for dock in (host.browser_dock, host.measurements_dock, host.ai_dock):
            menu.addAction(dock.toggleViewAction())

    def _tool_actions(self, menu: QMenu, toolbar: QToolBar) -> None:
        group = QActionGroup(self._parent)
        for tool in TOOLS:
            action = self._action(
                f"tool_{tool}", tool.capitalize(), shortcut=TOOL_KEYS[tool], checkable=True
            )
            action.triggered.connect(lambda _c=False, t=tool: self._host.set_tool(t))
            group.addAction(action)
            menu.addAction(action)
            toolbar.addAction(action)
        self.by_name["tool_navigate"].setChecked(True)

    def _ai_actions(self, menu: QMenu) -> None:
        ai = self._host.ai
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
        menu.addAction(self._action("undo_edit", "Undo label edit", self._host.undo_edit, "Ctrl+Z"))
        menu.addAction(self._action("redo_edit", "Redo label edit", self._host.redo_edit,
                                    "Ctrl+Shift+Z"))
        menu.addAction(self._action("cancel_ai", "Cancel all AI jobs", ai.jobs.cancel_all))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self._host.settings.recent_folders():
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(
                lambda _c=False, f=folder: self._host.imports.import_paths([f])
            )

    # -- the Window menu -----------------------------------------------------------------

    def fill_window_menu(self) -> None:
        """List the presets and VOI LUTs of the active series and the user's presets."""
        menu = self.window_menu
        menu.clear()
        view = self._host.grid.active
        volume = view.volume if view is not None else None
        if volume is not None:
            self._add_preset_actions(menu, volume)
            self._add_voi_lut_actions(menu, volume)
        menu.addSeparator()
        for name, center, width in self._host.settings.user_presets():
            action = menu.addAction(f"{name}  {fmt.window(center, width)}")
            action.triggered.connect(lambda _c=False, c=center, w=width: self._set_window(c, w))
        menu.addAction("Save current window as preset", self._save_preset)

    def _add_preset_actions(self, menu: QMenu, volume: Volume) -> None:
        """Keys 1-9: the presets for the series' modality and body part; 0: auto."""
        for key in range(1, 10):
            preset = preset_for_key(volume, key)
            if preset is not None:
                action = menu.addAction(
                    f"{key}  {preset.name}  {fmt.window(preset.center, preset.width)}"
                )
                action.triggered.connect(lambda _c=False, k=key: self._preset(k))
        menu.addAction("0  Auto (robust percentiles)").triggered.connect(lambda: self._preset(0))

    def _add_voi_lut_actions(self, menu: QMenu, volume: Volume) -> None:
        """One menu entry per VOI LUT of the files (grey images only)."""
        if volume.is_color:
            return
        for index, name in enumerate(voi_lut_names(volume.metadata)):
            action = menu.addAction(name)
            action.triggered.connect(lambda _c=False, i=index: self._voi_lut(i))

    # -- what the actions do to the active view ------------------------------------------

    def _on_active(self, method: str) -> None:
        view = self._host.grid.active
        if view is not None:
            getattr(view, method)()

    def _slab_changed(self, slab: Slab | None) -> None:
        view = self._host.grid.active
        if view is not None:
            view.set_slab(slab)

    def sync_slab(self) -> None:
        """Show the active view's slab in the toolbar."""
        view = self._host.grid.active
        self.slab.show_state(view.state if view is not None else None)

    def _hanging_menu(self, menu: QMenu) -> None:
        hanging = self._host.hanging
        menu.addAction(self._action("hang", "Apply the matching protocol",
                                    lambda: hanging.apply(), "Ctrl+H"))
        self.protocols_menu = menu.addMenu("Apply")
        self.protocols_menu.aboutToShow.connect(self._fill_protocols)
        menu.addAction(self._action("save_protocol", "Save this arrangement as a protocol…",
                                    self._save_protocol))
        on_open = self._action("hang_on_open", "Apply when a series opens",
                               self._hang_on_open, checkable=True)
        on_open.setChecked(self._host.settings.hanging_on_open)
        menu.addAction(on_open)

    def _set_rotation(self, rotation: tuple[float, ...] | None) -> None:
        grid = self._host.grid
        grid.set_rotation(grid.slot_of(grid.active), rotation)

    def _compare_menu(self, menu: QMenu) -> None:
        grid, compare = self._host.grid, self._host.compare
        link = self._action("link_slots", "Link the two series (scroll, window)",
                            self._link_slots, "Ctrl+L", checkable=True)
        link.setChecked(grid.comparison.enabled)
        menu.addAction(link)
        menu.addAction(self._action("lock_view", "This viewport follows the link",
                                    self._lock_view, checkable=True))
        self.by_name["lock_view"].setChecked(True)
        menu.addAction(self._action("link_here", "Link at the crosshairs (same anatomy)",
                                    compare.link_at_crosshairs))
        menu.addAction(self._action("register", "Register the second series (rigid)",
                                    compare.register))

    def _link_slots(self, checked: bool) -> None:
        self._host.grid.comparison.enabled = checked

    def _lock_view(self, checked: bool) -> None:
        view = self._host.grid.active
        if view is not None:
            view.linked = checked

    def sync_lock(self) -> None:
        """Show the active viewport's lock in the Compare menu."""
        view = self._host.grid.active
        action = self.by_name["lock_view"]
        action.blockSignals(True)
        action.setChecked(view is None or view.linked)
        action.blockSignals(False)

    def _fill_protocols(self) -> None:
        self.protocols_menu.clear()
        for protocol in self._host.hanging.protocols():
            self.protocols_menu.addAction(protocol.name,
                                          partial(self._host.hanging.apply, protocol))

    def _save_protocol(self) -> None:
        name, ok = QInputDialog.getText(self._parent, "Save hanging protocol", "Name:")
        if ok and name.strip():
            self._host.hanging.save_current(name.strip())

    def _hang_on_open(self, checked: bool) -> None:
        self._host.settings.hanging_on_open = checked
        self._host.hanging.apply_on_open = checked

    def show_settings(self) -> SettingsDialog:
        """File > Settings: cache, cine, hanging protocols, storage SCP, presets, PACS nodes."""
        host = self._host

        def hanging(on: bool) -> None:
            self.by_name["hang_on_open"].setChecked(on)  # its slot stores and applies it

        dialog = SettingsDialog(host.settings, host.set_cache_gb, hanging, self._parent)
        dialog.accepted.connect(lambda: self.fps.setValue(host.settings.cine_fps))
        dialog.show()
        self.settings_dialog = dialog
        return dialog

    def show_tags(self) -> None:
        """Open the tag browser on the file of the image the active view shows."""
        view = self._host.grid.active
        location = shown_file(view) if view is not None else None
        if location is None:
            self._host.statusBar().showMessage("No DICOM image in the active view", 8000)
            return
        meta = view.volume.metadata  # type: ignore[union-attr]
        self.tag_browser = TagBrowser(location, meta.series_description, self._parent)
        self.tag_browser.show()

    def sync_fusion(self) -> None:
        """Show the fusion controls while the active view's slot has a fusion."""
        self.fusion_action.setVisible(self._host.fusion.active_fusion() is not None)
        self.fusion_controls.sync()

    def _invert(self) -> None:
        view = self._host.grid.active
        if view is not None and view.state is not None:
            view.set_invert(not view.state.invert)

    def _preset(self, key: int) -> None:
        if self._host.grid.active is not None:
            self._host.grid.active.apply_preset(key)

    def _set_window(self, center: float, width: float) -> None:
        if self._host.grid.active is not None:
            self._host.grid.active.set_window(center, width)

    def _voi_lut(self, index: int) -> None:
        if self._host.grid.active is not None:
            self._host.grid.active.set_voi_lut(index)

    def _save_preset(self) -> None:
        view, settings = self._host.grid.active, self._host.settings
        if view is None or view.state is None:
            return
        presets = settings.user_presets()
        name = f"User {len(presets) + 1}"
        settings.set_user_presets([*presets, (name, view.state.center, view.state.width)])
        self._host.statusBar().showMessage(f"Saved window preset {name}", 4000)

    def _fps_changed(self, fps: int) -> None:
        self._host.settings.cine_fps = fps
        view = self._host.grid.active
        if view is not None and view.playing:
            view.play_cine(fps)

    # -- dialogs -------------------------------------------------------------------------

    def _ask_screenshot(self) -> None:
        """Save the viewports as a PNG."""
        path, _ = QFileDialog.getSaveFileName(
            self._parent, "Save screenshot", "medviewer.png", "PNG (*.png)"
        )
        if path:
            self._host.grid.grab().save(path, "PNG")

    def _ask_cache_size(self) -> None:
        """Ask for the memory given to recently opened volumes."""
        from PySide6.QtWidgets import QInputDialog

        value, ok = QInputDialog.getDouble(
            self._parent, "Volume cache", "Keep recently opened volumes up to (GB):",
            self._host.settings.cache_gb, 0.0, 256.0, 1,
        )  # fmt: skip
        if ok:
            self._host.set_cache_gb(value)

    def show_shortcuts(self) -> None:
        """Help > Keyboard shortcuts (F1): every key, searchable (one window, raised again)."""
        from medviewer.ui.shortcuts_dialog import ShortcutsDialog

        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(self.by_name, self._parent)
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()

    def _about(self) -> None:
        QMessageBox.about(
            self._parent,
            "About medviewer",
            f"medviewer {__version__}\nDICOM viewer with AI assist. Not for clinical use.",
        )
