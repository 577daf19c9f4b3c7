"""The AI overlays of one viewport: a label map layer and a heatmap layer over the image.

Both layers are pyqtgraph ``ImageItem``s in the viewport's ViewBox, drawn from uint8 slices
through 256-entry RGBA lookup tables (pyqtgraph turns those into Indexed8 QImages with a
colour table, no per-pixel colour work in Python). The slices come from
:func:`~medviewer.core.geometry.reslice` with the prediction's affine, the very function and
grid the image is resliced with, so overlay pixels sit on image pixels by construction.

Caching: the drawn slice of each layer is kept with the key it was made for
(plane, index, result version, outline); re-rendering the same slice (window/level, zoom,
crosshair) finds the key unchanged and touches nothing. Lookup tables are rebuilt only when
the style or the result changes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsEllipseItem

from medviewer.core.findings import AIResult, OverlayStyle, Segment
from medviewer.core.geometry import Plane, PlaneSlice, reslice
from medviewer.core.label_edit import disk_voxels
from medviewer.core.plane_sampling import VolumeSampler

HEATMAP_Z = 1.0
LABEL_Z = 2.0
BRUSH_Z = 4.0  # below the crosshair (5) and the measurements (10)
FALLBACK_COLORMAP = "inferno"
BRUSH_PEN = pg.mkPen(QColor(255, 255, 255, 200), width=1, cosmetic=True)

_Key = tuple[object, ...]


def plane_rect(plane_slice: PlaneSlice) -> QRectF:
    """The view rectangle (mm) of a plane's pixels: pixel ``(c, r)`` centred on ``(c*sx, r*sy)``."""
    rows, cols = plane_slice.image.shape[:2]
    sy, sx = plane_slice.pixel_spacing
    return QRectF(-sx / 2, -sy / 2, cols * sx, rows * sy)


def label_lut(segments: dict[int, Segment], hidden: frozenset[int]) -> np.ndarray:
    """The 256x4 RGBA table of a label map: segment colours, opaque; 0, hidden and unknown clear.

    Parameters
    ----------
    segments : dict
        Label -> :class:`~medviewer.core.findings.Segment`.
    hidden : frozenset of int
        Labels not drawn.

    Returns
    -------
    numpy.ndarray
        ``(256, 4)`` uint8.
    """
    lut = np.zeros((256, 4), np.uint8)
    for label, segment in segments.items():
        if 0 < label < 256 and label not in hidden:
            lut[label] = (*segment.rgb, 255)
    return lut


@lru_cache(maxsize=8)
def _colormap_table(name: str) -> np.ndarray:
    try:
        cmap = pg.colormap.get(name)
    except (FileNotFoundError, KeyError, ValueError):
        cmap = pg.colormap.get(FALLBACK_COLORMAP)
    table = np.ascontiguousarray(cmap.getLookupTable(0.0, 1.0, 256, alpha=True), np.uint8)
    table.setflags(write=False)
    return table


def heatmap_lut(colormap: str, threshold: float) -> np.ndarray:
    """The 256x4 RGBA table of a heatmap quantised to 0-255.

    Parameters
    ----------
    colormap : str
        A pyqtgraph colormap name (``"inferno"``, ``"turbo"``, ``"viridis"``...); unknown
        names fall back to ``"inferno"``.
    threshold : float
        Entries below ``threshold * 255`` are transparent, the others opaque.

    Returns
    -------
    numpy.ndarray
        ``(256, 4)`` uint8.
    """
    lut = _colormap_table(colormap).copy()
    lut[:, 3] = np.where(np.arange(256) < threshold * 255.0, 0, 255)
    return lut


def outline(labels: np.ndarray) -> np.ndarray:
    """The boundary pixels of a label slice (a 4-neighbour differs), 0 elsewhere.

    Pixels on the edge of the slice count as boundary, so cut labels stay closed.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(rows, cols)`` labels.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype: the labels on boundary pixels, 0 inside and outside.
    """
    edge = np.ones(labels.shape, bool)
    inner = edge[1:-1, 1:-1]
    centre = labels[1:-1, 1:-1]
    inner[...] = (
        (centre != labels[:-2, 1:-1]) | (centre != labels[2:, 1:-1])
        | (centre != labels[1:-1, :-2]) | (centre != labels[1:-1, 2:])
    )  # fmt: skip
    return np.where(edge, labels, 0).astype(labels.dtype, copy=False)


