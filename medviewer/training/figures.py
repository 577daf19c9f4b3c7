"""SVG figures of an evaluation: the FROC curve and reliability diagrams (reportlab, no Qt).

Every plot has the same frame: a plot area :data:`PLOT` ``(left, bottom, width, height)`` in
drawing units (y up, as reportlab draws; the SVG flips it with one group transform). Data
points are circles of radius :data:`POINT_RADIUS` at their data position:

- FROC: x is ``log2(false positives per case)`` from -3 (1/8) to 3 (8), y the sensitivity
  from 0 to 1; a circle at each rate of :data:`metrics.FROC_RATES` and the step curve as a
  polyline (operating points under 1/8 FP per case drawn on the left edge).
- Reliability: x the mean probability of a bin, y its fraction of positives, both 0 to 1; a
  circle per non-empty bin, the diagonal (perfect calibration) dashed, and bars along the
  bottom whose heights show each bin's share of the samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reportlab.graphics import renderSVG
from reportlab.graphics.shapes import Circle, Drawing, Group, Line, PolyLine, Rect, String
from reportlab.lib import colors

from medviewer.core.staging import StagingFolder
from medviewer.training import metrics

SIZE = (440.0, 330.0)
PLOT = (62.0, 52.0, 350.0, 220.0)  # left, bottom, width, height
POINT_RADIUS = 3.0
LOG2_RANGE = (-3.0, 3.0)
_INK = colors.HexColor("#1f4e79")
_GRID = colors.HexColor("#d9d9d9")
_FONT = "Helvetica"


def froc_drawing(curve: metrics.Froc, title: str, subtitle: str = "") -> Drawing:
    """The FROC curve: sensitivity against false positives per case on a log2 axis.

    Parameters
    ----------
    curve : metrics.Froc
    title, subtitle : str
        Written above the plot.

    Returns
    -------
    reportlab.graphics.shapes.Drawing
    """
    drawing = _frame(title, subtitle, "false positives per case", "sensitivity")
    bottom = PLOT[1]
    for rate in metrics.FROC_RATES:
        x = _x_log(rate)
        drawing.add(Line(x, bottom, x, bottom + PLOT[3], strokeColor=_GRID, strokeWidth=0.5))
        drawing.add(String(x, bottom - 14, f"{rate:g}", fontName=_FONT, fontSize=8,
                           textAnchor="middle"))
    if curve.nodules:
        drawing.add(PolyLine(_staircase(curve), strokeColor=_INK, strokeWidth=1.2,
                             fillColor=None))
        for rate in metrics.FROC_RATES:
            drawing.add(Circle(_x_log(rate), _y(curve.sensitivity_at(rate)), POINT_RADIUS,
                               fillColor=_INK, strokeColor=colors.white, strokeWidth=0.5))
    return drawing


def reliability_drawing(bins: Mapping[str, Any], title: str, subtitle: str = "") -> Drawing:
    """A reliability diagram from bins as :func:`metrics.reliability_json` writes them.

    Parameters
    ----------
    bins : mapping
        ``edges``, and per bin ``count``, ``confidence`` and ``accuracy`` (None when empty).
    title, subtitle : str

    Returns
    -------
    reportlab.graphics.shapes.Drawing
    """
    drawing = _frame(title, subtitle, "mean predicted probability (nodule)",
                     "fraction with a nodule")
    left, bottom, width, height = PLOT
    for k in range(6):
        x = left + width * k / 5
        drawing.add(Line(x, bottom, x, bottom + height, strokeColor=_GRID, strokeWidth=0.5))
        drawing.add(String(x, bottom - 14, f"{k / 5:.1f}", fontName=_FONT, fontSize=8,
                           textAnchor="middle"))
    edges, counts = bins["edges"], bins["count"]
    most = max(counts, default=0) or 1
    for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True):
        drawing.add(Rect(_x_lin(low) + 1, bottom, (high - low) * width - 2,
                         0.25 * height * count / most,
                         fillColor=colors.HexColor("#c6dbef"), strokeColor=None))
    drawing.add(Line(left, bottom, left + width, bottom + height, strokeColor=colors.grey,
                     strokeDashArray=[3, 3], strokeWidth=0.8))
    filled = [(c, a, n) for c, a, n in zip(bins["confidence"], bins["accuracy"], counts,
                                           strict=True) if n]
    if filled:
        points = [v for c, a, _ in filled for v in (_x_lin(c), _y(a))]
        drawing.add(PolyLine(points, strokeColor=_INK, strokeWidth=1.0, fillColor=None))
    for confidence, accuracy, count in filled:
        x, y = _x_lin(confidence), _y(accuracy)
        drawing.add(Circle(x, y, POINT_RADIUS, fillColor=_INK, strokeColor=colors.white,
                           strokeWidth=0.5))
        drawing.add(String(x + 5, y + 4, str(count), fontName=_FONT, fontSize=7,
                           fillColor=colors.grey))
    return drawing


def evaluation_figures(model_id: str, result: Mapping[str, Any],
                       froc: metrics.Froc | None = None) -> dict[str, Drawing]:
    """The figures of one evaluation, by file name.

    Parameters
    ----------
    model_id : str
    result : mapping
        The figures :func:`medviewer.training.evaluate.evaluate` computed (without its seeds).
    froc : metrics.Froc, optional
        The segmentation model's FROC curve.

    Returns
    -------
    dict of str to Drawing
        ``<model_id>-froc.svg`` (with `froc`), else ``<model_id>-reliability.svg``.
    """
    cases = result.get("cases")
    if froc is not None:
        cpm = result["froc_ge_6mm"]["cpm"]
        subtitle = (f"{froc.nodules} nodules >= 6 mm in {froc.cases} CT cases, seeds "
                    f"{result.get('seeds', '?')}; CPM {_with_ci(cpm)}")
        return {f"{model_id}-froc.svg": froc_drawing(froc, f"{model_id}: FROC", subtitle)}
    calibration = result["calibration"]
    count = sum(calibration["bins"]["count"])
    of_cases = f" of {cases} series" if cases and calibration["unit"] == "slice" else ""
    subtitle = (f"{count} {calibration['unit']}s{of_cases}, seeds {result.get('seeds', '?')}; "
                f"ECE {_with_ci(calibration['ece'])}; T = {calibration.get('temperature', 1.0):g}"
                + (f", b = {calibration['bias']:g}" if calibration.get("bias") else ""))
    return {f"{model_id}-reliability.svg": reliability_drawing(
        calibration["bins"], f"{model_id}: reliability", subtitle)}


def write_svgs(drawings: Mapping[str, Drawing], folder: Path) -> list[Path]:
    """Write each drawing as ``folder / name``, all or none (through :mod:`core.staging`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    with StagingFolder(folder) as staging:
        moves = []
        for name, drawing in drawings.items():
            staged = staging.path / name
            staged.write_text(renderSVG.drawToString(drawing), encoding="utf-8")
            moves.append((staged, folder / name))
        return staging.move_into_place(moves)


def _frame(title: str, subtitle: str, x_label: str, y_label: str) -> Drawing:
    """An empty plot: title, axes, y grid and labels."""
    drawing = Drawing(*SIZE)
    left, bottom, width, height = PLOT
    drawing.add(String(left, SIZE[1] - 22, title, fontName=_FONT + "-Bold", fontSize=11))
    drawing.add(String(left, SIZE[1] - 36, subtitle, fontName=_FONT, fontSize=8))
    for k in range(6):
        y = bottom + height * k / 5
        drawing.add(Line(left, y, left + width, y, strokeColor=_GRID, strokeWidth=0.5))
        drawing.add(String(left - 6, y - 3, f"{k / 5:.1f}", fontName=_FONT, fontSize=8,
                           textAnchor="end"))
    drawing.add(Rect(left, bottom, width, height, fillColor=None, strokeColor=colors.black,
                     strokeWidth=0.8))
    drawing.add(String(left + width / 2, bottom - 32, x_label, fontName=_FONT, fontSize=9,
                       textAnchor="middle"))
    label = String(0, 0, y_label, fontName=_FONT, fontSize=9, textAnchor="middle")
    turned = Group(label)
    turned.translate(left - 36, bottom + height / 2)
    turned.rotate(90)
    drawing.add(turned)
    return drawing


def _staircase(curve: metrics.Froc) -> list[float]:
    """The step curve's polyline: each operating point holds until the next one's FP rate."""
    rates = curve.false_positives_per_case
    x_points = [_x_log(max(r, 2 ** LOG2_RANGE[0])) for r in rates]
    out = [x_points[0], _y(curve.sensitivity[0])]
    for k in range(1, len(rates)):
        out += [x_points[k], _y(curve.sensitivity[k - 1]), x_points[k], _y(curve.sensitivity[k])]
    end = _x_log(2 ** LOG2_RANGE[1])
    if out[-2] < end:
        out += [end, out[-1]]
    return _clip_x(out, end)


def _clip_x(points: list[float], end: float) -> list[float]:
    """Points beyond the right edge moved onto it (the curve may run past 8 FPs per case)."""
    return [min(v, end) if k % 2 == 0 else v for k, v in enumerate(points)]


def _x_log(rate: float) -> float:
    low, high = LOG2_RANGE
    return PLOT[0] + PLOT[2] * (math.log2(rate) - low) / (high - low)


def _x_lin(value: float) -> float:
    return PLOT[0] + PLOT[2] * value


def _y(value: float) -> float:
    return PLOT[1] + PLOT[3] * value


def _with_ci(figure: Mapping[str, Any]) -> str:
    if figure.get("value") is None:
        return "n/a"
    ci = figure.get("ci95")
    interval = f" (CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else ""
    return f"{figure['value']:.3f}{interval}"
