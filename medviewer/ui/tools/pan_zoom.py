"""Pan (middle drag), zoom (Ctrl+wheel) and scroll (wheel) in a viewport's ViewBox.

:class:`RoutedViewBox` takes pyqtgraph's own mouse handling out of the ViewBox and hands the
events to the viewport, which routes them by button and tool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt

from medviewer.core.geometry import PlaneSlice

WHEEL_ZOOM = 1.15  # zoom factor of one wheel notch


class MouseRouter(Protocol):
    """Takes the mouse events of a :class:`RoutedViewBox`."""

    def on_wheel(self, ev) -> None:
        """A wheel event."""

    def on_drag(self, ev) -> None:
        """A drag event (any button)."""

    def on_click(self, ev) -> None:
        """A click event (any button)."""


class RoutedViewBox(pg.ViewBox):
    """A ViewBox whose mouse input goes to its viewport (reading conventions, not pyqtgraph's)."""

    def __init__(self, owner: MouseRouter) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner

    def wheelEvent(self, ev, axis=None) -> None:
        self._owner.on_wheel(ev)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:
        self._owner.on_drag(ev)

    def mouseClickEvent(self, ev) -> None:
        self._owner.on_click(ev)


class PanZoom:
    """Moves and scales a ViewBox; the plain wheel scrolls slices instead.

    Parameters
    ----------
    viewbox : pyqtgraph.ViewBox
    scroll : callable
        Moves the view by a number of slices.
    """

    def __init__(self, viewbox: pg.ViewBox, scroll: Callable[[int], None]) -> None:
        self._viewbox = viewbox
        self._scroll = scroll

    def wheel(self, ev) -> None:
        """Wheel scrolls slices; Ctrl+wheel zooms around the mouse."""
        steps = ev.delta() / 120.0
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(WHEEL_ZOOM**steps, self._viewbox.mapSceneToView(ev.scenePos()))
        else:
            self._scroll(-int(np.sign(steps)) * max(1, int(abs(steps))))

    def pan(self, ev) -> None:
        """Move the view with a drag event (the image follows the mouse)."""
        to_view = self._viewbox.mapSceneToView
        delta = to_view(ev.scenePos()) - to_view(ev.lastScenePos())
        self._viewbox.translateBy(x=-delta.x(), y=-delta.y())
        self._changed_by_user()

    def zoom_by(self, factor: float, center: QPointF | None = None) -> None:
        """Zoom in (factor > 1) or out around `center` (view coordinates)."""
        self._viewbox.scaleBy(s=(1.0 / factor, 1.0 / factor), center=center)
        self._changed_by_user()

    def _changed_by_user(self) -> None:
        """Tell linked views the user moved this one (pyqtgraph's own signal for it)."""
        self._viewbox.sigRangeChangedManually.emit(self._viewbox.state["mouseEnabled"])

    def zoom(self, plane_slice: PlaneSlice | None) -> float:
        """Screen pixels per image pixel along the columns of `plane_slice` (1 without one)."""
        if plane_slice is None or self._viewbox.width() <= 0:
            return 1.0
        mm_per_px = self._viewbox.viewRect().width() / self._viewbox.width()
        return plane_slice.pixel_spacing[1] / mm_per_px
