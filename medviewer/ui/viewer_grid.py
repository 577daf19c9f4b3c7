"""The viewport layouts (1x1, 1x2, 1x3 MPR, 2x2) and the crosshair linking between them."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from medviewer.core.findings import AIResult, OverlayStyle
from medviewer.core.geometry import native_plane
from medviewer.core.oblique import rotation_about
from medviewer.core.registration import RigidMap
from medviewer.ui.comparison import SlotLink
from medviewer.ui.fusion_layer import Fusion
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView

# layout -> [(slot, plane, row, col)]: slot "A" is the primary series, "B" the comparison one.
LAYOUTS: dict[str, list[tuple[str, str, int, int]]] = {
    "1x1": [("A", "axial", 0, 0)],
    "1x2": [("A", "axial", 0, 0), ("B", "axial", 0, 1)],
    "1x3": [("A", "axial", 0, 0), ("A", "coronal", 0, 1), ("A", "sagittal", 0, 2)],
    "2x2": [
        ("A", "axial", 0, 0),
        ("A", "coronal", 0, 1),
        ("A", "sagittal", 1, 0),
        ("B", "axial", 1, 1),
    ],
}


class ViewerGrid(QWidget):
    """The viewports of one layout, the series in each slot, and the linked crosshair.

    Signals
    -------
    activeChanged(object)
        The active viewport (the one that receives opened series and keys) changed.
    activeStateChanged(object)
        The active viewport's slice, window, slab or series changed (the view).
    seriesDropped(object, int)
        A browser series was dropped on a viewport (view, series id).
    labelsEdited(object)
        A brush/eraser stroke in some viewport changed an AIResult's label map (given).
    smartPrompt(object, object)
        A viewport's Smart tool made a prompt (view, prompt).
    smartCommand(object, str)
        A viewport asked to ``"accept"`` or ``"cancel"`` the Smart object (view, command).
    """

    activeChanged = Signal(object)
    activeStateChanged = Signal(object)
    seriesDropped = Signal(object, int)
    readout = Signal(str)
    labelsEdited = Signal(object)
    smartPrompt = Signal(object, object)
    smartCommand = Signal(object, str)

    def __init__(self, store: MeasurementStore | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store if store is not None else MeasurementStore()
        self.slots: dict[str, OpenSeries | None] = {"A": None, "B": None}
        self.views: list[SliceView] = []
        self._slot_of: dict[SliceView, str] = {}
        self.active: SliceView | None = None
        self.layout_name = ""
        self.crosshair = True
        self.tool = "navigate"
        self.overlays: dict[str, AIResult | None] = {"A": None, "B": None}
        self.fusions: dict[str, Fusion | None] = {"A": None, "B": None}
        self.comparison = SlotLink()
        self._showing = False
        self.rotations: dict[str, tuple[float, ...] | None] = {"A": None, "B": None}
        self.overlay_style = OverlayStyle()
        self.brush: tuple[float, int | None] = (3.0, None)  # radius mm, label (None: default)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.set_layout("1x1")

    # -- layout --------------------------------------------------------------------------

    def set_layout(self, name: str) -> None:
        """Rebuild the viewports for layout `name`, keeping the series in each slot."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {', '.join(LAYOUTS)}")
        for view in self.views:
            view.set_series(None)
            self._grid.removeWidget(view)
            view.deleteLater()
        self.views, self._slot_of = [], {}
        for slot, plane, row, col in LAYOUTS[name]:
            view = self._new_view()
            view.setProperty("plane", plane)
            self._slot_of[view] = slot
            self.views.append(view)
            self._grid.addWidget(view, row, col)
        self.layout_name = name
        self._set_active(self.views[0])
        for slot in self.slots:
            self._show_slot(slot)

    def _new_view(self) -> SliceView:
        view = SliceView(self.store, self)
        view.set_tool(self.tool)
        view.show_crosshair(self.crosshair)
        view.activated.connect(lambda v=view: self._set_active(v))
        view.cursorMoved.connect(lambda point, v=view: self.link_cursor(v, point))
        view.seriesDropped.connect(lambda sid, v=view: self.seriesDropped.emit(v, sid))
        view.readout.connect(self.readout)
        view.stateChanged.connect(lambda v=view: self._state_changed(v))
        view.set_overlay_style(self.overlay_style)
        view.brush_radius_mm, view.brush_label = self.brush
        view.labelsPainted.connect(lambda _result, v=view: self._labels_painted(v))
        view.labelsEdited.connect(self.labelsEdited)
        view.smartPrompt.connect(lambda prompt, v=view: self.smartPrompt.emit(v, prompt))
        view.smartCommand.connect(lambda command, v=view: self.smartCommand.emit(v, command))
        view.rotateRequested.connect(lambda degrees, v=view: self.rotate(v, degrees))
        view.viewbox.sigRangeChangedManually.connect(lambda *_a, v=view: self._range_changed(v))
        return view

    def _range_changed(self, view: SliceView) -> None:
        """The user zoomed or panned `view`: the other slot's linked views follow."""
        slot = self.slot_of(view)
        other = "B" if slot == "A" else "A"
        if self.slots.get(other) is not None:
            self.comparison.follow_range(view, slot, self.views_of(other))

    def _set_active(self, view: SliceView) -> None:
        if view is self.active:
            return
        self.active = view
        for other in self.views:
            other.set_active(other is view)
        self.activeChanged.emit(view)

    def _state_changed(self, view: SliceView) -> None:
        if view is self.active:
            self.activeStateChanged.emit(view)
        if self._showing:
            return  # a series being shown takes the other slot's place instead (_show_slot)
        slot = self.slot_of(view)
        other = "B" if slot == "A" else "A"
        if self.slots.get(other) is not None:
            self.comparison.follow(view, slot, self.views_of(other))

    # -- true oblique MPR ----------------------------------------------------------------

    def set_rotation(self, slot: str, rotation: tuple[float, ...] | np.ndarray | None) -> None:
        """Turn the MPR frame of every view of `slot` (3x3 rotation in LPS; None: back to the
        acquisition's planes). The three planes stay orthogonal."""
        kept = None if rotation is None else tuple(float(v) for v in np.ravel(rotation))
        self.rotations[slot] = kept
        for view in self.views_of(slot):
            view.set_rotation(kept)

    def rotate(self, view: SliceView, degrees: float) -> None:
        """Turn the frame of `view`'s slot by `degrees` about `view`'s normal: the other
        planes' lines turn that far counter-clockwise over this view's anatomy."""
        if view.plane_slice is None or degrees == 0:
            return
        # the screen's own normal (right x down): the same turning sense in every plane (the
        # sagittal plane's slice axis points the other way)
        screen = np.cross(view.plane_slice.affine[:3, 0], view.plane_slice.affine[:3, 1])
        normal = screen / np.linalg.norm(screen)
        slot = self.slot_of(view)
        current = self.rotations.get(slot)
        frame = np.eye(3) if current is None else np.asarray(current).reshape(3, 3)
        self.set_rotation(slot, rotation_about(normal, -degrees) @ frame)

    # -- comparison ----------------------------------------------------------------------

    def set_link(self, link: RigidMap) -> None:
        """Map slot A's patient space to slot B's (see :mod:`medviewer.ui.comparison`) and
        bring slot B's views to the active view's place."""
        self.comparison.map = link
        source = self.active if self.active is not None else self.views[0]
        self._state_changed(source)

    def link_at_crosshairs(self) -> RigidMap | None:
        """The link that puts slot B's crosshair on slot A's (the user pointed at the same
        anatomy in both); None unless both slots have a crosshair point."""
        points = [next((v.crosshair_point for v in self.views_of(slot)
                        if v.crosshair_point is not None), None) for slot in ("A", "B")]
        if points[0] is None or points[1] is None:
            return None
        link = RigidMap.from_points(points[0], points[1])
        self.set_link(link)
        return link

    def slot_of(self, view: SliceView | None) -> str:
        """The slot ("A" or "B") a view belongs to ("A" for None)."""
        return self._slot_of.get(view, "A") if view is not None else "A"

    def views_of(self, slot: str) -> list[SliceView]:
        """The viewports that show a slot's series."""
        return [v for v in self.views if self._slot_of[v] == slot]

    # -- series --------------------------------------------------------------------------

    def show_series(self, series: OpenSeries | None, view: SliceView | None = None) -> str:
        """Put `series` in the slot of `view` (default: the active view); returns the slot."""
        slot = self.slot_of(view if view is not None else self.active)
        self.slots[slot] = series
        self.rotations[slot] = None  # a series opens on its acquisition's planes
        self._show_slot(slot)
        return slot

    def _show_slot(self, slot: str) -> None:
        self._showing = True
        try:
            self._show_slot_views(slot)
        finally:
            self._showing = False
        other = "B" if slot == "A" else "A"
        sources = self.views_of(other) if self.slots.get(other) is not None else []
        for view in self.views_of(slot) if self.slots.get(slot) is not None else []:
            source = next((v for v in sources if v.state is not None and view.state is not None
                           and v.state.plane == view.state.plane), None)  # fmt: skip
            if source is not None:  # the new series joins the other slot's place and window
                self.comparison.follow(source, other, [view])

    def _show_slot_views(self, slot: str) -> None:
        series = self.slots[slot]
        views = self.views_of(slot)
        for n, view in enumerate(views):
            plane = view.property("plane")
            if series is not None and series.is_2d and n > 0:
                view.empty_message = "A single 2-D image: no MPR"
                view.set_series(None)
            else:
                view.empty_message = "Drop a series here or double-click one in the browser"
                if series is not None and series.is_2d:
                    plane = native_plane(series.volume.affine)  # the image, not an edge of it
                view.set_series(series, plane)
                if self.rotations.get(slot) is not None:
                    view.set_rotation(self.rotations[slot])
                self._apply_overlay(view)
                self._apply_fusion(view)

    # -- linking -------------------------------------------------------------------------

    def link_cursor(self, source: SliceView, point: np.ndarray) -> None:
        """Move every view of the same frame of reference to the LPS `point`."""
        if source.series is None:
            return
        frame = source.series.frame_of_reference
        slot = self.slot_of(source)
        for view in self.views:
            if view is source or view.series is None:
                continue
            if view.series.frame_of_reference == frame:
                view.set_crosshair(point, move=True)
            elif self.comparison.enabled and view.linked and self.slot_of(view) != slot:
                view.set_crosshair(self.comparison.mapped(point, slot), move=True)

    def set_crosshair(self, visible: bool) -> None:
        """Show or hide the crosshair in every view."""
        self.crosshair = visible
        for view in self.views:
            view.show_crosshair(visible)

    def set_tool(self, tool: str) -> None:
        """The left-button tool of every view."""
        self.tool = tool
        for view in self.views:
            view.set_tool(tool)

    # -- fusion --------------------------------------------------------------------------

    def set_fusion(self, slot: str, fusion: Fusion | None) -> int:
        """Fuse `fusion`'s volume over the views of `slot` (None: no fusion); kept for new
        layouts and re-shown series of its frame of reference. Returns how many views show it.
        """
        self.fusions[slot] = fusion
        return sum(self._apply_fusion(view) for view in self.views_of(slot))

    def _apply_fusion(self, view: SliceView) -> bool:
        return view.set_fusion(self.fusions.get(self.slot_of(view)))

    # -- AI overlays ---------------------------------------------------------------------

    def set_overlay(self, slot: str, result: AIResult | None) -> None:
        """Draw `result` over the views of `slot` (kept for new layouts and re-shown series).

        It is drawn only while the slot shows the series it was computed on (same
        ``series_uid``).
        """
        self.overlays[slot] = result
        for view in self.views_of(slot):
            self._apply_overlay(view)

    def _apply_overlay(self, view: SliceView) -> None:
        result = self.overlays.get(self.slot_of(view))
        volume = view.volume
        if result is not None and (
            volume is None or volume.metadata.series_uid != result.prediction.series_uid
        ):
            result = None
        view.set_overlay(result)

    def set_overlay_style(self, style: OverlayStyle) -> None:
        """How overlays are drawn, in every view."""
        self.overlay_style = style
        for view in self.views:
            view.set_overlay_style(style)

    def refresh_overlays(self) -> None:
        """Re-read the drawn overlay slices of every view (a label map changed in place)."""
        for view in self.views:
            view.refresh_overlay()

    def _labels_painted(self, source: SliceView) -> None:
        for view in self.views:
            if view is not source:  # the painting view has redrawn itself
                view.refresh_overlay()

    def set_brush(self, radius_mm: float, label: int | None = None) -> None:
        """Brush/eraser radius and label (None or 0: the overlay's first segment) of every view."""
        self.brush = (float(radius_mm), label or None)
        for view in self.views:
            view.brush_radius_mm, view.brush_label = self.brush

    def focus_on(self, point_lps: np.ndarray, size_mm: float, slot: str | None = None) -> None:
        """Show an LPS point in every view of its frame of reference, zoomed around it.

        Each view puts its crosshair on the point (on the slice holding it) and zooms so a
        square of ``max(size_mm * 3, 30)`` mm centred on it fills the view.

        Parameters
        ----------
        point_lps : numpy.ndarray
            The point, LPS mm.
        size_mm : float
            Size of what is shown there (a finding's diameter).
        slot : str, optional
            The slot whose series the point belongs to (default: the active view's).
        """
        series = self.slots[slot if slot is not None else self.slot_of(self.active)]
        if series is None:
            return
        point = np.asarray(point_lps, float)
        side = max(float(size_mm) * 3.0, 30.0)
        for view in self.views:
            if view.series is None or view.series.frame_of_reference != series.frame_of_reference:
                continue
            view.set_crosshair(point, move=True)
            x, y, _ = view.patient_to_view(point)
            view.viewbox.setRange(QRectF(x - side / 2, y - side / 2, side, side), padding=0.0)

    def close_views(self) -> None:
        """Stop cine loops and drop the series (before the window closes)."""
        for view in self.views:
            view.set_series(None)
