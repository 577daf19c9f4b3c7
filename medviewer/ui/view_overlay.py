"""The AI overlay commands of a viewport: show a result, style it, paint its label map.

:class:`OverlayCommands` is a mixin of :class:`~medviewer.ui.slice_view.SliceView`; the
overlay's layers are :class:`~medviewer.ui.overlay_items.PlaneOverlay`, the painting is the
view's :class:`~medviewer.ui.tools.brush.BrushPainter`. What the commands need from the view
is :class:`OverlayHost`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PySide6.QtCore import SignalInstance

from medviewer.core.findings import AIResult, OverlayStyle
from medviewer.core.geometry import PlaneSlice
from medviewer.core.viewstate import ViewState
from medviewer.core.volume import Volume
from medviewer.ui.overlay_items import PlaneOverlay, plane_rect
from medviewer.ui.tools.brush import BrushPainter


class OverlayHost(Protocol):
    """The view the commands act on (and the commands they call on each other)."""

    state: ViewState | None
    plane_slice: PlaneSlice | None
    tool: str
    overlay: PlaneOverlay
    brush_painter: BrushPainter
    labelsPainted: SignalInstance

    @property
    def volume(self) -> Volume | None: ...
    def end_brush_stroke(self) -> bool: ...
    def _overlay_fits(self) -> bool: ...
    def _draw_overlay(self) -> None: ...


class OverlayCommands:
    """AI overlay and brush commands of a viewport (a mixin of SliceView)."""

    def set_overlay(self: OverlayHost, result: AIResult | None) -> None:
        """Draw `result`'s label map and heatmap over the images (None: no overlay).

        A result on another grid than the shown volume (its ``prediction.shape``) is kept but
        not drawn.
        """
        if result is not self.overlay.result:
            self.end_brush_stroke()
        self.overlay.set_result(result)
        self._draw_overlay()

    def set_overlay_style(self: OverlayHost, style: OverlayStyle) -> None:
        """How the overlay is drawn (colours and opacity never reslice; outline does)."""
        self.overlay.set_style(style)
        self._draw_overlay()

    def refresh_overlay(self: OverlayHost) -> None:
        """Re-read the overlay's slice (its label map was changed in place)."""
        self.overlay.forget()
        self._draw_overlay()

    def overlay_rgba(self: OverlayHost) -> np.ndarray | None:
        """The overlay colours of the shown slice, ``(rows, cols, 4)`` uint8, or None."""
        return self.overlay.overlay_rgba()

    def _overlay_fits(self: OverlayHost) -> bool:
        result = self.overlay.result
        return (
            result is not None
            and self.volume is not None
            and tuple(result.prediction.shape) == tuple(self.volume.shape)
        )

    def _draw_overlay(self: OverlayHost) -> None:
        if self.state is None or self.plane_slice is None or not self._overlay_fits():
            self.overlay.hide()
            return
        rect = plane_rect(self.plane_slice)
        if self.state.rotation is not None:
            self.overlay.show_sampled(self.plane_slice, rect)
        else:
            self.overlay.show_plane(self.state.plane, self.state.index, rect)

    def _labels_painted(self: OverlayHost, result: AIResult) -> None:
        self._draw_overlay()
        self.labelsPainted.emit(result)

    @property
    def brush_label(self: OverlayHost) -> int:
        """The label the brush paints (default: the first segment of the overlay, else 1)."""
        return self.brush_painter.label

    @brush_label.setter
    def brush_label(self: OverlayHost, label: int | None) -> None:
        self.brush_painter.label = label

    @property
    def brush_radius_mm(self: OverlayHost) -> float:
        """The radius of the brush and the eraser, mm."""
        return self.brush_painter.radius_mm

    @brush_radius_mm.setter
    def brush_radius_mm(self: OverlayHost, radius_mm: float) -> None:
        self.brush_painter.radius_mm = radius_mm

    def brush_dab(self: OverlayHost, point_lps: np.ndarray, erase: bool | None = None) -> int:
        """Paint (or erase) a disk of ``brush_radius_mm`` at an LPS point of the shown plane.

        Part of the open stroke (see :meth:`end_brush_stroke`). `erase` defaults to the tool
        being the eraser. Returns how many voxels changed (0 without a segmentation overlay).
        """
        erase = self.tool == "eraser" if erase is None else erase
        return self.brush_painter.paint([np.asarray(point_lps, float)], erase)

    def end_brush_stroke(self: OverlayHost) -> bool:
        """Close the stroke as one undo step; emits labelsEdited when it changed labels."""
        return self.brush_painter.end_stroke()
