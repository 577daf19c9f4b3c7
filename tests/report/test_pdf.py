"""The annotated PDF report, read back with pypdfium2 (text, image objects, rendered pixels)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pypdfium2 as pdfium
import pytest

from medviewer.core import formatting as fmt
from medviewer.core.findings import AIResult, ComponentStats, Prediction, Segment, SegmentStats
from medviewer.report.content import ReportContent, ReportHeader
from medviewer.report.pdf import MAX_COMPONENTS, TITLE, report_pdf
from tests.report.conftest import INTENDED_USE, SEG_MODEL

RED_BLOCK = np.array([255, 48, 48])


def page_texts(pdf: bytes) -> list[str]:
    """The text of every page, whitespace collapsed to single spaces."""
    doc = pdfium.PdfDocument(pdf)
    try:
        return [" ".join(page.get_textpage().get_text_range().split()) for page in doc]
    finally:
        doc.close()


def image_counts(pdf: bytes) -> list[int]:
    """The number of image objects on each page."""
    doc = pdfium.PdfDocument(pdf)
    try:
        return [sum(o.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE for o in page.get_objects())
                for page in doc]
    finally:
        doc.close()


def render(pdf: bytes, index: int, scale: float = 1.0) -> np.ndarray:
    """Page `index` rendered as ``(rows, cols, 3)`` RGB uint8."""
    doc = pdfium.PdfDocument(pdf)
    try:
        return np.asarray(doc[index].render(scale=scale).to_pil().convert("RGB"))
    finally:
        doc.close()


@pytest.fixture
def pdf(report_content) -> bytes:
    return report_pdf(report_content)


@pytest.fixture
def text(pdf) -> str:
    return " ".join(page_texts(pdf))


def test_is_a_pdf_with_numbered_pages(pdf):
    assert pdf.startswith(b"%PDF-")
    texts = page_texts(pdf)
    assert len(texts) >= 1
    for k, page in enumerate(texts, start=1):
        assert f"Page {k} of {len(texts)}" in page
    assert TITLE in texts[0]


def test_header_fields(report_content, text):
    h = report_content.header
    expected = [
        fmt.person_name(h.patient_name), h.patient_id, fmt.dicom_date(h.patient_birth_date),
        fmt.sex(h.patient_sex), fmt.dicom_date(h.study_date), h.accession_number,
        h.institution, h.series_description, f"medviewer {h.app_version}",
        fmt.iso_time(h.generated),
    ]
    assert "TESTPERSON, Alice" in expected
    for value in expected:
        assert value and value in text, value


def test_impression_keeps_paragraphs_and_special_characters(report_content):
    impression = "Nodule <5 mm & >3 mm in the right upper lobe.\n\nSecond paragraph: follow-up."
    texts = page_texts(report_pdf(replace(report_content, impression=impression)))
    joined = " ".join(texts)
    assert "Nodule <5 mm & >3 mm in the right upper lobe." in joined
    assert "Second paragraph: follow-up." in joined
    assert "&amp;" not in joined and "&lt;" not in joined


def test_empty_impression_is_said(report_content):
    text = " ".join(page_texts(report_pdf(replace(report_content, impression=" \n "))))
    assert "No impression entered." in text


def test_findings_values_match_the_statistics(report_content, text):
    seg, cls = report_content.results
    units = report_content.header.units
    assert units == "HU"
    for stats in seg.statistics.values():
        if stats.voxels == 0:
            continue
        assert f"{stats.name} {stats.component_count} {fmt.volume_ml(stats.volume_ml)}" in text
        assert fmt.length_mm(stats.longest_diameter_mm) in text
        assert fmt.mean_value(stats.mean_value, units) in text
        for c in stats.components:
            row = (f"{stats.name} {c.index} {fmt.volume_ml(c.volume_ml)} "
                   f"{fmt.length_mm(c.longest_diameter_mm)} {fmt.mean_value(c.mean_value, units)}")
            assert row in text
    assert "1174.9 HU" in text
    for name, probability in cls.prediction.classes.items():
        assert f"{name} {fmt.probability(probability)}" in text
    assert "0.875" in text and "0.125" in text
    assert "Positive: nodule (threshold 0.50)" in text
    for result in (seg, cls):
        model = result.prediction.model
        for value in (model.name, model.version, fmt.sha_prefix(model.sha256)):
            assert value in text
    assert "Not edited" in text and "Edited by the user" not in text


def test_edited_result_says_so(report_content):
    seg, cls = report_content.results
    edited = replace(seg, edited="2026-11-21T10:05:00+00:00")
    text = " ".join(page_texts(report_pdf(replace(report_content, results=(edited, cls)))))
    assert "Edited by the user (2026-11-21 10:05 UTC)" in text


def test_negative_classification(report_content):
    cls = report_content.results[1]
    negative = AIResult.of(replace(cls.prediction, decision=(), heatmap_class=None))
    text = " ".join(page_texts(report_pdf(replace(report_content, results=(negative,)))))
    assert "Negative (threshold 0.50)" in text
    assert "Positive:" not in text


def test_one_image_object_per_key_image(report_content, pdf):
    assert sum(image_counts(pdf)) == len(report_content.key_images) == 2


def test_rendered_pages_show_text_and_key_image(pdf):
    first = render(pdf, 0)
    assert (first < 250).any(axis=2).mean() > 0.02
    page = next(i for i, count in enumerate(image_counts(pdf)) if count)
    pixels = render(pdf, page).astype(int)
    close = (np.abs(pixels - RED_BLOCK) <= 10).all(axis=2)
    assert close.sum() > 100


def test_disclaimer_on_last_page(report_content, pdf):
    last = page_texts(pdf)[-1]
    assert INTENDED_USE in last
    assert "not a medical device" in last
    assert report_content.disclaimers()[0] == INTENDED_USE


def test_unicode_patient_name(report_content):
    header = replace(report_content.header, patient_name="MÜLLER^Zoë", study_description="µ ≥ 2°")
    texts = page_texts(report_pdf(replace(report_content, header=header)))
    assert "MÜLLER, Zoë" in texts[0]
    assert "µ ≥ 2°" in texts[0]
    assert all("MÜLLER, Zoë (PID-4711)" in page for page in texts)


def test_without_results_or_key_images():
    header = ReportHeader(patient_name="DOE^JANE", patient_id="X1", modality="DX")
    pdf = report_pdf(ReportContent(header=header))
    texts = page_texts(pdf)
    text = " ".join(texts)
    assert "DOE, Jane" in text and "X1" in text
    assert "No AI results" in text and "No key images." in text
    assert "No measurements." in text and "No impression entered." in text
    assert f"Page 1 of {len(texts)}" in texts[0]
    assert sum(image_counts(pdf)) == 0


def many_components_result(count: int, listed: int) -> AIResult:
    """A segmentation whose label "lesion" has `count` components, `listed` of them listed."""
    components = tuple(
        ComponentStats(i, 100 - i, (100 - i) * 0.001, 5.0, (0.0, 0.0, float(i)), (0.0, 0.0, 0.0),
                       0, (0, 0, 0, 1, 1, 1), None)
        for i in range(1, listed + 1)
    )
    stats = SegmentStats(1, "lesion", 2000, 2.0, 5.0, (0.0, 0.0, 0.0), 0, None, components, count)
    prediction = Prediction(
        model=SEG_MODEL, task="segmentation", device="CPU", seconds=0.1,
        created="2026-11-21T10:00:00+00:00", series_uid="", affine=np.eye(4), shape=(4, 4, 4),
        segments={1: Segment(1, "lesion", "#30ff30")}, statistics={1: stats},
    )
    return AIResult.of(prediction)


@pytest.mark.parametrize("listed", [26, 12])
def test_many_components_are_cut(report_content, listed):
    result = many_components_result(26, listed)
    text = " ".join(page_texts(report_pdf(replace(report_content, results=(result,)))))
    components = text.split("Components (largest first", 1)[1].split("Key images", 1)[0]
    shown = [int(n) for n in re.findall(r"lesion (\d+) ", components)]
    assert shown == list(range(1, MAX_COMPONENTS + 1))
    assert "lesion: 16 more components not listed" in components
    assert "Mean" in text and "—" in components  # no image values: mean is missing
