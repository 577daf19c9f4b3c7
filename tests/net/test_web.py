"""DICOMweb against the test Orthanc's plugin: QIDO-RS like C-FIND, WADO-RS into the database
byte for byte, STOW-RS of files as written; the multipart parser; the faults."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from medviewer.core.errors import NetworkError
from medviewer.io.database import StudyDatabase
from medviewer.io.series import load_series
from medviewer.net import dimse, web
from medviewer.net.nodes import dicomweb_node
from medviewer.net.retrieve import retrieve
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.net.orthanc import free_port
from tests.net.test_dimse import dataset_bytes, run
from tests.net.test_send import stored_copy


@pytest.fixture
def web_node(pacs):
    return dicomweb_node(pacs.server.url + "/dicom-web", "orthanc-web")


def test_qido_finds_what_c_find_finds(web_node, node, pacs):
    query = dimse.Query("STUDY", patient_name="PACS^*")
    assert sorted(r["StudyInstanceUID"] for r in web.search(web_node, query)) == sorted(
        r["StudyInstanceUID"] for r in dimse.find(node, query))
    rows = web.instances(web_node, pacs.ct.study_uid)
    assert len(rows) == 12 and {r["SeriesInstanceUID"] for r in rows} == {pacs.ct.series_uid}


@pytest.mark.parametrize("which", ["ct", "compressed", "multiframe"])
def test_wado_into_the_database_is_byte_identical(web_node, pacs, tmp_path, which):
    series = getattr(pacs, which)
    db = StudyDatabase(tmp_path / "studies.sqlite")
    progress, report = run(retrieve(db, web_node, series.series_uid, dest=tmp_path / "store"))
    assert report.complete and report.received == len(series.paths)
    assert progress[-1].received == len(series.paths)
    assert sorted(dataset_bytes(p) for p in (tmp_path / "store").rglob("*.dcm")) == sorted(
        dataset_bytes(p) for p in series.paths)
    np.testing.assert_allclose(load_series(report.series[0], db=db).array, series.values)
    _, again = run(retrieve(db, web_node, series.series_uid, dest=tmp_path / "store"))
    assert (again.received, again.skipped) == (0, len(series.paths))


def test_stow_stores_the_files_as_written(web_node, pacs, tmp_path):
    series = write_series(tmp_path / "s", SeriesSpec(shape=(3, 8, 6), seed=301,
                                                     transfer_syntax=RLELossless))
    assert web.store(web_node, list(series.paths)) == list(series.paths)
    assert len(web.instances(web_node, series.study_uid)) == 3
    for path in series.paths:
        mine = pydicom.dcmread(path)
        theirs = stored_copy(pacs, mine.SOPInstanceUID)
        assert theirs.file_meta.TransferSyntaxUID == RLELossless
        np.testing.assert_array_equal(theirs.pixel_array, mine.pixel_array)


def test_multipart_bodies_split_parts_and_keep_their_bytes():
    body = (b"preamble\r\n--b0und\r\nContent-Type: application/dicom\r\n\r\nFIRST\r\n"
            b"\r\n--b0und\r\nContent-Type: application/dicom\r\n\r\nSEC--b0und-not\r\n"
            b"--b0und--\r\nepilogue")
    assert web.multipart_bodies(body, 'multipart/related; type="application/dicom"; '
                                      'boundary="b0und"') == [b"FIRST\r\n", b"SEC--b0und-not"]
    opening = (b"--b0und\r\nA: b\r\n\r\nX\r\n--b0und\r\nA: b\r\n\r\n\r\n--b0und-notreal"
               b"\r\n--b0und--")  # a delimiter at the very start; a body ending in CRLF text
    assert web.multipart_bodies(opening, "multipart/related; boundary=b0und") == [
        b"X", b"\r\n--b0und-notreal"]
    assert web.multipart_bodies(b"--b0und--", "multipart/related; boundary=b0und") == []
    with pytest.raises(NetworkError, match="not a multipart answer"):
        web.multipart_bodies(b"{}", "application/json")


def test_an_unreachable_dicomweb_node_is_a_clear_error(tmp_path):
    nobody = dicomweb_node(f"http://127.0.0.1:{free_port()}/dicom-web")
    with pytest.raises(NetworkError,
                       match=r"QIDO-RS: cannot reach http://127\.0\.0\.1:\d+/dicom-web \(.*fused"):
        list(web.search(nobody, dimse.Query("STUDY"), timeout=5))


def test_qido_filters_by_uid(web_node, pacs):
    rows = list(web.search(web_node, dimse.Query("STUDY", study_uid=pacs.ct.study_uid)))
    assert [r["PatientID"] for r in rows] == ["PACS0001"]
    assert list(web.search(web_node, dimse.Query("STUDY", study_uid=pacs.ct.series_uid))) == []


def test_an_answer_over_its_size_limit_is_refused(web_node, pacs, tmp_path, monkeypatch):
    monkeypatch.setitem(web.MAX_ANSWER_BYTES, "WADO-RS", 1000)  # these instances are ~2 kB
    rows = web.instances(web_node, pacs.ct.study_uid)
    _, report = run(web.retrieve(web_node, rows[:1], tmp_path / "store"))
    assert "answered more than 1,000 bytes; refused" in report.error and report.files == []
    assert not list((tmp_path / "store").rglob("*.dcm"))


def test_an_answer_holding_another_instance_is_refused(web_node, pacs, tmp_path, monkeypatch):
    """The server answers a WADO-RS request with some other instance, or with no DICOM file:
    that instance fails with the reason, nothing is written, the others arrive."""
    rows = web.instances(web_node, pacs.ct.study_uid)[:3]
    real = web._get_parts
    wrong = real(web_node, f"{web_node.url}/studies/{pacs.compressed.study_uid}/series/"
                 f"{pacs.compressed.series_uid}", 30)[0]

    def answers(node, url, timeout):
        if url.endswith(rows[0]["SOPInstanceUID"]):
            return [wrong]
        if url.endswith(rows[1]["SOPInstanceUID"]):
            return [b"<html>not DICOM</html>"]
        return real(node, url, timeout)

    monkeypatch.setattr(web, "_get_parts", answers)
    _, report = run(web.retrieve(web_node, rows, tmp_path / "store"))
    assert [p.stem for p in report.files] == [rows[2]["SOPInstanceUID"]]
    assert "the answer holds another instance" in report.failed[0]
    assert "holds no DICOM Part 10 file" in report.failed[1]
    assert len(report.failed) == 2 and not report.error
    assert sorted(p.stem for p in (tmp_path / "store").rglob("*.dcm")) == [
        rows[2]["SOPInstanceUID"]]
