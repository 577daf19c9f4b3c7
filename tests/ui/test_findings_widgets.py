"""The AI findings widgets: charts, component table, overlay style and label edit controls."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medviewer.core.findings import ComponentRow, ComponentStats, OverlayStyle, Segment
from medviewer.ui.findings_widgets import (
    HEATMAP_COLORMAPS,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    ClassProbabilityChart,
    ComponentTable,
    EditControls,
    OverlayControls,
    SliceProbabilityPlot,
)
from tests.waits import WAIT_MS

SEGMENTS = {
    1: Segment(1, "nodule", "#ff0000"),
    2: Segment(2, "effusion", "#00c0ff"),
}


def _component(index, volume, diameter, centroid, slice_, mean) -> ComponentStats:
    return ComponentStats(
        index=index,
        voxels=100,
        volume_ml=volume,
        longest_diameter_mm=diameter,
        centroid_lps=centroid,
        centroid_index=(10.0, 12.0, float(slice_)),
        centroid_slice=slice_,
        bbox=(0, 0, 0, 1, 1, 1),
        mean_value=mean,
    )


ROWS = [
    ComponentRow(1, "nodule", _component(1, 12.345, 31.26, (-10.04, 22.5, -130.26), 7, 41.26)),
    ComponentRow(1, "nodule", _component(2, 0.01234, 3.04, (5.0, -6.25, 40.0), 19, None)),
    ComponentRow(2, "effusion", _component(1, 1234.5, 140.0, (0.0, 0.0, 0.0), 2, -3.0)),
]


# -- class probability chart ------------------------------------------------------------------


def test_chart_shows_probabilities_decision_colors_and_threshold(qtbot):
    chart = ClassProbabilityChart()
    qtbot.addWidget(chart)
    classes = {"normal": 0.12, "pneumonia": 0.87, "effusion": 0.55}
    chart.set_probabilities(classes, 0.5, ("pneumonia", "effusion"))

    assert chart.values() == pytest.approx(classes)
    assert list(chart.values()) == list(classes)
    colors = chart.bar_colors()
    assert colors["pneumonia"] == colors["effusion"] == QColor(POSITIVE_COLOR).name()
    assert colors["normal"] == QColor(NEGATIVE_COLOR).name()
    assert chart.threshold_line.value() == pytest.approx(0.5)
    assert chart.threshold_line.isVisible()
    assert chart.value_texts() == ["0.120", "0.870", "0.550"]  # as the PDF writes them
    ticks = chart.plot.getAxis("bottom")._tickLevels
    assert ticks == [[(0, "normal"), (1, "pneumonia"), (2, "effusion")]]
    y0, y1 = chart.plot.getPlotItem().vb.viewRange()[1]
    assert y0 <= 0.0 and 1.0 <= y1 < 1.1
    assert not any(chart.plot.getPlotItem().vb.state["mouseEnabled"])


def test_chart_replaces_and_clears(qtbot):
    chart = ClassProbabilityChart()
    qtbot.addWidget(chart)
    chart.set_probabilities({"a": 0.2, "b": 0.3}, 0.5, ())
    chart.set_probabilities({"c": 0.95}, 0.7, ("c",))
    assert chart.values() == pytest.approx({"c": 0.95})
    assert chart.bar_colors() == {"c": QColor(POSITIVE_COLOR).name()}
    assert chart.threshold_line.value() == pytest.approx(0.7)
    assert len(chart.value_texts()) == 1
    chart.clear()
    assert chart.values() == {}
    assert chart.value_texts() == []
    assert not chart.threshold_line.isVisible()


def test_chart_renders_offscreen(qtbot):
    chart = ClassProbabilityChart()
    qtbot.addWidget(chart)
    chart.resize(300, 200)
    chart.show()
    qtbot.waitExposed(chart)
    chart.set_probabilities({"normal": 0.1, "tumour": 1.0}, 0.5, ("tumour",))
    assert not chart.grab().isNull()


# -- probability by slice ---------------------------------------------------------------------


def _shown_plot(qtbot) -> SliceProbabilityPlot:
    plot = SliceProbabilityPlot()
    qtbot.addWidget(plot)
    plot.resize(400, 220)
    plot.show()
    qtbot.waitExposed(plot)
    plot.set_curve(np.linspace(0.0, 1.0, 20), "pneumonia", 0.4)
    QApplication.processEvents()
    return plot


def _click_at_x(plot: SliceProbabilityPlot, x: float, button=Qt.MouseButton.LeftButton) -> None:
    """Press and release where data point (x, 0.5) is drawn, as a user would."""
    view = plot.plot
    scene = view.getPlotItem().vb.mapViewToScene(QPointF(x, 0.5))
    pos = view.mapFromScene(scene)
    viewport = view.viewport()
    none = Qt.MouseButton.NoButton
    events = (
        (QMouseEvent.Type.MouseMove, none, none),
        (QMouseEvent.Type.MouseButtonPress, button, button),
        (QMouseEvent.Type.MouseButtonRelease, button, none),
    )
    for kind, which, held in events:
        global_pos = QPointF(viewport.mapToGlobal(pos))
        event = QMouseEvent(
            kind, QPointF(pos), global_pos, which, held, Qt.KeyboardModifier.NoModifier
        )
        QApplication.sendEvent(viewport, event)
        QTest.qWait(20)


def test_slice_plot_click_emits_nearest_index(qtbot):
    plot = _shown_plot(qtbot)
    # x shows Im numbers: slice index k is drawn at x = k + 1.
    with qtbot.waitSignal(plot.sliceClicked, timeout=WAIT_MS) as blocker:
        _click_at_x(plot, 7 + 1)
    assert blocker.args == [7]
    with qtbot.waitSignal(plot.sliceClicked, timeout=WAIT_MS) as blocker:
        _click_at_x(plot, 12.3)  # nearest Im 12 = index 11
    assert blocker.args == [11]


def test_slice_plot_click_ignores_right_button_and_clamps(qtbot):
    plot = _shown_plot(qtbot)
    with qtbot.assertNotEmitted(plot.sliceClicked):
        _click_at_x(plot, 5, Qt.MouseButton.RightButton)
    assert plot.index_at(-3.0) == 0
    assert plot.index_at(0.6) == 0
    assert plot.index_at(99.0) == 19


class _FakeClick:
    def __init__(self, pos: QPointF, button=Qt.MouseButton.LeftButton) -> None:
        self._pos, self._button = pos, button

    def scenePos(self) -> QPointF:
        return self._pos

    def button(self):
        return self._button


def test_slice_plot_click_handler_maps_scene_to_index(qtbot):
    plot = _shown_plot(qtbot)
    vb = plot.plot.getPlotItem().vb
    emitted: list[int] = []
    plot.sliceClicked.connect(emitted.append)
    plot._on_scene_clicked(_FakeClick(vb.mapViewToScene(QPointF(20.0, 0.9))))
    plot._on_scene_clicked(_FakeClick(vb.mapViewToScene(QPointF(1.0, 0.1))))
    assert emitted == [19, 0]


def test_slice_plot_marker_threshold_and_clear(qtbot):
    plot = _shown_plot(qtbot)
    assert plot.count == 20
    x, y = plot.curve.getData()
    assert x.tolist() == list(range(1, 21))
    assert y == pytest.approx(np.linspace(0.0, 1.0, 20))
    assert plot.threshold_line.value() == pytest.approx(0.4)
    plot.set_current(9)
    assert plot.marker.value() == pytest.approx(10)
    assert plot.current_x() == pytest.approx(10)
    assert plot.marker.isVisible()
    plot.clear()
    assert plot.count == 0
    assert not plot.marker.isVisible() and not plot.threshold_line.isVisible()
    assert plot.index_at(3.0) is None
    with qtbot.assertNotEmitted(plot.sliceClicked):
        plot._on_scene_clicked(_FakeClick(plot.plot.getPlotItem().vb.sceneBoundingRect().center()))


# -- component table --------------------------------------------------------------------------


def test_table_formats_rows(qtbot):
    table = ComponentTable()
    qtbot.addWidget(table)
    table.set_rows(ROWS, units="HU", colors={1: "#ff0000", 2: "#00c0ff"})
    assert table.rowCount() == 3
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[0] == "Finding" and headers[3] == "Mean (HU)"
    assert table.texts(0) == ["nodule 1", "12.3", "31.3", "41.3", "(-10.0, 22.5, -130.3)", "8"]
    assert table.texts(1) == ["nodule 2", "0.012", "3.0", "—", "(5.0, -6.2, 40.0)", "20"]
    assert table.texts(2)[:2] == ["effusion 1", "1234"]  # whole mL from 1000 mL
    swatch = table.item(0, 0).data(Qt.ItemDataRole.DecorationRole)
    assert QColor(swatch).name() == "#ff0000"
    assert table.editTriggers() == table.EditTrigger.NoEditTriggers
    table.set_rows(ROWS[:1], units="")
    assert table.rowCount() == 1
    assert table.horizontalHeaderItem(3).text() == "Mean"


def _click_row(qtbot, table: ComponentTable, row: int) -> None:
    rect = table.visualRect(table.model().index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_table_click_and_enter_emit_the_component(qtbot):
    table = ComponentTable()
    qtbot.addWidget(table)
    table.resize(600, 200)
    table.show()
    qtbot.waitExposed(table)
    table.set_rows(ROWS)
    with qtbot.waitSignal(table.componentActivated, timeout=WAIT_MS) as blocker:
        _click_row(qtbot, table, 1)
    assert blocker.args == [ROWS[1]]
    table.setCurrentCell(2, 0)
    with qtbot.waitSignal(table.componentActivated, timeout=WAIT_MS) as blocker:
        qtbot.keyClick(table, Qt.Key.Key_Return)
    assert blocker.args == [ROWS[2]]


def test_table_sorting_keeps_rows_with_their_components(qtbot):
    table = ComponentTable()
    qtbot.addWidget(table)
    table.resize(600, 200)
    table.show()
    qtbot.waitExposed(table)
    table.set_rows(ROWS)
    assert table.components() == ROWS  # the given order until the user sorts
    table.sortItems(1, Qt.SortOrder.DescendingOrder)  # volume, numerically
    assert table.components() == [ROWS[2], ROWS[0], ROWS[1]]
    assert [table.texts(r)[0] for r in range(3)] == ["effusion 1", "nodule 1", "nodule 2"]
    with qtbot.waitSignal(table.componentActivated, timeout=WAIT_MS) as blocker:
        _click_row(qtbot, table, 1)
    assert blocker.args == [ROWS[0]]
    table.sortItems(5, Qt.SortOrder.AscendingOrder)  # slice
    assert [r.component.centroid_slice for r in table.components()] == [2, 7, 19]
    table.sortItems(3, Qt.SortOrder.AscendingOrder)  # mean, blank first
    assert table.components() == [ROWS[1], ROWS[2], ROWS[0]]


# -- overlay controls -------------------------------------------------------------------------


def _controls(qtbot) -> OverlayControls:
    controls = OverlayControls()
    qtbot.addWidget(controls)
    controls.set_segments(SEGMENTS)
    controls.set_heatmap(["normal", "pneumonia"], "pneumonia")
    return controls


def test_overlay_opacity_slider_emits_style(qtbot):
    controls = _controls(qtbot)
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.label_opacity.setValue(80)
    assert blocker.args[0].label_opacity == pytest.approx(0.8)
    assert controls.current_style().label_opacity == pytest.approx(0.8)
    assert controls.label_opacity_text.text() == "80 %"


def test_overlay_legend_hides_labels(qtbot):
    controls = _controls(qtbot)
    assert sorted(controls.legend_boxes) == [1, 2]
    assert controls.legend_boxes[2].text() == "effusion"
    assert not controls.legend_boxes[2].icon().isNull()
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.legend_boxes[2].click()
    assert blocker.args[0].hidden_labels == frozenset({2})
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.legend_boxes[2].click()
    assert blocker.args[0].hidden_labels == frozenset()


def test_overlay_set_style_does_not_emit(qtbot):
    controls = _controls(qtbot)
    style = OverlayStyle(
        visible=False,
        label_opacity=0.25,
        outline=True,
        hidden_labels=frozenset({1}),
        heatmap_opacity=0.9,
        heatmap_threshold=0.35,
        colormap=HEATMAP_COLORMAPS[-1],
    )
    with qtbot.assertNotEmitted(controls.styleChanged):
        controls.set_style(style)
    assert controls.current_style() == style
    assert not controls.show_box.isChecked()
    assert controls.label_opacity.value() == 25
    assert controls.outline_button.isChecked() and not controls.fill_button.isChecked()
    assert not controls.legend_boxes[1].isChecked() and controls.legend_boxes[2].isChecked()
    assert controls.heatmap_opacity.value() == 90
    assert controls.threshold_slider.value() == 35
    assert controls.threshold_text.text() == "0.35"
    assert controls.colormap_combo.currentText() == HEATMAP_COLORMAPS[-1]
    assert controls.colorbar.colormap == HEATMAP_COLORMAPS[-1]
    assert controls.colorbar.threshold == pytest.approx(0.35)


def test_overlay_heatmap_controls_emit(qtbot):
    controls = _controls(qtbot)
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.threshold_slider.setValue(45)
    assert blocker.args[0].heatmap_threshold == pytest.approx(0.45)
    assert controls.threshold_text.text() == "0.45"
    assert controls.colorbar.threshold == pytest.approx(0.45)
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.outline_button.click()
    assert blocker.args[0].outline is True
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.show_box.click()
    assert blocker.args[0].visible is False
    assert set(HEATMAP_COLORMAPS) == {"inferno", "turbo", "viridis"}
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.colormap_combo.setCurrentText("turbo")
    assert blocker.args[0].colormap == "turbo"
    with qtbot.waitSignal(controls.styleChanged, timeout=WAIT_MS) as blocker:
        controls.heatmap_opacity.setValue(10)
    assert blocker.args[0] == replace(
        OverlayStyle(),
        heatmap_threshold=0.45,
        outline=True,
        visible=False,
        colormap="turbo",
        heatmap_opacity=0.1,
    )


def test_overlay_target_class_and_sections(qtbot):
    controls = _controls(qtbot)
    assert controls.target_combo.currentText() == "pneumonia"
    assert not controls.heatmap_section.isHidden() and not controls.label_section.isHidden()
    with qtbot.waitSignal(controls.targetClassChanged, timeout=WAIT_MS) as blocker:
        controls.target_combo.setCurrentIndex(0)
    assert blocker.args == ["normal"]
    with qtbot.assertNotEmitted(controls.targetClassChanged):
        controls.set_heatmap(["a", "b", "c"], "c")
    assert controls.target_combo.currentText() == "c"
    with qtbot.assertNotEmitted(controls.targetClassChanged):
        controls.set_heatmap(None, None)
    assert controls.heatmap_section.isHidden()
    controls.set_segments({})
    assert controls.label_section.isHidden() and controls.legend_boxes == {}


def test_updates_leave_signals_blocked_that_were_blocked_before(qtbot):
    """Updating the controls restores each widget's own blocking, not "unblocked" (issue 19)."""
    controls = _controls(qtbot)
    edit = EditControls()
    qtbot.addWidget(edit)
    outer = [controls.show_box, controls.colormap_combo, controls.target_combo, edit.label_combo]
    for widget in outer:
        widget.blockSignals(True)
    controls.set_style(replace(OverlayStyle(), visible=False, colormap="turbo"))
    controls.set_heatmap(["a", "b"], "b")
    edit.set_segments(SEGMENTS)
    assert [widget.signalsBlocked() for widget in outer] == [True] * len(outer)
    # Widgets that were not blocked before are unblocked again.
    assert not controls.label_opacity.signalsBlocked()
    for widget in outer:
        widget.blockSignals(False)
    with qtbot.waitSignal(controls.targetClassChanged, timeout=WAIT_MS) as blocker:
        controls.target_combo.setCurrentIndex(0)
    assert blocker.args == ["a"]


