"""Bounded, streaming reading of zip archive members.

A zip archive is data from outside: its directory can list millions of files, a member of a
few kilobytes can expand to gigabytes (a "zip bomb"), a member can be encrypted, use a
compression method Python cannot read, or be damaged. Every member goes through the checks
below before a byte of it is decompressed, and is then read in chunks whose count is bounded
whatever its header says.

Limits (module constants, documented for the user):

* :data:`MAX_MEMBERS` files per archive, read from the archive's end record before its
  directory is parsed, and counted again once it is (the end record's count can lie: zipfile
  reads entries until the directory's size is used up); a larger archive is refused whole:
  extract it and import the folder;
* :data:`MAX_DIRECTORY_BYTES`, the size of that directory (about 300 bytes per member
  allowed), checked before it is parsed;
* :data:`MAX_MEMBER_BYTES` per member, by the size its header declares and by the bytes
  actually decompressed, counted while streaming: the bound that holds whatever the header
  says. There is no compression-ratio check: Deflate itself reaches about 1,032:1, so a
  genuine member of almost only zeros (a segmentation mask, a blank secondary capture) would
  be refused by any ratio below that, while a header that lies about its sizes passes any
  ratio; the streamed count is what bounds memory;
* methods: stored and Deflate only. bzip2 and LZMA are refused because :mod:`zipfile` calls
  their decompressors without a ``max_length``: a few kilobytes can expand into gigabytes in
  one call, before any limit can be checked (DICOM media use stored or Deflate members).

Each thread keeps the archive it read last open (:func:`open_archive`) inside a
:func:`keep_open` block, so reading every member of an archive opens it once, not once per
member (opening parses the whole directory: per-member opening made scans quadratic in the
number of members). The outermost block closes it: a scan, a worker process's batch, one
:func:`read_member` call outside any block. No thread or worker process keeps an archive open
once its work is done (a deleted archive's disk space is freed).
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from medviewer.core.errors import LoadError
from medviewer.core.formatting import byte_size

MAX_MEMBERS = 100_000
DIRECTORY_BYTES_PER_MEMBER = 300  # a directory entry is 46 bytes plus the name and extras
MAX_DIRECTORY_BYTES = MAX_MEMBERS * DIRECTORY_BYTES_PER_MEMBER
MAX_MEMBER_BYTES = 1024**3
HEAD_BYTES = 64 * 1024
CHUNK_BYTES = 1024**2

METHOD_NAMES = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "Deflate",
    9: "Deflate64",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
    93: "Zstandard",
    95: "XZ",
    98: "PPMd",
    99: "WinZip AES encryption",
}

# bzip2 and LZMA: zipfile decompresses them without max_length (unbounded; see above).
SUPPORTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})

# What zipfile and its decompressors raise on a damaged, truncated or unreadable member.
MEMBER_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    RuntimeError,
    NotImplementedError,
    OSError,
    ValueError,
    struct.error,
)
# What zipfile raises when the archive itself (its directory) cannot be read.
ARCHIVE_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,  # UnicodeDecodeError: names flagged UTF-8 that are not
    struct.error,
    NotImplementedError,
)

_local = threading.local()


class ArchiveError(LoadError):
    """A zip archive or member cannot be read; ``reason`` says why, in words for the user.

    Parameters
    ----------
    location : str
        ``archive.zip`` or ``archive.zip::member``.
    reason : str
        Why it cannot be read.
    """

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


def open_archive(path: str) -> zipfile.ZipFile:
    """The archive at `path`, opened once per thread and reused while the file is unchanged.

    Call it inside a :func:`keep_open` block, which closes the archive when it ends.

    Parameters
    ----------
    path : str
        A zip archive.

    Returns
    -------
    zipfile.ZipFile
        Open for reading; owned by this module (close it with :func:`release`, not directly).

    Raises
    ------
    ArchiveError
        When `path` is not a regular file, lists too many files or cannot be read as a zip.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ArchiveError(path, f"cannot read: {exc.strerror}") from None
    key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = getattr(_local, "archive", None)
    if cached is not None and cached[0] == key:
        reused: zipfile.ZipFile = cached[1]
        return reused
    release()
    if not stat.S_ISREG(st.st_mode):
        raise ArchiveError(path, "not a regular file")
    archive = _open_checked(path)
    _local.archive = (key, archive)
    return archive


def release() -> None:
    """Close the archive this thread keeps open (nothing happens when there is none)."""
    cached = getattr(_local, "archive", None)
    _local.archive = None
    if cached is not None:
        cached[1].close()


@contextlib.contextmanager
def keep_open() -> Iterator[None]:
    """Keep the archive this thread opens (:func:`open_archive`) open while the block runs;
    the outermost block closes it when it ends (nested blocks leave it open).

    Wrap every unit of work that reads members (a scan, an import, a worker process's batch,
    a load's batch of members) in one block: the archive is opened once for it and never
    outlives it.
    """
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth
        if depth == 0:
            release()


