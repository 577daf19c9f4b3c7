"""AI findings widgets: probability charts, component table, overlay and edit controls.

Every widget here only shows plain values and emits signals: none runs a model, reads a
:class:`~medviewer.core.findings.FindingsModel` or draws on the images. The AI panel wires them.

- :class:`ClassProbabilityChart`: one bar per class, positive classes highlighted, the threshold.
- :class:`SliceProbabilityPlot`: a class probability along the slices of a volume classified
  slice by slice; click to go to a slice.
- :class:`ComponentTable`: the connected components of a segmentation; click to go to one.
- :class:`OverlayControls`: edits an :class:`~medviewer.core.findings.OverlayStyle`.
- :class:`EditControls`: brush/eraser, radius, label, undo/redo of label map corrections.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from medviewer.core import formatting as fmt
from medviewer.core.findings import ComponentRow, OverlayStyle, Segment

POSITIVE_COLOR = "#e0533d"
"""Bars of the classes called positive (in the decision)."""
NEGATIVE_COLOR = "#4f86c6"
"""Bars of the other classes."""
PLOT_BACKGROUND = "#181819"
TEXT_COLOR = "#dcdcdc"
THRESHOLD_PEN = pg.mkPen("#f0c040", width=1, style=Qt.PenStyle.DashLine)
MARKER_PEN = pg.mkPen("#50c8ff", width=1)
CURVE_PEN = pg.mkPen("#e0e0e0", width=2)


def _loadable_colormaps(names: Iterable[str]) -> tuple[str, ...]:
    found = []
    for name in names:
        try:
            pg.colormap.get(name)
        except (FileNotFoundError, ValueError, KeyError, OSError):
            continue
        found.append(name)
    return tuple(found)


HEATMAP_COLORMAPS = _loadable_colormaps(("inferno", "turbo", "viridis"))
"""The heatmap colormaps offered (those of inferno, turbo, viridis that pyqtgraph loads)."""


def swatch_icon(color: str, size: int = 12) -> QIcon:
    """A square icon filled with `color` (``#rrggbb``), for legends and combo boxes.

    Parameters
    ----------
    color : str
        The colour, any name :class:`QColor` reads.
    size : int
        Side of the square in pixels.

    Returns
    -------
    QIcon
    """
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(color))
    painter = QPainter(pixmap)
    painter.setPen(QPen(QColor(0, 0, 0, 160)))
    painter.drawRect(0, 0, size - 1, size - 1)
    painter.end()
    return QIcon(pixmap)


def _static_plot(**labels: str) -> pg.PlotWidget:
    """A PlotWidget without panning, zooming, context menu or auto-range button."""
    plot = pg.PlotWidget(background=PLOT_BACKGROUND)
    item = plot.getPlotItem()
    item.setMouseEnabled(x=False, y=False)
    item.setMenuEnabled(False)
    item.hideButtons()
    item.vb.disableAutoRange()
    for side, text in labels.items():
        item.setLabel(side, text, color=TEXT_COLOR)
    plot.setMinimumHeight(140)
    return plot


def _threshold_line(text: str) -> pg.InfiniteLine:
    line = pg.InfiniteLine(
        pos=0.5,
        angle=0,
        pen=THRESHOLD_PEN,
        movable=False,
        label=text,
        labelOpts={
            "position": 0.98,
            "color": "#f0c040",
            "fill": (24, 24, 25, 200),
            "anchors": [(1, 1), (1, 1)],
        },
    )
    line.setZValue(10)
    return line


# -- class probabilities ---------------------------------------------------------------------


class ClassProbabilityChart(QWidget):
    """Bar chart of the per-class probabilities of a classification.

    One bar per class, in the given order, x ticks the class names, y from 0 to 1. Bars of
    the classes in the decision are drawn in :data:`POSITIVE_COLOR`, the others in
    :data:`NEGATIVE_COLOR`; each bar has its value written on it and a dashed line marks the
    decision threshold. The chart does not react to the mouse.

    Attributes
    ----------
    plot : pyqtgraph.PlotWidget
    threshold_line : pyqtgraph.InfiniteLine
        The horizontal threshold line (hidden when the chart is empty).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _static_plot(left="probability")
        self.plot.getPlotItem().setRange(yRange=(0.0, 1.0), padding=0.02)
        self.threshold_line = _threshold_line("threshold {value:.2f}")
        self.plot.addItem(self.threshold_line, ignoreBounds=True)
        self._bars: pg.BarGraphItem | None = None
        self._texts: list[pg.TextItem] = []
        self._classes: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.clear()

    def set_probabilities(
        self, classes: dict[str, float], threshold: float, decision: Sequence[str]
    ) -> None:
        """Show the probabilities of `classes`.

        Parameters
        ----------
        classes : dict
            Class name -> probability in [0, 1], in display order.
        threshold : float
            The decision threshold, drawn as a dashed line.
        decision : sequence of str
            The classes called positive (highlighted).
        """
        self.clear()
        names = list(classes)
        heights = [float(classes[name]) for name in names]
        colors = [POSITIVE_COLOR if name in decision else NEGATIVE_COLOR for name in names]
        self._classes = names
        self._bars = pg.BarGraphItem(
            x=np.arange(len(names)), height=heights, width=0.6, brushes=colors
        )
        self.plot.addItem(self._bars)
        for i, value in enumerate(heights):
            self._add_value_text(i, value)
        self.plot.getAxis("bottom").setTicks([list(enumerate(names))])
        self.plot.getPlotItem().setRange(xRange=(-0.6, len(names) - 0.4), padding=0)
        self.threshold_line.setValue(float(threshold))
        self.threshold_line.setVisible(True)

    def _add_value_text(self, i: int, value: float) -> None:
        # Written above the bar, or just inside its top when there is no room above it.
        anchor = (0.5, 0.0) if value > 0.85 else (0.5, 1.0)
        text = pg.TextItem(fmt.probability(value), color=TEXT_COLOR, anchor=anchor)
        text.setPos(i, value)
        self.plot.addItem(text)
        self._texts.append(text)

    def clear(self) -> None:
        """Remove the bars, their values and the threshold line."""
        if self._bars is not None:
            self.plot.removeItem(self._bars)
            self._bars = None
        for text in self._texts:
            self.plot.removeItem(text)
        self._texts.clear()
        self._classes = []
        self.plot.getAxis("bottom").setTicks([[]])
        self.threshold_line.setVisible(False)

    def values(self) -> dict[str, float]:
        """Class name -> height of its bar (empty when cleared)."""
        if self._bars is None:
            return {}
        heights = self._bars.opts["height"]
        return {name: float(h) for name, h in zip(self._classes, heights, strict=True)}

    def bar_colors(self) -> dict[str, str]:
        """Class name -> ``#rrggbb`` fill of its bar."""
        if self._bars is None:
            return {}
        brushes = [pg.mkBrush(b).color().name() for b in self._bars.opts["brushes"]]
        return dict(zip(self._classes, brushes, strict=True))

    def value_texts(self) -> list[str]:
        """The values written on the bars, in bar order."""
        return [text.textItem.toPlainText() for text in self._texts]


# -- probability by slice --------------------------------------------------------------------


class SliceProbabilityPlot(QWidget):
    """A class probability along the slices of a volume classified slice by slice.

    The x axis shows the image number the axial viewport shows (``Im N``); by default
    N = index + 1, and :meth:`set_curve` takes each slice's own image number when the array
    order differs from the viewer's (feet-first series, other slice axes).
    :attr:`sliceClicked` and :meth:`set_current` use the 0-based array index.

    Signals
    -------
    sliceClicked(int)
        The 0-based index of the slice nearest a left click in the plot.
    """

    sliceClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _static_plot(bottom="slice (Im N = index + 1)", left="probability")
        self.curve = self.plot.plot(pen=CURVE_PEN)
        self.threshold_line = _threshold_line("{value:.2f}")
        self.marker = pg.InfiniteLine(pos=1, angle=90, pen=MARKER_PEN, movable=False)
        for line in (self.threshold_line, self.marker):
            self.plot.addItem(line, ignoreBounds=True)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self._count = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.clear()

    @property
    def count(self) -> int:
        """Number of slices of the shown curve (0 when empty)."""
        return self._count

    def set_curve(
        self,
        probabilities: np.ndarray,
        label: str,
        threshold: float,
        image_numbers: np.ndarray | None = None,
    ) -> None:
        """Show one probability per slice.

        Parameters
        ----------
        probabilities : numpy.ndarray
            ``(n,)`` probabilities, element ``i`` for slice index ``i``.
        label : str
            What the probabilities are of (e.g. the class name), the y axis title.
        threshold : float
            The decision threshold, drawn as a dashed line.
        image_numbers : numpy.ndarray, optional
            ``(n,)`` the viewer's ``Im`` number of each slice (default ``index + 1``).
        """
        values = np.asarray(probabilities, dtype=float).reshape(-1)
        self._count = len(values)
        default = np.arange(1, self._count + 1, dtype=float)
        self._x = default if image_numbers is None else np.asarray(image_numbers, float)
        order = np.argsort(self._x, kind="stable")
        self.curve.setData(self._x[order], values[order])
        self.plot.setLabel("left", f"P({label})" if label else "probability", color=TEXT_COLOR)
        self.plot.getPlotItem().setRange(
            xRange=(0.5, max(self._count, 1) + 0.5), yRange=(0.0, 1.0), padding=0.02
        )
        self.threshold_line.setValue(float(threshold))
        self.threshold_line.setVisible(True)
        self.marker.setVisible(self._count > 0)

    def set_current(self, index: int) -> None:
        """Move the marker to slice `index` (0-based; drawn at that slice's Im number)."""
        if 0 <= index < self._count:
            self.marker.setValue(float(self._x[index]))

    def set_marker(self, image_number: float) -> None:
        """Move the marker to an Im number (the axial view's current image)."""
        self.marker.setValue(float(image_number))

    def current_x(self) -> float:
        """The x of the marker (the Im number of the current slice)."""
        return float(self.marker.value())

    def clear(self) -> None:
        """Remove the curve, the threshold and the marker."""
        self._count = 0
        self._x = np.empty(0)
        self.curve.setData([], [])
        self.threshold_line.setVisible(False)
        self.marker.setVisible(False)

    def index_at(self, x: float) -> int | None:
        """The 0-based index of the slice nearest plot x `x`, None when empty."""
        if self._count == 0:
            return None
        return int(np.argmin(np.abs(self._x - x)))

    def _on_scene_clicked(self, event: Any) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        viewbox = self.plot.getPlotItem().vb
        pos = event.scenePos()
        if not viewbox.sceneBoundingRect().contains(pos):
            return
        index = self.index_at(viewbox.mapSceneToView(pos).x())
        if index is not None:
            self.sliceClicked.emit(index)


# -- component table -------------------------------------------------------------------------


class _Item(QTableWidgetItem):
    """A read-only cell that sorts by its own key (numbers as numbers), not by its text."""

    def __init__(self, text: str, key: Any, row: ComponentRow) -> None:
        super().__init__(text)
        self.key = key
        self.setData(Qt.ItemDataRole.UserRole, row)
        self.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, _Item):
            return self.key < other.key
        return super().__lt__(other)


RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def _cells(row: ComponentRow, image_number: Callable[[ComponentRow], int | None]) -> list:
    """The (text, sort key) of each column of a row."""
    c = row.component
    im = image_number(row)
    mean = c.mean_value
    return [
        (row.name, (row.segment.lower(), row.label, c.index)),
        (fmt.volume_ml(c.volume_ml), c.volume_ml),
        (fmt.length_mm(c.longest_diameter_mm), c.longest_diameter_mm),
        (fmt.mean_value(mean), -math.inf if mean is None else mean),
        (fmt.point_lps(c.centroid_lps), tuple(c.centroid_lps)),
        ("" if im is None else str(im), -math.inf if im is None else im),
    ]


def _array_image_number(row: ComponentRow) -> int:
    return row.component.centroid_slice + 1


class ComponentTable(QTableWidget):
    """The connected components of a segmentation, one per row; click one to go to it.

    Columns: Finding, Volume (mL), Longest diameter (mm), Mean (in the volume's units, ``—``
    when unknown), Centroid LPS (mm), Slice (the ``Im`` number of the axial image through the
    centroid, as the viewport shows it); numbers are written by
    :mod:`medviewer.core.formatting`, as in the PDF report. Read-only, whole rows
    selected, sortable by any column (each cell holds its
    :class:`~medviewer.core.findings.ComponentRow` in ``Qt.UserRole``, so sorting keeps rows
    and findings together).

    Signals
    -------
    componentActivated(object)
        The :class:`~medviewer.core.findings.ComponentRow` of a row clicked, or of the current
        row when Enter/Return is pressed.
    """

    componentActivated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 6, parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setStretchLastSection(True)
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self._set_headers("HU")
        self.cellClicked.connect(self._activate_row)

    def _set_headers(self, units: str) -> None:
        mean = f"Mean ({units})" if units else "Mean"
        self.setHorizontalHeaderLabels(
            [
                "Finding",
                "Volume (mL)",
                "Longest diameter (mm)",
                mean,
                "Centroid LPS (mm)",
                "Slice (Im)",
            ]
        )

    def set_rows(
        self,
        rows: Sequence[ComponentRow],
        units: str = "HU",
        colors: dict[int, str] | None = None,
        image_number: Callable[[ComponentRow], int | None] | None = None,
    ) -> None:
        """List `rows` (in the given order until the user sorts a column).

        Parameters
        ----------
        rows : sequence of ComponentRow
        units : str
            Units of the mean value (the volume's), shown in its column header.
        colors : dict, optional
            Label -> ``#rrggbb`` segment colour, shown as a swatch in the Finding cell.
        image_number : callable, optional
            The axial view's ``Im`` number of a row's centroid (None: not on an axial image);
            default centroid slice index + 1.
        """
        number = image_number if image_number is not None else _array_image_number
        sorting = self.isSortingEnabled()
        self.setSortingEnabled(False)
        self.clearContents()
        self.setRowCount(len(rows))
        self._set_headers(units)
        for r, row in enumerate(rows):
            for c, (text, key) in enumerate(_cells(row, number)):
                item = _Item(text, key, row)
                if c > 0:
                    item.setTextAlignment(RIGHT)
                self.setItem(r, c, item)
            if colors and row.label in colors:
                self.item(r, 0).setData(Qt.ItemDataRole.DecorationRole, QColor(colors[row.label]))
        self.setSortingEnabled(sorting)
        self.resizeColumnsToContents()

    def component(self, table_row: int) -> ComponentRow | None:
        """The ComponentRow shown in table row `table_row` (after any sorting), or None."""
        item = self.item(table_row, 0)
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def components(self) -> list[ComponentRow]:
        """The listed ComponentRows in display order."""
        return [self.component(r) for r in range(self.rowCount())]  # type: ignore[misc]

    def texts(self, table_row: int) -> list[str]:
        """The cell texts of table row `table_row`."""
        return [self.item(table_row, c).text() for c in range(self.columnCount())]

    def _activate_row(self, table_row: int, _column: int = 0) -> None:
        row = self.component(table_row)
        if row is not None:
            self.componentActivated.emit(row)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentRow() >= 0:
            self._activate_row(self.currentRow())
            event.accept()
            return
        super().keyPressEvent(event)


