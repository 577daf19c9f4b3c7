"""Indexing survives special files, hostile zips and DICOMDIRs, odd names and a full disk.

Every hostile input is generated here, in ``tmp_path``; each becomes a skipped file with its
path and reason while the good files beside it are still indexed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import threading
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medviewer.core.errors import DatabaseError, LoadError
from medviewer.io import archive as zips
from medviewer.io import scan as scan_module
from medviewer.io.database import StudyDatabase
from medviewer.io.header import read_header, read_location
from medviewer.io.scan import scan
from medviewer.io.series import load_series
from medviewer.synthetic.dicom_writer import SeriesSpec, WrittenSeries, write_series
from tests.conftest import hash_tree

HANG_GUARD_S = 120  # only a failure guard: the code never waits on these files


def _series(folder: Path, seed: int = 0, slices: int = 4) -> WrittenSeries:
    return write_series(folder, SeriesSpec(shape=(slices, 8, 8), seed=seed, shuffle=False))


def _within(fn: Callable[[], Any]) -> Any:
    """Run `fn` in a daemon thread; fail (instead of hanging the run) if it never returns."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the scan blocked on a special file"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _reasons(result: Any) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


# -- 1. special files ------------------------------------------------------------------------


def test_pipes_and_devices_in_a_folder_are_skipped_and_the_rest_imported(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    written = _series(folder)
    os.mkfifo(folder / "pipe.dcm")
    os.symlink("/dev/zero", folder / "zero.dcm")
    os.symlink("/dev/urandom", folder / "random.dcm")
    os.symlink(written.paths[0], folder / "link-to-slice.dcm")  # a link to a file: fine
    result = _within(lambda: scan([folder]))
    assert sorted(os.path.basename(r.path) for r in result.records) == sorted(
        [p.name for p in written.paths] + ["link-to-slice.dcm"]
    )
    assert _reasons(result) == {
        str(folder / "pipe.dcm"): "not a regular file: named pipe",
        str(folder / "zero.dcm"): "not a regular file: character device "
        "(the link leads to /dev/zero)",
        str(folder / "random.dcm"): "not a regular file: character device "
        "(the link leads to /dev/urandom)",
    }


def test_special_files_named_on_the_command_line_are_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "DICOMDIR")  # would block pydicom
    os.mkfifo(tmp_path / "study.zip")  # would block zipfile.is_zipfile
    os.symlink(tmp_path / "gone.dcm", tmp_path / "broken.dcm")
    paths = [tmp_path / "DICOMDIR", tmp_path / "study.zip", "/dev/zero", tmp_path / "broken.dcm"]
    result = _within(lambda: scan(paths))
    assert result.records == []
    assert _reasons(result) == {
        str(tmp_path / "DICOMDIR"): "not a regular file: named pipe",
        str(tmp_path / "study.zip"): "not a regular file: named pipe",
        "/dev/zero": "not a regular file: character device",
        str(tmp_path / "broken.dcm"): f"broken link: {tmp_path / 'gone.dcm'} does not exist",
    }


def test_a_file_replaced_by_a_pipe_after_listing_is_not_opened(tmp_path: Path) -> None:
    written = _series(tmp_path / "ct")
    candidates = list(scan_module.iter_candidates([tmp_path / "ct"]))
    victim = written.paths[1]
    victim.unlink()
    os.mkfifo(victim)
    items = _within(lambda: scan_module.read_candidates(candidates))
    skipped = [i for i in items if isinstance(i, scan_module.SkippedFile)]
    assert [(s.path, s.reason) for s in skipped] == [
        (str(victim), "not a regular file: named pipe")
    ]
    assert len(items) - len(skipped) == 3


# -- 2. DICOMDIR references -------------------------------------------------------------------


