"""Hostile DICOM files (issue 17): each is refused with its reason, quickly, in bounded
memory, never a traceback, and never stops the good series beside it.

Every file is made here, in tmp_path, from a small synthetic CT slice.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate

from medviewer.cli import main
from medviewer.core.errors import LoadError
from medviewer.io import fastheader, header
from medviewer.io.pydicom_pixels import decode_frames
from medviewer.io.scan import Candidate, read_candidate, scan
from medviewer.io.series import Stack, StackLoader, find_stacks, load_series
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.conftest import hash_tree

GiB = 1024**3
J2K = "1.2.840.10008.1.2.4.90"
DEFLATED = "1.2.840.10008.1.2.1.99"


@pytest.fixture
def ct(tmp_path: Path) -> Path:
    """One valid CT slice (explicit VR little endian, 16 x 12, 16 bits)."""
    return write_series(tmp_path / "ct", SeriesSpec(shape=(1, 16, 12), seed=17)).paths[0]


@pytest.fixture
def machine_24gb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the machine has 24 GB of memory, so the messages are the same everywhere."""
    monkeypatch.setattr(header, "physical_memory", lambda: 24 * GiB)


def _save(ds: pydicom.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def _reason(path: Path) -> str:
    with pytest.raises(header.SkipFile) as info:
        header.read_header(path)
    return str(info.value)


def _info_line(path: Path, capsys: pytest.CaptureFixture) -> str:
    """``medviewer info PATH``: exits 1 with one line on stderr, nothing on stdout."""
    assert main(["info", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("medviewer: ")
    return err


# -- 1. a large file of zeros is told from DICOM by its first bytes -------------------------


def test_sparse_200mb_of_zeros_is_refused_from_its_first_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zeros = tmp_path / "zeros.dcm"
    zeros.touch()
    os.truncate(zeros, 200 * 1024 * 1024)
    read: list[int] = []
    real_open = header._open

    def counting_open(path: str, data: bytes | None):
        fp = real_open(path, data)
        real_read = fp.read
        fp.read = lambda n=-1: _counted(real_read(n), read)  # type: ignore[method-assign]
        return fp

    def never(*_args: object) -> None:
        raise AssertionError("a parser ran on a file that is not DICOM")

    monkeypatch.setattr(header, "_open", counting_open)
    monkeypatch.setattr(fastheader, "parse_fast", never)
    monkeypatch.setattr(header, "parse_with_pydicom", never)
    before = _bytes_read_by_process()
    assert _reason(zeros) == "not a DICOM file"
    assert sum(read) <= 4096
    if before is not None:
        assert _bytes_read_by_process() - before < 1024 * 1024  # not the 200 MB
    assert read_candidate(Candidate(str(zeros))).reason == "not a DICOM file"


def _counted(chunk: bytes, read: list[int]) -> bytes:
    read.append(len(chunk))
    return chunk


def _bytes_read_by_process() -> int | None:
    """Bytes this process has read from files so far (Linux), else None."""
    try:
        with open("/proc/self/io") as stats:
            return next(int(line.split()[1]) for line in stats if line.startswith("rchar:"))
    except (OSError, StopIteration):
        return None


def test_files_without_preamble_are_still_read(tmp_path: Path, ct: Path) -> None:
    """pydicom's forced case: a dataset that starts at byte 0 (implicit VR, group 0008)."""
    ds = pydicom.dcmread(ct)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    ds.save_as(tmp_path / "implicit.dcm", implicit_vr=True, little_endian=True)
    raw = (tmp_path / "implicit.dcm").read_bytes()
    bare = raw[fastheader.meta_end(raw)[1] :]
    assert bare[:2] == b"\x08\x00"
    (tmp_path / "bare.dcm").write_bytes(bare)
    assert fastheader.looks_like_dicom(bare[:132], len(bare))
    record = header.read_header(tmp_path / "bare.dcm")
    assert (record.rows, record.columns, record.transfer_syntax) == (16, 12, "1.2.840.10008.1.2")


# -- 2. deeply nested sequences ---------------------------------------------------------------


def _nested(ct: Path, out: Path, depth: int, description: str = "") -> Path:
    """`ct` with an undefined-length Referenced Image Sequence nested `depth` levels."""
    ds = pydicom.dcmread(ct)
    if description:
        ds.StudyDescription = description
    ds.save_as(out)
    data = bytearray(out.read_bytes())
    at = data.index(b"\x08\x00\x3e\x10")  # (0008,103E) Series Description, after (0008,1140)
    opening = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    opening += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data[at:at] = opening * depth + closing * depth
    out.write_bytes(bytes(data))
    return out


def test_sequences_nested_600_deep_are_refused(tmp_path: Path, ct: Path) -> None:
    deep = _nested(ct, tmp_path / "deep.dcm", 600)
    assert _reason(deep) == (
        "sequences nested more than 32 levels deep (a damaged or deliberately malformed file)"
    )


def test_pydicoms_own_recursion_is_guarded(tmp_path: Path, ct: Path) -> None:
    """Non-ASCII text before the sequence: the fast path declines, pydicom recurses."""
    deep = _nested(ct, tmp_path / "deep.dcm", 600, description="Thorax ärztlich")
    assert fastheader.parse_fast(str(deep), None, deep.stat().st_size) is None
    assert _reason(deep) == header.NESTED_TOO_DEEP


def test_shallow_nesting_is_read(tmp_path: Path, ct: Path) -> None:
    record = header.read_header(_nested(ct, tmp_path / "ok.dcm", 8))
    assert record.rows == 16 and record.series_description == "synthetic series"


def test_600_nested_files_do_not_stop_the_ct_beside_them(tmp_path: Path, ct: Path) -> None:
    """600 files: more than the scan reads in one process, so worker processes read them."""
    folder = tmp_path / "folder"
    folder.mkdir()
    template = _nested(ct, tmp_path / "deep.dcm", 600).read_bytes()
    for k in range(600):
        (folder / f"deep{k:03d}.dcm").write_bytes(template)
    good = write_series(folder / "good", SeriesSpec(shape=(3, 8, 8), seed=5))
    before = hash_tree(folder)
    stacks, result = find_stacks(folder)
    assert [s.series_uid for s in stacks] == [good.series_uid]
    assert len(result.skipped) == 600
    assert {s.reason for s in result.skipped} == {
        "sequences nested more than 32 levels deep (a damaged or deliberately malformed file)"
    }
    np.testing.assert_array_equal(load_series(folder / "good").array, good.values)
    assert hash_tree(folder) == before


# -- 3. deflated files ------------------------------------------------------------------------


def _deflated(ct: Path, out: Path) -> bytes:
    ds = pydicom.dcmread(ct)
    ds.file_meta.TransferSyntaxUID = DEFLATED
    ds.save_as(out)
    return out.read_bytes()


def test_truncated_deflated_file_is_refused_and_the_series_beside_it_indexed(
    tmp_path: Path, ct: Path
) -> None:
    folder = tmp_path / "folder"
    good = write_series(folder / "good", SeriesSpec(shape=(2, 8, 8), seed=6))
    data = _deflated(ct, tmp_path / "whole.dcm")
    cut = folder / "cut.dcm"
    cut.write_bytes(data[: len(data) - 200])
    assert _reason(cut) == "truncated: the deflated (compressed) dataset ends early"
    result = scan([folder])
    assert [(Path(s.path).name, s.reason) for s in result.skipped] == [
        ("cut.dcm", "truncated: the deflated (compressed) dataset ends early")
    ]
    assert {r.series_uid for r in result.records} == {good.series_uid}


def test_damaged_deflated_stream_is_refused(tmp_path: Path, ct: Path) -> None:
    data = bytearray(_deflated(ct, tmp_path / "whole.dcm"))
    start = fastheader.meta_end(bytes(data))[1]
    data[start : start + 16] = b"\xff" * 16  # an invalid block type
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(bytes(data))
    assert _reason(damaged).startswith("damaged deflated (compressed) dataset: Error -3")


def test_deflate_bomb_is_refused_before_inflating_it(
    tmp_path: Path, ct: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = pydicom.dcmread(ct)
    ds.add_new(0x00091010, "OB", bytes(8 * 1024 * 1024))  # 8 MB of zeros: ~8 KB deflated
    ds.file_meta.TransferSyntaxUID = DEFLATED
    bomb = _save(ds, tmp_path / "bomb.dcm")
    assert bomb.stat().st_size < 64 * 1024
    monkeypatch.setattr(header, "physical_memory", lambda: 8 * 1024 * 1024)
    assert _reason(bomb) == (
        "too large to open: the deflated dataset inflates to more than 4.0 MB; "
        "this machine has 8.0 MB"
    )


def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little-endian element."""
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _crafted_deflated(dataset: bytes, out: Path, trigger: str, zeros: int) -> Path:
    """A deflated file whose meta group the fast parser does not read (``trigger``:
    'order', the transfer syntax before the SOP class; 'long', a 65,534-byte SOP class UID),
    whose dataset (`dataset`, explicit VR little endian) ends with `zeros` bytes of
    Data Set Trailing Padding: a few kB on disk, `zeros` once inflated."""
    version = _explicit(0x00020001, b"OB", b"\x00\x01")
    sop_class = _explicit(0x00020002, b"UI", b"1.2.840.10008.5.1.4.1.1.2\x00")
    instance = _explicit(0x00020003, b"UI", b"1.2.3.4\x00")
    syntax = _explicit(0x00020010, b"UI", DEFLATED.encode())
    if trigger == "order":
        meta = version + syntax + sop_class + instance
    else:  # the transfer syntax ends past the first 64 kB
        meta = version + _explicit(0x00020002, b"UI", b"1." + b"2" * 65_532) + instance + syntax
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflater.compress(dataset + struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, zeros))]
    block = bytes(1024**2)
    for _ in range(zeros // len(block)):
        parts.append(deflater.compress(block))
    parts.append(deflater.compress(bytes(zeros % len(block))) + deflater.flush())
    out.write_bytes(bytes(128) + b"DICM" + meta + b"".join(parts))
    return out


def _dataset_bytes(path: Path) -> bytes:
    """The dataset of an explicit VR little-endian file, without its preamble and meta."""
    raw = path.read_bytes()
    return raw[fastheader.meta_end(raw)[1] :]


@pytest.mark.parametrize("trigger", ["order", "long"])
def test_deflate_bomb_behind_a_meta_group_the_fast_parser_declines_is_refused(
    tmp_path: Path, ct: Path, monkeypatch: pytest.MonkeyPatch, trigger: str
) -> None:
    """The transfer syntax comes from pydicom's own meta reading, not from the fast parser
    (which gives up on these meta groups): the bomb is refused before pydicom inflates it."""
    import tracemalloc

    bomb = _crafted_deflated(_dataset_bytes(ct), tmp_path / "bomb.dcm", trigger, 64 * 1024**2)
    assert bomb.stat().st_size < 200 * 1024
    assert fastheader.meta_end(bomb.read_bytes()[: 64 * 1024]) == ("", 0)
    assert pydicom.filereader.read_file_meta_info(bomb).TransferSyntaxUID == DEFLATED
    monkeypatch.setattr(header, "physical_memory", lambda: 8 * 1024 * 1024)
    tracemalloc.start()
    try:
        reason = _reason(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reason == (
        "too large to open: the deflated dataset inflates to more than 4.0 MB; "
        "this machine has 8.0 MB"
    )
    assert peak < 16 * 1024**2  # not the 64 MB
    result = scan([tmp_path])
    assert [(s.path, s.reason) for s in result.skipped] == [(str(bomb), reason)]


@pytest.mark.parametrize("trigger", ["order", "long"])
def test_crafted_deflated_files_without_a_bomb_are_read(
    tmp_path: Path, ct: Path, trigger: str
) -> None:
    """The same crafted meta groups, with a small padding: pydicom reads them, and so do we."""
    path = _crafted_deflated(_dataset_bytes(ct), tmp_path / "ok.dcm", trigger, 1000)
    record = header.read_header(path)
    assert (record.transfer_syntax, record.rows, record.columns) == (DEFLATED, 16, 12)
    assert record.pixel_keyword == "PixelData"
    expected = pydicom.dcmread(ct).pixel_array
    np.testing.assert_array_equal(decode_frames(str(path), "", [0])[0], expected)


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda p: header.read_location(str(p)), id="read_location"),
        pytest.param(
            lambda p: header.read_location(str(p), stop_before_pixels=True), id="header only"
        ),
        pytest.param(lambda p: decode_frames(str(p), "", [0]), id="decode_frames"),
        pytest.param(lambda p: _seg_module().label_map_from_seg(p, ["1.2.3"]), id="SEG"),
    ],
)
def test_every_pydicom_reading_refuses_a_deflate_bomb_changed_since_indexing(
    tmp_path: Path, ct: Path, monkeypatch: pytest.MonkeyPatch, read: Any
) -> None:
    """Files read again after indexing (loading, SEG, sources) may have changed since."""
    import tracemalloc

    _seg_module()  # highdicom imported before memory is traced

    bomb = _crafted_deflated(_dataset_bytes(ct), tmp_path / "bomb.dcm", "order", 64 * 1024**2)
    monkeypatch.setattr(header, "physical_memory", lambda: 8 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(LoadError) as info:
            read(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (
        f"{bomb}: too large to open: the deflated dataset inflates to more than 4.0 MB; "
        "this machine has 8.0 MB"
    )
    assert peak < 16 * 1024**2


def _seg_module() -> Any:
    from medviewer.io import seg

    return seg


def test_a_deflated_header_read_holds_only_the_header(tmp_path: Path, ct: Path) -> None:
    """Reading the header of a deflated file inflates what comes before its pixel data
    (pydicom alone inflates everything: here 64 MB after the pixel data)."""
    import tracemalloc

    big = _crafted_deflated(_dataset_bytes(ct), tmp_path / "big.dcm", "order", 64 * 1024**2)
    tracemalloc.start()
    try:
        record = header.read_header(big)
        ds = header.read_location(str(big), stop_before_pixels=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (record.rows, record.columns, record.pixel_keyword) == (16, 12, "PixelData")
    assert ds.SOPInstanceUID == pydicom.dcmread(ct).SOPInstanceUID and "PixelData" not in ds
    assert peak < 16 * 1024**2


def test_a_deflated_header_larger_than_the_header_limit_is_refused(
    tmp_path: Path, ct: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = bytearray(_dataset_bytes(ct))
    pixels_at = dataset.index(struct.pack("<HH", 0x7FE0, 0x0010))
    private = _explicit(0x00091010, b"OB", bytes(4 * 1024**2))  # before the pixel data
    creator = _explicit(0x00090010, b"LO", b"MEDVIEWER TEST ")
    dataset[pixels_at:pixels_at] = creator + private
    path = _crafted_deflated(bytes(dataset), tmp_path / "fat.dcm", "order", 0)
    monkeypatch.setattr(header, "HEADER_INFLATE_LIMIT", 1024**2)
    assert _reason(path) == (
        "too large to open: the header of the deflated dataset (all before its pixel data) "
        "inflates to more than 1.0 MB"
    )


@pytest.mark.parametrize("trigger", ["order", "long"])
def test_a_deflated_dicomdir_bomb_is_refused_and_the_scan_goes_on(
    tmp_path: Path, ct: Path, monkeypatch: pytest.MonkeyPatch, trigger: str
) -> None:
    import tracemalloc

    from medviewer.io import scan as scan_module

    media = tmp_path / "media"
    good = write_series(media / "IMG", SeriesSpec(shape=(2, 8, 8), seed=9))
    listing = pydicom.Dataset()
    item = pydicom.Dataset()
    item.DirectoryRecordType = "IMAGE"
    item.ReferencedFileID = ["IMG", good.paths[0].name]
    listing.DirectoryRecordSequence = [item]
    plain = tmp_path / "plain"
    listing.file_meta = pydicom.dataset.FileMetaDataset()
    listing.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    listing.save_as(plain, implicit_vr=False, little_endian=True)
    dicomdir = _crafted_deflated(plain.read_bytes(), media / "DICOMDIR", trigger, 64 * 1024**2)
    monkeypatch.setattr(scan_module, "MAX_DICOMDIR_BYTES", 4 * 1024**2)
    tracemalloc.start()
    try:
        result = scan([dicomdir, media / "IMG"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(s.path, s.reason) for s in result.skipped] == [
        (
            str(dicomdir),
            "unreadable DICOMDIR: too large to open: the deflated dataset inflates to more "
            "than 4.0 MB, the most medviewer inflates for this file",
        )
    ]
    assert sorted(r.path for r in result.records) == sorted(str(p) for p in good.paths)
    assert peak < 16 * 1024**2


def test_whole_deflated_file_is_read(tmp_path: Path, ct: Path) -> None:
    whole = tmp_path / "whole.dcm"
    _deflated(ct, whole)
    np.testing.assert_array_equal(
        load_series(whole).array[0], pydicom.dcmread(ct).pixel_array.astype(np.int32) - 1024
    )


# -- 4. Bits Allocated numpy has no type for --------------------------------------------------


@pytest.mark.parametrize("bits", [24, 40])
def test_unsupported_bits_allocated_is_refused_at_index_time(
    tmp_path: Path, ct: Path, bits: int, capsys: pytest.CaptureFixture
) -> None:
    ds = pydicom.dcmread(ct)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelData = bytes(ds.Rows * ds.Columns * bits // 8)
    odd = _save(ds, tmp_path / f"bits{bits}.dcm")
    reason = f"unsupported BitsAllocated {bits} (pydicom decodes 1, 8, 16, 32 and 64 bits)"
    assert _reason(odd) == reason
    assert reason in _info_line(odd, capsys)


def test_unsupported_bits_in_a_stored_record_are_refused_at_load_time(ct: Path) -> None:
    """A database row written before this check: the loader refuses it before decoding."""
    from dataclasses import replace

    record = replace(header.read_header(ct), bits_allocated=24)
    stack = Stack(record.series_uid, (_source(record),), np.eye(4))
    with pytest.raises(LoadError) as info:
        StackLoader(stack)
    assert str(info.value).startswith(f"{ct}: unsupported BitsAllocated 24")


def _source(record: header.InstanceRecord):
    from medviewer.io.stack_plan import FrameSource

    return FrameSource(record, 0, 1.0, 0.0)


# -- 5. claimed sizes the data cannot back ----------------------------------------------------


def _encapsulated(ct: Path, out: Path, frames: int, rows: int = 0, columns: int = 0) -> Path:
    ds = pydicom.dcmread(ct)
    ds.file_meta.TransferSyntaxUID = J2K
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows or ds.Rows, columns or ds.Columns
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(2000)])
    ds["PixelData"].VR = "OB"
    return _save(ds, out)


def test_50_million_frames_in_3_kb_are_refused(
    tmp_path: Path, ct: Path, capsys: pytest.CaptureFixture
) -> None:
    claim = _encapsulated(ct, tmp_path / "frames.dcm", 50_000_000)
    assert claim.stat().st_size < 4096
    reason = (
        "claims 50000000 frames but its compressed pixel data has only 2032 bytes "
        "(a damaged or deliberately malformed file)"
    )
    assert _reason(claim) == reason
    assert reason in _info_line(claim, capsys)
    with pytest.raises(LoadError) as info:
        decode_frames(str(claim), "", [0])  # checked again before allocating (the value
        # pydicom read is the fragments without the 8-byte sequence delimiter)
    assert str(info.value) == f"{claim}: {reason}".replace("2032 bytes", "2024 bytes")


def test_a_volume_bigger_than_memory_is_refused_with_what_it_needs(
    tmp_path: Path, ct: Path, machine_24gb: None, capsys: pytest.CaptureFixture
) -> None:
    claim = _encapsulated(ct, tmp_path / "huge.dcm", 1000, rows=65535, columns=65535)
    reason = "too large to open: needs 7.8 TB to decode; this machine has 24 GB"
    assert _reason(claim) == reason
    assert reason in _info_line(claim, capsys)


def test_uncompressed_claims_must_fit_the_pixel_data(tmp_path: Path, ct: Path) -> None:
    ds = pydicom.dcmread(ct)
    ds.NumberOfFrames = 1000
    claim = _save(ds, tmp_path / "frames.dcm")
    assert _reason(claim) == (
        "truncated: pixel data has 384 bytes, "
        "Rows x Columns x Frames x Samples x Bits Allocated needs 384000"
    )


def test_one_bit_frames_packed_across_frame_boundaries_are_accepted(tmp_path: Path) -> None:
    """3 x 3 pixels x 8 frames of 1 bit: 72 bits, 9 bytes (not 8 x 2 bytes)."""
    from pydicom.pixels import pack_bits

    ds = pydicom.dcmread(
        write_series(tmp_path / "src", SeriesSpec(shape=(1, 3, 3), seed=1)).paths[0]
    )
    bits = (np.arange(72) % 3 == 0).astype(np.uint8).reshape(8, 3, 3)
    ds.NumberOfFrames, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 1, 1, 0
    ds.PixelRepresentation = 0
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.PixelData = pack_bits(bits)
    packed = _save(ds, tmp_path / "bits.dcm")
    record = header.read_header(packed)
    assert record.pixel_length == 10  # 9 bytes, padded to even
    np.testing.assert_array_equal(load_series(packed).array, pydicom.dcmread(packed).pixel_array)


def test_the_loader_refuses_a_series_bigger_than_memory_before_allocating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_series(tmp_path / "ct", SeriesSpec(shape=(4, 64, 64), seed=9))
    stacks, _ = find_stacks(tmp_path / "ct")
    monkeypatch.setattr(header, "physical_memory", lambda: 40 * 1024)
    allocated: list[tuple] = []
    monkeypatch.setattr(np, "zeros", lambda *a, **k: allocated.append(a) or None)
    with pytest.raises(LoadError) as info:
        StackLoader(stacks[0])
    assert allocated == []
    first = stacks[0].first.location
    assert str(info.value) == (
        f"{first}: the series is too large to open: needs 33 KB to decode; this machine has 40 KB"
    )
    assert good.values.shape == (4, 64, 64)


# -- one bad file never stops the others ------------------------------------------------------


def test_every_hostile_file_beside_a_good_series(
    tmp_path: Path, ct: Path, machine_24gb: None
) -> None:
    folder = tmp_path / "study"
    good = write_series(folder / "good", SeriesSpec(shape=(3, 8, 8), seed=8))
    zeros = folder / "zeros.dcm"
    zeros.touch()
    os.truncate(zeros, 50 * 1024 * 1024)
    _nested(ct, folder / "deep.dcm", 600)
    whole = _deflated(ct, tmp_path / "whole.dcm")
    (folder / "cut.dcm").write_bytes(whole[:-200])
    _encapsulated(ct, folder / "frames.dcm", 50_000_000)
    _encapsulated(ct, folder / "huge.dcm", 1000, rows=65535, columns=65535)
    before = hash_tree(folder)
    stacks, result = find_stacks(folder)
    assert [s.series_uid for s in stacks] == [good.series_uid]
    reasons = {Path(s.path).name: s.reason.split(" (")[0] for s in result.skipped}
    assert reasons == {
        "zeros.dcm": "not a DICOM file",
        "deep.dcm": "sequences nested more than 32 levels deep",
        "cut.dcm": "truncated: the deflated",
        "frames.dcm": "claims 50000000 frames but its compressed pixel data has only 2032 bytes",
        "huge.dcm": "too large to open: needs 7.8 TB to decode; this machine has 24 GB",
    }
    assert hash_tree(folder) == before


def test_a_seg_claiming_more_frames_than_it_holds_is_refused(tmp_path: Path, ct: Path) -> None:
    from medviewer.io.seg import SEGMENTATION_STORAGE, label_map_from_seg

    ds = pydicom.dcmread(ct)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SEGMENTATION_STORAGE
    ds.Modality, ds.NumberOfFrames = "SEG", 100_000
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.PixelData = bytes(24)
    seg = _save(ds, tmp_path / "seg.dcm")
    with pytest.raises(LoadError) as info:
        label_map_from_seg(seg, [str(ds.SOPInstanceUID)])
    assert str(info.value) == (
        f"{seg}: truncated: pixel data has 24 bytes, "
        "Rows x Columns x Frames x Samples x Bits Allocated needs 2400000"
    )


def test_a_decoder_worker_answers_after_a_job_fails_unexpectedly(ct: Path) -> None:
    """Any exception of a job is a reply, never the end of the worker process."""
    import io
    import pickle

    from medviewer.io.decode_worker import serve

    requests = io.BytesIO()
    pickle.dump(("decode_frames", ()), requests)  # a TypeError inside the job
    pickle.dump(("decode_frames", (str(ct), "", [0])), requests)
    requests.seek(0)
    replies = io.BytesIO()
    serve(requests, replies)
    replies.seek(0)
    ok, message = pickle.load(replies)
    assert not ok and message.startswith("decode_frames failed: TypeError: decode_frames()")
    ok, pixels = pickle.load(replies)
    assert ok and pixels.shape == (1, 16, 12)


# -- a file cut anywhere gets a reason in words, never an internal error --------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_a_file_cut_anywhere_is_skipped_with_a_reason_in_words(tmp_path: Path, name: str) -> None:
    from pydicom.data import get_testdata_file

    whole = Path(get_testdata_file(name)).read_bytes()[:6000]
    reasons = {}
    for end in range(132, len(whole) - 1, 3):
        cut = tmp_path / f"cut{end}.dcm"
        cut.write_bytes(whole[:end])
        try:
            header.read_header(cut)
        except header.SkipFile as exc:
            reasons[end] = str(exc)
        try:  # the reference reader alone, as the fast path's fallback uses it
            header.parse_with_pydicom(str(cut))
        except header.SkipFile as exc:
            reasons[-end] = str(exc)
    jargon = ("TypeError", "str (not", "unpack requires", "BytesLengthException")
    internal = {end: r for end, r in reasons.items() if any(j in r for j in jargon)}
    assert not internal, internal  # Python's words for a cut file, not the user's
    assert "truncated: the file ends inside a data element" in reasons.values()