def test_overlay_controls_render_offscreen(qtbot):
    controls = _controls(qtbot)
    controls.show()
    qtbot.waitExposed(controls)
    assert not controls.grab().isNull()


# -- edit controls ----------------------------------------------------------------------------


def test_edit_tools_are_exclusive_and_uncheckable(qtbot):
    edit = EditControls()
    qtbot.addWidget(edit)
    edit.set_segments(SEGMENTS)
    assert edit.tool() == "navigate"
    with qtbot.waitSignal(edit.toolChanged, timeout=WAIT_MS) as blocker:
        edit.brush_button.click()
    assert blocker.args == ["brush"]
    with qtbot.waitSignal(edit.toolChanged, timeout=WAIT_MS) as blocker:
        edit.eraser_button.click()
    assert blocker.args == ["eraser"]
    assert not edit.brush_button.isChecked()
    with qtbot.waitSignal(edit.toolChanged, timeout=WAIT_MS) as blocker:
        edit.eraser_button.click()
    assert blocker.args == ["navigate"]
    with qtbot.assertNotEmitted(edit.toolChanged):
        edit.set_tool("brush")
    assert edit.tool() == "brush"


def test_edit_brush_radius_and_label(qtbot):
    edit = EditControls()
    qtbot.addWidget(edit)
    assert edit.radius() == pytest.approx(3.0)
    assert edit.radius_box.minimum() == 0.5 and edit.radius_box.maximum() == 50.0
    assert edit.radius_box.singleStep() == 0.5
    assert edit.label() == 0 and not edit.brush_button.isEnabled()
    edit.set_segments(SEGMENTS)
    assert [edit.label_combo.itemText(i) for i in range(2)] == ["nodule", "effusion"]
    assert edit.label() == 1
    with qtbot.waitSignal(edit.brushChanged, timeout=WAIT_MS) as blocker:
        edit.radius_box.stepUp()
    assert blocker.args == [pytest.approx(3.5), 1]
    with qtbot.waitSignal(edit.brushChanged, timeout=WAIT_MS) as blocker:
        edit.label_combo.setCurrentIndex(1)
    assert blocker.args == [pytest.approx(3.5), 2]
    with qtbot.assertNotEmitted(edit.brushChanged):
        edit.set_segments({2: SEGMENTS[2], 3: Segment(3, "cyst", "#00ff00")})
    assert edit.label() == 2  # kept


def test_edit_undo_redo_and_status(qtbot):
    edit = EditControls()
    qtbot.addWidget(edit)
    assert not edit.undo_button.isEnabled() and not edit.redo_button.isEnabled()
    edit.set_undo_state(True, False)
    assert edit.undo_button.isEnabled() and not edit.redo_button.isEnabled()
    with qtbot.waitSignal(edit.undoRequested, timeout=WAIT_MS):
        edit.undo_button.click()
    with qtbot.assertNotEmitted(edit.redoRequested):
        edit.redo_button.click()  # disabled
    edit.set_undo_state(False, True)
    assert not edit.undo_button.isEnabled()
    with qtbot.waitSignal(edit.redoRequested, timeout=WAIT_MS):
        edit.redo_button.click()
    edit.set_edited("Edited 2026-11-21 10:40 UTC")
    assert edit.edited_label.text() == "Edited 2026-11-21 10:40 UTC"
    edit.set_edited("")
    assert edit.edited_label.text() == ""
