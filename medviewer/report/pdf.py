"""The annotated PDF report: header, impression, AI results, key images, measurements.

:func:`report_pdf` lays a :class:`~medviewer.report.content.ReportContent` out on A4 portrait
pages with reportlab's platypus and returns the PDF bytes (the caller writes them atomically).
The layout is print friendly: black text on white, thin grey rules, colour only where it
carries meaning (segment swatches and the key images themselves).

- Text uses Bitstream Vera, the TrueType family that ships inside reportlab (subset-embedded),
  so names such as ``Müller^Zoë`` and ``°``, ``µ``, ``²``, ``≥`` print. Vera has no check mark
  (``✓``), so a positive class is written "yes".
- Each key image is the only raster image object of the file it needs: swatches and rules are
  vector graphics. Key images are drawn 85 mm wide (at most 110 mm high), two per row, with
  their own pixels (downsampled only above :data:`MAX_DPI`).
- Every page has a footer with the patient, the software version, the time the report was
  generated and "Page X of Y" (a canvas that holds the pages until the count is known);
  pages after the first repeat the title and the patient at the top.

Numbers, names and dates are written by :mod:`medviewer.core.formatting`, as the viewer
writes them. No Qt here.
"""

from __future__ import annotations

import importlib.resources
import io
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from medviewer.core import formatting as fmt
from medviewer.core.findings import AIResult, SegmentStats
from medviewer.report.content import KeyImage, MeasurementLine, ReportContent, ReportHeader

#: The report's title, first line of page 1 and of the PDF's metadata.
TITLE = "Imaging report (AI-assisted)"
#: Components listed per segment; the others are counted in a "N more" line.
MAX_COMPONENTS = 10
#: Legend entries shown under a key image; the others are counted.
MAX_LEGEND = 20
#: Key images denser than this on paper are downsampled to :data:`PRINT_DPI`.
MAX_DPI = 600
PRINT_DPI = 300
KEY_IMAGE_WIDTH = 85 * mm
KEY_IMAGE_MAX_HEIGHT = 110 * mm

#: The registered font family (Bitstream Vera from reportlab's own ``fonts`` folder).
FONT = "MedviewerVera"
FONT_BOLD = f"{FONT}-Bold"
FONT_ITALIC = f"{FONT}-Italic"
FONT_BOLD_ITALIC = f"{FONT}-BoldItalic"
_FONT_FILES = {
    FONT: "Vera.ttf",
    FONT_BOLD: "VeraBd.ttf",
    FONT_ITALIC: "VeraIt.ttf",
    FONT_BOLD_ITALIC: "VeraBI.ttf",
}
_FONT_LOCK = threading.Lock()

_MARGIN = 15 * mm
_TOP = 18 * mm
_BOTTOM = 22 * mm
_WIDTH = A4[0] - 2 * _MARGIN
_RULE = colors.Color(0.6, 0.6, 0.6)
_SHADE = colors.Color(0.92, 0.92, 0.92)
_GREY_TEXT = colors.Color(0.3, 0.3, 0.3)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def report_pdf(content: ReportContent) -> bytes:
    """Lay out the report as an A4 PDF, in memory.

    Parameters
    ----------
    content : ReportContent
        Header, AI results, key images, measurements and impression to print.

    Returns
    -------
    bytes
        The PDF file.
    """
    register_fonts()
    buffer = io.BytesIO()
    header = content.header
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=_TOP,
        bottomMargin=_BOTTOM, title=TITLE, author=f"medviewer {header.app_version}",
        creator=f"medviewer {header.app_version}", subject="AI-assisted imaging report",
    )
    furniture = _Furniture.of(header)
    doc.build(_story(content, _Styles.make()), canvasmaker=partial(_PagedCanvas, furniture))
    return buffer.getvalue()


