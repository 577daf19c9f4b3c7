"""The command line: JSON output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medviewer.cli import main
from medviewer.io.synthetic import SeriesSpec, write_series
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
