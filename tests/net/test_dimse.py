"""DIMSE against a real Orthanc: echo, find, C-GET into the study database (byte-identical,
the same volume, resumed, cancelled), and the clear messages of the faults."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from medviewer.core.errors import CancelledError, NetworkError
from medviewer.io.database import StudyDatabase
from medviewer.io.series import load_series
from medviewer.net import dimse
from medviewer.net.nodes import dimse_node
from medviewer.net.retrieve import retrieve
from tests.net.orthanc import free_port


def dataset_bytes(path: Path) -> bytes:
    """A Part 10 file's data set: everything after the preamble and the file meta group."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    group_length = struct.unpack("<I", data[140:144])[0]  # (0002,0000) UL, explicit VR
    return data[144 + group_length:]


def run(steps):
    """Drive a generator to its end: (what it yielded, what it returned)."""
    yielded = []
    try:
        while True:
            yielded.append(next(steps))
    except StopIteration as stop:
        return yielded, stop.value


def test_echo_answers_with_a_round_trip_time(node):
    assert 0 < dimse.echo(node) < 10


def test_echo_names_the_fault(pacs):
    nobody = dimse_node("ORTHANC", "127.0.0.1", free_port())
    with pytest.raises(NetworkError, match=r"cannot reach ORTHANC@127\.0\.0\.1:\d+: "
                                           r"Connection refused"):
        dimse.echo(nobody, timeout=2)
    wrong_aet = dimse_node("NOT-ORTHANC", "127.0.0.1", pacs.server.dicom_port)
    with pytest.raises(NetworkError, match=r"rejected the association: .*[Cc]alled AE"):
        dimse.echo(wrong_aet, timeout=10)
    with pytest.raises(NetworkError, match="calling AE title"):
        dimse.echo(dimse_node("ORTHANC", "127.0.0.1", pacs.server.dicom_port),
                   calling_aet="BACK\\SLASH")


def test_find_studies_by_name_id_and_date(node, pacs):
    rows = list(dimse.find(node, dimse.Query("STUDY", patient_name="PACS^T*")))
    assert sorted(r["PatientID"] for r in rows) == ["PACS0002", "PACS0003"]
    rows = list(dimse.find(node, dimse.Query("STUDY", patient_id="PACS0001")))
    assert [r["StudyInstanceUID"] for r in rows] == [pacs.ct.study_uid]
    assert rows[0]["NumberOfStudyRelatedInstances"] == "12"
    assert list(dimse.find(node, dimse.Query("STUDY", date="19000101-19000102"))) == []
    with pytest.raises(NetworkError, match="not YYYYMMDD"):
        list(dimse.find(node, dimse.Query("STUDY", date="yesterday")))


def test_find_series_and_instances_of_a_study(node, pacs):
    series = list(dimse.find(node, dimse.Query("SERIES", study_uid=pacs.multiframe.study_uid)))
    assert [(r["SeriesInstanceUID"], r["Modality"]) for r in series] == [
        (pacs.multiframe.series_uid, "MR")]
    rows = dimse.instances(node, pacs.ct.study_uid)
    assert len(rows) == 12 and {r["SeriesInstanceUID"] for r in rows} == {pacs.ct.series_uid}


def test_find_can_be_cancelled(node):
    with pytest.raises(CancelledError):
        list(dimse.find(node, dimse.Query("STUDY"), cancel=lambda: True))


