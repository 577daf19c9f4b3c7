"""Header-only scan of files, folders (recursive), DICOMDIRs and zip archives.

Nothing is ever written to the input. Every file that cannot be used is reported with a
reason and the scan goes on.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.core.errors import CancelledError
from medviewer.io.header import InstanceRecord, SkipFile, read_header

DICOMDIR_NAME = "DICOMDIR"
PARALLEL_SCAN_MIN = 512  # below this, starting worker processes costs more than it saves
SCAN_CHUNK = 128


@dataclass(frozen=True)
class SkippedFile:
    """A file the scan could not use, and why (for the user: path and reason)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Candidate:
    """One file to read: a path on disk, or a member of a zip archive."""

    path: str
    member: str = ""

    @property
    def location(self) -> str:
        """``path`` or ``path::member``."""
        return f"{self.path}::{self.member}" if self.member else self.path


@dataclass
class ScanResult:
    """Records of usable instances and the skipped files, in input order."""

    records: list[InstanceRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def iter_candidates(
    paths: Iterable[str | os.PathLike[str]], skipped: list[SkippedFile] | None = None
) -> Iterator[Candidate]:
    """Expand files, folders, DICOMDIRs and zip archives into the files to read.

    Paths that do not exist or cannot be listed are added to `skipped` with the reason.
    """
    skipped = skipped if skipped is not None else []
    for raw in paths:
        path = os.fspath(raw)
        if os.path.isdir(path):
            yield from _walk(path, skipped)
        elif os.path.isfile(path):
            yield from _expand_file(path, skipped)
        else:
            skipped.append(SkippedFile(path, "no such file or folder"))


def _walk(folder: str, skipped: list[SkippedFile]) -> Iterator[Candidate]:
    def report(error: OSError) -> None:
        skipped.append(SkippedFile(str(error.filename or folder), f"cannot list: {error.strerror}"))

    for root, dirs, files in os.walk(folder, onerror=report):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.upper() == DICOMDIR_NAME or name.startswith("."):
                # DICOMDIR: the walk reaches every file it references anyway. Hidden files
                # (.DS_Store, ._AppleDouble, markers) are not images and not worth a report.
                continue
            yield from _expand_file(os.path.join(root, name), skipped)


def _expand_file(path: str, skipped: list[SkippedFile]) -> Iterator[Candidate]:
    if os.path.basename(path).upper() == DICOMDIR_NAME:
        yield from _dicomdir(path, skipped)
    elif path.lower().endswith(".zip") and zipfile.is_zipfile(path):
        yield from _zip_members(path, skipped)
    else:
        yield Candidate(path)


def _dicomdir(path: str, skipped: list[SkippedFile]) -> Iterator[Candidate]:
    """The files a DICOMDIR references (Referenced File ID of its directory records)."""
    import pydicom

    root = os.path.dirname(path)
    try:
        records = pydicom.dcmread(path).DirectoryRecordSequence
        file_ids = [r.ReferencedFileID for r in records if "ReferencedFileID" in r]
    except Exception as exc:  # noqa: BLE001 - any failure: report the DICOMDIR, go on
        skipped.append(SkippedFile(path, f"unreadable DICOMDIR: {type(exc).__name__}: {exc}"))
        return
    for file_id in file_ids:
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        yield Candidate(os.path.join(root, *parts))


def _zip_members(path: str, skipped: list[SkippedFile]) -> Iterator[Candidate]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [i.filename for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        skipped.append(SkippedFile(path, f"unreadable zip archive: {exc}"))
        return
    for name in names:
        if Path(name).name.upper() != DICOMDIR_NAME:
            yield Candidate(path, name)


def read_candidate(candidate: Candidate) -> InstanceRecord | SkippedFile:
    """Read one candidate's header; a :class:`SkippedFile` says why it is unusable."""
    try:
        if candidate.member:
            with zipfile.ZipFile(candidate.path) as archive:
                data = archive.read(candidate.member)
            return read_header(candidate.path, candidate.member, data)
        return read_header(candidate.path)
    except SkipFile as exc:
        return SkippedFile(candidate.location, str(exc))
    except (OSError, zipfile.BadZipFile) as exc:
        return SkippedFile(candidate.location, f"cannot read: {exc.strerror or exc}")


def read_candidates(candidates: list[Candidate]) -> list[InstanceRecord | SkippedFile]:
    """Read a batch of candidates (one worker-process job)."""
    return [read_candidate(c) for c in candidates]


def read_all(candidates: list[Candidate]) -> Iterator[InstanceRecord | SkippedFile]:
    """Read every candidate, in order; large batches are spread over worker processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if len(candidates) < PARALLEL_SCAN_MIN or cores < 2:
        yield from map(read_candidate, candidates)
        return
    from concurrent.futures import ThreadPoolExecutor

    from medviewer.io.decode_worker import pool

    chunks = [candidates[i : i + SCAN_CHUNK] for i in range(0, len(candidates), SCAN_CHUNK)]
    with ThreadPoolExecutor(max_workers=cores) as threads:
        for batch in threads.map(lambda c: pool().call("read_candidates", c), chunks):
            yield from batch


def scan(
    paths: Iterable[str | os.PathLike[str]],
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ScanResult:
    """Read the headers of every DICOM file under `paths`.

    Parameters
    ----------
    paths : iterable of path-like
        Files, folders (searched recursively), DICOMDIR files and zip archives.
    progress : callable, optional
        Called as ``progress(done, total)`` every few hundred files and at the end.
    cancel : callable, optional
        Polled between files; when it returns True, :class:`CancelledError` is raised.

    Returns
    -------
    ScanResult
        Usable instance records and skipped files (path and reason).
    """
    result = ScanResult()
    candidates = list(iter_candidates(paths, result.skipped))
    for done, item in enumerate(read_all(candidates), start=1):
        if isinstance(item, SkippedFile):
            result.skipped.append(item)
        else:
            result.records.append(item)
        if cancel is not None and cancel():
            raise CancelledError("scan cancelled")
        if progress is not None and (done % 256 == 0 or done == len(candidates)):
            progress(done, len(candidates))
    return result