def _write_dicomdir(folder: Path, file_ids: list[list[str]]) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    records = []
    for parts in file_ids:
        record = Dataset()
        record.DirectoryRecordType = "IMAGE"
        record.ReferencedFileID = parts
        records.append(record)
    ds.DirectoryRecordSequence = records
    path = folder / "DICOMDIR"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicomdir_references_outside_its_folder_or_to_devices_are_refused(tmp_path: Path) -> None:
    media = tmp_path / "media"
    inside = _series(media / "IMG", seed=1)
    outside = _series(tmp_path / "elsewhere", seed=2)
    os.symlink("/dev/zero", media / "ZERO")
    os.mkfifo(media / "PIPE")
    os.symlink(outside.paths[0], media / "LINKOUT")  # resolves outside the folder
    os.symlink(inside.paths[0], media / "LINKIN")  # resolves inside: fine
    dicomdir = _write_dicomdir(
        media,
        [
            ["IMG", inside.paths[1].name],
            ["..", "elsewhere", outside.paths[1].name],
            [str(outside.paths[2])],  # an absolute component
            ["ZERO"],
            ["PIPE"],
            ["LINKOUT"],
            ["LINKIN"],
        ],
    )
    result = _within(lambda: scan([dicomdir]))
    assert sorted(r.path for r in result.records) == [
        str(media / "IMG" / inside.paths[1].name),
        str(media / "LINKIN"),
    ]
    refused = "refused: the file lies outside the DICOMDIR's folder (it resolves to {})"
    via = f"referenced by {dicomdir}: "
    assert _reasons(result) == {
        str(media / ".." / "elsewhere" / outside.paths[1].name): via
        + refused.format(outside.paths[1]),
        str(outside.paths[2]): via + refused.format(outside.paths[2]),
        str(media / "ZERO"): via + "not a regular file: character device "
        "(the link leads to /dev/zero)",
        str(media / "PIPE"): via + "not a regular file: named pipe",
        str(media / "LINKOUT"): via + refused.format(outside.paths[0]),
    }


# -- 3. zip archives --------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _slices(written: WrittenSeries) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in written.paths}


