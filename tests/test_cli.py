"""The command line: JSON output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medviewer.cli import main
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.corpus import DATA_STORE, PYDICOM_FILES


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medviewer", *args], capture_output=True, text=True, timeout=120
    )


def test_index_json_on_the_corpus(tmp_path: Path) -> None:
    result = _run(
        "index", str(DATA_STORE), str(PYDICOM_FILES), "--db", str(tmp_path / "db"), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"patients", "studies", "series", "instances", "skipped"}
    files = [
        p
        for root in (DATA_STORE, PYDICOM_FILES)
        for p in root.rglob("*")
        if p.is_file() and p.name != "DICOMDIR"
    ]
    assert report["instances"] + len(report["skipped"]) == len(files)
    assert report["instances"] >= 150 and report["series"] >= 40
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert skipped["MR_truncated.dcm"].startswith("truncated")
    assert skipped["README.txt"] == "not a DICOM file"
    assert skipped["rtplan.dcm"].startswith("no pixel data")
    assert result.stderr == ""


def test_info_json_on_a_generated_series(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    written = write_series(tmp_path, SeriesSpec(orientation=(0, 1, 0, 0, 0, -1), seed=3))
    assert main(["info", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [8, 16, 12]
    assert info["axes"] == ["P", "I", "R"]  # normal = row x col = (0,1,0) x (0,0,-1) = -x
    np.testing.assert_allclose(info["affine"], written.affine, atol=1e-6)
    assert info["spacing_mm"] == pytest.approx([0.9, 0.7, 2.5])
    assert info["modality"] == "CT" and info["units"] == "HU"
    assert info["value_range"] == [float(written.values.min()), float(written.values.max())]


def test_info_regular_grid_resamples_a_tilted_stack(tmp_path: Path, capsys) -> None:
    write_series(tmp_path, SeriesSpec(slice_step=(0.0, 1.4, 2.5), seed=3))  # 2 rows per slice
    assert main(["info", str(tmp_path), "--json"]) == 0
    assert "gantry tilt" in json.loads(capsys.readouterr().out)["warnings"][0]
    assert main(["info", str(tmp_path), "--json", "--regular-grid"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [8, 16 + 14, 12]
    np.testing.assert_allclose(np.array(info["affine"])[:3, :3], np.diag([0.9, 0.7, 2.5]))
    assert info["warnings"][0].startswith("resampled onto a regular grid from 8 acquired slices")


def test_info_on_a_database_series_id(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_series(tmp_path / "in", SeriesSpec())
    db = str(tmp_path / "db.sqlite")
    assert main(["index", str(tmp_path / "in"), "--db", db, "--json"]) == 0
    capsys.readouterr()
    assert main(["info", "1", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [8, 16, 12]


@pytest.mark.parametrize(
    "args",
    [
        ["info", "/no/such/folder"],
        ["index", "/no/such/folder"],
        ["frobnicate"],
        ["info"],
        ["info", "x", "--stack", "two"],
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str]) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unusable_database_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 200)
    result = _run("index", str(tmp_path), "--db", str(bad))
    assert result.returncode == 1
    assert "not a usable study database" in result.stderr


def test_info_on_a_folder_without_images_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    result = _run("info", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("medviewer: no loadable DICOM image")


def test_info_hashes_the_voxels_the_same_for_every_transfer_syntax(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``array_sha256``: equal for equal voxels (RLE vs uncompressed), different otherwise."""
    import hashlib

    from medviewer.io.series import load_series

    hashes = {}
    for name, spec in {
        "plain": SeriesSpec(seed=21),
        "rle": SeriesSpec(seed=21, transfer_syntax="1.2.840.10008.1.2.5"),
        "other": SeriesSpec(seed=21, rescale_intercept=-1000.0),  # every voxel +24
    }.items():
        write_series(tmp_path / name, spec)
        assert main(["info", str(tmp_path / name), "--json"]) == 0
        hashes[name] = json.loads(capsys.readouterr().out)["array_sha256"]
    array = load_series(tmp_path / "plain").array
    expected = hashlib.sha256(str(array.dtype).encode() + array.tobytes()).hexdigest()
    assert hashes["plain"] == hashes["rle"] == expected
    assert hashes["other"] != expected


