"""One number, one text: the findings table, the chart, the PDF, the CSV and the JSON agree.

The viewer and the PDF write a quantity through :mod:`medviewer.core.formatting`; the CSV and
JSON carry it unrounded, so formatting their value gives the same text (issue 19: the table
showed 123.456 mL as "123" where the PDF showed "123.5").
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from medviewer.core import formatting as fmt
from medviewer.core.findings import (
    AIResult,
    ComponentStats,
    ModelInfo,
    Prediction,
    Segment,
    SegmentStats,
)
from medviewer.report.content import ReportContent, ReportHeader
from medviewer.report.pdf import report_pdf
from medviewer.report.tabular import findings_csv, findings_json
from medviewer.ui.findings_widgets import ClassProbabilityChart, ComponentTable
from tests.report.test_pdf import page_texts

VOLUME_ML, DIAMETER_MM, MEAN_HU = 123.456, 17.349, 41.26
CENTROID = (-10.04, 22.5, -130.26)
CLASSES = {"normal": 0.503, "nodule": 0.497}


def _model(task: str) -> ModelInfo:
    return ModelInfo(f"test-{task[:3]}", f"Test {task}", "1.0.0", "ef" * 32, task, "Test only.")


def _prediction(task: str, **kw) -> Prediction:
    return Prediction(
        model=_model(task), task=task, device="CPU", seconds=0.25,
        created="2026-11-21T10:00:00+00:00", series_uid="1.2.3", affine=np.eye(4),
        shape=(4, 4, 4), **kw,
    )


def segmentation() -> AIResult:
    """A nodule of one component of 123.456 mL."""
    component = ComponentStats(1, 123456, VOLUME_ML, DIAMETER_MM, CENTROID, (1.0, 1.0, 1.0), 1,
                               (0, 0, 0, 2, 2, 2), MEAN_HU)
    stats = SegmentStats(1, "nodule", 123456, VOLUME_ML, DIAMETER_MM, CENTROID, 1, MEAN_HU,
                         (component,), 1)
    return AIResult.of(_prediction(
        "segmentation", segments={1: Segment(1, "nodule", "#ff3030")}, statistics={1: stats}))


@pytest.fixture
def content() -> ReportContent:
    classification = AIResult.of(_prediction("classification", classes=dict(CLASSES)))
    return ReportContent(header=ReportHeader(patient_name="DOE^JANE", units="HU"),
                         results=(segmentation(), classification))


def _table_cells(qtbot, result: AIResult) -> list[str]:
    table = ComponentTable()
    qtbot.addWidget(table)
    table.set_rows(result.component_rows(), units="HU")
    return table.texts(0)


def test_a_finding_reads_the_same_in_table_pdf_csv_and_json(qtbot, content):
    cells = _table_cells(qtbot, content.results[0])
    assert cells[:5] == ["nodule 1", "123.5", "17.3", "41.3", "(-10.0, 22.5, -130.3)"]
    name, volume, diameter, mean, centroid = cells[:5]
    pdf_text = " ".join(page_texts(report_pdf(content)))
    assert f"{name} {volume} {diameter} {mean} HU {centroid}" in pdf_text  # component row
    assert f"nodule 1 {volume} {diameter} {mean} HU" in pdf_text  # segment row
    rows = list(csv.DictReader(io.StringIO(findings_csv(content).decode())))
    component = next(r for r in rows if r["row_kind"] == "component")
    assert float(component["volume_ml"]) == VOLUME_ML  # unrounded ...
    assert fmt.volume_ml(float(component["volume_ml"])) == volume  # ... and reads the same
    assert fmt.length_mm(float(component["longest_diameter_mm"])) == diameter
    assert fmt.mean_value(float(component["mean_value"])) == mean
    document = json.loads(findings_json(content))
    nodule = document["results"][0]["segments"]["nodule"]
    listed = nodule["component_list"][0]
    assert nodule["volume_ml"] == listed["volume_ml"] == VOLUME_ML
    assert fmt.volume_ml(listed["volume_ml"]) == volume
    assert fmt.length_mm(nodule["longest_diameter_mm"]) == diameter
    assert fmt.mean_value(nodule["mean_value"]) == mean
    assert fmt.point_lps(nodule["centroid_lps"]) == centroid


def test_a_probability_reads_the_same_in_chart_pdf_csv_and_json(qtbot, content):
    chart = ClassProbabilityChart()
    qtbot.addWidget(chart)
    chart.set_probabilities(CLASSES, 0.5, ())
    assert chart.value_texts() == ["0.503", "0.497"]  # 0.497 is not shown as the 0.50 threshold
    pdf_text = " ".join(page_texts(report_pdf(content)))
    assert "normal 0.503" in pdf_text and "nodule 0.497" in pdf_text
    rows = list(csv.DictReader(io.StringIO(findings_csv(content).decode())))
    shown = {r["class"]: fmt.probability(float(r["probability"])) for r in rows
             if r["row_kind"] == "class"}
    assert shown == {"normal": "0.503", "nodule": "0.497"}
    classes = json.loads(findings_json(content))["results"][1]["classes"]
    assert [fmt.probability(p) for p in classes.values()] == chart.value_texts()
