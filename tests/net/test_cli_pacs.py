"""``medviewer pacs`` against the test Orthanc, cross-checked with dcmtk's findscu/getscu."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from medviewer.cli import main
from medviewer.io.database import StudyDatabase
from medviewer.net.nodes import dimse_node, save_nodes
from tests.net.test_dimse import dataset_bytes


def spec(pacs) -> str:
    return f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}"


def test_echo_by_address_and_by_configured_name(pacs, capsys):
    assert main(["pacs", "echo", spec(pacs)]) == 0
    assert "C-ECHO answered in" in capsys.readouterr().out
    node = dimse_node(pacs.server.ae_title, "127.0.0.1", pacs.server.dicom_port, "archive")
    save_nodes({"archive": node})
    assert main(["pacs", "echo", "archive", "--aet", "READING1"]) == 0
    assert "(as READING1)" in capsys.readouterr().out


def test_bad_nodes_and_arguments_are_one_line_errors(capsys):
    assert main(["pacs", "echo", "not-a-node"]) == 1
    err = capsys.readouterr().err
    assert "'not-a-node' is not a PACS node" in err and "Traceback" not in err
    assert main(["pacs", "echo", "ORTHANC@127.0.0.1:99999"]) == 1
    assert "port 99999 is outside 1-65535" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["pacs", "find"])
    assert stop.value.code == 2


def test_find_json_matches_dcmtk_findscu(pacs, capsys):
    assert main(["pacs", "find", spec(pacs), "--patient", "PACS^*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ours = sorted(r["StudyInstanceUID"] for r in rows)
    assert ours == sorted([pacs.ct.study_uid, pacs.multiframe.study_uid,
                           pacs.compressed.study_uid])
    findscu = shutil.which("findscu")
    if findscu is None:
        pytest.fail("dcmtk's findscu is missing: apt-get install -y dcmtk")
    answer = subprocess.run(
        [findscu, "-S", "-aec", pacs.server.ae_title, "-k", "QueryRetrieveLevel=STUDY",
         "-k", "PatientName=PACS^*", "-k", "StudyInstanceUID", "127.0.0.1",
         str(pacs.server.dicom_port)], capture_output=True, text=True, timeout=120, check=True)
    theirs = sorted(line.split("[")[1].split("]")[0].rstrip("\x00")  # answers, not the request
                    for line in answer.stderr.splitlines()
                    if "(0020,000d)" in line.lower() and "[" in line)
    assert theirs == ours


@pytest.mark.parametrize("kind", ["dimse", "dicomweb"])
def test_find_beyond_its_limit_lists_the_first_and_says_so(pacs, capsys, kind):
    """Three studies match; with --limit 2 the first two are printed (C-FIND cancelled, or
    QIDO-RS asked for limit+1), and the exit status and message say there are more."""
    where = spec(pacs) if kind == "dimse" else f"{pacs.server.url}/dicom-web"
    assert main(["pacs", "find", where, "--patient", "PACS^*", "--json", "--limit", "2"]) == 1
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert len(rows) == 2
    assert {r["StudyInstanceUID"] for r in rows} < {
        pacs.ct.study_uid, pacs.multiframe.study_uid, pacs.compressed.study_uid}
    assert "has more than 2 matches; the first 2 are listed" in captured.err
    assert main(["pacs", "find", where, "--patient", "PACS^*", "--json", "--limit", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["pacs", "echo", spec(pacs)]) == 0  # the cancelled query left Orthanc well


def test_get_json_fills_the_database_like_dcmtk_getscu(pacs, tmp_path, capsys):
    db_path, store = tmp_path / "studies.sqlite", tmp_path / "store"
    assert main(["pacs", "get", spec(pacs), pacs.compressed.series_uid, "--db", str(db_path),
                 "--dest", str(store), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["received"], summary["skipped"], summary["failed"]) == (5, 0, [])
    db = StudyDatabase(db_path)
    assert summary["series"] == [db.series_id_of(pacs.compressed.series_uid)]
    getscu = shutil.which("getscu")
    if getscu is None:
        pytest.fail("dcmtk's getscu is missing: apt-get install -y dcmtk")
    theirs = tmp_path / "getscu"
    theirs.mkdir()
    subprocess.run(
        [getscu, "-S", "-aec", pacs.server.ae_title, "-od", str(theirs), "-k",
         "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={pacs.compressed.study_uid}",
         "-k", f"SeriesInstanceUID={pacs.compressed.series_uid}", "127.0.0.1",
         str(pacs.server.dicom_port)], capture_output=True, timeout=120, check=True)
    ours = sorted(store.rglob("*.dcm"))
    assert sorted(dataset_bytes(p) for p in ours) == sorted(
        dataset_bytes(p) for p in pacs.compressed.paths)  # RLE, as uploaded
    # getscu proposes uncompressed syntaxes only, so Orthanc decompresses for it: the same
    # instances, every attribute and every pixel equal
    dcmtk = {d.SOPInstanceUID: d for d in map(pydicom.dcmread, theirs.iterdir())}
    assert len(ours) == len(dcmtk) == 5
    for path in ours:
        mine = pydicom.dcmread(path)
        other = dcmtk[mine.SOPInstanceUID]
        assert mine.file_meta.TransferSyntaxUID == RLELossless
        np.testing.assert_array_equal(mine.pixel_array, other.pixel_array)
        for element in mine:
            if element.keyword != "PixelData":
                assert other[element.tag].value == element.value, element.keyword


def test_move_and_listen_from_the_command_line(pacs, tmp_path, capsys):
    """`pacs move` retrieves through medviewer's SCP; `pacs listen` (its own process) takes
    a study Orthanc pushes and indexes it, then stops cleanly on Ctrl-C."""
    import os
    import signal
    import sys
    import time

    db_path = tmp_path / "studies.sqlite"
    assert main(["pacs", "move", spec(pacs), pacs.multiframe.study_uid, "--dest-port",
                 str(pacs.move_port), "--db", str(db_path), "--dest", str(tmp_path / "moved"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["received"] == 1  # one multi-frame instance
    listen_db = tmp_path / "listen.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "medviewer", "pacs", "listen", "--port", str(pacs.move_port),
         "--db", str(listen_db), "--dest", str(tmp_path / "pushed")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert process.stdout is not None
        assert "listening as MEDVIEWER" in process.stdout.readline()
        pacs.server.push(pacs.ct.series_uid)
        db = StudyDatabase(listen_db)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # it indexes what arrived every half second
            series = db.series_id_of(pacs.ct.series_uid)
            if series is not None and len(db.series_records(series)) == 12:
                break
            time.sleep(0.2)
        assert series is not None and len(db.series_records(series)) == 12
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and "12 instances received and indexed" in out


def test_the_same_commands_over_dicomweb(pacs, tmp_path, capsys):
    url = pacs.server.url + "/dicom-web"
    assert main(["pacs", "echo", url]) == 0
    assert "QIDO-RS answered in" in capsys.readouterr().out
    assert main(["pacs", "find", url, "--patient", "PACS^ONE", "--json"]) == 0
    assert [r["StudyInstanceUID"] for r in json.loads(capsys.readouterr().out)] == [
        pacs.ct.study_uid]
    assert main(["pacs", "get", url, pacs.ct.study_uid, "--db", str(tmp_path / "db.sqlite"),
                 "--dest", str(tmp_path / "store"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["received"] == 12
    assert main(["pacs", "move", url, pacs.ct.study_uid, "--dest-port", "1"]) == 1
    assert "use `pacs get` (WADO-RS)" in capsys.readouterr().err