@pytest.mark.parametrize("which", ["ct", "multiframe", "compressed"])
def test_get_into_the_database_is_byte_identical_and_loads_the_same(node, pacs, tmp_path,
                                                                     which):
    series = getattr(pacs, which)
    db = StudyDatabase(tmp_path / "studies.sqlite")
    progress, report = run(retrieve(db, node, series.study_uid, dest=tmp_path / "store"))
    assert report.complete and report.received == len(series.paths) and report.skipped == 0
    assert progress[-1].received == progress[-1].total == len(series.paths)
    assert len(report.series) == 1
    by_uid = {p.stem: p for p in (tmp_path / "store").rglob("*.dcm")}
    assert len(by_uid) == len(series.paths)
    import pydicom

    for original in series.paths:
        uid = pydicom.dcmread(original, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(by_uid[uid]) == dataset_bytes(original)
    retrieved = load_series(report.series[0], db=db)
    source = load_series(list(series.paths))
    np.testing.assert_array_equal(retrieved.array, source.array)
    np.testing.assert_array_equal(retrieved.affine, source.affine)
    np.testing.assert_allclose(retrieved.array, series.values)


def test_a_second_retrieve_asks_only_for_what_is_missing(node, pacs, tmp_path):
    db = StudyDatabase(tmp_path / "studies.sqlite")
    store = tmp_path / "store"
    _, first = run(retrieve(db, node, pacs.ct.series_uid, dest=store))
    assert first.received == 12
    _, again = run(retrieve(db, node, pacs.ct.series_uid, dest=store))
    assert (again.received, again.skipped, again.failed) == (0, 12, [])
    lost = sorted(store.rglob("*.dcm"))[:3]
    for path in lost:
        path.unlink()
    _, resumed = run(retrieve(db, node, pacs.ct.series_uid, dest=store))
    assert (resumed.received, resumed.skipped) == (3, 9)
    assert all(p.exists() for p in lost) and len(list(store.rglob("*.dcm"))) == 12
    np.testing.assert_array_equal(load_series(first.series[0], db=db).array,
                                  pacs.ct.values)


def test_a_cancelled_retrieve_keeps_whole_indexed_files_and_a_retry_completes(
        node, pacs, tmp_path, monkeypatch):
    import tempfile

    spool = tmp_path / "spool"  # where pynetdicom streams instances as they arrive
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    db = StudyDatabase(tmp_path / "studies.sqlite")
    store = tmp_path / "store"
    seen = []

    def cancel() -> bool:
        return len(seen) >= 2

    steps = retrieve(db, node, pacs.ct.study_uid, dest=store, cancel=cancel, batch=1)
    with pytest.raises(CancelledError):
        for step in steps:
            seen.append(step)
    files = sorted(store.rglob("*.dcm"))
    assert 0 < len(files) < 12
    assert not [p for p in store.rglob("*") if p.is_file() and p.suffix != ".dcm"]
    series = db.series_id_of(pacs.ct.series_uid)
    assert series is not None and len(db.series_records(series)) == len(files)
    _, retry = run(retrieve(db, node, pacs.ct.study_uid, dest=store))
    assert retry.complete and retry.received + retry.skipped == 12
    assert retry.skipped == len(files)
    assert len(db.series_records(series)) == 12
    assert list(spool.iterdir()) == []  # no instance cut short is left behind


def test_an_unknown_uid_is_a_clear_error(node, tmp_path):
    db = StudyDatabase(tmp_path / "studies.sqlite")
    with pytest.raises(NetworkError, match=r"holds no study or series with UID 1\.2\.3\.4"):
        run(retrieve(db, node, "1.2.3.4", dest=tmp_path / "store"))


def test_a_pacs_that_dies_midway_leaves_whole_indexed_files_and_a_clear_error(
        tmp_path, pacs, monkeypatch):
    """Its own Orthanc, killed during a C-GET (as the third instance arrives, before medviewer
    answers it): the error says so; what arrived is whole and indexed; the same retrieve from
    a PACS holding the series completes it."""
    from tests.net import orthanc

    server = orthanc.start(tmp_path / "doomed")
    handle = dimse.Receiver.handle

    def handle_then_kill(receiver, event):
        status = handle(receiver, event)
        if len(receiver.files) == 3:
            server.process.kill()
            server.process.wait(timeout=30)
        return status

    monkeypatch.setattr(dimse.Receiver, "handle", handle_then_kill)
    try:
        server.upload(list(pacs.ct.paths))
        doomed = dimse_node(server.ae_title, "127.0.0.1", server.dicom_port)
        db = StudyDatabase(tmp_path / "studies.sqlite")
        store = tmp_path / "store"
        with pytest.raises(NetworkError, match=r"3 instances were received, kept and indexed"):
            run(retrieve(db, doomed, pacs.ct.study_uid, dest=store, batch=100, timeout=10))
    finally:
        server.stop()
    monkeypatch.undo()
    files = sorted(store.rglob("*.dcm"))
    series = db.series_id_of(pacs.ct.series_uid)
    assert files and series is not None and len(db.series_records(series)) == len(files)
    assert not [p for p in store.rglob("*") if p.is_file() and p.suffix != ".dcm"]
    test_pacs = dimse_node(pacs.server.ae_title, "127.0.0.1", pacs.server.dicom_port)
    _, retry = run(retrieve(db, test_pacs, pacs.ct.study_uid, dest=store))
    assert retry.complete and retry.skipped == len(files) and retry.received == 12 - len(files)


def test_move_to_medviewer_s_own_storage_scp(node, pacs, tmp_path):
    """C-MOVE: Orthanc sends to MEDVIEWER on the registered port; the same files, byte for
    byte as uploaded, indexed; a second move asks for nothing."""
    db = StudyDatabase(tmp_path / "studies.sqlite")
    store = tmp_path / "store"
    progress, report = run(retrieve(db, node, pacs.compressed.series_uid, dest=store,
                                    move_port=pacs.move_port))
    assert report.complete and report.received == 5 and progress[-1].received == 5
    assert sorted(dataset_bytes(p) for p in store.rglob("*.dcm")) == sorted(
        dataset_bytes(p) for p in pacs.compressed.paths)
    np.testing.assert_array_equal(load_series(report.series[0], db=db).array,
                                  pacs.compressed.values)
    _, again = run(retrieve(db, node, pacs.compressed.series_uid, dest=store,
                            move_port=pacs.move_port))
    assert (again.received, again.skipped) == (0, 5)


def test_move_to_an_unregistered_destination_says_how_to_fix_it(node, pacs, tmp_path):
    db = StudyDatabase(tmp_path / "studies.sqlite")
    with pytest.raises(NetworkError, match="does the PACS know the move destination 'STRANGER'"):
        run(retrieve(db, node, pacs.ct.series_uid, dest=tmp_path / "store",
                     move_port=free_port(), calling_aet="STRANGER"))


def test_an_instance_medviewer_cannot_read_is_reported_and_the_rest_load(node, pacs, tmp_path):
    """The PACS holds an instance whose pixel data is truncated: it is retrieved as stored,
    skipped at indexing with its path and reason, and the series opens without it."""
    import pydicom

    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    series = write_series(tmp_path / "bad", SeriesSpec(shape=(4, 16, 12), seed=207))
    broken = pydicom.dcmread(series.paths[0])
    broken.PixelData = broken.PixelData[:100]
    broken.save_as(series.paths[0])
    pacs.server.upload(list(series.paths))
    db = StudyDatabase(tmp_path / "studies.sqlite")
    _, report = run(retrieve(db, node, series.series_uid, dest=tmp_path / "store"))
    assert report.complete and report.received == 4
    skipped = db.skipped()
    assert len(skipped) == 1 and broken.SOPInstanceUID in skipped[0].path
    assert "truncated: pixel data has 100 bytes" in skipped[0].reason
    assert load_series(report.series[0], db=db).shape == (3, 16, 12)


def test_an_instance_sent_twice_is_one_file_and_one_record(node, pacs, tmp_path):
    """Asking again for what is local (as a PACS resending would) rewrites the same file in
    place: no second file, no second database record."""
    db = StudyDatabase(tmp_path / "studies.sqlite")
    store = tmp_path / "store"
    rows = dimse.instances(node, pacs.ct.study_uid)
    for _ in range(2):
        _, report = run(dimse.get(node, rows, store))
        db.import_paths(report.files)
    assert len(list(store.rglob("*.dcm"))) == 12
    assert len(db.series_records(db.series_id_of(pacs.ct.series_uid))) == 12


class _StoreEvent:
    """What pynetdicom hands the C-STORE handler: the announced UID and the encoded data set."""

    def __init__(self, path: Path, announced: str) -> None:
        import io

        import pydicom

        ds = pydicom.dcmread(path)
        self.file_meta = ds.file_meta
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=False, implicit_vr=False, little_endian=True)
        request = type("Request", (), {})()
        request.AffectedSOPInstanceUID = announced
        request.DataSet = io.BytesIO(buffer.getvalue())
        self.request = request


