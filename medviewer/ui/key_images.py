"""Key images for reports, drawn by the viewer's own :class:`SliceView` at print size.

A hidden viewport renders exactly what the viewer shows (image, window, overlay or heatmap,
measurements, orientation letters, scale bar, window/level), without the patient's name, ID,
study date or descriptions in the corners, and hands the pixels to the report as a
:class:`~medviewer.report.content.KeyImage`. Runs on the GUI thread (it paints widgets).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from medviewer.core import formatting as fmt
from medviewer.core.findings import (
    AIResult,
    OverlayStyle,
    finding_label,
    heatmap_peak,
    positive_classes,
)
from medviewer.core.viewstate import slice_position_mm, voi_lut_names
from medviewer.report.content import KeyImage
from medviewer.ui.application import application
from medviewer.ui.measurement_store import MeasurementStore
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.slice_view import SliceView

#: Pixel size of key images: 1024 px printed 8.5 cm wide is about 300 dpi.
KEY_IMAGE_PIXELS = 1024
#: Text and scale bar size of key images relative to the screen (readable once printed).
KEY_IMAGE_TEXT_FACTOR = 2.4
#: Finding key images show a square of this many times the finding's diameter (at least
#: :data:`MIN_FIELD_MM`), so the finding is seen with its surroundings.
FIELD_PER_DIAMETER = 4.0
MIN_FIELD_MM = 80.0
#: At most this many components of a segmentation get a key image (the largest).
MAX_FINDING_IMAGES = 5


class KeyImageRenderer:
    """A hidden, print-size viewport that renders key images (reuse it for several)."""

    def __init__(self, store: MeasurementStore | None = None, pixels: int = KEY_IMAGE_PIXELS):
        application()
        view = SliceView(store)
        view.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
        view.identifying_text = False
        view.annotations.size_factor = KEY_IMAGE_TEXT_FACTOR
        view.show_crosshair(False)
        view.resize(pixels + 2, pixels + 2)  # +2: the frame's 1-pixel border
        view.show()
        QApplication.processEvents()
        self.view = view

    def close(self) -> None:
        """Let go of the series and the widget."""
        self.view.set_series(None)
        self.view.close()
        self.view.deleteLater()

    def render(
        self,
        series: OpenSeries,
        *,
        caption: str,
        plane: str = "axial",
        point: np.ndarray | None = None,
        index: int | None = None,
        window: tuple[float, float] | None = None,
        voi_lut: int | None = None,
        invert: bool = False,
        overlay: AIResult | None = None,
        style: OverlayStyle | None = None,
        field_mm: float | None = None,
        view_rect: QRectF | None = None,
        origin: str = "finding",
    ) -> KeyImage:
        """Render one key image.

        Parameters
        ----------
        series : OpenSeries
        caption : str
        plane : str
        point : numpy.ndarray, optional
            LPS point to show (its slice; the view centred on it when `field_mm` is given).
        index : int, optional
            Slice of `plane` to show when no `point` is given (default: the middle).
        window : (center, width), optional
            A linear window. Default: the series' own (its first VOI LUT when it has one).
        voi_lut : int, optional
            Show through this VOI LUT of the series instead (when no `window` is given).
        invert : bool
        overlay : AIResult, optional
            Drawn with `style`.
        field_mm : float, optional
            Show a square of this size around `point` (default: the whole slice).
        view_rect : QRectF, optional
            The view range to show (mm on the plane), e.g. copied from a viewport.
        origin : str
            ``"finding"`` or ``"user"``.
        """
        view = self.view
        view.set_series(series, plane)
        self._place(point, index)
        if window is not None:
            view.set_window(*window)
        elif voi_lut is not None:
            view.set_voi_lut(voi_lut)
        view.set_invert(invert)
        view.set_overlay_style(style or OverlayStyle())
        view.set_overlay(overlay)
        view.fit()
        if view_rect is not None:
            view.viewbox.setRange(view_rect, padding=0.0)
        elif point is not None and field_mm is not None:
            x, y, _ = view.patient_to_view(point)
            side = field_mm
            view.viewbox.setRange(QRectF(x - side / 2, y - side / 2, side, side), padding=0.0)
        QApplication.processEvents()
        key = KeyImage(
            rgb=self._pixels(), caption=caption, plane=plane, slice_text=self._slice_text(),
            window=(view.state.center, view.state.width), voi_lut=self._voi_lut_name(),
            mm_per_pixel=self._mm_per_pixel(),
            legend=legend_of(overlay, style or OverlayStyle()), origin=origin,
            result_key=overlay.key if overlay is not None else None,
            source_slice=self._source_slice(),
        )
        view.set_overlay(None)
        return key

    def _voi_lut_name(self) -> str:
        """The name of the VOI LUT the view shows, empty for a linear window."""
        state, volume = self.view.state, self.view.volume
        if state is None or volume is None or state.voi_lut is None:
            return ""
        return voi_lut_names(volume.metadata)[state.voi_lut]

    def _place(self, point: np.ndarray | None, index: int | None) -> None:
        view = self.view
        if point is not None:
            view.set_crosshair(np.asarray(point, float), move=True)
        elif index is not None:
            view.set_index(index)

    def _pixels(self) -> np.ndarray:
        view = self.view
        image = view.grab(view.graphics.geometry()).toImage()
        image = image.convertToFormat(QImage.Format.Format_RGB888)
        rows, cols, line = image.height(), image.width(), image.bytesPerLine()
        data = np.frombuffer(image.constBits(), np.uint8, count=rows * line)
        return data.reshape(rows, line)[:, : cols * 3].reshape(rows, cols, 3).copy()

    def _slice_text(self) -> str:
        view = self.view
        assert view.state is not None and view.plane_slice is not None
        position = slice_position_mm(view.plane_slice.affine)
        return f"Im {view.state.index + 1}/{view.state.count}, Pos {fmt.length_mm(position)} mm"

    def _mm_per_pixel(self) -> float:
        box = self.view.viewbox
        return float(box.viewRect().width() / max(box.width(), 1.0))

    def _source_slice(self) -> int | None:
        """The volume slice shown when the plane is the acquisition plane, else None."""
        view = self.view
        assert view.plane_slice is not None and view.volume is not None
        normal = view.plane_slice.affine[:3, 2]
        slices = view.volume.affine[:3, 2]
        cosine = abs(float(normal @ slices)) / (np.linalg.norm(normal) * np.linalg.norm(slices))
        return view.shown_voxel_slice() if cosine > 0.999 else None


def legend_of(result: AIResult | None, style: OverlayStyle) -> tuple[tuple[str, str], ...]:
    """(name, colour) of what an overlay draws: shown labels, or the heatmap's colour map."""
    if result is None or not style.visible:
        return ()
    if result.label_map is not None:
        return tuple(
            (seg.name, seg.color) for label, seg in sorted(result.segments.items())
            if label not in style.hidden_labels and result.statistics.get(label) is not None
            and result.statistics[label].voxels > 0
        )
    if result.heatmap is not None:
        what = result.prediction.heatmap_class or "the decision"
        return ((f"Grad-CAM evidence for {what} ({style.colormap}; bright = strongest)",
                 "#fca50a"),)
    return ()


