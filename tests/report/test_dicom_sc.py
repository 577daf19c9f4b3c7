"""Secondary Capture key images and the Encapsulated PDF: dciodvfy-valid, exact round trips."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from reportlab.pdfgen import canvas

from medviewer.report.dicom_sc import (
    ENCAPSULATED_PDF_STORAGE,
    encapsulated_pdf_dataset,
    key_image_dataset,
)
from medviewer.report.sources import SourceImages, read_source_images
from tests.dciodvfy import dciodvfy_report
from tests.report.conftest import gradient_key_image


def written(ds: pydicom.Dataset, path: Path, iod: str) -> pydicom.Dataset:
    """Save `ds`, check dciodvfy reports no error, and read it back."""
    ds.save_as(path, enforce_file_format=True)
    report = dciodvfy_report(path)
    assert report.iod == iod, report.output
    assert report.errors == (), report.output
    return pydicom.dcmread(path)


def small_pdf(odd: bool) -> bytes:
    """A real one-page PDF made with reportlab, of odd or even length."""
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 720, "medviewer test report")
    page.save()
    pdf = buffer.getvalue()
    return pdf + b"\n" if (len(pdf) % 2 == 1) != odd else pdf


def assert_same_patient_and_study(ds: pydicom.Dataset, source: pydicom.Dataset) -> None:
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber"):
        assert ds[keyword].value == source[keyword].value, keyword


@pytest.fixture
def ct_sources(ct_volume) -> SourceImages:
    return read_source_images(ct_volume.metadata)


@pytest.fixture
def dx_sources(dx_volume) -> SourceImages:
    return read_source_images(dx_volume.metadata)


def test_key_image_round_trips_exactly(ct_sources, tmp_path):
    uid = ct_sources.sop_uid_of_slice(6)
    key = gradient_key_image("nodule 1: 9.0 mm, 0.39 mL – ±", source_sop_uid=uid)
    series = generate_uid()
    ds = written(
        key_image_dataset(key, ct_sources, series_uid=series, instance_number=3),
        tmp_path / "sc.dcm", "SCImage",
    )

    np.testing.assert_array_equal(ds.pixel_array, key.rgb)
    assert_same_patient_and_study(ds, ct_sources.first)
    assert ds.SeriesInstanceUID == series and ds.SeriesNumber == 903 and ds.InstanceNumber == 3
    source = ct_sources.slice_dataset(6)[0]
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == uid
    assert ds.SourceImageSequence[0].ReferencedSOPClassUID == source.SOPClassUID
    assert ds.BurnedInAnnotation == "NO"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.ConversionType == "WSD"
    assert ds.ImageComments == "nodule 1: 9.0 mm, 0.39 mL – ±; Im 7/12, Pos 60.0 mm"
    assert key.caption in ds.DerivationDescription
    assert list(ds.PatientOrientation) == ["L", "P"]
    assert "PixelSpacing" not in ds
    assert ds.Manufacturer == "medviewer developers"


def test_key_images_of_one_export_share_their_series(ct_sources):
    series = generate_uid()
    first, second = (
        key_image_dataset(gradient_key_image(c), ct_sources, series_uid=series, instance_number=n)
        for n, c in ((1, "a"), (2, "b"))
    )
    assert first.SeriesInstanceUID == second.SeriesInstanceUID == series
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert "SourceImageSequence" not in first  # no source image: none referenced


def test_key_image_of_an_unknown_source_is_refused(ct_sources):
    key = gradient_key_image(source_sop_uid="1.2.3.4")
    with pytest.raises(ValueError, match=r"1\.2\.3\.4"):
        key_image_dataset(key, ct_sources, series_uid=generate_uid(), instance_number=1)


@pytest.mark.parametrize("odd", [True, False])
def test_encapsulated_pdf_round_trips(ct_sources, tmp_path, odd):
    pdf = small_pdf(odd)
    assert len(pdf) % 2 == odd
    ds = written(
        encapsulated_pdf_dataset(pdf, ct_sources, title="AI report"),
        tmp_path / "pdf.dcm", "EncapsulatedPDF",
    )

    assert ds.EncapsulatedDocumentLength == len(pdf)
    assert len(ds.EncapsulatedDocument) == len(pdf) + odd
    assert ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength] == pdf
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.Modality == "DOC" and ds.SeriesNumber == 904
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.BurnedInAnnotation == "YES"
    assert ds.DocumentTitle == "AI report"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    assert_same_patient_and_study(ds, ct_sources.first)
    referenced = {item.ReferencedSOPInstanceUID for item in ds.SourceInstanceSequence}
    assert referenced == {d.SOPInstanceUID for d in ct_sources.datasets}


def test_not_a_pdf_is_refused(ct_sources):
    with pytest.raises(ValueError, match="not a PDF"):
        encapsulated_pdf_dataset(b"<html></html>", ct_sources, title="x")


def test_unpositioned_dx_source(dx_sources, tmp_path):
    uid = dx_sources.sop_uid_of_slice(0)
    key = gradient_key_image(source_sop_uid=uid)
    sc = written(
        key_image_dataset(key, dx_sources, series_uid=generate_uid(), instance_number=1),
        tmp_path / "sc.dcm", "SCImage",
    )
    np.testing.assert_array_equal(sc.pixel_array, key.rgb)
    assert sc.PatientOrientation in (None, "")  # unknown on an unpositioned radiograph
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == uid

    pdf = small_pdf(odd=True)
    doc = written(
        encapsulated_pdf_dataset(pdf, dx_sources, title="AI report"),
        tmp_path / "pdf.dcm", "EncapsulatedPDF",
    )
    assert doc.EncapsulatedDocument[: doc.EncapsulatedDocumentLength] == pdf
    assert_same_patient_and_study(doc, dx_sources.first)


def test_key_image_says_the_voi_lut_it_was_shown_through(ct_sources):
    linear = key_image_dataset(gradient_key_image("a"), ct_sources, series_uid=generate_uid(),
                               instance_number=1)
    assert "(axial, W 400 L 40)" in linear.DerivationDescription  # as the PDF and viewer
    key = gradient_key_image("b", voi_lut="VOI LUT: SOFT")
    assert key.display_text == "VOI LUT: SOFT"
    ds = key_image_dataset(key, ct_sources, series_uid=generate_uid(), instance_number=2)
    assert "(axial, VOI LUT: SOFT)" in ds.DerivationDescription
