"""The study database: SQLite in WAL mode, patients -> studies -> series -> instances.

Import is idempotent (rows are keyed by file location), incremental (a file whose size and
modification time are unchanged is not read again), committed in batches (a crash loses at
most the batch in flight, never what was committed) and safe while other connections read
(WAL: readers see the last committed batch, never a half-written one).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.core.errors import CancelledError, DatabaseError
from medviewer.core.measurements import Measurement
from medviewer.io import archive as zips
from medviewer.io.header import InstanceRecord
from medviewer.io.scan import Candidate, SkippedFile, iter_candidates, read_all

Row = dict[str, Any]
"""One result row of a query: its column names to their SQLite values."""

# (path, member) of every file already seen -> (file size, mtime in ns, skipped?)
_KnownStats = dict[tuple[str, str], tuple[int, int, bool]]

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    id INTEGER PRIMARY KEY, patient_key TEXT NOT NULL UNIQUE, patient_id TEXT, name TEXT,
    birth_date TEXT, sex TEXT);
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL UNIQUE,
    patient_ref INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
    date TEXT, time TEXT, description TEXT, accession TEXT, study_id TEXT);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, series_uid TEXT NOT NULL UNIQUE,
    study_ref INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    modality TEXT, number INTEGER, description TEXT, frame_of_reference_uid TEXT);
CREATE TABLE IF NOT EXISTS instances (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, member TEXT NOT NULL DEFAULT '',
    series_ref INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    sop_instance_uid TEXT, sop_class_uid TEXT, instance_number INTEGER,
    position TEXT, orientation TEXT, rows INTEGER, columns INTEGER, frames INTEGER,
    transfer_syntax TEXT, file_size INTEGER, mtime_ns INTEGER, record TEXT NOT NULL,
    UNIQUE (path, member));
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_ref);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT NOT NULL, member TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL,
    file_size INTEGER, mtime_ns INTEGER, PRIMARY KEY (path, member));
CREATE TABLE IF NOT EXISTS measurements (
    id TEXT PRIMARY KEY, series_uid TEXT NOT NULL, json TEXT NOT NULL, created REAL);
CREATE INDEX IF NOT EXISTS measurements_series ON measurements(series_uid, created);
"""
# Version 3 records read more of each file (Patient Orientation, projection spacings, mosaics):
# files indexed by an older version are read again at their next import (marked changed).
# Version 2 added the measurements table. Measurements refer to their series by UID, not by
# a foreign key, so re-importing (or pruning) a series' instances never deletes them.


@dataclass
class ImportReport:
    """What an import did: files read, files unchanged, files skipped (path and reason)."""

    read: int = 0
    unchanged: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass(frozen=True)
class Counts:
    """Row counts of the four levels."""

    patients: int
    studies: int
    series: int
    instances: int