def drawn_box(data: np.ndarray, lut: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels of `data` that `lut` draws (alpha > 0), or None.

    Returns
    -------
    tuple of int or None
        ``(row0, row1, col0, col1)``, ends exclusive; None when nothing is drawn.
    """
    opaque = lut[:, 3] > 0
    first = int(np.argmax(opaque))
    top = int(data.max())
    if not opaque[first] or top < first:
        return None
    # every value from the first drawn one up to the largest present drawn (labels with none
    # hidden, heatmap values above a threshold): a comparison, no lookup
    mask = data >= first if opaque[first : top + 1].all() else opaque[data]
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[r0:r1].any(axis=0))
    return r0, r1, int(cols[0]), int(cols[-1]) + 1


class _Layer:
    """One ImageItem drawing uint8 slices through a lookup table, with its cache key.

    Only the bounding box of the drawn pixels is given to the item (placed on the same pixel
    grid): painting the transparent rest of a slice costs as much as painting the image.
    """

    def __init__(self, viewbox: pg.ViewBox, z: float) -> None:
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(z)
        self.item.setVisible(False)
        viewbox.addItem(self.item, ignoreBounds=True)
        self.key: _Key | None = None
        self.data: np.ndarray | None = None
        self.rect = QRectF()
        self.lut = np.zeros((256, 4), np.uint8)
        self.box: tuple[int, int, int, int] | None = None

    @property
    def has_content(self) -> bool:
        """True when some pixel of the slice has an opaque LUT entry."""
        return self.box is not None

    def forget(self) -> None:
        """Drop the cached slice (the next draw reslices)."""
        self.key, self.data, self.box = None, None, None
        self.item.clear()

    def draw(self, key: _Key, data: np.ndarray, rect: QRectF) -> None:
        """Show `data` (contiguous uint8), the whole slice covering `rect` (view mm)."""
        self.key, self.data, self.rect = key, data, rect
        self._show()

    def set_lut(self, lut: np.ndarray) -> None:
        """Use another lookup table (no reslicing)."""
        if np.array_equal(lut, self.lut):
            return
        self.lut = lut
        if self.data is not None:
            self._show()

    def _show(self) -> None:
        assert self.data is not None
        self.box = drawn_box(self.data, self.lut)
        if self.box is None:
            return
        r0, r1, c0, c1 = self.box
        rows, cols = self.data.shape
        sx, sy = self.rect.width() / cols, self.rect.height() / rows
        self.item.setImage(self.data[r0:r1, c0:c1], autoLevels=False, levels=(0, 255), lut=self.lut)
        self.item.setRect(
            QRectF(self.rect.x() + c0 * sx, self.rect.y() + r0 * sy, (c1 - c0) * sx, (r1 - r0) * sy)
        )

    def rgba(self) -> np.ndarray | None:
        """The layer's colours through its lookup table, or None when nothing is drawn."""
        return None if self.data is None else self.lut[self.data]


class PlaneOverlay:
    """The label map and heatmap of one :class:`~medviewer.core.findings.AIResult`, drawn on
    one viewport's plane.

    Parameters
    ----------
    viewbox : pyqtgraph.ViewBox
        The viewport's ViewBox (coordinates: mm on the plane).

    Attributes
    ----------
    result : AIResult or None
        What is drawn.
    style : OverlayStyle
        How it is drawn.
    label_item : pyqtgraph.ImageItem
        The label map layer.
    heatmap_item : pyqtgraph.ImageItem
        The heatmap layer (below the labels).
    """

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self.result: AIResult | None = None
        self.style = OverlayStyle()
        self._labels = _Layer(viewbox, LABEL_Z)
        self._heatmap = _Layer(viewbox, HEATMAP_Z)
        self.label_item, self.heatmap_item = self._labels.item, self._heatmap.item
        self._shown = False
        self.reslices = 0  # reslice calls made (the cache's misses), for tests and benchmarks
        self._samplers: dict[str, tuple[np.ndarray, int, VolumeSampler]] = {}

    # -- what and how ----------------------------------------------------------------------

    def set_result(self, result: AIResult | None) -> None:
        """Draw `result` from the next :meth:`show_plane` on (None: nothing)."""
        if result is self.result:
            return
        self.result = result
        self._samplers.clear()
        self.forget()
        self._update_luts()

    def set_style(self, style: OverlayStyle) -> None:
        """Change colours, opacities, threshold, outline or visibility (never reslices)."""
        if style == self.style:
            return
        self.style = style
        self._update_luts()
        self._update_visibility()

    def forget(self) -> None:
        """Drop the cached slices: the next :meth:`show_plane` reslices (label map edited)."""
        self._labels.forget()
        self._heatmap.forget()
        self._update_visibility()

    def hide(self) -> None:
        """Draw nothing until the next :meth:`show_plane`."""
        self._shown = False
        self._update_visibility()

    # -- drawing ---------------------------------------------------------------------------

    def show_plane(self, plane: Plane, index: int, rect: QRectF) -> None:
        """Draw slice `index` of `plane` over `rect` (the image item's rect).

        Does nothing when the slice drawn last has the same plane, index, result version and
        outline mode.
        """
        self._shown = True
        result = self.result
        if result is not None:
            key = (plane, int(index), result.version, self.style.outline)
            if result.label_map is not None and self._labels.key != key:
                self._labels.draw(key, self._label_slice(result, plane, index), rect)
            heatmap = result.heatmap_u8()
            heat_key = (plane, int(index), 0, False)
            if heatmap is not None and self._heatmap.key != heat_key:
                self._heatmap.draw(heat_key, self._slice(heatmap, result, plane, index), rect)
        self._update_visibility()

    def show_sampled(self, plane_slice: PlaneSlice, rect: QRectF) -> None:
        """Draw the result on a rotated plane (true oblique MPR): the label map by nearest
        neighbour and the heatmap linearly, resampled on the plane's pixels."""
        self._shown = True
        result = self.result
        if result is not None:
            shape = plane_slice.image.shape[:2]
            where = (tuple(np.round(plane_slice.affine, 6).ravel()), shape)
            key = ("sampled", where, result.version, self.style.outline)
            if result.label_map is not None and self._labels.key != key:
                labels = self._sampler("labels", result.label_map, result).sample(
                    plane_slice.affine, shape, nearest=True, outside=0, dtype="uint8")
                self._labels.draw(key, outline(labels) if self.style.outline else labels, rect)
            heatmap = result.heatmap_u8()
            heat_key = ("sampled", where, 0, False)
            if heatmap is not None and self._heatmap.key != heat_key:
                values = self._sampler("heatmap", heatmap, result).sample(
                    plane_slice.affine, shape, outside=0.0)
                self._heatmap.draw(heat_key, np.rint(values).astype(np.uint8), rect)
        self._update_visibility()

    def _sampler(self, name: str, array: np.ndarray, result: AIResult) -> VolumeSampler:
        """The result's array's sampler, made again when the result was edited."""
        self.reslices += 1
        kept = self._samplers.get(name)
        if kept is None or kept[0] is not array or kept[1] != result.version:
            kept = (array, result.version,
                    VolumeSampler(np.ascontiguousarray(array), result.prediction.affine))
            self._samplers[name] = kept
        return kept[2]

    def _slice(self, array: np.ndarray, result: AIResult, plane: Plane, index: int) -> np.ndarray:
        self.reslices += 1
        view = reslice(array, result.prediction.affine, plane, index).image
        return view.astype(np.uint8, order="C")  # a copy: edits change the array, not this

    def _label_slice(self, result: AIResult, plane: Plane, index: int) -> np.ndarray:
        assert result.label_map is not None
        data = self._slice(result.label_map, result, plane, index)
        return outline(data) if self.style.outline else data

    def _update_luts(self) -> None:
        result, style = self.result, self.style
        segments = result.segments if result is not None else {}
        self._labels.set_lut(label_lut(segments, style.hidden_labels))
        self._heatmap.set_lut(heatmap_lut(style.colormap, style.heatmap_threshold))
        self._labels.item.setOpacity(style.label_opacity)
        self._heatmap.item.setOpacity(style.heatmap_opacity)

    def _update_visibility(self) -> None:
        on = self._shown and self.style.visible and self.result is not None
        for layer in (self._labels, self._heatmap):
            layer.item.setVisible(on and layer.data is not None and layer.has_content)

    # -- what was drawn (tests, screenshots) -----------------------------------------------

    @property
    def label_slice(self) -> np.ndarray | None:
        """The uint8 label slice drawn last (outlined in outline mode), or None."""
        return self._labels.data

    @property
    def heatmap_slice(self) -> np.ndarray | None:
        """The uint8 heatmap slice drawn last, or None."""
        return self._heatmap.data

    @property
    def visible(self) -> bool:
        """True when some layer is drawn."""
        return self._labels.item.isVisible() or self._heatmap.item.isVisible()

    def overlay_rgba(self) -> np.ndarray | None:
        """The overlay's colours on the current slice, ``(rows, cols, 4)`` uint8, or None.

        Labels over heatmap, each through its lookup table (alpha 0 or 255: the layers'
        opacities are not applied). All transparent while hidden.
        """
        heat, labels = self._heatmap.rgba(), self._labels.rgba()
        if heat is None and labels is None:
            return None
        out = labels if heat is None else heat
        if heat is not None and labels is not None:
            out = np.where(labels[..., 3:] > 0, labels, heat)
        if not self.visible:
            out = np.zeros_like(out)
        return out


class BrushCursor:
    """A circle showing the brush under the mouse (view coordinates are mm).

    Parameters
    ----------
    viewbox : pyqtgraph.ViewBox
    """

    def __init__(self, viewbox: pg.ViewBox) -> None:
        self.item = QGraphicsEllipseItem()
        self.item.setPen(BRUSH_PEN)
        self.item.setZValue(BRUSH_Z)
        self.item.setVisible(False)
        viewbox.addItem(self.item, ignoreBounds=True)

    def show_at(self, x: float, y: float, radius_mm: float) -> None:
        """Centre the circle on view point ``(x, y)``."""
        self.item.setRect(QRectF(x - radius_mm, y - radius_mm, 2 * radius_mm, 2 * radius_mm))
        self.item.setVisible(True)

    def hide(self) -> None:
        """Hide the circle."""
        self.item.setVisible(False)


def stroke_voxels(
    plane_slice: PlaneSlice,
    result: AIResult,
    points_lps: list[np.ndarray],
    radius_mm: float,
) -> np.ndarray:
    """Flat label-map indices of the plane's voxels within `radius_mm` of any of `points_lps`.

    Parameters
    ----------
    plane_slice : PlaneSlice
        The plane shown (its affine and shape give the voxels under the cursor).
    result : AIResult
        A segmentation result (its prediction's affine and shape give the label grid).
    points_lps : list of numpy.ndarray
        Dab centres, LPS mm.
    radius_mm : float

    Returns
    -------
    numpy.ndarray
        Sorted unique int64 flat indices.
    """
    prediction = result.prediction
    shape = plane_slice.image.shape[:2]
    found = [
        disk_voxels(plane_slice.affine, shape, prediction.affine, prediction.shape, p, radius_mm)
        for p in points_lps
    ]
    return np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)


def stroke_points(start: np.ndarray | None, end: np.ndarray, radius_mm: float) -> list[np.ndarray]:
    """Dab centres from `start` (excluded) to `end` (included), at most half a radius apart."""
    if start is None:
        return [np.asarray(end, float)]
    start, end = np.asarray(start, float), np.asarray(end, float)
    steps = max(1, int(np.ceil(np.linalg.norm(end - start) / max(radius_mm / 2.0, 0.25))))
    return [start + (end - start) * (k / steps) for k in range(1, steps + 1)]