def _central_entry(data: bytes, name: str) -> int:
    """Offset of `name`'s central directory entry."""
    end = data.rindex(b"PK\x05\x06")
    pos = struct.unpack_from("<I", data, end + 16)[0]
    while data[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        if data[pos + 46 : pos + 46 + name_len].decode() == name:
            return pos
        pos += 46 + name_len + extra_len + comment_len
    raise KeyError(name)


def _patch(path: Path, name: str, **fields: int) -> None:
    """Rewrite header fields of one member, in both its local and its central header
    (flags, method, csize, size): what a crafted or damaged archive holds."""
    data = bytearray(path.read_bytes())
    central = _central_entry(bytes(data), name)
    local = struct.unpack_from("<I", data, central + 42)[0]
    layout = {
        "flags": (6, 8, "H"),
        "method": (8, 10, "H"),
        "csize": (18, 20, "I"),
        "size": (22, 24, "I"),
    }
    for key, value in fields.items():
        local_at, central_at, fmt = layout[key]
        struct.pack_into("<" + fmt, data, local + local_at, value)
        struct.pack_into("<" + fmt, data, central + central_at, value)
    path.write_bytes(bytes(data))


def _member_data_offset(path: Path, name: str) -> int:
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
    data = path.read_bytes()
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    return local + 30 + name_len + extra_len


def _zipped_series(tmp_path: Path, method: int = zipfile.ZIP_DEFLATED) -> tuple[Path, list[str]]:
    written = _series(tmp_path / "s", seed=5, slices=6)
    members = _slices(written)
    return _zip(tmp_path / "study.zip", members, method), sorted(members)


def _member_reasons(result: Any, archive: Path) -> dict[str, str]:
    prefix = f"{archive}::"
    return {s.path.removeprefix(prefix): s.reason for s in result.skipped}


def test_member_declaring_4_gb_is_skipped_without_reading_it(tmp_path: Path) -> None:
    archive, names = _zipped_series(tmp_path)
    _patch(archive, names[0], size=4_000_000_000)
    tracemalloc.start()
    try:
        result = scan([archive])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _member_reasons(result, archive) == {
        names[0]: "zip member of 3.7 GB, more than the 1.0 GB medviewer reads from an "
        "archive: extract the archive to read it"
    }
    assert sorted(r.member for r in result.records) == names[1:]
    assert peak < 32 * 1024**2


def test_a_real_zip_bomb_member_is_refused_without_being_held(tmp_path: Path) -> None:
    """No ratio check (Deflate's own maximum, ~1,032:1, is reached by genuine files): a bomb
    is told from its first bytes and streamed no further, in bounded memory."""
    archive, _ = _zipped_series(tmp_path)
    with (
        zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as out,
        out.open("bomb.dcm", "w") as member,
    ):
        for _ in range(64):
            member.write(bytes(1024**2))  # 64 MB of zeros: about 64 kB compressed
    with zipfile.ZipFile(archive) as check:
        info = check.getinfo("bomb.dcm")
    assert info.file_size / info.compress_size > 1000
    tracemalloc.start()
    try:
        result = scan([archive])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _member_reasons(result, archive) == {"bomb.dcm": "not a DICOM file"}
    assert len(result.records) == 6
    assert peak < 16 * 1024**2  # not the 64 MB


def test_a_genuine_member_of_almost_only_zeros_is_imported(tmp_path: Path) -> None:
    """A real DICOM member of 32 MB of zero pixels (a blank mask or secondary capture)
    deflates more than 1,000:1: a ratio check refused it; the streamed byte count bounds it."""
    written = _series(tmp_path / "s", seed=18, slices=1)
    ds = pydicom.dcmread(written.paths[0])
    ds.Rows = ds.Columns = 4096
    ds.PixelData = bytes(4096 * 4096 * 2)
    ds.save_as(tmp_path / "blank.dcm")
    archive = _zip(tmp_path / "blank.zip", {"blank.dcm": (tmp_path / "blank.dcm").read_bytes()})
    with zipfile.ZipFile(archive) as check:
        info = check.getinfo("blank.dcm")
    assert info.file_size > 1024**2 and info.file_size / info.compress_size > 1000
    result = scan([archive])
    assert result.skipped == []
    assert [(r.member, r.rows, r.columns, r.file_size) for r in result.records] == [
        ("blank.dcm", 4096, 4096, info.file_size)
    ]


def test_header_that_understates_the_size_is_caught(tmp_path: Path) -> None:
    archive, names = _zipped_series(tmp_path)
    _patch(archive, names[2], size=1000)  # zipfile stops at the declared size: the CRC fails
    result = scan([archive])
    assert _member_reasons(result, archive) == {
        names[2]: f"damaged zip member (Bad CRC-32 for file '{names[2]}'): copy the archive again"
    }
    assert len(result.records) == 5


def test_bytes_are_counted_while_streaming_whatever_the_header_says(tmp_path: Path) -> None:
    """A decompressor that yields more than the header declared is stopped at the limit."""

    class LyingArchive:
        filename = "lying.zip"

        def open(self, info: zipfile.ZipInfo) -> Any:
            import io

            return io.BytesIO(bytes(5000))

    info = zipfile.ZipInfo("x.dcm")
    info.file_size = 10
    chunks = zips.iter_member(LyingArchive(), info, limit=100)
    with pytest.raises(zips.ArchiveError) as caught:
        list(chunks)
    assert caught.value.reason == (
        "zip member larger than the 100 bytes medviewer reads from an archive (its header "
        "says less): extract the archive to read it"
    )
    assert str(caught.value).startswith("lying.zip::x.dcm: ")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"flags": 0x1},
            "encrypted (password-protected) zip member: medviewer cannot read it",
        ),
        (
            {"method": 99},
            "zip member compressed with WinZip AES encryption (method 99), which medviewer "
            "does not read: re-create the archive with standard (Deflate) compression",
        ),
        (
            {"method": 9},
            "zip member compressed with Deflate64 (method 9), which medviewer does not read: "
            "re-create the archive with standard (Deflate) compression",
        ),
        (
            {"flags": 0x40},  # strong encryption: zipfile itself raises NotImplementedError
            "zip member uses a feature medviewer does not read (strong encryption (flag bit 6))",
        ),
    ],
)
def test_encrypted_and_unsupported_members_are_skipped(
    tmp_path: Path, fields: dict[str, int], reason: str
) -> None:
    archive, names = _zipped_series(tmp_path)
    _patch(archive, names[3], **fields)
    result = scan([archive])
    assert _member_reasons(result, archive) == {names[3]: reason}
    assert sorted(r.member for r in result.records) == names[:3] + names[4:]


