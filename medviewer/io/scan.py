"""Header-only scan of files, folders (recursive), DICOMDIRs and zip archives.

Nothing is ever written to the input. Every file that cannot be used is reported with a
reason and the scan goes on.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.core.errors import CancelledError
from medviewer.io import archive as zips
from medviewer.io.decoder_pool import pool
from medviewer.io.header import (
    NOT_DICOM,
    InstanceRecord,
    check_usable,
    dcmread_bounded,
    read_header,
)
from medviewer.io.header_fields import SkipFile

DICOMDIR_NAME = "DICOMDIR"
MAX_DICOMDIR_BYTES = 256 * 1024**2  # pydicom reads a DICOMDIR whole; real ones are < 50 MB
FILE_KINDS = (
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISDIR, "folder"),
)
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
        elif os.path.lexists(path):
            yield from _expand_file(path, skipped)
        else:
            skipped.append(SkippedFile(path, "no such file or folder"))


def not_regular_reason(path: str) -> str:
    """Why `path` (links followed) is not a regular file that can be read ('' when it is).

    Named pipes block a reader forever and devices such as ``/dev/zero`` never end, so
    nothing but regular files is ever opened.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            return f"broken link: {os.readlink(path)} does not exist"
        return f"cannot read: {exc.strerror}"
    if stat.S_ISREG(mode):
        return ""
    kind = next((name for test, name in FILE_KINDS if test(mode)), "special file")
    reason = f"not a regular file: {kind}"
    if os.path.islink(path):
        reason += f" (the link leads to {os.path.realpath(path)})"
    return reason


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
    reason = not_regular_reason(path)  # before anything opens it: a pipe would block
    if reason:
        skipped.append(SkippedFile(path, reason))
    elif os.path.basename(path).upper() == DICOMDIR_NAME:
        yield from _dicomdir(path, skipped)
    elif path.lower().endswith(".zip"):
        yield from _zip_file(path, skipped)
    else:
        yield Candidate(path)


def _zip_file(path: str, skipped: list[SkippedFile]) -> Iterator[Candidate]:
    """The members of the archive `path`; an archive that cannot be opened (no permission,
    a damaged copy) is skipped with its reason, and the scan goes on."""
    try:
        is_zip = zipfile.is_zipfile(path)  # False, not an error, when it cannot be opened
        starts_like_zip = not is_zip and _starts_like_zip(path)
    except OSError as exc:
        skipped.append(SkippedFile(path, f"cannot read: {exc.strerror or exc}"))
        return
    if is_zip:
        yield from _zip_members(path, skipped)
    elif starts_like_zip:
        skipped.append(
            SkippedFile(
                path,
                "unreadable zip archive: its directory is missing (a truncated or damaged copy?)",
            )
        )
    else:
        yield Candidate(path)


def _starts_like_zip(path: str) -> bool:
    with open(path, "rb") as fp:
        return fp.read(4) == b"PK\x03\x04"


def _dicomdir(path: str, skipped: list[SkippedFile]) -> Iterator[Candidate]:
    """The files a DICOMDIR references (Referenced File ID of its directory records),
    refusing any that lie outside the DICOMDIR's folder or are not regular files.

    pydicom reads a DICOMDIR whole: one larger than :data:`MAX_DICOMDIR_BYTES`, or deflated
    and inflating to more, is refused before it is read."""
    root = os.path.dirname(path)
    try:
        if os.path.getsize(path) > MAX_DICOMDIR_BYTES:
            raise ValueError(f"larger than {MAX_DICOMDIR_BYTES // 1024**2} MB")
        ds = dcmread_bounded(path, force=False, limit=MAX_DICOMDIR_BYTES)
        records = ds.DirectoryRecordSequence
        file_ids = [r.ReferencedFileID for r in records if "ReferencedFileID" in r]
    except SkipFile as exc:
        skipped.append(SkippedFile(path, f"unreadable DICOMDIR: {exc}"))
        return
    except Exception as exc:  # noqa: BLE001 - any failure: report the DICOMDIR, go on
        skipped.append(SkippedFile(path, f"unreadable DICOMDIR: {type(exc).__name__}: {exc}"))
        return
    real_root = os.path.realpath(root)
    for file_id in file_ids:
        parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
        target = os.path.join(root, *parts)
        reason = not_regular_reason(target) or _outside_reason(target, real_root)
        if reason:
            skipped.append(SkippedFile(target, f"referenced by {path}: {reason}"))
        else:
            yield Candidate(target)