def _hostile_folder(root: Path) -> dict[str, str]:
    """A folder with a good series beside a named pipe, a link to /dev/zero, a file whose
    name is not UTF-8 and a zip with an encrypted and a damaged member; returns the
    expected skip reasons by path."""
    written = write_series(root / "ct", SeriesSpec(shape=(3, 8, 8), seed=31))
    os.mkfifo(root / "pipe.dcm")
    os.symlink("/dev/zero", root / "zero.dcm")
    odd = os.fsdecode(os.path.join(os.fsencode(root), b"junk-\xe9.txt"))
    Path(odd).write_text("not an image")
    archive = root / "study.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in written.paths:
            out.write(path, path.name)
    data = bytearray(archive.read_bytes())
    data[6] |= 0x1  # the first member's flags, local header: encrypted
    data[data.index(b"PK\x01\x02") + 8] |= 0x1  # ... and in the central directory
    last_local = data.rindex(b"PK\x03\x04")
    data[last_local + 30 + len(written.paths[-1].name) + 200] ^= 0xFF  # last member: bad CRC
    archive.write_bytes(bytes(data))
    names = [p.name for p in written.paths]
    return {
        str(root / "pipe.dcm"): "not a regular file: named pipe",
        str(root / "zero.dcm"): "not a regular file: character device "
        "(the link leads to /dev/zero)",
        odd: "not a DICOM file",
        f"{archive}::{names[0]}": "encrypted (password-protected) zip member: "
        "medviewer cannot read it",
        f"{archive}::{names[-1]}": f"damaged zip member (Bad CRC-32 for file '{names[-1]}'): "
        "copy the archive again",
    }


def test_index_skips_special_files_hostile_zip_members_and_odd_names(tmp_path: Path) -> None:
    expected = _hostile_folder(tmp_path / "in")
    result = _run("index", str(tmp_path / "in"), "--db", str(tmp_path / "db"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {s["path"]: s["reason"] for s in report["skipped"]} == expected
    assert (report["series"], report["instances"]) == (1, 4)  # 3 files + 1 good zip member
    assert result.stderr == ""


def test_index_on_a_full_disk_says_so_and_keeps_the_index(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medviewer.io.database import StudyDatabase

    write_series(tmp_path / "a", SeriesSpec(shape=(3, 8, 8), seed=32))
    for k in range(4):
        write_series(tmp_path / "b" / str(k), SeriesSpec(shape=(40, 8, 8), seed=33 + k))
    db = str(tmp_path / "db.sqlite")
    assert main(["index", str(tmp_path / "a"), "--db", db, "--json"]) == 0
    capsys.readouterr()
    connect = StudyDatabase.connection

    def full_disk(self: StudyDatabase) -> Any:  # SQLite reports SQLITE_FULL past this size
        conn = connect(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(StudyDatabase, "connection", full_disk)
    assert main(["index", str(tmp_path / "b"), "--db", db]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"medviewer: {db}: the disk is full (SQLite: database or disk is full)")
    assert len(err.strip().splitlines()) == 1
    monkeypatch.undo()
    assert main(["info", "1", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [3, 8, 8]


def test_index_text_report_prints_names_that_are_not_utf8(tmp_path: Path) -> None:
    write_series(tmp_path / "in", SeriesSpec(shape=(2, 8, 8), seed=37))
    odd = os.path.join(os.fsencode(tmp_path / "in"), b"junk-\xe9.txt")
    Path(os.fsdecode(odd)).write_text("x")
    db = tmp_path / "db.sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "medviewer", "index", str(tmp_path / "in"), "--db", str(db)],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},  # a desktop's UTF-8 locale
    )
    assert result.returncode == 0, result.stderr
    assert b"junk-\\udce9.txt: not a DICOM file" in result.stdout  # escaped, not fatal