def test_lzma_and_bzip2_are_skipped(tmp_path: Path) -> None:
    written = _series(tmp_path / "s", seed=6)
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for k, path in enumerate(written.paths):
            method = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA, 12][k]
            out.write(path, path.name, compress_type=method)
    result = scan([archive])
    tail = (
        "which medviewer does not read: re-create the archive with standard (Deflate) compression"
    )
    assert _member_reasons(result, archive) == {
        written.paths[2].name: f"zip member compressed with LZMA (method 14), {tail}",
        written.paths[3].name: f"zip member compressed with bzip2 (method 12), {tail}",
    }
    assert sorted(r.member for r in result.records) == [p.name for p in written.paths[:2]]


def test_lzma_members_are_refused_even_when_python_has_lzma(tmp_path: Path) -> None:
    """zipfile inflates LZMA without max_length: refused like bzip2, whatever Python has."""
    written = _series(tmp_path / "s", seed=7)
    archive = _zip(tmp_path / "lzma.zip", _slices(written), zipfile.ZIP_LZMA)
    result = scan([archive])
    assert result.records == []
    assert _member_reasons(result, archive) == {
        p.name: "zip member compressed with LZMA (method 14), which medviewer does not read: "
        "re-create the archive with standard (Deflate) compression"
        for p in written.paths
    }


def test_an_lzma_bomb_declaring_1_mb_is_refused_before_it_inflates(tmp_path: Path) -> None:
    """64 MB of LZMA zeros (about 10 kB) whose header says 1 MB: zipfile would inflate all of
    it on the first read, before the byte count could stop it."""
    archive, names = _zipped_series(tmp_path)
    with (
        zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_LZMA) as out,
        out.open("bomb.dcm", "w") as member,
    ):
        for _ in range(64):
            member.write(bytes(1024**2))
    _patch(archive, "bomb.dcm", size=1024**2)
    tracemalloc.start()
    try:
        result = scan([archive])
        with pytest.raises(zips.ArchiveError) as caught:
            zips.read_member(str(archive), "bomb.dcm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    reason = (
        "zip member compressed with LZMA (method 14), which medviewer does not read: "
        "re-create the archive with standard (Deflate) compression"
    )
    assert _member_reasons(result, archive) == {"bomb.dcm": reason}
    assert caught.value.reason == reason
    assert sorted(r.member for r in result.records) == names
    assert peak < 16 * 1024**2  # not the 64 MB


def test_bad_crc_and_corrupt_deflate_data_are_reported_per_member(tmp_path: Path) -> None:
    written = _series(tmp_path / "s", seed=8, slices=6)
    archive = tmp_path / "damaged.zip"
    names = [p.name for p in written.paths]
    with zipfile.ZipFile(archive, "w") as out:
        for k, path in enumerate(written.paths):
            out.write(path, path.name, compress_type=[0, 8][k % 2])
    data = bytearray(archive.read_bytes())
    data[_member_data_offset(archive, names[0]) + 300] ^= 0xFF  # stored: one byte flipped
    deflated = _member_data_offset(archive, names[1])
    data[deflated : deflated + 8] = b"\xff" * 8  # deflate: an invalid block type
    archive.write_bytes(bytes(data))
    result = scan([archive])
    reasons = _member_reasons(result, archive)
    assert reasons[names[0]] == (
        f"damaged zip member (Bad CRC-32 for file '{names[0]}'): copy the archive again"
    )
    assert reasons[names[1]].startswith("damaged zip member (Error -3 while decompressing data")
    assert set(reasons) == set(names[:2])
    assert sorted(r.member for r in result.records) == names[2:]


