"""The report side of a main window: key images from the viewer and the export dialog.

The controller keeps a :class:`~medviewer.ui.report_dialog.ReportDraft` per series (the
impression and the key images added from the viewer), the hidden print-size view that renders
key images, and the open export dialog. The report modules (pydicom, highdicom, reportlab)
load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from medviewer.core.volume import VolumeMetadata
from medviewer.ui.ai_controller import AIController
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.slice_view import SliceView
from medviewer.ui.viewer_grid import ViewerGrid

if TYPE_CHECKING:
    from medviewer.ui.key_images import KeyImageRenderer
    from medviewer.ui.report_dialog import ReportDialog, ReportDraft


class ReportController(QObject):
    """Builds reports of the active viewport's series.

    Parameters
    ----------
    grid : ViewerGrid
        The viewports; reports are of the active one's series.
    store : MeasurementStore
        The measurements listed in reports.
    ai : AIController
        The AI results, their overlay style, and the measurement of the last label edit.
    parent : QWidget
        The window: Qt parent and parent of the export dialog.

    Signals
    -------
    statusMessage(str, int)
        Text for the status bar and how long to show it (ms; 0 until replaced).
    """

    statusMessage = Signal(str, int)

    def __init__(
        self, grid: ViewerGrid, store: MeasurementStore, ai: AIController, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.grid = grid
        self.store = store
        self.ai = ai
        self._window = parent
        self.drafts: dict[str, ReportDraft] = {}  # series UID -> impression, key images
        self.dialog: ReportDialog | None = None
        self._key_renderer: KeyImageRenderer | None = None

    def _report_view(self) -> SliceView | None:
        view = self.grid.active
        if view is None or view.series is None:
            self.statusMessage.emit("Open a series first", 4000)
            return None
        return view

    def add_view(self) -> None:
        """Add what the active view shows (overlay, zoom, window) as a key image."""
        view = self._report_view()
        if view is None:
            return
        from medviewer.ui.key_images import KeyImageRenderer, key_image_like
        from medviewer.ui.report_dialog import ReportDraft

        uid = view.series.volume.metadata.series_uid
        draft = self.drafts.setdefault(uid, ReportDraft())
        if self._key_renderer is None:  # one hidden print-size view, made on first use
            self._key_renderer = KeyImageRenderer(self.store)
        caption = f"Key image {len(draft.user_images) + 1} ({view.state.plane})"
        key = key_image_like(self._key_renderer, view, caption, view.overlay.result,
                             self.ai.style)
        self._key_renderer.view.set_series(None)  # let go of the series
        draft.user_images.append(key)
        self.statusMessage.emit(
            f"Added to the report ({len(draft.user_images)} key image(s) from the viewer)", 4000
        )

    def export(self) -> ReportDialog | None:
        """Open the export dialog for the active view's series.

        Returns None (and opens it later) while the last label edit is being measured.
        """
        view = self._report_view()
        if view is None:
            return None
        meta = view.series.volume.metadata
        if self.ai.measuring(meta.series_uid):  # export the figures of the last edit
            self.statusMessage.emit("Measuring the last edit; the export opens after it", 0)

            def again(_result) -> None:
                self.ai.editMeasured.disconnect(again)
                self.export()

            self.ai.editMeasured.connect(again)
            return None
        return self._open_dialog(view)

    def _open_dialog(self, view: SliceView) -> ReportDialog:
        from medviewer.ui.report_dialog import ReportDialog, ReportDraft, report_measurements

        meta = view.series.volume.metadata
        results = self.ai.findings.for_series(meta.series_uid)
        lines = report_measurements(view.series.volume, self.store.for_series(meta.series_uid))
        draft = self.drafts.setdefault(meta.series_uid, ReportDraft())
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = ReportDialog(
            view.series, results, lines, draft, folder=default_export_folder(meta),
            style=self.ai.style, window=view.state.linear_window, voi_lut=view.state.voi_lut,
            parent=self._window,
        )
        self.dialog.destroyed.connect(self._dialog_gone)
        self.dialog.show()
        return self.dialog

    def _dialog_gone(self) -> None:
        self.dialog = None

    def close(self) -> None:
        """Free the key image renderer (the window is closing)."""
        if self._key_renderer is not None:
            self._key_renderer.close()


def default_export_folder(meta: VolumeMetadata) -> Path:
    """``<Documents>/medviewer exports/<patient id>_<study date>_<series number>``."""
    import platformdirs

    from medviewer.report.export import safe_name

    name = safe_name(f"{meta.patient_id or 'series'}_{meta.study_date}_{meta.series_number or ''}")
    return Path(platformdirs.user_documents_dir()) / "medviewer exports" / name
