"""A fused volume (PET over CT) drawn over a viewport's image.

The layer samples the fused volume on the shown plane's pixels
(:func:`medviewer.core.fusion.sample_plane`, SimpleITK through both affines) each time the
plane changes, turns the samples into uint8 indices over the window and draws them through a
256-colour table (:func:`~medviewer.core.fusion.fusion_lut`): a colour map or opacity change
swaps the table only, a window change re-indexes the kept samples, neither samples again.
Samples are taken every :func:`sampling_step` pixels (half the fused volume's voxel). It
draws only over a series of the same frame of reference (the caller checks; registration
is not done here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from medviewer.core.fusion import FusionStyle, fusion_index, fusion_lut, sample_plane
from medviewer.core.geometry import PlaneSlice
from medviewer.core.plane_sampling import VolumeSampler
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


def sampling_step(fused: Volume, plane: PlaneSlice) -> int:
    """Plane pixels per fused sample: samples at least every half of the fused volume's
    finest voxel (a 4 mm PET over 0.7 mm CT pixels: every 2nd pixel), never coarser."""
    finest = float(np.min(np.linalg.norm(fused.affine[:3, :3], axis=0)))
    pixel = float(max(plane.pixel_spacing))
    return max(1, int(finest / (2.0 * pixel)))


def coarser_plane(plane: PlaneSlice, step: int) -> PlaneSlice:
    """`plane` sampled every `step` pixels: sample (r, c) is the centre of the block of
    plane pixels ``r*step .. r*step+step-1`` (rows) by the same of columns."""
    if step == 1:
        return plane
    rows, cols = plane.image.shape[:2]
    affine = np.array(plane.affine, float)
    affine[:3, 3] += (step - 1) / 2.0 * (affine[:3, 0] + affine[:3, 1])
    affine[:3, :2] *= step
    shape = (-(-rows // step), -(-cols // step))
    return PlaneSlice(np.empty(shape, np.uint8), affine,
                      (plane.pixel_spacing[0] * step, plane.pixel_spacing[1] * step),
                      plane.edge_letters)  # fmt: skip


class FusionLayer:
    """The fused volume's colour image in a ViewBox (one per viewport)."""

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(FUSION_Z)
        self.item.hide()
        viewbox.addItem(self.item)
        self.fusion: Fusion | None = None
        self._sampler: VolumeSampler | None = None
        self.samples: np.ndarray | None = None  # display units on the shown plane's pixels
        self._key: tuple[object, ...] | None = None
        self._drawn_key: tuple[object, ...] | None = None
        self._drawn_window: tuple[float, float] | None = None
        self._drawn_style: FusionStyle | None = None
        self.samplings = 0  # for tests and benchmarks
        self.step = 1  # shown-plane pixels per sample, along rows and columns

    def set_fusion(self, fusion: Fusion | None) -> None:
        """Fuse `fusion` (None: nothing) on the next :meth:`show_plane`."""
        if fusion is None or self.fusion is None or fusion.volume is not self.fusion.volume:
            self._key, self.samples, self._drawn_key = None, None, None
            self._sampler = None if fusion is None else VolumeSampler(fusion.volume.array,
                                                                      fusion.volume.affine)
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
            self.step = sampling_step(volume, plane)
            coarse = coarser_plane(plane, self.step)
            self.samples = sample_plane(volume.array, volume.affine, coarse, self.fusion.scale,
                                        self._sampler)  # fmt: skip
            self._key = key
            self.samplings += 1
        style = self.fusion.style
        window = (style.low, style.high)
        if key != self._drawn_key or window != self._drawn_window:
            # uint8 indices drawn through a colour table (Indexed8: no per-pixel colour work)
            self.item.setImage(fusion_index(self.samples, *window), autoLevels=False,
                               levels=None)  # fmt: skip
            self._drawn_key, self._drawn_window = key, window
        if style != self._drawn_style:
            self.item.setLookupTable(fusion_lut(style))
            self._drawn_style = style
        rows, cols = self.samples.shape
        self.item.setRect(QRectF(rect.x(), rect.y(), rect.width() * cols * self.step
                                 / plane.image.shape[1], rect.height() * rows * self.step
                                 / plane.image.shape[0]))  # fmt: skip
        self.item.show()

    def value_at_point(self, lps: np.ndarray) -> float | None:
        """The fused value (display units) at an LPS point, linear as drawn; None outside."""
        if self.fusion is None or self._sampler is None:
            return None
        point = np.eye(4)
        point[:3, 3] = np.asarray(lps, float)  # a one-pixel plane on the point
        value = float(self._sampler.sample(point, (1, 1))[0, 0]) * self.fusion.scale
        return None if np.isnan(value) else value

    def value_at(self, row: int, col: int) -> float | None:
        """The fused value (display units) at a pixel of the shown plane, None outside."""
        row, col = row // self.step, col // self.step
        if self.samples is None or not (0 <= row < self.samples.shape[0]
                                        and 0 <= col < self.samples.shape[1]):
            return None
        value = float(self.samples[row, col])
        return None if np.isnan(value) else value