def test_member_running_past_the_end_of_the_archive_is_truncated(tmp_path: Path) -> None:
    archive, names = _zipped_series(tmp_path, zipfile.ZIP_STORED)
    _patch(archive, names[-1], csize=900_000, size=900_000)  # claims more than the file holds
    result = scan([archive])
    assert _member_reasons(result, archive) == {
        names[-1]: "damaged zip member: the archive ends before this file does (truncated copy?)"
    }
    assert len(result.records) == 5


def test_an_archive_that_cannot_be_opened_is_skipped_and_the_rest_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``chmod 000 locked.zip`` for a user other than root (tests run as root, whom chmod
    does not stop: opening it is made to fail as it would)."""
    import builtins

    folder = tmp_path / "study"
    written = _series(folder / "ct", seed=19)
    locked = _zip(folder / "locked.zip", _slices(_series(tmp_path / "other", seed=20)))
    real_open = builtins.open

    def refusing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and os.fspath(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    result = _within(lambda: scan([folder]))
    assert _reasons(result) == {str(locked): "cannot read: Permission denied"}
    assert sorted(r.path for r in result.records) == sorted(str(p) for p in written.paths)


def test_truncated_zip_without_its_directory_is_reported(tmp_path: Path) -> None:
    archive, _ = _zipped_series(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    result = scan([archive])
    assert _reasons(result) == {
        str(archive): "unreadable zip archive: its directory is missing "
        "(a truncated or damaged copy?)"
    }


class _CountingZipFile(zipfile.ZipFile):
    """zipfile.ZipFile that counts how often an archive is opened (its directory parsed)."""

    opened: ClassVar[list[str]] = []

    def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
        type(self).opened.append(os.fspath(file) if not hasattr(file, "read") else "<stream>")
        super().__init__(file, *args, **kwargs)


@pytest.fixture
def count_openings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []
    monkeypatch.setattr(_CountingZipFile, "opened", opened)
    monkeypatch.setattr(zipfile, "ZipFile", _CountingZipFile)
    monkeypatch.setattr(scan_module, "PARALLEL_SCAN_MIN", 10**9)  # count in this process
    return opened


def test_archive_with_too_many_members_is_refused_before_its_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_openings: list[str]
) -> None:
    monkeypatch.setattr(zips, "MAX_MEMBERS", 50)
    archive = _zip(tmp_path / "many.zip", {f"f{k}.txt": b"x" for k in range(60)})
    count_openings.clear()
    result = scan([archive])
    assert result.records == []
    assert _reasons(result) == {
        str(archive): "the zip archive lists 60 files, more than the 50 medviewer reads from "
        "one archive: extract it and import the folder"
    }
    assert count_openings == []  # refused from the end record: the directory never parsed


def _claim_entries(archive: Path, entries: int) -> None:
    """Rewrite the end record's member counts (this disk and total): a lying end record."""
    data = bytearray(archive.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, entries, entries)
    archive.write_bytes(bytes(data))


def test_a_lying_end_record_does_not_get_past_the_member_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_openings: list[str]
) -> None:
    """zipfile reads entries until the directory's size is used, whatever the end record's
    count says: the members are counted again once it is parsed."""
    monkeypatch.setattr(zips, "MAX_MEMBERS", 50)
    archive = _zip(tmp_path / "many.zip", {f"f{k:02d}.txt": b"x" for k in range(60)})
    _claim_entries(archive, 1)
    count_openings.clear()
    result = scan([archive])
    assert result.records == []
    assert _reasons(result) == {
        str(archive): "the zip archive lists 60 files, more than the 50 medviewer reads from "
        "one archive: extract it and import the folder"
    }
    assert count_openings == [str(archive)]  # parsed once, then refused
    with pytest.raises(zips.ArchiveError) as caught:
        zips.read_member(str(archive), "f00.txt")
    assert caught.value.reason == _reasons(result)[str(archive)]