def register_fonts() -> str:
    """Register the Vera family with reportlab (once) and return the regular font's name.

    The TTF files are read from reportlab's own package (``reportlab/fonts``) through
    :mod:`importlib.resources`, never from a system font folder.
    """
    with _FONT_LOCK:
        if FONT_BOLD_ITALIC not in pdfmetrics.getRegisteredFontNames():
            fonts = importlib.resources.files("reportlab").joinpath("fonts")
            for name, file in _FONT_FILES.items():
                data = io.BytesIO(fonts.joinpath(file).read_bytes())
                pdfmetrics.registerFont(TTFont(name, data))
            pdfmetrics.registerFontFamily(
                FONT, normal=FONT, bold=FONT_BOLD, italic=FONT_ITALIC, boldItalic=FONT_BOLD_ITALIC
            )
    return FONT


# --------------------------------------------------------------------------- styles, helpers


@dataclass(frozen=True)
class _Styles:
    """The paragraph styles of the report."""

    title: ParagraphStyle
    h1: ParagraphStyle
    h2: ParagraphStyle
    body: ParagraphStyle
    cell: ParagraphStyle
    label: ParagraphStyle
    head: ParagraphStyle
    note: ParagraphStyle
    caption: ParagraphStyle

    @classmethod
    def make(cls) -> _Styles:
        """The styles, all in the Vera family."""
        def style(name: str, font: str = FONT, size: float = 9.0, **kw: Any) -> ParagraphStyle:
            return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.25, **kw)

        return cls(
            title=style("title", FONT_BOLD, 16.0, spaceAfter=3 * mm),
            h1=style("h1", FONT_BOLD, 12.0, spaceBefore=5 * mm, spaceAfter=2 * mm,
                     keepWithNext=1),
            h2=style("h2", FONT_BOLD, 10.0, spaceBefore=3 * mm, spaceAfter=1.5 * mm,
                     keepWithNext=1),
            body=style("body", spaceAfter=1.5 * mm),
            cell=style("cell", size=8.0),
            label=style("label", FONT_BOLD, 8.0, textColor=_GREY_TEXT),
            head=style("head", FONT_BOLD, 8.0),
            note=style("note", FONT_ITALIC, 8.0, spaceBefore=1 * mm, spaceAfter=1 * mm),
            caption=style("caption", FONT_BOLD, 8.5),
        )


def _text(value: object) -> str:
    """`value` as Paragraph markup: special characters escaped, control characters dropped."""
    return escape(_CONTROL.sub("", str(value)))


def _para(value: object, style: ParagraphStyle) -> Paragraph:
    """A paragraph of plain text (escaped)."""
    return Paragraph(_text(value), style)


def _color(hex_color: str) -> colors.Color:
    """A ``#rrggbb`` colour; mid grey when it cannot be read."""
    try:
        return colors.HexColor(hex_color)
    except (ValueError, TypeError):
        return colors.Color(0.5, 0.5, 0.5)


def _grid(widths: Sequence[float], rows: list[list[Any]], extra: Iterable[tuple] = ()) -> Table:
    """A table with a shaded header row, thin rules, repeated header on each page."""
    table = Table(rows, colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.25, _RULE),
        ("BACKGROUND", (0, 0), (-1, 0), _SHADE),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        *extra,
    ]))
    return table


