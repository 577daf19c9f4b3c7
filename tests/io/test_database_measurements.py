"""Measurements in the study database: saved, reopened, ordered, deleted, never pruned."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from medviewer.core.errors import DatabaseError
from medviewer.core.measurements import Measurement
from medviewer.io.database import StudyDatabase
from medviewer.synthetic.dicom_writer import SeriesSpec, WrittenSeries, write_series


def _series(root: Path) -> WrittenSeries:
    return write_series(root, SeriesSpec(shape=(4, 8, 8), seed=7))


def _two(series_uid: str) -> tuple[Measurement, Measurement]:
    first = Measurement("distance", ((0, 0, 0), (3, 4, 0)), "axial", series_uid, label="a")
    second = Measurement("ellipse", ((-1.5, 2, 10), (4, 8.25, 10)), "axial", series_uid)
    return first, second


def test_saved_measurements_come_back_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    db = StudyDatabase(path)
    first, second = _two("1.2.3")
    other = Measurement("probe", ((1, 2, 3),), "sagittal", "9.9.9")
    db.save_measurement(first)
    db.save_measurement(other)
    db.save_measurement(second)
    db.close()

    reopened = StudyDatabase(path)
    assert reopened.measurements("1.2.3") == [first, second]
    assert reopened.measurements("9.9.9") == [other]
    assert reopened.measurements("no.such.series") == []

    reopened.delete_measurement(first.id)
    reopened.delete_measurement("unknown-id")  # a no-op
    assert reopened.measurements("1.2.3") == [second]
    reopened.close()
    assert StudyDatabase(path).measurements("1.2.3") == [second]


def test_saving_again_replaces_by_id_and_keeps_the_order(tmp_path: Path) -> None:
    db = StudyDatabase(tmp_path / "db.sqlite")
    first, second = _two("1.2.3")
    db.save_measurement(first)
    db.save_measurement(second)
    moved = first.moved([(1, 1, 1), (2, 2, 2)])
    db.save_measurement(moved)
    assert db.measurements("1.2.3") == [moved, second]
    count = db.connection().execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    assert count == 2


def test_measurements_survive_reimport_and_pruning(tmp_path: Path) -> None:
    written = _series(tmp_path / "in")
    db = StudyDatabase(tmp_path / "db.sqlite")
    db.import_paths([tmp_path / "in"])
    saved = list(_two(written.series_uid))
    for m in saved:
        db.save_measurement(m)

    # touched files are read again: their instance rows are deleted and inserted anew
    for path in written.paths:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    report = db.import_paths([tmp_path / "in"])
    assert report.read == len(written.paths)
    assert db.measurements(written.series_uid) == saved

    # files that stop being DICOM make the series disappear from the index...
    originals = {p: p.read_bytes() for p in written.paths}
    for path in written.paths:
        path.write_bytes(b"not dicom")
    db.import_paths([tmp_path / "in"])
    assert db.counts().series == 0
    assert db.measurements(written.series_uid) == saved
    # ...and when they come back, so does the series, measurements unchanged
    for path, data in originals.items():
        path.write_bytes(data)
    db.import_paths([tmp_path / "in"])
    assert db.counts().series == 1
    assert db.measurements(written.series_uid) == saved


def test_database_without_measurements_table_gets_it_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    StudyDatabase(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE measurements")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    db = StudyDatabase(path)
    first, _ = _two("1.2.3")
    db.save_measurement(first)
    assert db.measurements("1.2.3") == [first]
    assert db.connection().execute("PRAGMA user_version").fetchone()[0] == 3


def test_unreadable_stored_measurement_is_a_clear_error(tmp_path: Path) -> None:
    db = StudyDatabase(tmp_path / "db.sqlite")
    db.connection().execute(
        "INSERT INTO measurements VALUES ('bad', '1.2.3', '{\"kind\": \"probe\"}', 0)"
    )
    with pytest.raises(DatabaseError, match=r"measurement 'bad' is unreadable.*missing key"):
        db.measurements("1.2.3")


def test_files_indexed_by_version_2_are_read_again_at_the_next_import(tmp_path: Path) -> None:
    # Version 3 records hold Patient Orientation and projection spacings: old ones lack them.
    written = write_series(tmp_path / "in", SeriesSpec(shape=(3, 8, 8)))
    path = tmp_path / "old.sqlite"
    db = StudyDatabase(path)
    assert db.import_paths([tmp_path / "in"]).unchanged == 0
    assert db.import_paths([tmp_path / "in"]).unchanged == 3
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    db = StudyDatabase(path)
    report = db.import_paths([tmp_path / "in"])
    assert report.unchanged == 0 and db.counts().series == 1
    assert db.import_paths([tmp_path / "in"]).unchanged == len(written.paths)