def test_a_directory_larger_than_300_bytes_a_member_is_refused_before_it_is_parsed(
    tmp_path: Path, count_openings: list[str]
) -> None:
    """480 members with 64 kB comments: a 30 MB directory, over the 300 bytes a member
    allowed for MAX_MEMBERS (100,000 x 300 bytes), is refused before zipfile parses it."""
    assert zips.MAX_DIRECTORY_BYTES == zips.MAX_MEMBERS * 300 == 30_000_000
    archive = tmp_path / "comments.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for k in range(480):  # 480 x 64 kB: a 31 MB directory, fewer than 500 members
            info = zipfile.ZipInfo(f"f{k:03d}.txt")
            info.comment = b"c" * 65535
            out.writestr(info, b"x")
    count_openings.clear()
    result = scan([archive])
    assert result.records == []
    assert _reasons(result) == {
        str(archive): "the zip archive's directory is 30 MB, more than 29 MB: extract it "
        "and import the folder"
    }
    assert count_openings == []  # refused from the end record: the directory never parsed


def _many_members(tmp_path: Path, n: int) -> Path:
    written = _series(tmp_path / f"one{n}", seed=9, slices=1)
    data = written.paths[0].read_bytes()
    return _zip(tmp_path / f"n{n}.zip", {f"m{k:05d}.dcm": data for k in range(n)})


def test_scan_and_import_open_an_archive_once_whatever_its_size(
    tmp_path: Path, count_openings: list[str]
) -> None:
    """Linear: opening an archive parses its whole directory, so it must not happen per member.
    200 and 2,000 members both cost one opening (the old code: one per member)."""
    for n in (200, 2000):
        archive = _many_members(tmp_path, n)
        count_openings.clear()
        result = scan([archive])
        assert len(result.records) == n and result.skipped == []
        assert count_openings == [str(archive)]
        count_openings.clear()
        db = StudyDatabase(tmp_path / f"db{n}.sqlite")
        report = db.import_paths([archive], batch_size=150)
        assert report.read == n and db.counts().instances == n
        assert count_openings == [str(archive)]


def test_zip_records_are_the_records_of_the_whole_members(tmp_path: Path) -> None:
    """Streaming reads the header from the first chunk: same record as from the whole bytes."""
    written = _series(tmp_path / "s", seed=10)
    archive = _zip(tmp_path / "a.zip", _slices(written))
    result = scan([archive])
    with zipfile.ZipFile(archive) as check:
        expected = [
            read_header(str(archive), r.member, check.read(r.member)) for r in result.records
        ]
    assert result.records == expected


def test_zip_series_loads_and_bad_members_give_a_load_error(tmp_path: Path) -> None:
    written = _series(tmp_path / "s", seed=11)
    archive = Path(shutil.make_archive(str(tmp_path / "study"), "zip", tmp_path / "s"))
    before = hash_tree(tmp_path)
    volume = load_series(archive)
    np.testing.assert_array_equal(volume.array, written.values)
    member = written.paths[0].name
    assert read_location(f"{archive}::{member}").SOPInstanceUID
    assert hash_tree(tmp_path) == before
    _patch(archive, member, flags=0x1)
    with pytest.raises(LoadError) as caught:
        read_location(f"{archive}::{member}")
    assert str(caught.value) == (
        f"{archive}::{member}: encrypted (password-protected) zip member: medviewer cannot read it"
    )
    with pytest.raises(zips.ArchiveError, match="no longer in the zip archive"):
        zips.read_member(str(archive), "missing.dcm")