@dataclass(frozen=True, eq=False)
class FindingView:
    """What a finding's key image shows: its result, where, how wide, and the caption.

    Attributes
    ----------
    result : AIResult
        Drawn over the image.
    caption : str
    point : numpy.ndarray or None
        LPS point the axial view goes to (None: the middle slice).
    field_mm : float or None
        Side of the square shown around `point` (None: the whole slice).
    """

    result: AIResult
    caption: str
    point: np.ndarray | None
    field_mm: float | None = None


def finding_views(results: Iterable[AIResult]) -> list[FindingView]:
    """One view per finding: each of the largest components of a segmentation's finding
    label (see :func:`finding_label`), and each positive classification at its heatmap's peak.
    """
    views: list[FindingView] = []
    for result in results:
        if result.label_map is not None:
            views += _component_views(result)
        elif positive_classes(result):
            views.append(_classification_view(result))
    return views


def render_finding(
    renderer: KeyImageRenderer,
    series: OpenSeries,
    finding: FindingView,
    *,
    window: tuple[float, float] | None = None,
    voi_lut: int | None = None,
    style: OverlayStyle | None = None,
) -> KeyImage:
    """The key image of one finding, as the viewer draws it (`window` or `voi_lut`)."""
    result = finding.result
    overlay = result if result.label_map is not None or result.heatmap is not None else None
    return renderer.render(
        series, caption=finding.caption, point=finding.point, window=window, voi_lut=voi_lut,
        overlay=overlay, style=style, field_mm=finding.field_mm,
    )


def finding_key_images(
    renderer: KeyImageRenderer,
    series: OpenSeries,
    results: Iterable[AIResult],
    *,
    window: tuple[float, float] | None = None,
    voi_lut: int | None = None,
    style: OverlayStyle | None = None,
) -> list[KeyImage]:
    """The key images of every finding of `results` (see :func:`finding_views`)."""
    return [render_finding(renderer, series, f, window=window, voi_lut=voi_lut, style=style)
            for f in finding_views(results)]


def _component_views(result: AIResult) -> list[FindingView]:
    label = finding_label(result)
    if label is None:
        return []
    stats = result.statistics[label]
    model = result.prediction.model.name
    return [
        FindingView(
            result,
            f"{stats.name} {c.index}: {fmt.length_mm(c.longest_diameter_mm)} mm, "
            f"{fmt.volume_ml(c.volume_ml)} mL ({model})",
            np.asarray(c.centroid_lps, float),
            max(c.longest_diameter_mm * FIELD_PER_DIAMETER, MIN_FIELD_MM),
        )
        for c in stats.components[:MAX_FINDING_IMAGES]
    ]


def _classification_view(result: AIResult) -> FindingView:
    p = result.prediction
    text = ", ".join(f"{c} p = {fmt.probability(p.classes[c])}" for c in positive_classes(result))
    return FindingView(result, f"{p.model.name}: {text}", heatmap_peak(result))


def key_image_like(renderer: KeyImageRenderer, view: SliceView, caption: str,
                   overlay: AIResult | None, style: OverlayStyle | None) -> KeyImage:
    """What `view` shows now (plane, slice, window, zoom and pan, overlay) as a user key
    image."""
    assert view.series is not None and view.state is not None
    state = view.state
    return renderer.render(
        view.series, caption=caption, plane=state.plane, index=state.index,
        window=state.linear_window, voi_lut=state.voi_lut, invert=state.invert, overlay=overlay,
        style=style, view_rect=view.viewbox.viewRect(), origin="user",
    )
