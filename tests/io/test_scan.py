"""Header scan over folders, zips and DICOMDIRs; serial and worker-process scans agree."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from medviewer.io import scan as scan_module
from medviewer.io.scan import scan
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.conftest import hash_tree
from tests.corpus import DATA_STORE, PYDICOM_FILES


def test_worker_process_scan_equals_serial_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    serial = scan([DATA_STORE])
    monkeypatch.setattr(scan_module, "PARALLEL_SCAN_MIN", 8)
    monkeypatch.setattr(scan_module, "SCAN_CHUNK", 16)
    parallel = scan([DATA_STORE])
    assert len(parallel.records) == len(serial.records) == 68
    assert parallel.records == serial.records
    assert parallel.skipped == serial.skipped


def test_dicomdir_lists_its_instances() -> None:
    dicomdir = PYDICOM_FILES / "dicomdirtests" / "DICOMDIR"
    result = scan([dicomdir])
    referenced = {r.path for r in result.records} | {s.path for s in result.skipped}
    assert len(referenced) > 20
    assert all(Path(p).is_relative_to(dicomdir.parent) for p in referenced)


def test_zip_members_are_scanned_without_extracting(tmp_path: Path) -> None:
    write_series(tmp_path / "s", SeriesSpec())
    (tmp_path / "s" / "readme.txt").write_text("hello")
    archive = Path(shutil.make_archive(str(tmp_path / "a"), "zip", tmp_path / "s"))
    before = hash_tree(tmp_path)
    result = scan([archive])
    assert len(result.records) == 8
    assert {r.member for r in result.records} == {f"IM{k:05d}.dcm" for k in range(8)}
    assert [s.path for s in result.skipped] == [f"{archive}::readme.txt"]
    assert hash_tree(tmp_path) == before


def test_missing_path_is_reported(tmp_path: Path) -> None:
    result = scan([tmp_path / "nope"])
    assert [(s.path, s.reason) for s in result.skipped] == [
        (str(tmp_path / "nope"), "no such file or folder")
    ]


def test_hidden_files_and_folders_are_not_reported(tmp_path) -> None:
    from medviewer.io.scan import scan
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    write_series(tmp_path / "ct", SeriesSpec(shape=(3, 8, 8)))
    (tmp_path / "ct" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.dcm").write_bytes(b"junk")
    (tmp_path / "readme.txt").write_text("not an image")
    result = scan([tmp_path])
    assert len(result.records) == 3
    assert [os.path.basename(s.path) for s in result.skipped] == ["readme.txt"]
    # Named explicitly, a hidden file is still read (and reported).
    explicit = scan([tmp_path / "ct" / ".DS_Store"])
    assert len(explicit.skipped) == 1