def _descriptors_of(path: Path, pid: int | str = "self") -> list[str]:
    """The open file descriptors of process `pid` that refer to `path` (Linux /proc)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                found.append(fd)
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return found


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux /proc")


@needs_proc
def test_no_thread_keeps_an_archive_open_after_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of headers, one member, a load (decoder threads): each closes the archive when
    it ends, so a deleted archive's space is freed (it used to stay open in each thread)."""
    monkeypatch.setenv("MEDVIEWER_NO_PROCESSES", "1")
    written = _series(tmp_path / "s", seed=21)
    archive = _zip(tmp_path / "study.zip", _slices(written))
    candidates = list(scan_module.iter_candidates([archive]))
    assert _descriptors_of(archive) == []
    items = scan_module.read_candidates(candidates)  # a worker process's job, run here
    assert len(items) == 4 and _descriptors_of(archive) == []
    assert zips.read_member(str(archive), written.paths[0].name).startswith(bytes(128) + b"DICM")
    assert _descriptors_of(archive) == []
    assert read_location(f"{archive}::{written.paths[1].name}").SOPInstanceUID
    assert _descriptors_of(archive) == []
    np.testing.assert_array_equal(load_series(archive).array, written.values)
    assert _descriptors_of(archive) == []


@needs_proc
def test_no_worker_process_keeps_an_archive_open_after_its_job(tmp_path: Path) -> None:
    from medviewer.io.decoder_pool import DecoderProcess

    written = _series(tmp_path / "s", seed=22)
    archive = _zip(tmp_path / "study.zip", _slices(written))
    candidates = list(scan_module.iter_candidates([archive]))
    worker = DecoderProcess()
    try:
        items = worker.call("read_candidates", candidates)
        assert [i.member for i in items] == [c.member for c in candidates]
        assert _descriptors_of(archive, worker.proc.pid) == []
        jobs = [(str(archive), c.member, [0]) for c in candidates]
        assert [a.shape for a in worker.call("decode_batch", jobs)] == [(1, 8, 8)] * 4
        assert _descriptors_of(archive, worker.proc.pid) == []
        worker.call("decode_frames", str(archive), candidates[0].member, [0])
        assert _descriptors_of(archive, worker.proc.pid) == []
    finally:
        worker.close()


