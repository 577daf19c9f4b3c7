"""C-STORE to the test Orthanc: series as stored, an export (SEG, SR, PDF, key images) found
again by query and referencing its source, and the files that cannot be sent reported."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from medviewer.cli import main
from medviewer.core.errors import CancelledError
from medviewer.io.series import load_series
from medviewer.net import dimse
from medviewer.net.send import send
from medviewer.report import export as ex
from medviewer.report.content import ReportContent, ReportHeader
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.net.test_dimse import run
from tests.report.conftest import gradient_key_image, make_cls_result, make_seg_result


def stored_copy(pacs, sop_uid: str) -> pydicom.Dataset:
    """The instance as Orthanc stored it (its REST API)."""
    import io
    import json
    import urllib.request

    request = urllib.request.Request(pacs.server.url + "/tools/lookup", data=sop_uid.encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        found = json.loads(answer.read())
    with urllib.request.urlopen(f"{pacs.server.url}/instances/{found[0]['ID']}/file",
                                timeout=60) as answer:
        return pydicom.dcmread(io.BytesIO(answer.read()))


def test_send_stores_each_file_in_its_own_syntax(node, pacs, tmp_path):
    plain = write_series(tmp_path / "plain", SeriesSpec(shape=(4, 8, 6), seed=201))
    rle = write_series(tmp_path / "rle", SeriesSpec(shape=(3, 8, 6), seed=202,
                                                     transfer_syntax=RLELossless))
    junk = tmp_path / "notes.txt"
    junk.write_text("not DICOM")
    paths = [*plain.paths, *rle.paths, junk]
    progress, report = run(send(node, paths))
    assert progress[-1].sent == progress[-1].total == 7
    assert sorted(report.stored) == sorted([*plain.paths, *rle.paths])
    assert [(p, "not a DICOM file" in why) for p, why in report.failed] == [(junk, True)]
    for path in (*plain.paths, *rle.paths):
        mine = pydicom.dcmread(path)
        theirs = stored_copy(pacs, mine.SOPInstanceUID)
        assert theirs.file_meta.TransferSyntaxUID == mine.file_meta.TransferSyntaxUID
        np.testing.assert_array_equal(theirs.pixel_array, mine.pixel_array)
    rows = dimse.instances(node, rle.study_uid)
    assert len(rows) == 3


def test_a_cancelled_send_stops_between_files(node, tmp_path):
    series = write_series(tmp_path / "s", SeriesSpec(shape=(4, 8, 6), seed=203))
    steps = send(node, list(series.paths), cancel=lambda: True)
    with pytest.raises(CancelledError, match="after 0 of 4 files"):
        next(steps)


def test_an_export_sent_back_is_found_beside_its_source(node, pacs, tmp_path, capsys):
    """Segment (a known label map), export SEG, SR, PDF and key images, `pacs send` them:
    Orthanc files them in the source study, and each references the source series."""
    source = write_series(tmp_path / "ct", SeriesSpec(shape=(12, 32, 28), seed=204,
                                                       pixel_spacing=(0.8, 0.9)))
    pacs.server.upload(list(source.paths))  # the study the viewer retrieved
    volume = load_series(tmp_path / "ct")
    content = ReportContent(
        header=ReportHeader.of(volume.metadata, institution="Synthetic General Hospital"),
        results=(make_seg_result(volume).snapshot(), make_cls_result(volume).snapshot()),
        key_images=(gradient_key_image("nodule 1", source_sop_uid=str(
            pydicom.dcmread(source.paths[0], stop_before_pixels=True).SOPInstanceUID)),),
        measurements=(),
        impression="Synthetic test.")
    kinds = {"seg", "sr", "pdf_dicom", "key_images_dicom"}
    plan = ex.plan_export(content, tmp_path / "export", kinds)
    run(ex.run_export(content, volume.metadata, plan))
    exported = sorted((tmp_path / "export" / "dicom").glob("*.dcm"))
    assert len(exported) >= 4
    spec = f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}"
    assert main(["pacs", "send", spec, *map(str, exported)]) == 0
    assert f"{len(exported)} stored" in capsys.readouterr().out
    series = list(dimse.find(node, dimse.Query("SERIES", study_uid=source.study_uid)))
    # the source CT, the SEG, the SR, the encapsulated PDF (DOC), the key images (OT)
    assert sorted(row["Modality"] for row in series) == ["CT", "DOC", "OT", "SEG", "SR"]
    source_sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                   for p in source.paths}
    for path in exported:
        ds = stored_copy(pacs, pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert ds.StudyInstanceUID == source.study_uid
        series_refs, sop_refs = references(ds)
        assert source.series_uid in series_refs or (sop_refs and sop_refs <= source_sops), (
            path.name)


def references(ds: pydicom.Dataset) -> tuple[set[str], set[str]]:
    """Series and SOP Instance UIDs an object references: a SEG's Referenced Series, an SR's
    evidence, a PDF's Source Instances, a key image's Source Image."""
    series = {item.SeriesInstanceUID for item in ds.get("ReferencedSeriesSequence", [])}
    series |= {item.SeriesInstanceUID
               for study in ds.get("CurrentRequestedProcedureEvidenceSequence", [])
               for item in study.ReferencedSeriesSequence}
    sops = {str(item.ReferencedSOPInstanceUID)
            for keyword in ("SourceInstanceSequence", "SourceImageSequence")
            for item in ds.get(keyword, [])}
    return series, sops


def test_infer_send_writes_seg_and_sr_back_beside_the_source(node, pacs, tmp_path, capsys):
    """`medviewer infer --seg --sr --send NODE`: the results land in the source's study on
    the PACS; --send without a DICOM output, or with --deidentify, is refused before the run."""
    from tests.ai.tiny_models import ThresholdSegmenter, make_card

    source = write_series(tmp_path / "ct", SeriesSpec(shape=(6, 16, 12), seed=205))
    pacs.server.upload(list(source.paths))
    threshold = float(np.median(source.values)) + 0.5
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    spec = f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}"
    base = ["infer", "--model", str(model.folder), str(tmp_path / "ct"), "--out",
            str(tmp_path / "out"), "--device", "cpu"]
    assert main([*base, "--send", spec]) == 2
    assert "--send sends the DICOM outputs" in capsys.readouterr().err
    seg, sr = tmp_path / "seg.dcm", tmp_path / "sr.dcm"
    assert main([*base, "--seg", str(seg), "--sr", str(sr), "--send", spec, "--deidentify"]) == 2
    assert "cannot be combined with --deidentify" in capsys.readouterr().err
    assert main([*base, "--seg", str(seg), "--sr", str(sr), "--pdf", str(tmp_path / "r.pdf"),
                 "--send", spec, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] == [str(seg), str(sr)]
    series = list(dimse.find(node, dimse.Query("SERIES", study_uid=source.study_uid)))
    assert sorted(row["Modality"] for row in series) == ["CT", "SEG", "SR"]