def _pairs(pairs: Sequence[tuple[str, str]], st: _Styles) -> Table:
    """``label: value`` pairs, two pairs per row, without a header row."""
    cells = [[_para(label, st.label), _para(value, st.cell)] for label, value in pairs]
    if len(cells) % 2:
        cells.append(["", ""])
    rows = [cells[i] + cells[i + 1] for i in range(0, len(cells), 2)]
    label_w = 30 * mm
    table = Table(rows, colWidths=[label_w, _WIDTH / 2 - label_w] * 2, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return table


class _Swatch(Flowable):
    """A small filled square of a label's colour (vector, no image)."""

    def __init__(self, hex_color: str, size: float = 3.2 * mm) -> None:
        super().__init__()
        self.color = _color(hex_color)
        self.size = size

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        """The swatch's size."""
        return self.size, self.size

    def draw(self) -> None:
        """Fill the square, with a thin dark outline so light colours show on paper."""
        self.canv.setFillColor(self.color)
        self.canv.setStrokeColor(colors.Color(0.2, 0.2, 0.2))
        self.canv.setLineWidth(0.3)
        self.canv.rect(0, 0, self.size, self.size, stroke=1, fill=1)


# --------------------------------------------------------------------------- the story


def _story(content: ReportContent, st: _Styles) -> list[Flowable]:
    """Every section, in print order."""
    return [
        *_title(content.header, st),
        *_impression(content.impression, st),
        *_results(content, st),
        *_key_images(content.key_images, st),
        *_measurements(content.measurements, st),
        *_disclaimer(content.disclaimers(), st),
    ]


def _title(header: ReportHeader, st: _Styles) -> list[Flowable]:
    """The title and the patient/study header table."""
    return [Paragraph(TITLE, st.title), _pairs(_header_pairs(header), st)]


def _header_pairs(h: ReportHeader) -> list[tuple[str, str]]:
    """Patient and study fields in reading order: patient left, study right."""
    patient = [
        ("Patient", fmt.person_name(h.patient_name)),
        ("Patient ID", h.patient_id),
        ("Birth date", fmt.dicom_date(h.patient_birth_date)),
        ("Sex", fmt.sex(h.patient_sex)),
    ]
    study = [
        ("Study date", fmt.dicom_date(h.study_date)),
        ("Accession", h.accession_number),
        ("Study", h.study_description),
        ("Series", fmt.series(h.series_number, h.series_description, h.modality)),
    ]
    pairs = [pair for row in zip(patient, study, strict=True) for pair in row]
    if h.institution:
        pairs.append(("Institution", h.institution))
    pairs += [("Generated", fmt.iso_time(h.generated)), ("Software", f"medviewer {h.app_version}")]
    return [(label, value or fmt.MISSING) for label, value in pairs]


def _impression(text: str, st: _Styles) -> list[Flowable]:
    """The user's impression: blank lines start paragraphs, other line breaks are kept."""
    flowables: list[Flowable] = [Paragraph("Impression", st.h1)]
    blocks = [b for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if b.strip()]
    if not blocks:
        return [*flowables, Paragraph("No impression entered.", st.note)]
    for block in blocks:
        flowables.append(Paragraph(_text(block.strip()).replace("\n", "<br/>"), st.body))
    return flowables


def _results(content: ReportContent, st: _Styles) -> list[Flowable]:
    """One section per AI result, or a line saying there are none."""
    flowables: list[Flowable] = [Paragraph("AI results", st.h1)]
    if not content.results:
        return [*flowables, Paragraph("No AI results in this report.", st.note)]
    for number, result in enumerate(content.results, start=1):
        flowables += _result(number, result, content.header.units, st)
    return flowables


def _result(number: int, result: AIResult, units: str, st: _Styles) -> list[Flowable]:
    """Provenance, warnings and the findings of one result."""
    model = result.prediction.model
    flowables: list[Flowable] = [
        _para(f"AI result {number}: {model.name}", st.h2),
        _pairs(_provenance(result), st),
        Spacer(1, 2 * mm),
    ]
    flowables += [_para(f"Warning: {w}", st.note) for w in result.prediction.warnings]
    if result.task == "classification":
        return flowables + _classification(result, st)
    return flowables + _segmentation(result, units, st)


def _provenance(result: AIResult) -> list[tuple[str, str]]:
    """Model, version, weights, device, run time, creation and edit times."""
    p = result.prediction
    edits = f"Edited by the user ({fmt.iso_time(result.edited)})" if result.edited else "Not edited"
    pairs = [
        ("Model", p.model.name), ("Version", p.model.version),
        ("Task", p.task), ("SHA-256", fmt.sha_prefix(p.model.sha256)),
        ("Device", p.device), ("Run time", fmt.seconds(p.seconds)),
        ("Created", fmt.iso_time(p.created)), ("Edits", edits),
    ]
    return [(label, value or fmt.MISSING) for label, value in pairs]


def _classification(result: AIResult, st: _Styles) -> list[Flowable]:
    """Class probabilities, the decision with its threshold, the heatmap's class."""
    p = result.prediction
    if not p.classes:
        return [Paragraph("No class probabilities.", st.note)]
    rows: list[list[Any]] = [[Paragraph(t, st.head) for t in ("Class", "Probability", "Positive")]]
    for name, prob in p.classes.items():
        positive = "yes" if name in p.decision else "no"
        rows.append([_para(name, st.cell), _para(fmt.probability(prob), st.cell),
                     _para(positive, st.cell)])
    threshold = fmt.threshold(p.threshold)
    decision = (f"Positive: {', '.join(p.decision)} (threshold {threshold})" if p.decision
                else f"Negative (threshold {threshold})")
    flowables = [_grid([70 * mm, 35 * mm, 25 * mm], rows), Spacer(1, 1.5 * mm),
                 _para(decision, st.caption)]
    if p.heatmap_class:
        flowables.append(_para(f"Heatmap (Grad-CAM) of the class: {p.heatmap_class}", st.cell))
    return flowables


def _segmentation(result: AIResult, units: str, st: _Styles) -> list[Flowable]:
    """The segment table, then the components of the non-empty segments."""
    if not result.statistics:
        return [Paragraph("No segment statistics.", st.note)]
    stats = [result.statistics[label] for label in sorted(result.statistics)]
    colors_ = {label: s.color for label, s in result.segments.items()}
    flowables: list[Flowable] = [_segment_table(stats, colors_, units, st)]
    found = [s for s in stats if s.voxels > 0]
    if not found:
        return [*flowables, Paragraph("Every segment is empty.", st.note)]
    title = f"Components (largest first, at most {MAX_COMPONENTS} listed per segment)"
    return [*flowables, Paragraph(title, st.h2), _component_table(found, colors_, units, st)]


def _mean_head(units: str) -> str:
    """Header of the mean-value column (``Mean (HU)``)."""
    return f"Mean ({units})" if units else "Mean"


def _segment_table(stats: list[SegmentStats], colors_: dict[int, str], units: str,
                   st: _Styles) -> Table:
    """One row per segment: swatch, name, components, volume, diameter, mean."""
    heads = ("", "Segment", "Components", "Volume (mL)", "Longest diameter (mm)",
             _mean_head(units))
    rows: list[list[Any]] = [[Paragraph(t, st.head) for t in heads]]
    for s in stats:
        empty = s.voxels == 0
        values = (s.name, str(s.component_count), fmt.volume_ml(s.volume_ml),
                  fmt.MISSING if empty else fmt.length_mm(s.longest_diameter_mm),
                  fmt.mean_value(None if empty else s.mean_value, units))
        rows.append([_Swatch(colors_.get(s.label, "")), *(_para(v, st.cell) for v in values)])
    widths = [7 * mm, 52 * mm, 24 * mm, 27 * mm, 36 * mm, 34 * mm]
    return _grid(widths, rows)


def _component_table(stats: list[SegmentStats], colors_: dict[int, str], units: str,
                     st: _Styles) -> Table:
    """Up to :data:`MAX_COMPONENTS` rows per segment, then how many are left out."""
    heads = ("", "Component", "Volume (mL)", "Longest diameter (mm)", _mean_head(units),
             "Centroid LPS (mm)")
    rows: list[list[Any]] = [[Paragraph(t, st.head) for t in heads]]
    spans: list[tuple] = []
    for s in stats:
        swatch_color = colors_.get(s.label, "")
        for c in s.components[:MAX_COMPONENTS]:
            values = (f"{s.name} {c.index}", fmt.volume_ml(c.volume_ml),
                      fmt.length_mm(c.longest_diameter_mm), fmt.mean_value(c.mean_value, units),
                      fmt.point_lps(c.centroid_lps))
            rows.append([_Swatch(swatch_color), *(_para(v, st.cell) for v in values)])
        more = max(s.component_count, len(s.components)) - min(len(s.components), MAX_COMPONENTS)
        if more > 0:
            spans.append(("SPAN", (1, len(rows)), (-1, len(rows))))
            rows.append(["", _para(f"{s.name}: {more} more components not listed", st.note)])
            rows[-1] += [""] * (len(heads) - 2)
    widths = [7 * mm, 45 * mm, 24 * mm, 36 * mm, 28 * mm, 40 * mm]
    return _grid(widths, rows, spans)


# --------------------------------------------------------------------------- key images


class _Picture(Flowable):
    """A key image drawn at a given size (one image object in the PDF)."""

    def __init__(self, rgb: np.ndarray, width: float, height: float) -> None:
        super().__init__()
        self.image = _print_pixels(rgb, width)
        self.width = width
        self.height = height

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        """The drawn size."""
        return self.width, self.height

    def draw(self) -> None:
        """Draw the pixels, with a thin frame."""
        self.canv.drawImage(ImageReader(self.image), 0, 0, self.width, self.height)
        self.canv.setStrokeColor(_RULE)
        self.canv.setLineWidth(0.25)
        self.canv.rect(0, 0, self.width, self.height, stroke=1, fill=0)


def _print_pixels(rgb: np.ndarray, width: float) -> PILImage.Image:
    """The key image as a PIL image, downsampled when denser than :data:`MAX_DPI` on paper."""
    image = PILImage.fromarray(np.ascontiguousarray(rgb))
    inches = width / 72.0
    if rgb.shape[1] / inches <= MAX_DPI:
        return image
    cols = round(inches * PRINT_DPI)
    rows = max(1, round(rgb.shape[0] * cols / rgb.shape[1]))
    return image.resize((cols, rows), PILImage.Resampling.LANCZOS)


def _picture_size(rgb: np.ndarray) -> tuple[float, float]:
    """85 mm wide keeping the aspect ratio, narrower when that would be over 110 mm high."""
    rows, cols = rgb.shape[:2]
    width, height = KEY_IMAGE_WIDTH, KEY_IMAGE_WIDTH * rows / cols
    if height > KEY_IMAGE_MAX_HEIGHT:
        width, height = KEY_IMAGE_MAX_HEIGHT * cols / rows, KEY_IMAGE_MAX_HEIGHT
    return width, height


def _key_images(images: Sequence[KeyImage], st: _Styles) -> list[Flowable]:
    """The key images, two per row."""
    flowables: list[Flowable] = [Paragraph("Key images", st.h1)]
    if not images:
        return [*flowables, Paragraph("No key images.", st.note)]
    cells = [_key_image_cell(image, st) for image in images]
    for i in range(0, len(cells), 2):
        pair = cells[i:i + 2] + ([[]] if i + 1 == len(cells) else [])
        table = Table([pair], colWidths=[_WIDTH / 2] * 2, hAlign="LEFT")
        table.setStyle(TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 4 * mm),
        ]))
        flowables.append(table)
    return flowables