def _open_checked(path: str) -> zipfile.ZipFile:
    """Open `path` after checking, from its end record, how large its directory is, and,
    once zipfile has parsed it, how many members it really lists."""
    try:
        with open(path, "rb") as fp:
            # zipfile's own end-record reader (private, so not in its stubs)
            end = zipfile._EndRecData(fp)  # type: ignore[attr-defined]
        if end is None:
            raise ArchiveError(path, "unreadable zip archive: no zip directory (truncated?)")
        total, size = zipfile._ECD_ENTRIES_TOTAL, zipfile._ECD_SIZE  # type: ignore[attr-defined]
        _check_directory(path, end[total], end[size])
        archive = zipfile.ZipFile(path)
    except ArchiveError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise ArchiveError(path, f"unreadable zip archive: {exc}") from None
    try:  # the end record's count can lie: zipfile reads entries until the directory ends
        _check_directory(path, len(archive.infolist()), 0)
    except ArchiveError:
        archive.close()
        raise
    return archive


def _check_directory(path: str, entries: int, size: int) -> None:
    if entries > MAX_MEMBERS:
        raise ArchiveError(
            path,
            f"the zip archive lists {entries:,} files, more than the {MAX_MEMBERS:,} "
            "medviewer reads from one archive: extract it and import the folder",
        )
    if size > MAX_DIRECTORY_BYTES:
        raise ArchiveError(
            path,
            f"the zip archive's directory is {byte_size(size)}, more than "
            f"{byte_size(MAX_DIRECTORY_BYTES)}: extract it and import the folder",
        )


def member_info(archive: zipfile.ZipFile, member: str, limit: int = MAX_MEMBER_BYTES) -> Any:
    """The :class:`zipfile.ZipInfo` of `member`, checked before any of it is decompressed.

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open archive.
    member : str
        The member's name.
    limit : int
        Largest uncompressed size accepted, in bytes.

    Raises
    ------
    ArchiveError
        When the member is missing, encrypted, compressed with a method medviewer does not
        read or declares more than `limit` bytes (see the module's limits).
    """
    location = f"{archive.filename}::{member}"
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise ArchiveError(location, "no longer in the zip archive") from None
    reason = check_member(info, limit)
    if reason:
        raise ArchiveError(location, reason)
    return info


def check_member(info: zipfile.ZipInfo, limit: int = MAX_MEMBER_BYTES) -> str:
    """Why the member described by `info` is not read ('' when it can be).

    Parameters
    ----------
    info : zipfile.ZipInfo
        The member's directory entry.
    limit : int
        Largest uncompressed size accepted, in bytes.
    """
    if info.flag_bits & 0x1:
        return "encrypted (password-protected) zip member: medviewer cannot read it"
    if info.compress_type not in SUPPORTED_METHODS:
        name = METHOD_NAMES.get(info.compress_type, "unknown")
        return (
            f"zip member compressed with {name} (method {info.compress_type}), which "
            "medviewer does not read: re-create the archive with standard (Deflate) compression"
        )
    if info.file_size > limit:
        return (
            f"zip member of {byte_size(info.file_size)}, more than the {byte_size(limit)} "
            "medviewer reads from an archive: extract the archive to read it"
        )
    return ""


def iter_member(
    archive: Any, info: zipfile.ZipInfo, limit: int = MAX_MEMBER_BYTES
) -> Iterator[bytes]:
    """Decompress a member in chunks: the first :data:`HEAD_BYTES`, then
    :data:`CHUNK_BYTES` at a time, counting bytes (the header's size can lie).

    Parameters
    ----------
    archive : zipfile.ZipFile
        The open archive (anything with ``open(info)`` and ``filename``).
    info : zipfile.ZipInfo
        The member, as :func:`member_info` returns it.
    limit : int
        Most bytes read before the member is refused.

    Raises
    ------
    ArchiveError
        When the member turns out larger than `limit` or its data is damaged (bad CRC,
        corrupt compressed data, truncated archive), encrypted or unsupported.
    """
    location = f"{archive.filename}::{info.filename}"
    total = 0
    try:
        with archive.open(info) as stream:
            chunk = stream.read(HEAD_BYTES)
            while chunk:
                total += len(chunk)
                if total > limit:
                    raise ArchiveError(
                        location,
                        f"zip member larger than the {byte_size(limit)} medviewer reads from an "
                        "archive (its header says less): extract the archive to read it",
                    )
                yield chunk
                chunk = stream.read(CHUNK_BYTES)
    except ArchiveError:
        raise
    except MEMBER_ERRORS as exc:
        raise ArchiveError(location, member_error_reason(exc)) from None


def read_member(path: str, member: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """The whole (bounded) content of one zip member: the one reader of zip members.

    Parameters
    ----------
    path : str
        The zip archive.
    member : str
        The member's name.
    limit : int
        Largest member read, in bytes (by its header and by the bytes decompressed).

    Returns
    -------
    bytes

    Raises
    ------
    ArchiveError
        With the location and the reason (see :func:`check_member`, :func:`iter_member`).
    """
    with keep_open():  # closed afterwards unless the caller keeps it open for more
        archive = open_archive(path)
        info = member_info(archive, member, limit)
        return b"".join(iter_member(archive, info, limit))


def member_error_reason(exc: BaseException) -> str:
    """A reason, for the user, from what zipfile or a decompressor raised."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, RuntimeError) and "encrypted" in text:
        return "encrypted (password-protected) zip member: medviewer cannot read it"
    if isinstance(exc, NotImplementedError):
        return f"zip member uses a feature medviewer does not read ({text})"
    if isinstance(exc, EOFError):
        return "damaged zip member: the archive ends before this file does (truncated copy?)"
    if isinstance(exc, (zlib.error, zipfile.BadZipFile)):
        return f"damaged zip member ({text}): copy the archive again"
    return f"cannot read the zip member: {type(exc).__name__}: {text}"
