"""One viewport: a plane of a volume in a pyqtgraph view, with reading tools and annotations.

The view draws (image, overlay, crosshair, measurements, annotations) and routes input: the
mouse to the tools of :mod:`medviewer.ui.tools` by button and tool name, keys through the
table of :mod:`medviewer.ui.tools.keys`. View coordinates are millimetres on the displayed
plane (:mod:`medviewer.ui.plane_coords`); values and geometry come from ``medviewer.core``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget

from medviewer.core import measurements as mm
from medviewer.core.fusion import fusable
from medviewer.core.geometry import PlaneSlice, reslice
from medviewer.core.measurements import Measurement
from medviewer.core.oblique import ObliqueGrid, oblique_grid
from medviewer.core.plane_sampling import VolumeSampler
from medviewer.core.slab import SlabProjector
from medviewer.core.viewstate import ViewState, plane_index_of
from medviewer.ui.browser import SERIES_MIME
from medviewer.ui.cine import Cine
from medviewer.ui.fusion_layer import Fusion, FusionLayer
from medviewer.ui.measurement_layer import MeasurementLayer
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.overlay_items import BrushCursor, PlaneOverlay, plane_rect
from medviewer.ui.pending_slice import PendingSlice
from medviewer.ui.plane_coords import PlaneCoordinates, xy
from medviewer.ui.slice_annotations import Annotations, corner_text, readout_text
from medviewer.ui.slice_display import FrameWindow, initial_state_of, shown_lut
from medviewer.ui.tools import BRUSH_TOOLS, TOOLS, Tool, make_tools, route_drag
from medviewer.ui.tools.brush import BrushPainter
from medviewer.ui.tools.crosshair import Crosshair
from medviewer.ui.tools.keys import handle_key
from medviewer.ui.tools.pan_zoom import PanZoom, RoutedViewBox
from medviewer.ui.tools.window_level import WindowLevelDrag
from medviewer.ui.view_overlay import OverlayCommands
from medviewer.ui.view_reading import ReadingCommands

__all__ = ["BRUSH_TOOLS", "TOOLS", "SliceView", "corner_text", "initial_state_of"]
pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


class SliceView(ReadingCommands, OverlayCommands, PlaneCoordinates, QFrame):
    """A viewport showing one plane of an :class:`OpenSeries`.

    Mouse: wheel scrolls, Ctrl+wheel zooms, middle drag pans, right drag sets window/level,
    left button uses the current tool. Keys: arrows/PageUp/PageDown/Home/End scroll,
    0-9 window presets, I invert, R reset, F fit, Delete removes the selected measurement.

    Signals
    -------
    cursorMoved(object)
        The user put the crosshair on an LPS point (numpy array of 3).
    readout(str)
        Value and coordinates under the mouse, for the status bar.
    activated()
        The user clicked in the view (it becomes the active viewport).
    seriesDropped(int)
        A series from the browser was dropped onto the view.
    stateChanged()
        Slice, window, zoom or series changed.
    labelsPainted(object)
        A brush or eraser dab changed the label map of the overlay's AIResult (given).
    labelsEdited(object)
        A brush or eraser stroke ended having changed the AIResult's label map (one undo
        step); the receiver records the edit (statistics, ``mark_edited``).
    smartPrompt(object)
        The Smart tool made a prompt (:mod:`medviewer.ai.interactive`, LPS mm).
    smartCommand(str)
        With the Smart tool: ``"accept"`` (Enter) or ``"cancel"`` (Escape) the object.
    rotateRequested(float)
        Alt+drag with navigate: turn the MPR frame by these degrees about this view's normal.
    """

    cursorMoved = Signal(object)
    readout = Signal(str)
    activated = Signal()
    seriesDropped = Signal(int)
    stateChanged = Signal()
    labelsPainted = Signal(object)
    labelsEdited = Signal(object)
    smartPrompt = Signal(object)
    smartCommand = Signal(str)
    rotateRequested = Signal(float)

    def __init__(self, store: MeasurementStore | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store if store is not None else MeasurementStore()
        self.series: OpenSeries | None = None
        self.state: ViewState | None = None
        self.plane_slice: PlaneSlice | None = None
        self.tool = "navigate"
        self.identifying_text = True  # False for key images: no patient or study in the corners
        self.linked = True  # follows the other slot when comparing (the viewport's lock)
        self.empty_message = "Drop a series here or double-click one in the browser"
        self._frame = FrameWindow()
        self._slab = SlabProjector()
        self._oblique: tuple[tuple[object, ...], ObliqueGrid] | None = None
        self._oblique_array: np.ndarray | None = None
        self._sampler: VolumeSampler | None = None
        self.fast_oblique = False  # nearest-neighbour resampling (while the axes are dragged)
        self.cine = Cine(self, lambda: self.state, self.set_index)
        self._build()
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.set_active(False)
        self.measurement_layer = MeasurementLayer(self, self)
        self._build_input()

    def _build(self) -> None:
        self.graphics = pg.GraphicsView(background="k")
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.graphics.setAcceptDrops(False)
        self.viewbox = RoutedViewBox(self)
        self.graphics.setCentralItem(self.viewbox)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.image_item)
        self.overlay = PlaneOverlay(self.viewbox)
        self.fusion_layer = FusionLayer(self.viewbox)
        self.brush_cursor = BrushCursor(self.viewbox)
        self.crosshair = Crosshair(self.viewbox)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        layout.addWidget(self.graphics)
        self.annotations = Annotations(self)
        self.viewbox.sigRangeChanged.connect(lambda *_: self.annotations.describe(self))
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

    def _build_input(self) -> None:
        """The handlers of the wheel, the mouse buttons and the tools (see :meth:`on_drag`)."""
        self.pending_slice = PendingSlice(lambda: self.state, self.set_index, self)
        self.pan_zoom = PanZoom(self.viewbox, self.pending_slice.scroll)
        self.window_level = WindowLevelDrag(lambda: self.state, lambda: self.volume, self.set_state)
        self.brush_painter = BrushPainter(self.overlay, lambda: self.plane_slice,
                                          self._overlay_fits, self._labels_painted,
                                          self.labelsEdited.emit)  # fmt: skip
        self._tools: dict[str, Tool] = make_tools(
            self.viewbox, self.view_to_patient, self._point_at, self.measurement_layer.add,
            self.store.select, self.brush_painter, self.brush_cursor, self.smartPrompt.emit,
            lambda: self._modifiers, self.rotateRequested.emit, self._crossing,
        )  # fmt: skip
        self._modifiers = Qt.KeyboardModifier.NoModifier  # of the mouse event being handled

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.annotations.setGeometry(self.graphics.geometry())
        self.annotations.describe(self)

    def set_active(self, active: bool) -> None:
        """Draw the border of the active viewport."""
        color = "#3d8fd6" if active else "#202020"
        self.setStyleSheet(f"SliceView {{ border: 1px solid {color}; }}")

    # -- what is shown -------------------------------------------------------------------

    def set_series(self, series: OpenSeries | None, plane: str = "axial") -> None:
        """Show `plane` of `series` (None empties the view)."""
        if self.series is not None:
            self.series.slicesLoaded.disconnect(self._on_slices_loaded)
        self.pending_slice.discard()
        self.stop_cine()
        self.end_brush_stroke()
        self.overlay.set_result(None)
        self.fusion_layer.set_fusion(None)
        self.series = series
        self.measurement_layer.forget_results()
        self.crosshair.point = None
        if series is None:
            self.state, self.plane_slice = None, None
            self.image_item.clear()
            self.measurement_layer.sync()
            self.annotations.describe(self)
            self.stateChanged.emit()
            return
        state = initial_state_of(series, plane)
        series.slicesLoaded.connect(self._on_slices_loaded)
        self.state = state
        self.render()
        self.fit()
        self.stateChanged.emit()

    def set_fusion(self, fusion: Fusion | None) -> bool:
        """Draw `fusion`'s volume over the images (None: no fusion); False, and nothing
        fused, when it is not on the shown series' frame of reference."""
        if fusion is not None and not fusable(fusion.volume, self.volume):
            fusion = None
        if fusion is None and self.fusion_layer.fusion is None:
            return False
        self.fusion_layer.set_fusion(fusion)
        self.render()
        if self.series is None:
            self.annotations.describe(self)
        return fusion is not None

    @property
    def fusion(self) -> Fusion | None:
        """What is fused over the images, or None."""
        return self.fusion_layer.fusion

    @property
    def volume(self):
        """The shown volume, or None."""
        return None if self.series is None else self.series.volume

    def render(self) -> None:
        """Reslice, window and draw the current slice (and its measurements)."""
        if self.series is None or self.state is None:
            return
        volume = self.series.volume
        if self.state.rotation is not None and not volume.is_color:
            self.plane_slice = self._oblique_slice()
        else:
            self.plane_slice = reslice(volume.array, volume.affine, self.state.plane,
                                       self.state.index)  # fmt: skip
        if self.state.slab is not None and self.state.rotation is None and not volume.is_color:
            # the slab's projection replaces the image; its geometry is the centre plane's
            slab = self._slab.image(volume.array, volume.affine, self.state.plane,
                                    self.state.index, self.state.slab)  # fmt: skip
            self.plane_slice = replace(self.plane_slice, image=slab)
        frame = self._frame.frame(self.plane_slice.image, self.state, shown_lut(volume, self.state))
        # uint8 without levels: drawn as Grayscale8/RGB888, no per-frame colour table
        self.image_item.setImage(frame, autoLevels=False, levels=None)
        self.image_item.setRect(plane_rect(self.plane_slice))
        self.fusion_layer.show_plane(self.plane_slice, plane_rect(self.plane_slice))
        self._draw_overlay()
        self.crosshair.place(self.plane_slice)
        self.measurement_layer.sync()
        self.annotations.describe(self)

    # -- true oblique MPR ------------------------------------------------------------------

    def oblique_grid(self) -> ObliqueGrid | None:
        """The rotated plane's grid (None on the acquisition's own planes)."""
        if self.state is None or self.state.rotation is None or self.volume is None:
            return None
        volume = self.volume
        key = (id(volume.array), volume.array.shape, tuple(np.ravel(volume.affine)),
               self.state.rotation, self.state.plane)
        if self._oblique is None or self._oblique[0] != key or self._oblique_array is not (
                volume.array):
            grid = oblique_grid(volume.array.shape, volume.affine, self.state.rotation,
                                self.state.plane)  # fmt: skip
            self._oblique, self._oblique_array = (key, grid), volume.array
        return self._oblique[1]

    def _oblique_slice(self) -> PlaneSlice:
        grid = self.oblique_grid()
        volume = self.volume
        assert grid is not None and volume is not None and self.state is not None
        if self._sampler is None or self._sampler.array is not volume.array:
            self._sampler = VolumeSampler(volume.array, volume.affine)
        index = min(self.state.index, grid.count - 1)
        image = self._sampler.sample(grid.affine(index), grid.shape, nearest=self.fast_oblique)
        return grid.plane_slice(index, image)

    def set_rotation(self, rotation: tuple[float, ...] | None) -> None:
        """Show the plane in the MPR frame turned by `rotation` (9 floats, row-major; None:
        the acquisition's planes), keeping the crosshair point (else the shown centre) in view."""
        if self.state is None or self.volume is None or self.volume.is_color:
            return
        anchor = self.crosshair_point if self.crosshair_point is not None else self._centre_lps()
        switching = (rotation is None) != (self.state.rotation is None)
        before = self._crossing()
        if rotation is None:
            fresh = initial_state_of(self.series, self.state.plane)  # type: ignore[arg-type]
            state = replace(self.state, rotation=None, count=fresh.count)
        else:
            grid = oblique_grid(self.volume.array.shape, self.volume.affine, rotation,
                                self.state.plane)  # fmt: skip
            state = replace(self.state, rotation=tuple(float(v) for v in np.ravel(rotation)),
                            count=grid.count, slab=None)  # fmt: skip
        self.state = state
        index = self.index_of(anchor) if anchor is not None else None
        self.state = state.at(index if index is not None else state.count // 2)
        self.render()
        after = self._crossing()
        if switching or before is None or after is None:
            self.fit()
        else:  # turning further: the crossing stays where it is on screen, zoom kept
            self.viewbox.translateBy(x=after[0] - before[0], y=after[1] - before[1])
        self.stateChanged.emit()

    def index_of(self, point: np.ndarray) -> int | None:
        """The slice of the shown plane (acquisition or rotated) holding an LPS point."""
        if self.volume is None or self.state is None:
            return None
        grid = self.oblique_grid()
        if grid is not None:
            return grid.index_of(point)
        return plane_index_of(self.volume, self.state.plane, point)

    def _centre_lps(self) -> np.ndarray | None:
        if self.plane_slice is None:
            return None
        rows, cols = self.plane_slice.image.shape[:2]
        centre = self.plane_slice.affine @ np.array([(cols - 1) / 2, (rows - 1) / 2, 0.0, 1.0])
        return np.asarray(centre[:3])

    def _crossing(self) -> tuple[float, float] | None:
        """The crosshair's crossing in view coordinates (the shown centre without one)."""
        point = self.crosshair_point if self.crosshair_point is not None else self._centre_lps()
        if point is None or self.plane_slice is None:
            return None
        x, y, _ = self.patient_to_view(point)
        return float(x), float(y)

    def set_state(self, state: ViewState) -> None:
        """Show another slice/window of the same plane."""
        if state != self.state:
            self.state = state
            self.render()
            self.stateChanged.emit()

    def shown_voxel_slice(self) -> int:
        """The array slice (first axis) the axial view shows."""
        assert self.plane_slice is not None and self.volume is not None
        origin = mm.patient_to_screen(self.volume.affine, self.plane_slice.affine[:3, 3])
        return round(float(origin[2]))

    def _on_slices_loaded(self, indices: np.ndarray) -> None:
        if self.state is None or self.series is None:
            return
        self._slab.invalidate()  # projections and the resampling copy miss the new slices
        self._sampler = None
        if (self.state.plane != "axial" or self.state.slab is not None
                or self.state.rotation is not None
                or self.shown_voxel_slice() in set(indices.tolist())):
            self.render()
        else:
            self.annotations.describe(self)

    def _point_at(self, point: np.ndarray) -> None:
        self.set_crosshair(point, move=False)
        self.cursorMoved.emit(point)

    # -- input routing -------------------------------------------------------------------

    def on_wheel(self, ev) -> None:
        """Wheel scrolls slices; Ctrl+wheel zooms around the mouse."""
        self.pan_zoom.wheel(ev)

    def on_drag(self, ev) -> None:
        """Right: window/level; middle: pan; left: the current tool."""
        ev.accept()
        self._modifiers = ev.modifiers()
        button = ev.button()
        if button == Qt.MouseButton.RightButton:
            self.window_level.drag(ev)
        elif button == Qt.MouseButton.MiddleButton:
            self.pan_zoom.pan(ev)
        elif button == Qt.MouseButton.LeftButton and self.plane_slice is not None:
            if self._editing_blocked():
                return
            route_drag(self._tools[self.tool], ev, self.viewbox.mapSceneToView)

    def on_click(self, ev) -> None:
        """Left click: the current tool's click (crosshair, probe, angle point, dab...)."""
        self.activated.emit()
        self.setFocus()
        if ev.button() == Qt.MouseButton.LeftButton and self.plane_slice is not None:
            ev.accept()
            if self._editing_blocked():
                return
            self._modifiers = ev.modifiers()
            self._tools[self.tool].click(xy(self.viewbox.mapSceneToView(ev.scenePos())))

    def _editing_blocked(self) -> bool:
        """Label editing (brush, eraser, Smart) works on the acquisition's planes only: a
        rotated plane's pixels are not the label map's voxels."""
        blocked = (self.state is not None and self.state.rotation is not None
                   and (self.tool in BRUSH_TOOLS or self.tool == "smart"))  # fmt: skip
        if blocked:
            self.readout.emit("Editing labels works on the acquisition planes: "
                              "View > Reset MPR axes")  # fmt: skip
        return blocked

    def mousePressEvent(self, event) -> None:
        self.activated.emit()
        super().mousePressEvent(event)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.plane_slice is None or self.volume is None:
            return
        view = xy(self.viewbox.mapSceneToView(scene_pos))
        self.readout.emit(readout_text(self, self.view_to_patient(*view)))
        self._tools[self.tool].hover(view)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if handle_key(self, event):
            event.accept()
        else:
            super().keyPressEvent(event)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(SERIES_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        data = bytes(event.mimeData().data(SERIES_MIME)).decode("ascii", "replace").strip()
        if data.isdigit():
            event.acceptProposedAction()
            self.seriesDropped.emit(int(data))

    # -- tools and measurements ----------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        """Choose what the left button does (one of ``TOOLS``)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {', '.join(TOOLS)}")
        self.end_brush_stroke()
        self.tool = tool
        for handler in self._tools.values():
            handler.cancel()
        if tool not in BRUSH_TOOLS:
            self.brush_cursor.hide()

    def cancel_pending(self) -> None:
        """Forget the points of a half-made measurement and the selection (Escape); with the
        Smart tool, cancel the object being segmented."""
        for handler in self._tools.values():
            handler.cancel()
        self.store.select("")
        if self.tool == "smart":
            self.smartCommand.emit("cancel")

    def accept_pending(self) -> None:
        """With the Smart tool, accept the object being segmented (Enter)."""
        if self.tool == "smart":
            self.smartCommand.emit("accept")

    def delete_selected(self) -> None:
        """Delete the selected measurement."""
        if self.store.selected:
            self.store.remove(self.store.selected)

    def visible_measurements(self) -> list[Measurement]:
        """The measurements of the series drawn on the current slice."""
        return self.measurement_layer.visible()

    def measurement_text(self, measurement: Measurement) -> str:
        """The one-line result of a measurement on the current slice."""
        return self.measurement_layer.text(measurement)