def test_the_receiver_refuses_an_instance_that_is_not_the_one_announced(tmp_path):
    """A peer that announces one SOP Instance UID and sends another, or sends UIDs that are
    not UIDs (a path), gets 'cannot understand' and nothing is written."""
    import pydicom

    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    series = write_series(tmp_path / "s", SeriesSpec(shape=(2, 8, 6), seed=208))
    receiver = dimse.Receiver(tmp_path / "store")
    sop = str(pydicom.dcmread(series.paths[0], stop_before_pixels=True).SOPInstanceUID)
    assert receiver.handle(_StoreEvent(series.paths[0], sop)) == 0x0000
    assert receiver.handle(_StoreEvent(series.paths[1], sop)) == 0xC000
    assert "holds SOP Instance UID" in receiver.errors[-1]
    hostile = tmp_path / "hostile.dcm"
    ds = pydicom.dcmread(series.paths[1])
    ds.SeriesInstanceUID = "../../escape"
    ds.save_as(hostile)
    assert receiver.handle(_StoreEvent(hostile, str(ds.SOPInstanceUID))) == 0xC000
    assert "invalid UID '../../escape'" in receiver.errors[-1]
    assert [p.name for p in (tmp_path / "store").rglob("*") if p.is_file()] == [f"{sop}.dcm"]
    assert not (tmp_path / "escape").exists()


def test_the_receiver_copies_an_instance_pynetdicom_streamed_to_disk(tmp_path):
    """medviewer's associations have pynetdicom stream each received instance to a temporary
    Part 10 file (no instance held in memory whole); the receiver checks that file's UIDs and
    copies it byte for byte, or refuses it."""
    import shutil

    import pydicom
    from pynetdicom import _config

    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    series = write_series(tmp_path / "s", SeriesSpec(shape=(2, 8, 6), seed=209))
    dimse.receive_to_disk()
    assert _config.STORE_RECV_CHUNKED_DATASET is True
    receiver = dimse.Receiver(tmp_path / "store")
    sop = str(pydicom.dcmread(series.paths[0], stop_before_pixels=True).SOPInstanceUID)
    for source, expected in ((series.paths[0], 0x0000), (series.paths[1], 0xC000)):
        streamed = tmp_path / "streamed.dcm"
        shutil.copyfile(source, streamed)
        event = _StoreEvent(series.paths[0], sop)
        event.request._dataset_path = streamed  # what pynetdicom sets in that mode
        event.request.DataSet = None
        assert receiver.handle(event) == expected
        assert not streamed.exists()  # the handler deletes what pynetdicom spooled
    assert "holds SOP Instance UID" in receiver.errors[-1]
    (written,) = receiver.files
    assert written.read_bytes() == series.paths[0].read_bytes()
