"""The export orchestrator end to end: every file, validated; de-identified; all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.io.seg import label_map_from_seg
from medviewer.report import export as ex
from medviewer.report.files import ExportExistsError
from medviewer.report.sources import read_source_images
from tests.dciodvfy import dciodvfy_report
from tests.sr_reading import sr_numbers

ALL_KINDS = set(ex.KINDS) - {"source_copies"}


def run(content, metadata, plan, **kw) -> ex.ExportSummary:
    steps = ex.run_export(content, metadata, plan, **kw)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def readable_bytes(path: Path) -> bytes:
    """A file's bytes, plus what a reader sees in it: the text of a PDF (its streams are
    compressed and its fonts subset), the inflated bytes of a .gz; DICOM files also hold an
    encapsulated PDF's text."""
    import gzip

    import pypdfium2

    data = path.read_bytes()
    if path.suffix == ".gz":
        data += gzip.decompress(data)
    pdf = data if data.startswith(b"%PDF") else None
    if path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        if "EncapsulatedDocument" in ds:
            pdf = bytes(ds.EncapsulatedDocument)
    if pdf is not None:
        document = pypdfium2.PdfDocument(pdf)
        text = "".join(page.get_textpage().get_text_range() for page in document)
        document.close()
        data += text.encode()
    return data


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_full_export_validates_and_round_trips(tmp_path, ct_volume, report_content):
    plan = ex.plan_export(report_content, tmp_path, ALL_KINDS)
    summary = run(report_content, ct_volume.metadata, plan)
    written = files_under(tmp_path)
    assert written == sorted(p.path for p in plan)
    assert [p.name for p in written if p.parent == tmp_path] == [
        "findings.csv", "findings.json", "report.pdf"]
    assert not summary.deidentified
    for path in (tmp_path / "dicom").iterdir():
        report = dciodvfy_report(path)
        assert report.errors == (), f"{path.name}:\n{report.output}"
    # the SEG reloads onto the source grid voxel for voxel
    seg_result = report_content.results[0]
    sources = read_source_images(ct_volume.metadata)
    uids = [sources.sop_uid_of_slice(i) for i in range(ct_volume.shape[0])]
    seg_path = tmp_path / "dicom" / "SEG_test-seg-1.2.0.dcm"
    on_grid = label_map_from_seg(seg_path, uids)
    assert np.array_equal(on_grid.labels, seg_result.label_map)
    # the SR's numbers are the findings' and it references that SEG
    sr = pydicom.dcmread(tmp_path / "dicom" / "SR_measurements.dcm")
    numbers = sr_numbers(sr)
    for stats in seg_result.statistics.values():
        if stats.voxels:
            assert any(np.isclose(n["value"], stats.volume_ml, rtol=1e-6) for n in numbers)
            assert any(np.isclose(n["value"], stats.longest_diameter_mm, rtol=1e-6)
                       for n in numbers)
    for probability in report_content.results[1].prediction.classes.values():
        assert any(np.isclose(n["value"], probability) for n in numbers)
    seg_uid = pydicom.dcmread(seg_path, stop_before_pixels=True).SOPInstanceUID
    assert seg_uid.encode() in (tmp_path / "dicom" / "SR_measurements.dcm").read_bytes()
    # key images: DICOM pixels are the rendered pixels; PNGs too
    key = pydicom.dcmread(tmp_path / "dicom" / "KEY_001.dcm")
    assert np.array_equal(key.pixel_array, report_content.key_images[0].rgb)
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "images" / "key_002.png"))
    assert np.array_equal(png, report_content.key_images[1].rgb)
    assert b"TESTPERSON" in readable_bytes(tmp_path / "report.pdf")  # the check can see it
    # the encapsulated PDF holds the PDF report byte for byte
    doc = pydicom.dcmread(tmp_path / "dicom" / "DOC_report_pdf.dcm")
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert bytes(doc.EncapsulatedDocument)[: int(doc.EncapsulatedDocumentLength)] == pdf
    # label maps and heatmaps keep their geometry
    from medviewer.io.formats import read_image

    labels = read_image(tmp_path / "volumes" / "test-seg-1.2.0_labels.nii.gz")
    assert np.array_equal(labels.array, seg_result.label_map)
    np.testing.assert_allclose(labels.affine, ct_volume.affine, atol=1e-4)
    heat = read_image(tmp_path / "volumes" / "test-cls-0.3.1_heatmap.nii.gz")
    np.testing.assert_allclose(heat.array, report_content.results[1].heatmap, atol=1e-6)
    # the JSON lists the files and the findings
    document = json.loads((tmp_path / "findings.json").read_text())
    assert "dicom/SEG_test-seg-1.2.0.dcm" in document["files"]
    nodule = document["results"][0]["segments"]["nodule"]
    assert len(nodule["component_list"]) == 2
    csv_text = (tmp_path / "findings.csv").read_text()
    assert repr(seg_result.statistics[3].volume_ml) in csv_text