# -- overlay style ---------------------------------------------------------------------------


def _percent_slider() -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setSingleStep(1)
    slider.setPageStep(10)
    return slider


def _slider_row(slider: QSlider, label: QLabel) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(slider, 1)
    label.setMinimumWidth(40)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    layout.addWidget(label)
    return row


class HeatmapColorBar(QWidget):
    """A horizontal colour bar of a heatmap colormap, ticks 0, 0.5, 1 and the threshold marked.

    0 is the weakest and 1 the strongest evidence of the run; values below the threshold are
    not drawn over the image, so that part of the bar is dimmed.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colormap = HEATMAP_COLORMAPS[0] if HEATMAP_COLORMAPS else ""
        self.threshold = 0.0
        self.setMinimumSize(120, 34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Heatmap scale: 0 = weakest, 1 = strongest evidence of this run")

    def set_colormap(self, name: str, threshold: float) -> None:
        """Draw colormap `name` with `threshold` (0-1) marked."""
        self.colormap, self.threshold = name, float(threshold)
        self.update()

    def paintEvent(self, event: Any) -> None:
        painter = QPainter(self)
        bar = QRectF(6, 2, self.width() - 12, 14)
        if self.colormap:
            gradient = pg.colormap.get(self.colormap).getGradient(bar.topLeft(), bar.topRight())
            painter.fillRect(bar, gradient)
        x = bar.left() + self.threshold * bar.width()
        painter.fillRect(
            QRectF(bar.left(), bar.top(), x - bar.left(), bar.height()), QColor(24, 24, 25, 170)
        )
        painter.setPen(QPen(QColor("#f0c040"), 2))
        painter.drawLine(QPointF(x, bar.top() - 1), QPointF(x, bar.bottom() + 1))
        self._draw_ticks(painter, bar)
        painter.end()

    def _draw_ticks(self, painter: QPainter, bar: QRectF) -> None:
        painter.setPen(QColor(TEXT_COLOR))
        for value, text, align in (
            (0.0, "0", Qt.AlignmentFlag.AlignLeft),
            (0.5, "0.5", Qt.AlignmentFlag.AlignHCenter),
            (1.0, "1", Qt.AlignmentFlag.AlignRight),
        ):
            x = bar.left() + value * bar.width()
            painter.drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 3))
            left = {Qt.AlignmentFlag.AlignLeft: x - 2, Qt.AlignmentFlag.AlignRight: x - 38}
            box = QRectF(left.get(align, x - 20), bar.bottom() + 3, 40, 14)
            painter.drawText(box, int(align | Qt.AlignmentFlag.AlignTop), text)


class OverlayControls(QWidget):
    """Controls of the :class:`~medviewer.core.findings.OverlayStyle` of AI overlays.

    A "Show overlays (O)" check box; a label map section (opacity, fill or outline, a legend
    with one check box per segment) shown when segments are set; a heatmap section (target
    class, opacity, lower threshold, colormap and its colour bar) shown when heatmap classes
    are set. :meth:`set_style`, :meth:`set_segments` and :meth:`set_heatmap` emit nothing.

    Signals
    -------
    styleChanged(object)
        The new :class:`~medviewer.core.findings.OverlayStyle`, on every user change.
    targetClassChanged(str)
        The heatmap class the user picked.
    """

    styleChanged = Signal(object)
    targetClassChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._style = OverlayStyle()
        self.legend_boxes: dict[int, QCheckBox] = {}
        self.show_box = QCheckBox("Show overlays (O)")
        self.show_box.toggled.connect(lambda on: self._change(visible=on))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.show_box)
        layout.addWidget(self._build_label_section())
        layout.addWidget(self._build_heatmap_section())
        layout.addStretch(1)
        self.set_segments({})
        self.set_heatmap(None, None)
        self.set_style(self._style)

    def _build_label_section(self) -> QGroupBox:
        self.label_section = QGroupBox("Label map")
        self.label_opacity = _percent_slider()
        self.label_opacity_text = QLabel()
        self.label_opacity.valueChanged.connect(self._on_label_opacity)
        self.fill_button, self.outline_button = QRadioButton("Fill"), QRadioButton("Outline")
        group = QButtonGroup(self)
        modes = QHBoxLayout()
        for button in (self.fill_button, self.outline_button):
            group.addButton(button)
            modes.addWidget(button)
        modes.addStretch(1)
        self.outline_button.toggled.connect(lambda on: self._change(outline=on))
        self.legend = QVBoxLayout()
        self.legend.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout(self.label_section)
        form.addRow("Opacity", _slider_row(self.label_opacity, self.label_opacity_text))
        form.addRow("Draw", modes)
        form.addRow(self.legend)
        return self.label_section

    def _build_heatmap_section(self) -> QGroupBox:
        self.heatmap_section = QGroupBox("Heatmap")
        self.target_combo = QComboBox()
        self.target_combo.currentTextChanged.connect(self.targetClassChanged)
        self.heatmap_opacity = _percent_slider()
        self.heatmap_opacity_text = QLabel()
        self.heatmap_opacity.valueChanged.connect(self._on_heatmap_opacity)
        self.threshold_slider = _percent_slider()
        self.threshold_text = QLabel()
        self.threshold_slider.valueChanged.connect(self._on_threshold)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(HEATMAP_COLORMAPS))
        self.colormap_combo.currentTextChanged.connect(self._on_colormap)
        self.colorbar = HeatmapColorBar()
        form = QFormLayout(self.heatmap_section)
        form.addRow("Class", self.target_combo)
        form.addRow("Opacity", _slider_row(self.heatmap_opacity, self.heatmap_opacity_text))
        form.addRow("Threshold", _slider_row(self.threshold_slider, self.threshold_text))
        form.addRow("Colormap", self.colormap_combo)
        form.addRow(self.colorbar)
        return self.heatmap_section

    # -- API --

    def current_style(self) -> OverlayStyle:
        """The overlay style the controls show."""
        return self._style

    def set_style(self, style: OverlayStyle) -> None:
        """Show `style` (emits nothing)."""
        self._style = style
        with ExitStack() as blocked:
            for widget in self._style_widgets():
                blocked.enter_context(signals_blocked(widget))
            self._show_style(style)
        self._update_texts()

    def _show_style(self, style: OverlayStyle) -> None:
        self.show_box.setChecked(style.visible)
        self.label_opacity.setValue(round(style.label_opacity * 100))
        (self.outline_button if style.outline else self.fill_button).setChecked(True)
        for label, box in self.legend_boxes.items():
            box.setChecked(label not in style.hidden_labels)
        self.heatmap_opacity.setValue(round(style.heatmap_opacity * 100))
        self.threshold_slider.setValue(round(style.heatmap_threshold * 100))
        index = self.colormap_combo.findText(style.colormap)
        if index >= 0:
            self.colormap_combo.setCurrentIndex(index)

    def _style_widgets(self) -> list[QWidget]:
        return [
            self.show_box,
            self.label_opacity,
            self.fill_button,
            self.outline_button,
            self.heatmap_opacity,
            self.threshold_slider,
            self.colormap_combo,
            *self.legend_boxes.values(),
        ]

    def set_segments(self, segments: dict[int, Segment]) -> None:
        """List `segments` (label -> Segment) in the legend; none hides the label section."""
        for box in self.legend_boxes.values():
            self.legend.removeWidget(box)
            box.deleteLater()
        self.legend_boxes = {}
        for label in sorted(segments):
            self.legend_boxes[label] = self._legend_box(segments[label])
        self.label_section.setHidden(not segments)

    def _legend_box(self, segment: Segment) -> QCheckBox:
        box = QCheckBox(segment.name)
        box.setIcon(swatch_icon(segment.color))
        box.setChecked(segment.label not in self._style.hidden_labels)
        box.toggled.connect(lambda on, label=segment.label: self._on_legend(label, on))
        self.legend.addWidget(box)
        return box

    def set_heatmap(self, classes: Sequence[str] | None, current: str | None) -> None:
        """Offer heatmap target `classes` with `current` selected; None hides the section."""
        with signals_blocked(self.target_combo):
            self.target_combo.clear()
            self.target_combo.addItems(list(classes or []))
            if current is not None and self.target_combo.findText(current) >= 0:
                self.target_combo.setCurrentText(current)
        self.heatmap_section.setHidden(classes is None)

    # -- user changes --

    def _change(self, **changes: Any) -> None:
        self._style = replace(self._style, **changes)
        self._update_texts()
        self.styleChanged.emit(self._style)

    def _on_label_opacity(self, value: int) -> None:
        self._change(label_opacity=value / 100)

    def _on_heatmap_opacity(self, value: int) -> None:
        self._change(heatmap_opacity=value / 100)

    def _on_threshold(self, value: int) -> None:
        self._change(heatmap_threshold=value / 100)

    def _on_colormap(self, name: str) -> None:
        if name:
            self._change(colormap=name)

    def _on_legend(self, label: int, shown: bool) -> None:
        self._style = self._style.with_label(label, shown)
        self.styleChanged.emit(self._style)

    def _update_texts(self) -> None:
        style = self._style
        self.label_opacity_text.setText(f"{round(style.label_opacity * 100)} %")
        self.heatmap_opacity_text.setText(f"{round(style.heatmap_opacity * 100)} %")
        self.threshold_text.setText(fmt.threshold(style.heatmap_threshold))
        self.colorbar.set_colormap(self.colormap_combo.currentText(), style.heatmap_threshold)


# -- label map editing -----------------------------------------------------------------------


class EditControls(QWidget):
    """Correction tools of a label map: brush, eraser, radius, label, undo/redo.

    Brush and Eraser are checkable and exclusive; clicking the checked one unchecks it and
    returns to the "navigate" tool. No keyboard shortcut is registered here (Ctrl+Z and
    Ctrl+Shift+Z belong to the main window, which calls the same slots).

    Signals
    -------
    toolChanged(str)
        ``"brush"``, ``"eraser"`` or ``"navigate"``, when the user changes the tool.
    brushChanged(float, int)
        Radius in mm and label painted, when the user changes either.
    undoRequested()
    redoRequested()
    fillRequested(str)
        Fill the selected label between the slices it is drawn on (the method's name).
    """

    toolChanged = Signal(str)
    brushChanged = Signal(float, int)
    undoRequested = Signal()
    redoRequested = Signal()
    fillRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from medviewer.ai.slice_fill import available_methods

        self.fill_button = QPushButton("Fill between slices")
        self.fill_button.setToolTip(
            "Complete the selected label on the slices between the ones it is drawn on, "
            "across the active view's plane")
        self.fill_combo = QComboBox()
        for method in available_methods():
            self.fill_combo.addItem({"distance": "shape (distance)",
                                     "contour": "contours (ITK)"}[method], method)
        self.fill_button.clicked.connect(
            lambda: self.fillRequested.emit(self.fill_combo.currentData() or "distance"))
        self.brush_button = self._tool_button("Brush", "Paint the selected label")
        self.eraser_button = self._tool_button("Eraser", "Erase to background")
        self.radius_box = QDoubleSpinBox()
        self.radius_box.setRange(0.5, 50.0)
        self.radius_box.setSingleStep(0.5)
        self.radius_box.setDecimals(1)
        self.radius_box.setSuffix(" mm")
        self.radius_box.setValue(3.0)
        self.radius_box.valueChanged.connect(self._emit_brush)
        self.label_combo = QComboBox()
        self.label_combo.currentIndexChanged.connect(self._emit_brush)
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.undo_button.clicked.connect(self.undoRequested)
        self.redo_button.clicked.connect(self.redoRequested)
        self.edited_label = QLabel()
        self._layout()
        self.set_undo_state(False, False)
        self.set_segments({})

    def _tool_button(self, text: str, tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setCheckable(True)
        button.setToolTip(tip)
        button.clicked.connect(lambda checked, b=button: self._on_tool_clicked(b, checked))
        return button

    def _layout(self) -> None:
        tools = QHBoxLayout()
        for widget in (self.brush_button, self.eraser_button):
            tools.addWidget(widget)
        tools.addStretch(1)
        history = QHBoxLayout()
        for widget in (self.undo_button, self.redo_button):
            history.addWidget(widget)
        history.addStretch(1)
        form = QFormLayout(self)
        form.setContentsMargins(2, 2, 2, 2)
        form.addRow(tools)
        form.addRow("Radius", self.radius_box)
        form.addRow("Label", self.label_combo)
        form.addRow(history)
        fill = QHBoxLayout()
        fill.addWidget(self.fill_button)
        fill.addWidget(self.fill_combo)
        form.addRow(fill)
        form.addRow(self.edited_label)

    # -- API --

    def tool(self) -> str:
        """``"brush"``, ``"eraser"`` or ``"navigate"``."""
        if self.brush_button.isChecked():
            return "brush"
        return "eraser" if self.eraser_button.isChecked() else "navigate"

    def set_tool(self, tool: str) -> None:
        """Show `tool` as the current one (emits nothing)."""
        self.brush_button.setChecked(tool == "brush")
        self.eraser_button.setChecked(tool == "eraser")

    def radius(self) -> float:
        """The brush radius in mm."""
        return float(self.radius_box.value())

    def label(self) -> int:
        """The label the brush paints (0 when no segment is listed)."""
        data = self.label_combo.currentData()
        return 0 if data is None else int(data)

    def set_segments(self, segments: dict[int, Segment]) -> None:
        """Offer the labels of `segments`, keeping the current one when still offered."""
        current = self.label()
        with signals_blocked(self.label_combo):
            self.label_combo.clear()
            for label in sorted(segments):
                segment = segments[label]
                self.label_combo.addItem(swatch_icon(segment.color), segment.name, label)
            index = self.label_combo.findData(current)
            self.label_combo.setCurrentIndex(max(index, 0) if segments else -1)
        self.brush_button.setEnabled(bool(segments))
        self.fill_button.setEnabled(bool(segments))
        if not segments and self.brush_button.isChecked():
            self.set_tool("navigate")

    def set_undo_state(self, can_undo: bool, can_redo: bool) -> None:
        """Enable Undo and Redo."""
        self.undo_button.setEnabled(can_undo)
        self.redo_button.setEnabled(can_redo)

    def set_edited(self, text: str) -> None:
        """Show the edit status, e.g. ``"Edited 2026-11-21 10:40 UTC"`` (empty: nothing)."""
        self.edited_label.setText(text)

    # -- user changes --

    def _on_tool_clicked(self, button: QPushButton, checked: bool) -> None:
        if checked:
            other = self.eraser_button if button is self.brush_button else self.brush_button
            other.setChecked(False)
        self.toolChanged.emit(self.tool())

    def _emit_brush(self, *_: Any) -> None:
        self.brushChanged.emit(self.radius(), self.label())
