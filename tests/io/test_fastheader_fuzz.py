"""Differential fuzzing: the fast header parser never disagrees silently with pydicom.

Small valid DICOM files (explicit and implicit VR, sequences of defined and undefined
length, encapsulated pixel data) are byte-mutated by hypothesis, with a bias towards the
places parsers disagree on: tags, VRs and lengths. For every mutant, either the fast path
declines (None), or it gives exactly the fields pydicom's reading gives, or both reject
the file. The values of the used elements are fuzzed apart, straight against pydicom's
converters.

The normal run is derandomized (the same examples every time). A longer run:
``MEDVIEWER_FUZZ_EXAMPLES=20000 pytest tests/io/test_fastheader_fuzz.py
--hypothesis-show-statistics`` (the statistics count each outcome).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.sequence import Sequence

from medviewer.io import header
from medviewer.io.fastheader import LONG_VRS, VALID_VRS, parse_fast
from medviewer.io.header_fields import FIELD_BY_TAG
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

EXAMPLES = int(os.environ.get("MEDVIEWER_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IMPLICIT = "1.2.840.10008.1.2"
RLE = "1.2.840.10008.1.2.5"
VALUE_CHARS = st.sampled_from(list(" \\\x00\t0123456789.+-eE^=AZaz"))
VRS = [*sorted(VALID_VRS), b"ZZ", b"A[", b"\x00\x00", b"ob", b"  "]


@dataclass(frozen=True)
class Seed:
    """A valid file and the offsets of its element headers (where mutations matter)."""

    name: str
    data: bytes
    headers: tuple[int, ...]


def _written(tmp: Path, syntax: str, sequences: bool) -> bytes:
    written = write_series(tmp, SeriesSpec(shape=(1, 4, 6), transfer_syntax=syntax, seed=3))
    ds = pydicom.dcmread(written.paths[0])
    if sequences:
        _add_sequences(ds)
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=syntax == IMPLICIT, little_endian=True)
    return out.getvalue()


def _add_sequences(ds: Dataset) -> None:
    """An undefined-length sequence with a nested one, a defined-length one, odd text."""
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator = "T-D0050", "SRT"
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = "1.2.3", "1.2.3.4"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    ds.ReferencedImageSequence.is_undefined_length = True
    item.is_undefined_length_sequence_item = True
    ds.SourceImageSequence = Sequence([Dataset()])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "DOE^JANE^^DR"
    ds.WindowCenter, ds.WindowWidth = ["40", "-600"], ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["SOFT ", "LUNG"]
    ds.PixelSpacing = [" 0.5", "0.50 "]


def _header_offsets(data: bytes, implicit: bool) -> tuple[int, ...]:
    """Offsets of the top-level element headers (meta and dataset), as pydicom walks them."""
    fp = io.BytesIO(data)
    fp.seek(132)
    offsets = []
    walks = (
        data_element_generator(fp, False, True, stop_when=lambda tag, vr, n: tag >> 16 != 2),
        data_element_generator(fp, implicit, True),
    )
    for walk in walks:
        for elem in walk:
            explicit = not implicit or elem.tag >> 16 == 2
            long_header = explicit and elem.VR.encode() in LONG_VRS
            offsets.append(elem.value_tell - (12 if long_header else 8))
    return tuple(offsets)


@cache
def seeds() -> tuple[Seed, ...]:
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="medviewer-fuzz-"))
    out = []
    for name, syntax, sequences in (
        ("explicit", "1.2.840.10008.1.2.1", False),
        ("implicit", IMPLICIT, False),
        ("explicit-sequences", "1.2.840.10008.1.2.1", True),
        ("implicit-sequences", IMPLICIT, True),
        ("rle", RLE, True),
    ):
        data = _written(tmp / name, syntax, sequences)
        out.append(Seed(name, data, _header_offsets(data, syntax == IMPLICIT)))
    return tuple(out)


# -- mutations ----------------------------------------------------------------------------


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    seed = draw(st.sampled_from(seeds()))
    data = bytearray(seed.data)
    for _ in range(draw(st.integers(1, 3))):
        data = _mutate(draw, data, seed.headers)
    return bytes(data)


def _mutate(draw: st.DrawFn, data: bytearray, headers: tuple[int, ...]) -> bytearray:
    kind = draw(
        st.sampled_from(["vr", "len16", "len32", "tag", "flip", "write", "insert", "delete"])
        | st.sampled_from(["text", "text", "duplicate", "swap", "truncate"])
    )
    at = draw(st.sampled_from(headers)) if kind in ("vr", "len16", "len32", "tag") else 0
    if kind == "vr":
        data[at + 4 : at + 6] = draw(st.sampled_from(VRS))
    elif kind == "len16":
        data[at + 6 : at + 8] = struct.pack("<H", draw(_lengths(0xFFFF)))
    elif kind == "len32":
        data[at + 4 : at + 8] = struct.pack("<I", draw(_lengths(0xFFFFFFFF)))
    elif kind == "tag":
        data[at : at + 4] = struct.pack("<HH", *draw(_tags()))
    elif kind in ("duplicate", "swap"):
        return _move(draw, data, headers, keep=kind == "duplicate")
    else:
        return _raw(draw, data, kind)
    return data


def _lengths(top: int) -> st.SearchStrategy[int]:
    return st.integers(0, 64) | st.integers(0, top) | st.sampled_from([top, top - 1, 0x4141])


def _tags() -> st.SearchStrategy[tuple[int, int]]:
    groups = st.sampled_from([0x0000, 0x0002, 0x0008, 0x0018, 0x0020, 0x0028, 0x7FE0, 0xFFFE])
    elems = st.sampled_from([0x0000, 0x0010, 0x0030, 0x0032, 0x1052, 0xE000, 0xE00D, 0xE0DD])
    return st.tuples(groups, elems) | st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))


def _move(draw: st.DrawFn, data: bytearray, headers: tuple[int, ...], keep: bool) -> bytearray:
    """Copy (duplicate) or move (out of order) one top-level element elsewhere."""
    k = draw(st.integers(0, len(headers) - 2))
    start, end = headers[k], headers[k + 1]
    element = bytes(data[start:end])
    target = draw(st.sampled_from(headers))
    out = bytearray(data) if keep else data[:start] + data[end:]
    target = min(target, len(out))
    out[target:target] = element
    return out


def _raw(draw: st.DrawFn, data: bytearray, kind: str) -> bytearray:
    """Byte changes, mostly after the preamble (where a shift only loses the DICM marker)."""
    if len(data) <= 132:
        return data
    at = draw(st.integers(132, len(data) - 1) | st.integers(0, len(data) - 1))
    if kind == "text":  # value bytes that stay ASCII: the converters' cases
        chunk = draw(st.text(alphabet=VALUE_CHARS, min_size=1, max_size=4)).encode()
        data[at : at + len(chunk)] = chunk
    elif kind == "flip":
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "write":
        chunk = draw(st.binary(min_size=1, max_size=4))
        data[at : at + len(chunk)] = chunk
    elif kind == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        del data[at : at + draw(st.integers(1, 16))]
    else:
        del data[at:]
    return data


# -- the two readers ----------------------------------------------------------------------


def check_agreement(data: bytes) -> str:
    """Assert the rule for one file; return what happened (declined, agree, both-reject)."""
    try:
        fast = parse_fast("", data, len(data))
    except header.SkipFile:
        fast = "refused"
    if fast is None:
        return "declined"
    try:
        reference = header.parse_with_pydicom("", data)
    except header.SkipFile as exc:
        assert fast == "refused" or not _usable(fast, data), f"only pydicom rejects: {exc}"
        return "both-reject"
    assert fast != "refused", "the fast path refused a file pydicom reads"
    assert fast == reference
    return "agree"


def _usable(fields: dict, data: bytes) -> bool:
    record = header.InstanceRecord(path="", file_size=len(data), **fields)
    try:
        header.check_usable(record)
    except header.SkipFile:
        return False
    return True


def test_seeds_take_the_fast_path_and_agree() -> None:
    assert [check_agreement(seed.data) for seed in seeds()] == ["agree"] * len(seeds())


@FUZZ
@given(mutants())
def test_mutated_files_never_disagree_silently(data: bytes) -> None:
    event(check_agreement(data))  # --hypothesis-show-statistics prints how often each


# -- values of the used elements ------------------------------------------------------------

TEXT = st.text(alphabet=VALUE_CHARS, max_size=24)
FIELD_TAGS = sorted(FIELD_BY_TAG)


def _one_element_file(tag: int, value: bytes, implicit: bool) -> bytes:
    """A file whose dataset holds one used element with `value` (dictionary VR)."""
    from medviewer.io.fastheader import dictionary_vr

    vr = dictionary_vr(tag).encode()
    if len(value) % 2:
        value += b" "
    element = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        element += struct.pack("<I", len(value)) + value
    else:
        element += vr + struct.pack("<H", len(value)) + value
    syntax = (IMPLICIT if implicit else "1.2.840.10008.1.2.1").encode()
    syntax += b"\x00" * (len(syntax) % 2)
    meta = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(syntax)) + syntax
    return bytes(128) + b"DICM" + meta + element


@FUZZ
@given(st.sampled_from(FIELD_TAGS), st.data(), st.booleans())
def test_values_convert_as_pydicom_converts_them(
    tag: int, data: st.DataObject, implicit: bool
) -> None:
    binary = FIELD_BY_TAG[tag][1] == "us"
    value = data.draw(st.binary(max_size=6) if binary else TEXT.map(str.encode))
    outcome = check_agreement(_one_element_file(tag, value, implicit))
    assert outcome in ("declined", "agree")
    event(outcome)


# -- the cases differential fuzzing found (issue 17) ---------------------------------------


def _explicit_file(elements: list[tuple[int, bytes, bytes]]) -> bytes:
    """An explicit VR little endian image with extra (tag, VR, value) elements in order."""
    body = b""
    for tag, vr, value in sorted(elements, key=lambda e: e[0]):
        body += struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
        body += struct.pack("<H", len(value)) + value
    return _with_image(body, [])


def _with_image(body: bytes, after: list[bytes]) -> bytes:
    image = [
        (0x00280002, b"US", struct.pack("<H", 1)),
        (0x00280004, b"CS", b"MONOCHROME2 "),
        (0x00280010, b"US", struct.pack("<H", 2)),
        (0x00280011, b"US", struct.pack("<H", 2)),
        (0x00280100, b"US", struct.pack("<H", 16)),
        (0x00280101, b"US", struct.pack("<H", 12)),
    ]
    for tag, vr, value in image:
        body += struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(value))
        body += value
    body += b"".join(after)
    body += b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", 8) + bytes(8)
    syntax = b"1.2.840.10008.1.2.1\x00"
    meta = b"\x02\x00\x10\x00UI" + struct.pack("<H", len(syntax)) + syntax
    return bytes(128) + b"DICM" + meta + body


@pytest.mark.parametrize(
    ("tag", "value", "field", "expected"),
    [
        (0x00280030, struct.pack("<2d", 1.0, 1.0), "pixel_spacing", (1.0, 1.0)),
        (0x00200032, struct.pack("<3d", -5.0, 2.0, 7.5), "position", (-5.0, 2.0, 7.5)),
        (0x00281052, struct.pack("<d", -1024.0), "rescale_intercept", -1024.0),
    ],
)
def test_binary_vr_for_a_text_element_goes_to_pydicom(
    tmp_path: Path, tag: int, value: bytes, field: str, expected: object
) -> None:
    data = _explicit_file([(tag, b"FD", value)])
    assert parse_fast("", data, len(data)) is None
    path = tmp_path / "fd.dcm"
    path.write_bytes(data)
    record = header.read_header(path)
    assert getattr(record, field) == pytest.approx(expected)


def test_duplicated_element_keeps_the_last_value_as_pydicom_does(tmp_path: Path) -> None:
    first = struct.pack("<HH", 0x0028, 0x1052) + b"DS" + struct.pack("<H", 6) + b"-1024 "
    again = struct.pack("<HH", 0x0028, 0x1052) + b"DS" + struct.pack("<H", 2) + b"0 "
    data = _with_image(b"", [first, again])
    assert parse_fast("", data, len(data)) is None
    path = tmp_path / "dup.dcm"
    path.write_bytes(data)
    assert header.read_header(path).rescale_intercept == 0.0


def test_a_tag_past_pixel_data_does_not_end_the_fast_walk_early() -> None:
    """A stray (7FE0,0020) before the pixel data: pydicom reads on and finds the pixels; the
    fast path must not call the file an image without pixel data (it declines)."""
    stray = b"\xe0\x7f\x20\x00OB\x00\x00" + struct.pack("<I", 2) + b"\x00\x00"
    data = _with_image(b"", [stray])
    assert parse_fast("", data, len(data)) is None
    assert header.parse_with_pydicom("", data)["pixel_keyword"] == "PixelData"