def test_loading_a_zip_series_opens_its_archive_once_per_batch_of_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count_openings: list[str]
) -> None:
    """Members are decoded in batches that each open the archive once (not once a member)."""
    from medviewer.io import decode

    monkeypatch.setenv("MEDVIEWER_NO_PROCESSES", "1")
    written = _series(tmp_path / "s", seed=23, slices=70)
    archive = _zip(tmp_path / "study.zip", _slices(written))
    count_openings.clear()
    volume = load_series(archive)
    np.testing.assert_array_equal(volume.array, written.values)
    batches = -(-70 // decode.MEMBER_BATCH)  # 3 batches of at most 32 members
    assert count_openings == [str(archive)] * (1 + batches)  # the scan, then each batch


# -- 4. names that are not UTF-8 ---------------------------------------------------------------


def _bytes_path(folder: Path, name: bytes) -> Path:
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


def test_names_that_are_not_utf8_are_stored_losslessly_and_load(tmp_path: Path) -> None:
    root = tmp_path / "in"
    plain = _series(root / "plain", seed=12)
    odd_dir = _bytes_path(root, b"\xff\xfe-folder")
    odd = _series(odd_dir, seed=13)
    single = _bytes_path(root, b"\xfe\xff.dcm")
    shutil.copyfile(_series(tmp_path / "other", seed=14, slices=1).paths[0], single)
    junk = _bytes_path(root, b"junk-\xe9.txt")
    junk.write_bytes(b"not an image")
    db = StudyDatabase(tmp_path / "db.sqlite")
    report = db.import_paths([root])
    assert report.read == 10
    assert [(s.path, s.reason) for s in report.skipped] == [(str(junk), "not a DICOM file")]
    assert db.counts().instances == 9 and db.counts().series == 3
    kinds = dict(db.connection().execute("SELECT typeof(path), COUNT(*) FROM instances GROUP BY 1"))
    assert kinds == {"blob": 5, "text": 4}
    assert [(s.path, s.reason) for s in db.skipped()] == [(str(junk), "not a DICOM file")]
    # Incremental: the bytes-keyed rows are recognised as unchanged.
    again = db.import_paths([root])
    assert (again.read, again.unchanged) == (0, 10)
    # The series load from the stored paths, and folders are found by their bytes.
    (odd_id,) = db.series_under([odd_dir])
    assert db.first_instance_location(odd_id).startswith(str(odd_dir) + os.sep)
    np.testing.assert_array_equal(load_series(odd_id, db=db).array, odd.values)
    (plain_id,) = db.series_under([root / "plain"])
    np.testing.assert_array_equal(load_series(plain_id, db=db).array, plain.values)
    assert len(db.series_under([root])) == 3
    assert os.path.exists(db.series_records(db.series_under([single])[0])[0].path)


def test_a_record_sqlite_cannot_hold_is_skipped_and_its_neighbours_kept(tmp_path: Path) -> None:
    written = _series(tmp_path / "in", seed=15)
    ds = pydicom.dcmread(written.paths[0])
    ds.InstanceNumber = "99999999999999999999"  # an integer beyond SQLite's 64 bits
    ds.save_as(written.paths[0])
    db = StudyDatabase(tmp_path / "db.sqlite")
    report = db.import_paths([tmp_path / "in"])
    assert [(s.path, s.reason) for s in report.skipped] == [
        (
            str(written.paths[0]),
            "cannot be indexed: OverflowError: Python int too large to convert to SQLite INTEGER",
        )
    ]
    assert db.counts().instances == 3
    assert [s.path for s in db.skipped()] == [str(written.paths[0])]


# -- 5. disk full --------------------------------------------------------------------------------


def _limit_pages(db: StudyDatabase, extra: int = 0) -> None:
    """Simulate a full disk: SQLite reports SQLITE_FULL once the file would grow."""
    conn = db.connection()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + extra}")


def _rows(db: StudyDatabase) -> dict[str, list]:
    conn = db.connection()
    return {
        t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
        for t in ("patients", "studies", "series", "instances", "skipped")
    }


def test_full_disk_during_import_is_a_clear_error_and_keeps_what_was_there(
    tmp_path: Path,
) -> None:
    _series(tmp_path / "first", seed=16)
    for k in range(6):
        write_series(tmp_path / "second" / f"s{k}", SeriesSpec(shape=(40, 8, 8), seed=20 + k))
    db_path = tmp_path / "db.sqlite"
    db = StudyDatabase(db_path)
    db.import_paths([tmp_path / "first"])
    before = _rows(db)
    _limit_pages(db)
    with pytest.raises(DatabaseError) as caught:
        db.import_paths([tmp_path / "second"])
    message = str(caught.value)
    assert message.startswith(f"{db_path}: the disk is full (SQLite: database or disk is full)")
    assert "What was imported before is kept" in message
    assert _rows(db) == before
    assert db.connection().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not db.connection().in_transaction
    db.close()  # space again (a new connection has no page limit): the import completes
    again = StudyDatabase(db_path)
    assert again.import_paths([tmp_path / "second"]).read == 240
    assert again.counts().instances == 244


def test_other_write_failures_are_database_errors(tmp_path: Path) -> None:
    _series(tmp_path / "in", seed=17)
    db = StudyDatabase(tmp_path / "db.sqlite")
    other = sqlite3.connect(tmp_path / "db.sqlite", timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    db.connection().execute("PRAGMA busy_timeout = 0")
    try:
        with pytest.raises(DatabaseError) as caught:
            db.import_paths([tmp_path / "in"])
    finally:
        other.rollback()
        other.close()
    assert str(caught.value) == (
        f"{tmp_path / 'db.sqlite'}: cannot write to the study database: database is locked"
    )
    assert db.counts().instances == 0
