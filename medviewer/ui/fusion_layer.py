"""A fused volume (PET over CT) drawn over a viewport's image.

The layer samples the fused volume on the shown plane's pixels
(:func:`medviewer.core.fusion.sample_plane`, through both affines) each time the plane
changes, and colours it through its :class:`~medviewer.core.fusion.FusionStyle`; a style
change recolours the kept samples without sampling again. It draws only over a series of the
same frame of reference (the caller checks; registration is not done here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from medviewer.core.fusion import FusionStyle, colorize, sample_plane
from medviewer.core.geometry import PlaneSlice
from medviewer.core.volume import Volume

FUSION_Z = 0.5  # over the image, under the AI heatmap (1) and labels (2)


@dataclass(frozen=True)
class Fusion:
    """What a view fuses: the volume, the factor to display units (an SUV factor, else 1)
    and the display style."""

    volume: Volume
    style: FusionStyle

    @property
    def scale(self) -> float:
        """Image units to display units: SUVbw for a PET with a factor, else 1."""
        factor = self.volume.metadata.suv_bw_factor
        return 1.0 if factor is None else float(factor)

    @property
    def units(self) -> str:
        """The display units' name (``"SUV"`` or the volume's units)."""
        return "SUV" if self.volume.metadata.suv_bw_factor is not None else (
            self.volume.metadata.units)


class FusionLayer:
    """The fused volume's colour image in a ViewBox (one per viewport)."""

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(FUSION_Z)
        self.item.hide()
        viewbox.addItem(self.item)
        self.fusion: Fusion | None = None
        self.samples: np.ndarray | None = None  # display units on the shown plane's pixels
        self._key: tuple[object, ...] | None = None
        self.samplings = 0  # for tests and benchmarks

    def set_fusion(self, fusion: Fusion | None) -> None:
        """Fuse `fusion` (None: nothing) on the next :meth:`show_plane`."""
        if fusion is None or self.fusion is None or fusion.volume is not self.fusion.volume:
            self._key, self.samples = None, None
        self.fusion = fusion
        if fusion is None:
            self.item.hide()

    def show_plane(self, plane: PlaneSlice | None, rect: QRectF) -> None:
        """Sample the fused volume on `plane` (unless already done) and draw it in `rect`."""
        if self.fusion is None or plane is None:
            self.item.hide()
            return
        volume = self.fusion.volume
        key = (plane.image.shape[:2], tuple(np.round(plane.affine, 6).ravel()))
        if key != self._key or self.samples is None:
            self.samples = sample_plane(volume.array, volume.affine, plane, self.fusion.scale)
            self._key = key
            self.samplings += 1
        self.item.setImage(colorize(self.samples, self.fusion.style), autoLevels=False,
                           levels=None)  # fmt: skip
        self.item.setRect(rect)
        self.item.show()

    def value_at(self, row: int, col: int) -> float | None:
        """The fused value (display units) at a pixel of the shown plane, None outside."""
        if self.samples is None or not (0 <= row < self.samples.shape[0]
                                        and 0 <= col < self.samples.shape[1]):
            return None
        value = float(self.samples[row, col])
        return None if np.isnan(value) else value
