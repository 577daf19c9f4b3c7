"""The reading commands of a viewport: slice, window, VOI LUT, inversion, reset, fit, zoom,
crosshair and cine.

:class:`ReadingCommands` is a mixin of :class:`~medviewer.ui.slice_view.SliceView`: a command
makes a new :class:`~medviewer.core.viewstate.ViewState` and hands it to the view's
``set_state``, which draws it, or moves the ViewBox, the crosshair or the cine timer. What the
commands need from the view is :class:`ReadingHost`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF

from medviewer.core.geometry import PlaneSlice
from medviewer.core.slab import Slab, cycled, stepped
from medviewer.core.viewstate import ViewState, preset_for_key, voi_luts_of
from medviewer.core.volume import Volume
from medviewer.ui.cine import Cine
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.pending_slice import PendingSlice
from medviewer.ui.slice_display import initial_state_of
from medviewer.ui.tools.crosshair import Crosshair
from medviewer.ui.tools.pan_zoom import PanZoom


class ReadingHost(Protocol):
    """The view the commands act on (and the commands they call on each other)."""

    series: OpenSeries | None
    state: ViewState | None
    plane_slice: PlaneSlice | None
    viewbox: pg.ViewBox
    image_item: pg.ImageItem
    pan_zoom: PanZoom
    pending_slice: PendingSlice
    crosshair: Crosshair
    cine: Cine

    @property
    def volume(self) -> Volume | None: ...
    def set_state(self, state: ViewState) -> None: ...
    def set_index(self, index: int) -> None: ...
    def set_window(self, center: float, width: float) -> None: ...
    def fit(self) -> None: ...
    def index_of(self, point: np.ndarray) -> int | None: ...


class ReadingCommands:
    """Slice, window, zoom, crosshair and cine commands of a viewport (a mixin of SliceView)."""

    def set_index(self: ReadingHost, index: int) -> None:
        """Show slice `index` of the plane (clamped), over any wheel or key steps not shown."""
        self.pending_slice.discard()
        if self.state is not None:
            self.set_state(self.state.at(index))

    def scroll(self: ReadingHost, step: int) -> None:
        """Move `step` slices now (wheel and keys go through ``pending_slice`` instead)."""
        self.pending_slice.discard()
        if self.state is not None:
            self.set_state(self.state.scrolled(step))

    def set_window(self: ReadingHost, center: float, width: float) -> None:
        """Set window level and width (modality units)."""
        if self.state is not None:
            self.set_state(self.state.windowed(center, width))

    def apply_preset(self: ReadingHost, key: int) -> bool:
        """Window preset of number key `key`; False when there is none."""
        if self.volume is None or self.state is None:
            return False
        preset = preset_for_key(self.volume, key)
        if preset is None:
            return False
        self.set_window(preset.center, preset.width)
        return True

    def set_voi_lut(self: ReadingHost, index: int) -> bool:
        """Show the image through VOI LUT `index` of the series; False when there is none."""
        if self.volume is None or self.state is None or self.volume.is_color:
            return False
        luts = voi_luts_of(self.volume.metadata)
        if not 0 <= index < len(luts):
            return False
        self.set_state(self.state.through_lut(index, luts[index]))
        return True

    def set_slab(self: ReadingHost, slab: Slab | None) -> None:
        """Show a thick-slab projection around the slice (None: the slice alone). Colour
        images have none."""
        if self.state is None or self.volume is None:
            return
        if slab is not None and (self.volume.is_color or self.state.count <= 1
                                 or self.state.rotation is not None):
            return  # a colour image or a single slice has nothing to project; no oblique slab
        self.set_state(self.state.with_slab(slab))

    def cycle_slab(self: ReadingHost) -> None:
        """The slab key (M): off, MIP, MinIP, average, off."""
        if self.state is not None:
            self.set_slab(cycled(self.state.slab))  # type: ignore[attr-defined]

    def step_slab(self: ReadingHost, step: int) -> None:
        """The thickness keys (] thicker, [ thinner; see :func:`medviewer.core.slab.stepped`)."""
        if self.state is not None:
            self.set_slab(stepped(self.state.slab, step))  # type: ignore[attr-defined]

    def set_invert(self: ReadingHost, invert: bool) -> None:
        """Invert grey levels."""
        if self.state is not None:
            self.set_state(replace(self.state, invert=invert))

    def reset(self: ReadingHost) -> None:
        """Default window, no inversion unless MONOCHROME1, fit to the window."""
        if self.series is not None and self.state is not None:
            fresh = initial_state_of(self.series, self.state.plane)
            # the MPR axes stay (View > Reset MPR axes returns to the acquisition's)
            self.set_state(replace(fresh, index=self.state.index, count=self.state.count,
                                   rotation=self.state.rotation))
            self.fit()

    def fit(self: ReadingHost) -> None:
        """Zoom so the whole slice fits the viewport."""
        if self.plane_slice is not None:
            self.viewbox.autoRange(items=[self.image_item], padding=0.02)

    def zoom_by(self: ReadingHost, factor: float, center: QPointF | None = None) -> None:
        """Zoom in (factor > 1) or out around `center` (view coordinates)."""
        self.pan_zoom.zoom_by(factor, center)

    @property
    def zoom(self: ReadingHost) -> float:
        """Screen pixels per image pixel along the columns."""
        return self.pan_zoom.zoom(self.plane_slice)

    def set_crosshair(self: ReadingHost, xyz: np.ndarray | None, move: bool = True) -> None:
        """Put the crosshair on an LPS point and (with `move`) show the slice that holds it."""
        self.crosshair.point = None if xyz is None else np.asarray(xyz, float)
        if move and xyz is not None and self.volume is not None and self.state is not None:
            index = self.index_of(xyz)
            if index is not None and index != self.state.index:
                self.set_index(index)
                return
        self.crosshair.place(self.plane_slice)

    def show_crosshair(self: ReadingHost, visible: bool) -> None:
        """Toggle the crosshair lines."""
        self.crosshair.visible = visible
        self.crosshair.place(self.plane_slice)

    @property
    def crosshair_visible(self: ReadingHost) -> bool:
        """False when the crosshair lines are hidden (see :meth:`show_crosshair`)."""
        return self.crosshair.visible

    @crosshair_visible.setter
    def crosshair_visible(self: ReadingHost, visible: bool) -> None:
        self.crosshair.visible = visible

    @property
    def crosshair_point(self: ReadingHost) -> np.ndarray | None:
        """The crosshair's LPS point, or None."""
        return self.crosshair.point

    @crosshair_point.setter
    def crosshair_point(self: ReadingHost, xyz: np.ndarray | None) -> None:
        self.crosshair.point = xyz

    @property
    def h_line(self: ReadingHost) -> pg.InfiniteLine:
        """The crosshair's horizontal line."""
        return self.crosshair.h_line

    @property
    def v_line(self: ReadingHost) -> pg.InfiniteLine:
        """The crosshair's vertical line."""
        return self.crosshair.v_line

    def play_cine(self: ReadingHost, fps: float) -> None:
        """Loop through the slices at `fps` frames per second."""
        self.cine.play(fps)

    def stop_cine(self: ReadingHost) -> None:
        """Stop the cine loop."""
        self.cine.stop()

    @property
    def playing(self: ReadingHost) -> bool:
        """True while the cine loop runs."""
        return self.cine.playing