def _outside_reason(target: str, real_root: str) -> str:
    """Why a DICOMDIR's reference is refused because it leaves the DICOMDIR's folder."""
    real = os.path.realpath(target)
    if os.path.commonpath([real, real_root]) == real_root:
        return ""
    return f"refused: the file lies outside the DICOMDIR's folder (it resolves to {real})"


def _zip_members(path: str, skipped: list[SkippedFile]) -> Iterator[Candidate]:
    try:
        with zips.keep_open():  # left open for the members' reading when a scan keeps it
            names = [i.filename for i in zips.open_archive(path).infolist() if not i.is_dir()]
    except zips.ArchiveError as exc:
        skipped.append(SkippedFile(path, exc.reason))
        return
    for name in names:
        if Path(name).name.upper() != DICOMDIR_NAME:
            yield Candidate(path, name)


def read_candidate(candidate: Candidate) -> InstanceRecord | SkippedFile:
    """Read one candidate's header; a :class:`SkippedFile` says why it is unusable.

    Only regular files are opened; zip members are streamed and bounded (see
    :mod:`medviewer.io.archive`); any failure of one file is reported, never raised.
    """
    try:
        reason = not_regular_reason(candidate.path)
        if reason:
            return SkippedFile(candidate.location, reason)
        if candidate.member:
            return read_member_header(candidate.path, candidate.member)
        return read_header(candidate.path)
    except SkipFile as exc:
        return SkippedFile(candidate.location, str(exc))
    except zips.ArchiveError as exc:
        return SkippedFile(candidate.location, exc.reason)
    except OSError as exc:
        return SkippedFile(candidate.location, f"cannot read: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - one odd file must not end the scan of the others
        return SkippedFile(candidate.location, f"cannot read: {type(exc).__name__}: {exc}")


def read_member_header(path: str, member: str) -> InstanceRecord:
    """Read the header of a zip member, streaming it: the header from its first chunk,
    the rest only counted and checked (CRC), never held whole, unless the fast parser
    declines and pydicom needs the whole (bounded) member. A member that is not DICOM is
    told from its first bytes and never read further.

    Raises
    ------
    SkipFile, medviewer.io.archive.ArchiveError
        With the reason the member cannot be used.
    """
    from medviewer.io.fastheader import looks_like_dicom, parse_fast

    with zips.keep_open():  # closed afterwards unless a scan keeps it open
        archive = zips.open_archive(path)
        info = zips.member_info(archive, member)
        chunks = zips.iter_member(archive, info)
        head = next(chunks, b"")
        if not looks_like_dicom(head, max(info.file_size, len(head))):
            raise SkipFile(NOT_DICOM)  # told from its first bytes: the rest is never held
        fields = parse_fast(path, head, info.file_size)
        if fields is None:
            return read_header(path, member, head + b"".join(chunks))
        size = len(head) + sum(len(chunk) for chunk in chunks)
    mtime_ns = os.stat(path).st_mtime_ns
    record = InstanceRecord(path=path, member=member, file_size=size, mtime_ns=mtime_ns, **fields)
    check_usable(record)
    return record


def read_candidates(candidates: list[Candidate]) -> list[InstanceRecord | SkippedFile]:
    """Read a batch of candidates (one worker-process job); the archives it opens are
    closed at its end (a worker process keeps none open between jobs)."""
    with zips.keep_open():
        return [read_candidate(c) for c in candidates]


def read_all(candidates: list[Candidate]) -> Iterator[InstanceRecord | SkippedFile]:
    """Read every candidate, in order; large batches are spread over worker processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if len(candidates) < PARALLEL_SCAN_MIN or cores < 2:
        yield from map(read_candidate, candidates)
        return
    from concurrent.futures import ThreadPoolExecutor

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
    with zips.keep_open():  # each archive opened once for the scan, closed at its end
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