def test_deidentified_export_leaves_nothing_identifying(tmp_path, ct_volume, report_content):
    kinds = ALL_KINDS | {"source_copies"}
    plan = ex.plan_export(report_content, tmp_path, kinds,
                          source_files=ex.source_file_count(ct_volume.metadata))
    summary = run(report_content, ct_volume.metadata, plan, deidentify=True)
    assert summary.deidentified
    sources = read_source_images(ct_volume.metadata)
    originals = {str(ds.SOPInstanceUID) for ds in sources.datasets}
    originals |= {str(sources.first.StudyInstanceUID), str(sources.first.SeriesInstanceUID),
                  str(sources.first.FrameOfReferenceUID)}
    secrets = [b"TESTPERSON", b"PID-4711", *(u.encode() for u in originals)]
    for path in files_under(tmp_path):
        data = readable_bytes(path)
        for secret in secrets:
            assert secret not in data, f"{secret!r} found in {path.name}"
    copies = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
              for p in (tmp_path / "source").iterdir()}
    assert len(copies) == len(sources.datasets)
    seg = pydicom.dcmread(tmp_path / "dicom" / "SEG_test-seg-1.2.0.dcm", stop_before_pixels=True)
    referenced = {item.ReferencedSOPInstanceUID
                  for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= set(copies)  # the SEG's references resolve to the exported copies
    sr_bytes = (tmp_path / "dicom" / "SR_measurements.dcm").read_bytes()
    assert seg.SOPInstanceUID.encode() in sr_bytes
    for path in (tmp_path / "dicom").iterdir():
        report = dciodvfy_report(path)
        assert report.errors == (), f"{path.name}:\n{report.output}"
    study_uids = {pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID
                  for p in (tmp_path / "dicom").iterdir()}
    assert study_uids == {summary.uid_map[str(sources.first.StudyInstanceUID)]}


def test_existing_files_are_not_overwritten_unless_asked(tmp_path, ct_volume, report_content):
    plan = ex.plan_export(report_content, tmp_path, {"pdf", "csv"})
    (tmp_path / "findings.csv").write_text("keep me")
    with pytest.raises(ExportExistsError, match=r"findings\.csv"):
        run(report_content, ct_volume.metadata, plan)
    assert files_under(tmp_path) == [tmp_path / "findings.csv"]
    assert (tmp_path / "findings.csv").read_text() == "keep me"
    run(report_content, ct_volume.metadata, plan, overwrite=True)
    assert (tmp_path / "findings.csv").read_text().startswith("series_uid,")
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")


def test_a_failed_export_leaves_no_file(tmp_path, ct_volume, report_content, monkeypatch):
    import medviewer.report.dicom_sr as dicom_sr

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(dicom_sr, "measurement_report", broken)
    plan = ex.plan_export(report_content, tmp_path, ALL_KINDS)
    with pytest.raises(OSError, match="disk full"):
        run(report_content, ct_volume.metadata, plan)
    assert list(tmp_path.iterdir()) == []  # no file, and no empty dicom/ or volumes/ either


def test_a_cancelled_export_leaves_no_file(tmp_path, ct_volume, report_content):
    plan = ex.plan_export(report_content, tmp_path, ALL_KINDS)
    steps = ex.run_export(report_content, ct_volume.metadata, plan)
    for _ in range(4):
        next(steps)
    steps.close()  # what the worker does on cancel
    assert list(tmp_path.iterdir()) == []


def test_plan_leaves_out_what_has_nothing_to_export(tmp_path, report_content):
    cls_only = type(report_content)(report_content.header, report_content.results[1:])
    plan = ex.plan_export(cls_only, tmp_path, {"seg", "label_maps", "heatmaps", "sr"})
    assert [p.kind for p in plan] == ["sr", "heatmaps"]
    with pytest.raises(ValueError, match="unknown export kinds"):
        ex.plan_export(cls_only, tmp_path, {"tiff"})


def test_source_copies_need_deidentification(tmp_path, ct_volume, report_content):
    plan = ex.plan_export(report_content, tmp_path, {"source_copies"}, source_files=2)
    with pytest.raises(ValueError, match="de-identified"):
        run(report_content, ct_volume.metadata, plan)


def test_no_sr_is_planned_without_a_number(tmp_path, report_content):
    from dataclasses import replace

    empty = replace(report_content, results=(), measurements=())
    assert not empty.has_numbers()
    assert [p.kind for p in ex.plan_export(empty, tmp_path, {"sr", "pdf"})] == ["pdf"]
    assert report_content.has_numbers()


def test_two_versions_of_a_model_and_long_segment_names_export_together(
    tmp_path, ct_volume, report_content
):
    from dataclasses import replace

    from medviewer.core.findings import Segment

    first = report_content.results[0]
    long_name = "nodule " + "x" * 70  # longer than a SEG's 64-character Segment Label
    segments = {**first.segments, 3: Segment(3, long_name, "#ff3030")}
    stats = {k: replace(v, name=segments[k].name) for k, v in first.statistics.items()}
    newer = replace(first, prediction=replace(
        first.prediction, model=replace(first.prediction.model, version="2.0.0"),
        segments=segments, statistics=stats), statistics=stats)
    content = replace(report_content, results=(first, newer), key_images=())
    plan = ex.plan_export(content, tmp_path, {"seg", "sr"})
    assert sorted(p.path.name for p in plan) == [
        "SEG_test-seg-1.2.0.dcm", "SEG_test-seg-2.0.0.dcm", "SR_measurements.dcm"]
    run(content, ct_volume.metadata, plan)
    for path in (tmp_path / "dicom").iterdir():
        assert dciodvfy_report(path).errors == (), path.name


def test_a_series_read_from_a_zip_archive_exports(tmp_path, report_content):
    import zipfile

    from medviewer.io.series import load_series
    from medviewer.synthetic.dicom_writer import write_series
    from tests.report.conftest import CT_SPEC

    folder = tmp_path / "ct"
    written = write_series(folder, CT_SPEC)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in written.paths:
            z.write(path, f"CT/{path.name}")
    volume = load_series(archive)
    assert "::" in volume.metadata.source_frames[0][0]
    out = tmp_path / "out"
    plan = ex.plan_export(report_content, out, {"seg", "sr", "source_copies"},
                          source_files=ex.source_file_count(volume.metadata))
    run(report_content, volume.metadata, plan, deidentify=True)
    copies = list((out / "source").iterdir())
    assert len(copies) == len(written.paths)
    assert dciodvfy_report(out / "dicom" / "SEG_test-seg-1.2.0.dcm").errors == ()


def test_a_deidentified_json_names_files_outside_its_folder_by_name_only(
    tmp_path, ct_volume, report_content
):
    private = tmp_path / "TESTPERSON_ALICE"  # a folder the user named after the patient
    plan = [ex.PlannedFile("json", tmp_path / "json" / "findings.json"),
            ex.PlannedFile("pdf", private / "report.pdf")]
    run(report_content, ct_volume.metadata, plan, deidentify=True)
    document = json.loads((tmp_path / "json" / "findings.json").read_text())
    assert document["files"] == ["findings.json", "report.pdf"]
    run(report_content, ct_volume.metadata, plan, overwrite=True)
    document = json.loads((tmp_path / "json" / "findings.json").read_text())
    assert document["files"] == ["findings.json", str(private / "report.pdf")]