def _key_image_cell(image: KeyImage, st: _Styles) -> list[Flowable]:
    """A key image with its caption, slice, window, origin and legend."""
    origin = "Added by the user" if image.origin == "user" else "Key image of an AI finding"
    details = " · ".join(p for p in (image.plane, image.slice_text, image.display_text) if p)
    cell: list[Flowable] = [
        _Picture(image.rgb, *_picture_size(image.rgb)),
        Spacer(1, 1 * mm),
        _para(image.caption or fmt.MISSING, st.caption),
        _para(details, st.cell),
        _para(origin, st.cell),
    ]
    if image.legend:
        cell.append(_legend(image.legend, st))
    return cell


def _legend(legend: Sequence[tuple[str, str]], st: _Styles) -> Flowable:
    """Swatch and name of each label drawn on a key image, two per row."""
    entries: list[list[Any]] = [[_Swatch(color, 2.6 * mm), _para(name, st.cell)]
                                for name, color in legend[:MAX_LEGEND]]
    if len(entries) % 2:
        entries.append(["", ""])
    rows = [entries[i] + entries[i + 1] for i in range(0, len(entries), 2)]
    if len(legend) > MAX_LEGEND:
        rows.append(["", _para(f"{len(legend) - MAX_LEGEND} more labels", st.note), "", ""])
    table = Table(rows, colWidths=[5 * mm, 37 * mm] * 2, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
    ]))
    return table