def default_path() -> Path:
    """The user's database: ``<user data dir>/medviewer/studies.sqlite``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("medviewer", appauthor=False)) / "studies.sqlite"


class StudyDatabase:
    """A study index in one SQLite file; one connection per thread.

    Parameters
    ----------
    path : path-like, optional
        The database file (created with its folder when missing); default :func:`default_path`.

    Raises
    ------
    DatabaseError
        When the file exists but is not a usable medviewer database.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self.connection()
            older = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.executescript(SCHEMA)
            if 0 < older < 3:
                conn.execute("UPDATE instances SET mtime_ns = -1")
                conn.execute("UPDATE skipped SET mtime_ns = -1")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            if is_disk_full(exc):
                raise self._disk_full(exc) from None
            raise DatabaseError(f"{self.path}: not a usable study database: {exc}") from None
        except OSError as exc:
            raise DatabaseError(f"{self.path}: not a usable study database: {exc}") from None

    # -- connections ------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (WAL, foreign keys on, autocommit outside transactions)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                conn.execute("ROLLBACK")
            raise

    def _disk_full(self, exc: sqlite3.Error) -> DatabaseError:
        return DatabaseError(
            f"{self.path}: the disk is full (SQLite: {exc}): the study database could not "
            "grow. What was imported before is kept; free some disk space and import again."
        )

    def _write_error(self, exc: sqlite3.Error) -> DatabaseError:
        if is_disk_full(exc):
            return self._disk_full(exc)
        return DatabaseError(f"{self.path}: cannot write to the study database: {exc}")

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- import -----------------------------------------------------------------------

    def import_paths(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        batch_size: int = 200,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> ImportReport:
        """Scan `paths` and index every DICOM file found; unchanged files are not re-read.

        Parameters
        ----------
        paths : iterable of path-like
            Files, folders, DICOMDIRs, zip archives.
        batch_size : int
            Files per transaction; a crash loses at most the batch in flight.
        progress : callable, optional
            ``progress(done, total)`` after each batch.
        cancel : callable, optional
            Polled between batches; True raises CancelledError (committed batches stay).
        """
        try:
            with zips.keep_open():  # each archive opened once for the import, then closed
                return self._import(absolute_paths(paths), batch_size, progress, cancel)
        except sqlite3.Error as exc:  # nothing of the batch in flight is kept
            raise self._write_error(exc) from None

    def _import(
        self,
        paths: list[str],
        batch_size: int,
        progress: Callable[[int, int], None] | None,
        cancel: Callable[[], bool] | None,
    ) -> ImportReport:
        report = ImportReport()
        # Absolute paths: the index must still work from another working directory.
        candidates = list(iter_candidates(paths, report.skipped))
        known = self._known_stats()
        todo = [c for c in candidates if not self._unchanged(c, known)]
        report.unchanged = len(candidates) - len(todo)
        report.skipped.extend(
            self._known_skips(c) for c in candidates if self._skipped_before(c, known)
        )
        for start in range(0, len(todo), batch_size):
            if cancel is not None and cancel():
                raise CancelledError("import cancelled")
            batch = [indexable(item) for item in read_all(todo[start : start + batch_size])]
            batch = self._store(batch, todo[start : start + batch_size])
            report.read += len(batch)
            report.skipped.extend(item for item in batch if isinstance(item, SkippedFile))
            if progress is not None:
                progress(min(start + batch_size, len(todo)), len(todo))
        return report

    def _known_stats(self) -> _KnownStats:
        conn = self.connection()
        rows = conn.execute(
            "SELECT path, member, file_size, mtime_ns, 0 FROM instances "
            "UNION ALL SELECT path, member, file_size, mtime_ns, 1 FROM skipped"
        )
        return {
            (from_db(p), from_db(m)): (size, mtime, bool(skip)) for p, m, size, mtime, skip in rows
        }

    @staticmethod
    def _stat(candidate: Candidate) -> tuple[int, int] | None:
        try:
            st = os.stat(candidate.path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _unchanged(self, candidate: Candidate, known: _KnownStats) -> bool:
        previous = known.get((candidate.path, candidate.member))
        stat = self._stat(candidate)
        if previous is None or stat is None:
            return False
        if candidate.member:  # members: the archive's mtime stands for them
            return previous[1] == stat[1]
        return previous[:2] == stat

    def _skipped_before(self, candidate: Candidate, known: _KnownStats) -> bool:
        previous = known.get((candidate.path, candidate.member))
        return previous is not None and previous[2] and self._unchanged(candidate, known)

    def _known_skips(self, candidate: Candidate) -> SkippedFile:
        row = (
            self.connection()
            .execute(
                "SELECT reason FROM skipped WHERE path=? AND member=?",
                (to_db(candidate.path), to_db(candidate.member)),
            )
            .fetchone()
        )
        return SkippedFile(candidate.location, row[0] if row else "skipped")

    def _store(
        self, batch: Sequence[InstanceRecord | SkippedFile], candidates: Sequence[Candidate]
    ) -> list[InstanceRecord | SkippedFile]:
        """Store a batch in one transaction; returns what was stored (a record that could not
        be stored is replaced by the reason)."""
        with self._transaction() as conn:
            stored = [
                self._store_one(conn, item, candidate)
                for item, candidate in zip(batch, candidates, strict=True)
            ]
            _prune_empty(conn)
        return stored

    def _store_one(
        self, conn: sqlite3.Connection, item: InstanceRecord | SkippedFile, candidate: Candidate
    ) -> InstanceRecord | SkippedFile:
        """Store one file; if its record cannot be stored, store why instead (the others of
        the batch are kept: one odd file never rolls back its neighbours)."""
        conn.execute("SAVEPOINT one_file")
        try:
            self._write_one(conn, item, candidate)
        except (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, ValueError) as exc:
            conn.execute("ROLLBACK TO one_file")
            reason = f"cannot be indexed: {type(exc).__name__}: {exc}"
            item = SkippedFile(candidate.location, reason)
            self._write_one(conn, item, candidate)
        conn.execute("RELEASE one_file")
        return item

    def _write_one(
        self, conn: sqlite3.Connection, item: InstanceRecord | SkippedFile, candidate: Candidate
    ) -> None:
        key = (to_db(candidate.path), to_db(candidate.member))
        conn.execute("DELETE FROM instances WHERE path=? AND member=?", key)
        conn.execute("DELETE FROM skipped WHERE path=? AND member=?", key)
        if isinstance(item, SkippedFile):
            stat = self._stat(candidate) or (None, None)
            conn.execute("INSERT INTO skipped VALUES (?,?,?,?,?)", (*key, item.reason, *stat))
        else:
            self._insert_instance(conn, item)

    def _insert_instance(self, conn: sqlite3.Connection, record: InstanceRecord) -> None:
        series_ref = self._series_ref(conn, record)
        conn.execute(
            "INSERT INTO instances (path, member, series_ref, sop_instance_uid, sop_class_uid, "
            "instance_number, position, orientation, rows, columns, frames, transfer_syntax, "
            "file_size, mtime_ns, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                to_db(record.path),
                to_db(record.member),
                series_ref,
                record.sop_instance_uid,
                record.sop_class_uid,
                record.instance_number,
                _json(record.position),
                _json(record.orientation),
                record.rows,
                record.columns,
                record.frames,
                record.transfer_syntax,
                record.file_size,
                record.mtime_ns,
                record_to_json(record),
            ),
        )

    def _series_ref(self, conn: sqlite3.Connection, r: InstanceRecord) -> int:
        key = f"{r.patient_id}\x1f{r.patient_name}\x1f{r.patient_birth_date}"
        conn.execute(
            "INSERT OR IGNORE INTO patients (patient_key, patient_id, name, birth_date, "
            "sex) VALUES (?,?,?,?,?)",
            (key, r.patient_id, r.patient_name, r.patient_birth_date, r.patient_sex),
        )
        patient = conn.execute("SELECT id FROM patients WHERE patient_key=?", (key,)).fetchone()[0]
        conn.execute(
            "INSERT OR IGNORE INTO studies (study_uid, patient_ref, date, time, "
            "description, accession, study_id) VALUES (?,?,?,?,?,?,?)",
            (
                r.study_uid,
                patient,
                r.study_date,
                r.study_time,
                r.study_description,
                r.accession_number,
                r.study_id,
            ),
        )
        study = conn.execute("SELECT id FROM studies WHERE study_uid=?", (r.study_uid,)).fetchone()[
            0
        ]
        conn.execute(
            "INSERT OR IGNORE INTO series (series_uid, study_ref, modality, number, "
            "description, frame_of_reference_uid) VALUES (?,?,?,?,?,?)",
            (
                r.series_uid,
                study,
                r.modality,
                r.series_number,
                r.series_description,
                r.frame_of_reference_uid,
            ),
        )
        series_ref: int = conn.execute(
            "SELECT id FROM series WHERE series_uid=?", (r.series_uid,)
        ).fetchone()[0]
        return series_ref

    # -- queries ----------------------------------------------------------------------

    def counts(self) -> Counts:
        """Number of patients, studies, series and instances."""
        conn = self.connection()
        values = [
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("patients", "studies", "series", "instances")
        ]
        return Counts(*values)

    def patients(self) -> list[Row]:
        """Patients with their study counts, by name."""
        return self._rows(
            "SELECT p.id, p.patient_id, p.name, p.birth_date, p.sex, "
            "COUNT(s.id) AS studies FROM patients p LEFT JOIN studies s "
            "ON s.patient_ref = p.id GROUP BY p.id ORDER BY p.name, p.patient_id"
        )

    def studies(self, patient: int) -> list[Row]:
        """Studies of one patient with their series counts, newest first."""
        return self._rows(
            "SELECT st.id, st.study_uid, st.date, st.time, st.description, "
            "st.accession, COUNT(se.id) AS series FROM studies st LEFT JOIN "
            "series se ON se.study_ref = st.id WHERE st.patient_ref=? "
            "GROUP BY st.id ORDER BY st.date DESC, st.time DESC",
            (patient,),
        )

    def series(self, study: int) -> list[Row]:
        """Series of one study with image counts (frames summed), by series number."""
        return self._rows(
            "SELECT se.id, se.series_uid, se.modality, se.number, se.description, "
            "COUNT(i.id) AS instances, COALESCE(SUM(i.frames), 0) AS images "
            "FROM series se LEFT JOIN instances i ON i.series_ref = se.id "
            "WHERE se.study_ref=? GROUP BY se.id ORDER BY se.number, se.id",
            (study,),
        )

    def series_under(self, paths: Iterable[str | os.PathLike[str]]) -> list[int]:
        """Ids of the series with an instance in one of `paths` (files, or folders at any depth)."""
        found: set[int] = set()
        for path in absolute_paths(paths):
            # Compared as bytes: paths that are not valid UTF-8 are stored as their bytes.
            exact = os.fsencode(path)
            prefix = os.fsencode(path.rstrip(os.sep) + os.sep)
            rows = self.connection().execute(
                "SELECT DISTINCT series_ref FROM instances WHERE CAST(path AS BLOB) = ? "
                "OR substr(CAST(path AS BLOB), 1, ?) = ?",
                (exact, len(prefix), prefix),
            )
            found.update(int(row[0]) for row in rows)
        return sorted(found)

    def series_modality(self, series: int) -> str:
        """Modality of a series ('' when unknown); one indexed lookup, no records parsed."""
        row = self.connection().execute(
            "SELECT modality FROM series WHERE id=?", (series,)
        ).fetchone()
        return "" if row is None or row[0] is None else str(row[0])

    def first_instance_location(self, series: int) -> str:
        """Where a series' first indexed file is: its path or ``archive.zip::member``
        ('' when it has none)."""
        row = self.connection().execute(
            "SELECT path, member FROM instances WHERE series_ref=? ORDER BY id LIMIT 1",
            (series,),
        ).fetchone()
        if row is None:
            return ""
        path, member = from_db(row[0]), from_db(row[1])
        return f"{path}::{member}" if member else path

    def fusable_series(self, frame_of_reference_uid: str) -> list[Row]:
        """PET and NM series on a frame of reference (what can be fused over its CT/MR),
        newest first: id, series_uid, modality, description."""
        if not frame_of_reference_uid:
            return []
        return self._rows(
            "SELECT se.id, se.series_uid, se.modality, se.description FROM series se "
            "WHERE se.frame_of_reference_uid=? AND se.modality IN ('PT', 'NM') "
            "ORDER BY se.id DESC",
            (frame_of_reference_uid,),
        )

    def prior_series(self, series_uid: str) -> list[Row]:
        """The same patient's series of the same modality in earlier studies (by study date),
        newest first: id, series_uid, date, description."""
        return self._rows(
            "SELECT pr.id, pr.series_uid, pst.date, pr.description FROM series cur "
            "JOIN studies cst ON cst.id = cur.study_ref "
            "JOIN studies pst ON pst.patient_ref = cst.patient_ref AND pst.id != cst.id "
            "AND COALESCE(pst.date, '') < COALESCE(cst.date, '') "
            "JOIN series pr ON pr.study_ref = pst.id AND pr.modality = cur.modality "
            "WHERE cur.series_uid=? ORDER BY pst.date DESC, pst.time DESC, pr.number, pr.id",
            (series_uid,),
        )

    def series_id_of(self, series_uid: str) -> int | None:
        """Id of the series with this Series Instance UID, None when it is not indexed."""
        row = self.connection().execute(
            "SELECT id FROM series WHERE series_uid=? ORDER BY id LIMIT 1", (series_uid,)
        ).fetchone()
        return None if row is None else int(row[0])

    def local_sop_instance_uids(self, series_uid: str) -> set[str]:
        """SOP Instance UIDs of a series' indexed instances whose files are still there (what a
        resumed retrieve need not ask for again)."""
        rows = self.connection().execute(
            "SELECT i.sop_instance_uid, i.path FROM instances i JOIN series s "
            "ON i.series_ref = s.id WHERE s.series_uid=?", (series_uid,))
        return {str(uid) for uid, path in rows if uid and os.path.exists(from_db(path))}

    def series_records(self, series: int) -> list[InstanceRecord]:
        """Instance records of one series (what :func:`load_series` needs)."""
        rows = self.connection().execute(
            "SELECT record FROM instances WHERE series_ref=? ORDER BY id", (series,)
        )
        records = [record_from_json(row[0]) for row in rows]
        if not records:
            raise DatabaseError(f"no series with id {series} in {self.path}")
        return records

    def skipped(self) -> list[SkippedFile]:
        """Every file the imports could not use, with the reason."""
        rows = self.connection().execute("SELECT path, member, reason FROM skipped ORDER BY path")
        found = [(from_db(p), from_db(m), reason) for p, m, reason in rows]
        return [SkippedFile(f"{p}::{m}" if m else p, reason) for p, m, reason in found]

    # -- measurements -----------------------------------------------------------------

    def save_measurement(self, measurement: Measurement) -> None:
        """Store a measurement, replacing the one with the same id (its creation time is kept).

        Parameters
        ----------
        measurement : Measurement
            The measurement; its ``series_uid`` files it, its ``id`` keys it.
        """
        self.connection().execute(
            "INSERT INTO measurements (id, series_uid, json, created) VALUES (?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET series_uid=excluded.series_uid, json=excluded.json",
            (
                measurement.id,
                measurement.series_uid,
                json.dumps(measurement.to_dict(), separators=(",", ":"), allow_nan=False),
                time.time(),
            ),
        )

    def delete_measurement(self, measurement_id: str) -> None:
        """Delete the measurement with this id (nothing happens when there is none).

        Parameters
        ----------
        measurement_id : str
            The measurement's ``id``.
        """
        self.connection().execute("DELETE FROM measurements WHERE id=?", (measurement_id,))

    def measurements(self, series_uid: str) -> list[Measurement]:
        """The measurements of one series, in the order they were first saved.

        Parameters
        ----------
        series_uid : str
            Series Instance UID.

        Returns
        -------
        list of Measurement
            Possibly empty.

        Raises
        ------
        DatabaseError
            When a stored measurement cannot be read back.
        """
        rows = self.connection().execute(
            "SELECT id, json FROM measurements WHERE series_uid=? ORDER BY created, rowid",
            (series_uid,),
        )
        return [_measurement_from_row(key, text, self.path) for key, text in rows]

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[Row]:
        cursor = self.connection().execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def absolute_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The paths made absolute (not resolved: symlinked folders keep their names)."""
    return [os.path.abspath(os.fspath(p)) for p in paths]


def to_db(path: str) -> str | bytes:
    """A path as the database stores it: text, or its bytes when the name is not valid UTF-8
    (e.g. ``b"\\xff.dcm"`` on Linux: Python gives it as ``"\\udcff.dcm"``, SQLite text cannot
    hold it). :func:`from_db` gives the same ``str`` back, so the file opens again."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return os.fsencode(path)
        except UnicodeEncodeError:  # not a name the file system gave: keep it, escaped
            return path.encode("utf-8", "surrogatepass")
    return path


def from_db(value: str | bytes) -> str:
    """Inverse of :func:`to_db`."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def is_disk_full(exc: BaseException) -> bool:
    """Whether SQLite failed because the disk (or the database's size limit) is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)


def indexable(item: InstanceRecord | SkippedFile) -> InstanceRecord | SkippedFile:
    """The record, or why the index cannot file it (no study or series UID to file it under)."""
    if isinstance(item, SkippedFile):
        return item
    for uid, tag in (
        (item.study_uid, "(0020,000D) StudyInstanceUID"),
        (item.series_uid, "(0020,000E) SeriesInstanceUID"),
    ):
        if not uid:
            return SkippedFile(item.location, f"missing required tag {tag}")
    return item


def _prune_empty(conn: sqlite3.Connection) -> None:
    """Drop series, studies and patients left without instances by a re-import."""
    conn.execute("DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series_ref FROM instances)")
    conn.execute("DELETE FROM studies WHERE id NOT IN (SELECT DISTINCT study_ref FROM series)")
    conn.execute("DELETE FROM patients WHERE id NOT IN (SELECT DISTINCT patient_ref FROM studies)")


def _measurement_from_row(key: str, text: str, path: Path) -> Measurement:
    """Decode one stored measurement, naming the row when it is unreadable."""
    try:
        return Measurement.from_dict(json.loads(text))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        raise DatabaseError(f"{path}: measurement {key!r} is unreadable: {exc}") from None


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value)


def record_to_json(record: InstanceRecord) -> str:
    """Serialise a record (without its transient ``extra``) as JSON."""
    data = dataclasses.asdict(record)
    data.pop("extra", None)
    return json.dumps(data, separators=(",", ":"))


def record_from_json(text: str) -> InstanceRecord:
    """Inverse of :func:`record_to_json` (tuples restored)."""
    data = json.loads(text)
    for key, value in data.items():
        if isinstance(value, list):
            data[key] = tuple(value)
    return InstanceRecord(**data)
