"""What a viewport writes over its image: corner text, edge letters, scale bar, readout.

The texts are computed from the view's series, state and plane (see :class:`AnnotatedView`);
:class:`Annotations` paints them over the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QWidget

from medviewer.core import formatting as fmt
from medviewer.core import measurements as mm
from medviewer.core.geometry import PlaneSlice, projection_edge_letters
from medviewer.core.slab import SLAB_NAMES, slab_thickness_mm
from medviewer.core.viewstate import (
    ViewState,
    nice_scale_length,
    slice_position_mm,
    voi_lut_names,
)
from medviewer.core.volume import Volume
from medviewer.ui.fusion_layer import Fusion, FusionLayer
from medviewer.ui.open_series import OpenSeries

TEXT_COLOR = QColor(235, 235, 235)
_ALIGN = Qt.AlignmentFlag
PLACES = {  # where each corner text and edge letter is drawn
    "top_left": _ALIGN.AlignLeft | _ALIGN.AlignTop,
    "top_right": _ALIGN.AlignRight | _ALIGN.AlignTop,
    "bottom_left": _ALIGN.AlignLeft | _ALIGN.AlignBottom,
    "bottom_right": _ALIGN.AlignRight | _ALIGN.AlignBottom,
    "left": _ALIGN.AlignLeft | _ALIGN.AlignVCenter,
    "right": _ALIGN.AlignRight | _ALIGN.AlignVCenter,
    "top": _ALIGN.AlignHCenter | _ALIGN.AlignTop,
    "bottom": _ALIGN.AlignHCenter | _ALIGN.AlignBottom,
}


class AnnotatedView(Protocol):
    """What the annotations read from a viewport (a :class:`~medviewer.ui.slice_view.SliceView`)."""

    series: OpenSeries | None
    state: ViewState | None
    plane_slice: PlaneSlice | None
    identifying_text: bool
    empty_message: str
    viewbox: pg.ViewBox

    @property
    def volume(self) -> Volume | None: ...

    @property
    def zoom(self) -> float: ...

    @property
    def fusion(self) -> Fusion | None: ...

    @property
    def fusion_layer(self) -> FusionLayer: ...


class Annotations(QWidget):
    """Corner text, edge letters and the scale bar, painted over the image."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.corners: dict[str, list[str]] = {}
        self.letters: dict[str, str] = {}
        self.scale: tuple[float, str] | None = None  # (length in screen px, label)
        self.message = ""
        self.size_factor = 1.0  # text and scale bar size (> 1 for print-size key images)

    def describe(self, view: AnnotatedView) -> None:
        """Take the texts of `view`'s current slice (or its empty message) and repaint."""
        if view.series is None or view.state is None or view.plane_slice is None:
            self.corners, self.letters, self.scale = {}, {}, None
            self.message = view.empty_message
        else:
            self.message = view.series.error
            self.corners = corner_text(view)
            self.letters = edge_letters_of(view.series.volume.metadata, view.plane_slice)
            self.scale = scale_bar(view.viewbox, self.size_factor)
        self.update()

    def _font(self, points: float, weight=QFont.Weight.Normal) -> QFont:
        return QFont(self.font().family(), round(points * self.size_factor), weight)

    def layout(self) -> list[Placed]:
        """Where each text goes (see :func:`layout_annotations`), for the widget's size."""
        return layout_annotations(
            self.width(), self.height(), self.corners, self.letters, self.scale,
            QFontMetrics(self._font(9)), QFontMetrics(self._font(11, QFont.Weight.Bold)),
            self.size_factor)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        for placed in self.layout():
            bold = placed.kind == "letter"
            painter.setFont(self._font(11, QFont.Weight.Bold) if bold else self._font(9))
            if placed.kind == "scale":
                self._paint_scale(painter, placed.rect)
            else:
                self._text(painter, placed.rect, PLACES[placed.place], placed.text)
        painter.setFont(self._font(9))
        if self.message:
            self._text(painter, self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
        painter.end()

    def _text(self, painter: QPainter, rect, flags, text: str) -> None:
        painter.setPen(QColor(0, 0, 0, 200))
        painter.drawText(rect.translated(1, 1), flags, text)
        painter.setPen(TEXT_COLOR)
        painter.drawText(rect, flags, text)

    def _paint_scale(self, painter: QPainter, rect: QRect) -> None:
        assert self.scale is not None
        length, label = self.scale
        f = self.size_factor
        x0 = rect.center().x() - length / 2.0
        y = rect.bottom() - 4.0 * f
        for color, offset in ((QColor(0, 0, 0, 200), f), (TEXT_COLOR, 0.0)):
            painter.setPen(QPen(color, 2 * f))
            painter.drawLine(
                QPointF(x0 + offset, y + offset), QPointF(x0 + length + offset, y + offset)
            )
            for x in (x0, x0 + length):
                painter.drawLine(
                    QPointF(x + offset, y - 4 * f + offset), QPointF(x + offset, y + 4 * f + offset)
                )
        label_rect = QRect(rect.left(), rect.top(), rect.width(), round(16 * f))
        self._text(painter, label_rect, _ALIGN.AlignHCenter | _ALIGN.AlignBottom, label)


@dataclass(frozen=True)
class Placed:
    """One thing drawn over the image: a corner's text block, an edge letter or the scale
    bar (`kind` ``"corner"``, ``"letter"``, ``"scale"``), its place and its rectangle."""

    kind: str
    place: str
    rect: QRect
    text: str = ""


MARGIN, GAP = 6, 6
"""Pixels between the texts and the viewport's edge, and between two texts."""


def layout_annotations(width: int, height: int, corners: dict[str, list[str]],
                       letters: dict[str, str], scale: tuple[float, str] | None,
                       text_metrics: QFontMetrics, letter_metrics: QFontMetrics,
                       size_factor: float = 1.0) -> list[Placed]:
    """Rectangles for the corner texts, edge letters and scale bar that never overlap.

    The edge letters (orientation: a safety matter) are placed first; each corner's block
    keeps to its quarter: between the viewport's edge and the letter centred on its edge, and
    above (below) the band of the side letters. Lines that do not fit are dropped, least
    important first (zoom, study description, date, slice position, patient ID, series
    description), and what is still too wide is elided. The scale bar sits above the bottom
    letter and the bottom corners' text, or is left out when there is no room for it.
    """
    placed: list[Placed] = []
    letter_h = letter_metrics.height()
    sizes = {place: (letter_metrics.horizontalAdvance(text) + 2, letter_h)
             for place, text in letters.items() if text}
    for place, (w, h) in sizes.items():
        placed.append(Placed("letter", place, _edge_rect(place, w, h, width, height),
                             letters[place]))
    sides = bool({"left", "right"} & set(sizes))
    band_top = (height - letter_h) / 2 - GAP if sides else height / 2
    line_h = text_metrics.height()
    kept = _drop_lines(corners, max(0, int((band_top - MARGIN) // line_h)))
    lowest_free = height - MARGIN - (sizes["bottom"][1] if "bottom" in sizes else 0)
    for place, lines in kept.items():
        edge = "top" if place.startswith("top") else "bottom"
        room = int((width - sizes.get(edge, (0, 0))[0]) / 2 - MARGIN - GAP)
        shown = [text_metrics.elidedText(line, Qt.TextElideMode.ElideRight, room)
                 for line in lines] if room > 0 else []
        shown = [line for line in shown if line and line != "…"]
        if not shown:
            continue
        w = min(room, max(text_metrics.horizontalAdvance(line) for line in shown) + 2)
        h = line_h * len(shown)
        x = MARGIN if place.endswith("left") else width - MARGIN - w
        y = MARGIN if edge == "top" else height - MARGIN - h
        placed.append(Placed("corner", place, QRect(x, y, w, h), "\n".join(shown)))
        if edge == "bottom":
            lowest_free = min(lowest_free, y)
    if scale is not None:
        length, label = scale
        w = int(max(length, text_metrics.horizontalAdvance(label)) + 2 * size_factor + 2)
        h = int(26 * size_factor)
        top = lowest_free - GAP - h
        above_band = height - band_top  # the side letters' band ends here
        if top >= above_band and w <= width - 2 * MARGIN:
            placed.append(Placed("scale", "bottom", QRect(round((width - w) / 2), top, w, h)))
    return placed


def _edge_rect(place: str, w: int, h: int, width: int, height: int) -> QRect:
    x = {"left": MARGIN // 2, "right": width - MARGIN // 2 - w}.get(place, round((width - w) / 2))
    y = {"top": MARGIN // 2, "bottom": height - MARGIN // 2 - h}.get(place,
                                                                      round((height - h) / 2))
    return QRect(x, y, w, h)


def _drop_lines(corners: dict[str, list[str]], most: int) -> dict[str, list[str]]:
    """Each corner's lines, the least important dropped until at most `most` remain."""
    kept: dict[str, list[str]] = {}
    for place, lines in corners.items():
        ranked = sorted(range(len(lines)), key=lambda i: _importance(place, lines, i))
        drop = set(ranked[: max(0, len(lines) - most)])
        kept[place] = [line for i, line in enumerate(lines) if i not in drop and line]
    return kept


def _importance(place: str, lines: list[str], index: int) -> int:
    """How much a corner line matters (higher: kept longer). Identity, image number, window
    and the plane matter most; zoom least."""
    line = lines[index]
    if place == "bottom_right":
        return 1 if line.startswith("Zoom") else 9
    if place == "bottom_left":
        return 4 if line.startswith("Pos") else 9
    if place == "top_left":
        return 8 if index == 0 else 6
    if index == len(lines) - 1:  # top right: modality and plane
        return 8
    return {0: 3, 1: 2}.get(index, 5) if len(lines) == 4 else 5 - index


def scale_bar(viewbox: pg.ViewBox, size_factor: float = 1.0) -> tuple[float, str] | None:
    """``(length in screen px, label)`` of a round-length scale bar for the view's zoom."""
    width_px = viewbox.width()
    if width_px <= 0:
        return None
    mm_per_px = viewbox.viewRect().width() / width_px
    if not np.isfinite(mm_per_px) or mm_per_px <= 0:
        return None
    target = min(100.0 * size_factor, width_px / 4)
    length = nice_scale_length(mm_per_px, target_pixels=target)
    label = f"{length:g} mm" if length < 10 or length % 10 else f"{length / 10:g} cm"
    return length / mm_per_px, label


def edge_letters_of(meta, plane_slice: PlaneSlice) -> dict[str, str]:
    """The four edges' orientation letters: from the geometry of a positioned volume, from
    Patient Orientation for a projection image shown as stored, else none."""
    if meta.positioned:
        return plane_slice.edge_letters
    right, down = (v / np.linalg.norm(v) for v in plane_slice.affine[:3, :2].T)
    if not (np.allclose(right, (1, 0, 0)) and np.allclose(down, (0, 1, 0))):
        return {}  # another plane of an unpositioned stack: rows/columns are not the image's
    return projection_edge_letters(meta.patient_orientation)


def corner_text(view: AnnotatedView) -> dict[str, list[str]]:
    """The four corners' text lines of a view."""
    assert view.volume is not None and view.state is not None and view.plane_slice is not None
    meta, state = view.volume.metadata, view.state
    loaded = view.series.loaded if view.series is not None else None
    progress = (
        [f"Loading {int(loaded.sum())}/{loaded.size}"]
        if loaded is not None and not loaded.all()
        else []
    )
    series = f"#{meta.series_number} " if meta.series_number is not None else ""
    who = [meta.patient_name.replace("^", " "), meta.patient_id]
    what = [fmt.dicom_date(meta.study_date), meta.study_description,
            f"{series}{meta.series_description}".strip()]
    if not view.identifying_text:
        who, what = [], []
    return {
        "top_left": who,
        "top_right": [*what, f"{meta.modality} {state.plane if meta.positioned else ''}".strip()],
        "bottom_left": [
            *progress,
            f"Im {state.index + 1}/{state.count}",
            # a slice position means nothing on an image without patient position
            *([f"Pos {fmt.length_mm(slice_position_mm(view.plane_slice.affine))} mm"]
              if meta.positioned else []),
            *slab_text(state, view.plane_slice),
        ],
        "bottom_right": [
            display_text(meta, state) + (" inv" if state.invert else ""),
            *fusion_text(view.fusion),
            f"Zoom {view.zoom:.2f}x",
        ],
    }


def fusion_text(fusion: Fusion | None) -> list[str]:
    """``["+ PT SUV 0-6, 50 %"]``: what is fused over the image, its window and opacity."""
    if fusion is None:
        return []
    style = fusion.style
    return [f"+ {fusion.volume.metadata.modality or 'fused'} {fusion.units} "
            f"{style.low:g}-{style.high:g}, {round(style.opacity * 100)} %"]


def slab_text(state: ViewState, plane_slice: PlaneSlice) -> list[str]:
    """``["MIP 11.3 mm"]``: the projection shown and the thickness it really covers."""
    if state.slab is None:
        return []
    thickness = slab_thickness_mm(state.slab, plane_slice)
    return [f"{SLAB_NAMES[state.slab.mode]} {fmt.length_mm(thickness)} mm"]


def display_text(meta, state: ViewState) -> str:
    """How the values are shown: ``"W 400 L 40"`` or the VOI LUT's name."""
    names = voi_lut_names(meta)
    if state.voi_lut is not None and state.voi_lut < len(names):
        return names[state.voi_lut]
    return fmt.window(state.center, state.width)


def readout_text(view: AnnotatedView, point: np.ndarray) -> str:
    """'value units  (col, row, slice)  LPS (x, y, z) mm' under the mouse."""
    assert view.plane_slice is not None and view.volume is not None
    value = mm.probe_value(view.plane_slice.image, view.plane_slice.affine, point)
    if value is None:
        return ""
    voxel = mm.patient_to_screen(view.volume.affine, point)
    factor = view.volume.metadata.suv_bw_factor
    shown = (
        "(" + ", ".join(fmt.image_value(v) for v in value) + ")"
        if isinstance(value, tuple)
        else fmt.image_value(value, view.volume.metadata.units)
        + (f" SUV {value * factor:.2f}" if factor is not None else "")
    )
    if view.state is not None and view.state.slab is not None:
        shown += f" ({SLAB_NAMES[view.state.slab.mode]})"  # a projected value, not the voxel's
    if view.fusion is not None:
        value_fused = view.fusion_layer.value_at_point(point)
        if value_fused is not None:
            modality = view.fusion.volume.metadata.modality
            shown += f"   {modality} {value_fused:.2f} {view.fusion.units}"
    ijk = ", ".join(str(round(v)) for v in voxel)
    return f"{shown}   voxel ({ijk})   LPS {fmt.point_lps(point)} mm"