# --------------------------------------------------------------------------- measurements, end


def _measurements(lines: Sequence[MeasurementLine], st: _Styles) -> list[Flowable]:
    """The user's measurements as a table."""
    flowables: list[Flowable] = [Paragraph("Measurements", st.h1)]
    if not lines:
        return [*flowables, Paragraph("No measurements.", st.note)]
    rows: list[list[Any]] = [[Paragraph(t, st.head) for t in ("#", "Label", "Measurement",
                                                              "Plane")]]
    for number, line in enumerate(lines, start=1):
        values = (str(number), line.label or fmt.MISSING, line.text, line.plane or fmt.MISSING)
        rows.append([_para(v, st.cell) for v in values])
    return [*flowables, _grid([10 * mm, 50 * mm, 90 * mm, 30 * mm], rows)]


def _disclaimer(texts: Sequence[str], st: _Styles) -> list[Flowable]:
    """Each model's intended use, then medviewer's own disclaimer."""
    return [Paragraph("Disclaimer", st.h1), *(_para(text, st.body) for text in texts)]


# --------------------------------------------------------------------------- page furniture


@dataclass(frozen=True)
class _Furniture:
    """What every page repeats: patient, software, generated time."""

    patient: str
    software: str
    generated: str

    @classmethod
    def of(cls, header: ReportHeader) -> _Furniture:
        """The furniture of a report with this header."""
        name = fmt.person_name(header.patient_name) or "Unnamed patient"
        patient = f"{name} ({header.patient_id})" if header.patient_id else name
        return cls(_CONTROL.sub("", patient), f"medviewer {header.app_version}",
                   fmt.iso_time(header.generated))

    def draw(self, canv: Canvas, page: int, total: int) -> None:
        """Draw the footer (every page) and the running header (pages after the first)."""
        canv.saveState()
        canv.setStrokeColor(_RULE)
        canv.setLineWidth(0.5)
        canv.setFillColor(_GREY_TEXT)
        left, right = _MARGIN, A4[0] - _MARGIN
        canv.line(left, 15 * mm, right, 15 * mm)
        canv.setFont(FONT, 7.5)
        canv.drawString(left, 11.5 * mm, _fit(self.patient, FONT, 7.5, 120 * mm))
        canv.drawRightString(right, 11.5 * mm, f"Page {page} of {total}")
        canv.drawString(left, 8 * mm, f"{self.software} · {TITLE}")
        canv.drawRightString(right, 8 * mm, f"Generated {self.generated}")
        if page > 1:
            top = A4[1] - 11 * mm
            canv.drawString(left, top, TITLE)
            canv.drawRightString(right, top, _fit(self.patient, FONT, 7.5, 110 * mm))
            canv.line(left, top - 2 * mm, right, top - 2 * mm)
        canv.restoreState()


def _fit(text: str, font: str, size: float, width: float) -> str:
    """`text`, cut with an ellipsis where it would be wider than `width` points."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


class _PagedCanvas(Canvas):
    """A canvas that keeps its pages until the end, to print "Page X of Y" on each."""

    def __init__(self, furniture: _Furniture, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._furniture = furniture
        self._held: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        """Hold the finished page instead of writing it out."""
        self._held.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        """Draw the page furniture with the page count on every held page, then write."""
        total = len(self._held)
        for state in self._held:
            self.__dict__.update(state)
            self._furniture.draw(self, self._pageNumber, total)
            super().showPage()
        super().save()
