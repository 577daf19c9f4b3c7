"""The study database: idempotent, incremental, readable during import, crash-safe."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from medviewer.core.errors import DatabaseError
from medviewer.io.database import StudyDatabase
from medviewer.io.series import load_series
from medviewer.synthetic.dicom_writer import SeriesSpec, write_radiograph, write_series
from tests.conftest import hash_tree


def _study(root: Path, n_series: int = 3, slices: int = 6) -> list:
    written = []
    for k in range(n_series):
        spec = SeriesSpec(
            shape=(slices, 8, 8),
            seed=100 + k,
            study_uid=f"1.2.826.0.1.3680043.10.1432.9.{k % 2}",
            patient_name=f"TEST^P{k % 2}",
            patient_id=f"P{k % 2}",
        )
        written.append(write_series(root / f"s{k}", spec))
    return written


def _table_rows(db: StudyDatabase) -> dict[str, list]:
    conn = db.connection()
    return {
        t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("patients", "studies", "series", "instances", "skipped")
    }


def test_import_counts_and_hierarchy(tmp_path: Path) -> None:
    _study(tmp_path / "in")
    db = StudyDatabase(tmp_path / "db.sqlite")
    report = db.import_paths([tmp_path / "in"])
    assert report.read == 18 and report.skipped == []
    counts = db.counts()
    assert (counts.patients, counts.studies, counts.series, counts.instances) == (2, 2, 3, 18)
    patients = db.patients()
    assert [p["name"] for p in patients] == ["TEST^P0", "TEST^P1"]
    studies = db.studies(patients[0]["id"])
    series = db.series(studies[0]["id"])
    assert [s["images"] for s in series] == [6, 6]
    assert {s["modality"] for s in series} == {"CT"}


def test_reimport_is_idempotent_and_incremental(tmp_path: Path) -> None:
    _study(tmp_path / "in")
    (tmp_path / "in" / "junk.txt").write_text("x")
    db = StudyDatabase(tmp_path / "db.sqlite")
    db.import_paths([tmp_path / "in"])
    before = _table_rows(db)
    again = db.import_paths([tmp_path / "in"])
    assert again.read == 0 and again.unchanged == 19
    assert [s.reason for s in again.skipped] == ["not a DICOM file"]
    assert _table_rows(db) == before


def test_changed_file_is_read_again(tmp_path: Path) -> None:
    _study(tmp_path / "in", n_series=1)
    db = StudyDatabase(tmp_path / "db.sqlite")
    db.import_paths([tmp_path / "in"])
    victim = sorted((tmp_path / "in").rglob("*.dcm"))[0]
    victim.write_bytes(b"not dicom any more")
    report = db.import_paths([tmp_path / "in"])
    assert report.read == 1
    assert db.counts().instances == 5
    assert [Path(s.path).name for s in db.skipped()] == [victim.name]


def test_load_series_from_database_id(tmp_path: Path) -> None:
    written = _study(tmp_path / "in", n_series=1)[0]
    db = StudyDatabase(tmp_path / "db.sqlite")
    db.import_paths([tmp_path / "in"])
    series_id = db.series(db.studies(db.patients()[0]["id"])[0]["id"])[0]["id"]
    volume = load_series(series_id, db=db)
    np.testing.assert_array_equal(volume.array, written.values)
    np.testing.assert_allclose(volume.affine, written.affine, atol=1e-6)


def test_missing_uid_is_skipped_with_reason(tmp_path: Path) -> None:
    import pydicom

    path, _ = write_radiograph(tmp_path / "in")
    ds = pydicom.dcmread(path)
    del ds.SeriesInstanceUID
    ds.save_as(path)
    db = StudyDatabase(tmp_path / "db.sqlite")
    report = db.import_paths([tmp_path / "in"])
    reason = "missing required tag (0020,000E) SeriesInstanceUID"
    assert [s.reason for s in report.skipped] == [reason]
    assert [s.reason for s in db.skipped()] == [reason]


def test_reader_sees_consistent_data_during_import(tmp_path: Path) -> None:
    _study(tmp_path / "in", n_series=4, slices=25)
    db_path = tmp_path / "db.sqlite"
    writer = StudyDatabase(db_path)
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        reader = StudyDatabase(db_path)
        try:
            while not done.is_set():
                conn = reader.connection()
                orphans = conn.execute(
                    "SELECT COUNT(*) FROM instances WHERE series_ref NOT IN (SELECT id FROM series)"
                ).fetchone()[0]
                seen.append((reader.counts().instances, orphans))
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    writer.import_paths([tmp_path / "in"], batch_size=10, progress=lambda *_: time.sleep(0.02))
    done.set()
    thread.join()
    assert not errors
    counts = [c for c, _ in seen]
    assert all(o == 0 for _, o in seen)
    assert counts == sorted(counts), "a reader must never see rows disappear"
    assert set(counts) <= {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, "only whole batches"
    assert len(set(counts)) >= 3, "the reader should have seen the import progress"


KILL_SCRIPT = """
import sys, time
from medviewer.io.database import StudyDatabase
db = StudyDatabase(sys.argv[1])
def slow(done, total):
    print(done, flush=True)
    time.sleep(0.2)
db.import_paths([sys.argv[2]], batch_size=10, progress=slow)
"""


def test_killed_import_leaves_a_consistent_database(tmp_path: Path) -> None:
    _study(tmp_path / "in", n_series=4, slices=25)
    db_path = tmp_path / "db.sqlite"
    before = hash_tree(tmp_path / "in")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(db_path), str(tmp_path / "in")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    while int(proc.stdout.readline() or 100) < 30:
        pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    instances = conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
    assert 30 <= instances < 100 and instances % 10 == 0
    conn.close()
    db = StudyDatabase(db_path)
    report = db.import_paths([tmp_path / "in"])
    assert report.unchanged == instances and report.read == 100 - instances
    assert db.counts().instances == 100 and db.counts().series == 4
    assert hash_tree(tmp_path / "in") == before


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="not a usable study database"):
        StudyDatabase(bad)


def test_relative_paths_are_stored_absolute_and_found_by_folder(tmp_path, monkeypatch) -> None:
    from medviewer.io.database import StudyDatabase
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    write_series(tmp_path / "a" / "ct", SeriesSpec(shape=(3, 8, 8), seed=1))
    write_series(tmp_path / "ab", SeriesSpec(shape=(2, 8, 8), seed=2))
    db = StudyDatabase(tmp_path / "db.sqlite")
    monkeypatch.chdir(tmp_path)
    db.import_paths(["a", "ab"])
    ids = {len(db.series_records(i)): i for i in db.series_under([tmp_path])}
    assert set(ids) == {3, 2}
    monkeypatch.chdir("/")
    records = db.series_records(ids[3])
    assert all(os.path.isabs(r.path) and os.path.exists(r.path) for r in records)
    # A folder matches what lies under it, not a sibling that shares its name as a prefix.
    assert db.series_under([tmp_path / "a"]) == [ids[3]]
    assert db.series_under([records[0].path]) == [ids[3]]
    assert db.series_under([tmp_path / "missing"]) == []
