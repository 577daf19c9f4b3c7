"""A fast, exact reader of the top-level header elements of common DICOM files.

pydicom parses every element into Python objects, about 2,500 headers a second on one
core. The browser and the loader need some forty top-level values and the position of
the pixel data, so this module walks the element headers of little-endian files and
decodes only those values.

The rule: the fast path either gives exactly the record pydicom's reading gives
(``header.parse_with_pydicom``), or it declines (returns None) and pydicom reads the file.
It declines on anything but plain files: no preamble, big-endian or deflated syntax,
character sets other than ASCII's supersets, non-ASCII text, elements that need pydicom
(LUTs, palettes, functional groups), and on every surprise in the structure where pydicom
would read something else than a plain walk: a used element whose VR is not the
dictionary's (pydicom then converts the bytes by the file's VR), a duplicate or
out-of-order tag (pydicom keeps the last), an encoding that pydicom would switch (a first
element that looks explicit in an implicit file, or the reverse), an undefined length
where pydicom would not read a sequence, sequence items that do not end where their
length says, a value running past the end of the file, a value whose text pydicom might
read differently (checked against pydicom's converters by ``tests/io/test_fastheader_fuzz``).
Sequences nested deeper than :data:`MAX_NESTING` are refused outright (SkipFile): no image
needs them and readers that recurse can be made to crash with them.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from functools import cache
from typing import Any

from pydicom.valuerep import BYTES_VR, EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from medviewer.io.header_fields import (
    DEFAULTS,
    DEFLATED_LE,
    EXPLICIT_VR_BE,
    FIELD_BY_TAG,
    IMPLICIT_VR_LE,
    PIXEL_TAGS,
    PYDICOM_ONLY_TAGS,
    UNDEFINED_LENGTH,
    SkipFile,
    convert_value,
)

CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024 * 1024
"""The most bytes the fast path reads to find the pixel data; beyond, pydicom reads."""
MAX_NESTING = 32
"""Deepest sequence nesting accepted (real images use a handful of levels)."""
# pydicom's VR tables as the bytes an explicit-VR element header holds (compared per element)
LONG_VRS = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)
"""VRs whose explicit header has two reserved bytes and a 32-bit length (OB, SQ, UN...)."""
VALID_VRS = LONG_VRS | frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_16)
PIXEL_VRS = frozenset(vr.encode() for vr in BYTES_VR)
"""VRs of a pixel element whose header ``header._pixel_element_after_header`` reads alike."""
ASCII_CHARSETS = frozenset(
    {"", "ISO_IR 6", "ISO 2022 IR 6", "ISO_IR 100", "ISO 2022 IR 100", "ISO_IR 192"}
)
"""Specific Character Sets whose decoding of ASCII bytes is ASCII in pydicom."""
_VALUE_SIZE = {b"UL": 4, b"US": 2}
CHARSET_TAG = 0x00080005
TRANSFER_SYNTAX_TAG = 0x00020010
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_DS = re.compile(r" *[+-]?([0-9]{1,20}\.?[0-9]{0,20}|\.[0-9]{1,20})([eE][+-]?[0-9]{1,3})? *")
_IS = re.compile(r" *[+-]?[0-9]{1,15} *")
_UID = re.compile(r"[0-9.]{1,64}")
_INF = float("inf")


class _Decline(Exception):
    """The file is not plain enough for the fast path."""


class _NeedMore(Exception):
    """The buffer ends before the header does."""


class _TooDeep(Exception):
    """Sequences nest deeper than MAX_NESTING."""


def parse_fast(path: str, data: bytes | None, size: int) -> dict[str, Any] | None:
    """Return the record fields of the file at `path` (or `data`), or None to defer to pydicom.

    Parameters
    ----------
    path : str
        File to read (ignored when `data` is given).
    data : bytes or None
        The file's bytes when already in memory: the whole file, or its first part when
        ``len(data) < size``.
    size : int
        File size in bytes.

    Raises
    ------
    SkipFile
        When sequences nest deeper than :data:`MAX_NESTING` levels.
    """
    want = CHUNK
    while True:
        buf = data if data is not None else read_head(path, min(want, size))
        at_eof = len(buf) >= size or (data is None and len(buf) < min(want, size))
        try:
            return _parse(buf, at_eof)
        except _Decline:
            return None
        except _TooDeep:
            raise SkipFile(
                f"sequences nested more than {MAX_NESTING} levels deep "
                "(a damaged or deliberately malformed file)"
            ) from None
        except _NeedMore:
            if at_eof or data is not None or want >= MAX_HEAD:
                return None  # header runs past the end of the file (or far): pydicom reads
            want *= 8


def read_head(path: str, n: int) -> bytes:
    """The first `n` bytes of the file at `path` (fewer if it is shorter)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def looks_like_dicom(head: bytes, size: int) -> bool:
    """Whether a file starting with `head` (its first 132 bytes or more) may be DICOM.

    True for the DICOM file format (a 128-byte preamble and ``DICM``) and for the files
    pydicom reads when forced: a dataset or meta group that starts right away with a
    plausible group 0002 or 0008 element, in little- or big-endian byte order.
    """
    if head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group = _U16.unpack_from(head, 0)[0]
    if group in (0x0002, 0x0008):
        if head[4:6] in VALID_VRS:
            return True
        length: int = _U32.unpack_from(head, 4)[0]
        return length == UNDEFINED_LENGTH or length <= size - 8
    return group in (0x0200, 0x0800) and head[4:6] in VALID_VRS  # big endian: explicit VR


def meta_end(head: bytes) -> tuple[str, int]:
    """(transfer syntax, offset of the dataset) of a file starting with `head`, read from
    its file meta group; ``("", 0)`` when that is not plain to read."""
    if head[128:132] != b"DICM":
        return "", 0
    try:
        return _parse_meta(head, 132)
    except (_Decline, _NeedMore):
        return "", 0


def _parse(buf: bytes, at_eof: bool) -> dict[str, Any]:
    if len(buf) < 132:
        raise _NeedMore
    if buf[128:132] != b"DICM":
        raise _Decline
    syntax, pos = _parse_meta(buf, 132)
    if syntax in (EXPLICIT_VR_BE, DEFLATED_LE) or not _UID.fullmatch(syntax):
        raise _Decline
    implicit = syntax == IMPLICIT_VR_LE
    _check_first_encoding(buf, pos, implicit)
    fields: dict[str, Any] = {"transfer_syntax": syntax, "needs_pydicom": False}
    _parse_dataset(buf, pos, implicit, fields, at_eof)
    fields["value_lut"] = fields.get("photometric") == "PALETTE COLOR"
    for key, value in DEFAULTS.items():
        fields.setdefault(key, value)
    return fields


def _parse_meta(buf: bytes, pos: int) -> tuple[str, int]:
    """Walk the file meta group (explicit VR); return its transfer syntax and the end."""
    syntax, previous = "", 0x0001FFFF
    while True:
        if pos + 8 > len(buf):
            raise _NeedMore
        if _U16.unpack_from(buf, pos)[0] != 0x0002:
            return syntax, pos
        tag, vr, length, vpos = _element(buf, pos, implicit=False)
        if tag <= previous or length == UNDEFINED_LENGTH or vr.decode() != dictionary_vr(tag):
            raise _Decline  # pydicom converts the first meta element by the file's VR
        previous = tag
        if vpos + length > len(buf):
            raise _NeedMore
        if length % _VALUE_SIZE.get(vr, 1):
            raise _Decline
        if tag == TRANSFER_SYNTAX_TAG:
            if vr != b"UI":
                raise _Decline
            syntax = _ascii(buf[vpos : vpos + length]).rstrip("\x00 ")
        pos = vpos + length


def _check_first_encoding(buf: bytes, pos: int, implicit: bool) -> None:
    """Decline where pydicom would switch encodings: it reads the dataset as implicit VR
    when its first element's VR bytes are not two capitals, and as explicit when they are."""
    if pos + 6 > len(buf):
        raise _NeedMore
    if _uppercase_pair(buf, pos + 4) == implicit:
        raise _Decline


def _uppercase_pair(buf: bytes, pos: int) -> bool:
    return 0x40 < buf[pos] < 0x5B and 0x40 < buf[pos + 1] < 0x5B


def _element(buf: bytes, pos: int, implicit: bool) -> tuple[int, bytes, int, int]:
    """Return (tag, vr, length, value offset) of the element header at `pos`."""
    if pos + 8 > len(buf):
        raise _NeedMore
    group, elem = _TAG.unpack_from(buf, pos)
    tag = group << 16 | elem
    if implicit or group == 0xFFFE:
        return tag, b"", _U32.unpack_from(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4 : pos + 6]
    if vr in LONG_VRS:
        if pos + 12 > len(buf):
            raise _NeedMore
        return tag, vr, _U32.unpack_from(buf, pos + 8)[0], pos + 12
    if vr not in VALID_VRS:
        raise _Decline
    return tag, vr, _U16.unpack_from(buf, pos + 6)[0], pos + 8


def _parse_dataset(
    buf: bytes, pos: int, implicit: bool, fields: dict[str, Any], at_eof: bool
) -> None:
    """Walk the top-level dataset up to the pixel element (this loop is the scan's hot path)."""
    fields["pixel_keyword"], fields["pixel_offset"], fields["pixel_length"] = "", -1, -1
    end, previous, table = len(buf), 0x0002FFFF, _field_table()
    while True:
        if pos + 8 > end:
            if pos == end and at_eof:
                return  # the file ends cleanly: no pixel data
            raise _NeedMore
        if implicit:
            group, elem, length = _IMPLICIT.unpack_from(buf, pos)
            vr, vpos = b"", pos + 8
        else:
            group, elem, vr, length = _EXPLICIT.unpack_from(buf, pos)
            vpos = pos + 8
            if vr in LONG_VRS:
                if pos + 12 > end:
                    raise _NeedMore
                length, vpos = _U32.unpack_from(buf, pos + 8)[0], pos + 12
            elif vr not in VALID_VRS:
                raise _Decline
        tag = group << 16 | elem
        if tag <= previous or group == 0xFFFE or tag in PYDICOM_ONLY_TAGS:
            raise _Decline
        previous = tag
        if tag in PIXEL_TAGS:
            _pixel_element(fields, tag, vr, length, vpos, implicit)
            return
        if length == UNDEFINED_LENGTH:
            if tag in FIELD_BY_TAG:
                raise _Decline
            pos = _undefined_length(buf, tag, vr, vpos, implicit, 1)
            continue
        pos = vpos + length
        if pos > end:
            raise _NeedMore
        entry = table.get(tag)
        if entry is not None:
            _store(fields, entry, vr, buf[vpos:pos], implicit)
        elif tag == CHARSET_TAG:
            _check_charset(vr, buf[vpos:pos], implicit)


def _pixel_element(
    fields: dict[str, Any], tag: int, vr: bytes, length: int, vpos: int, implicit: bool
) -> None:
    """Record the pixel element."""
    if not implicit and vr not in PIXEL_VRS:
        raise _Decline
    fields["pixel_keyword"] = PIXEL_TAGS[tag]
    fields["pixel_offset"] = vpos
    fields["pixel_length"] = -1 if length == UNDEFINED_LENGTH else length


def _undefined_length(buf: bytes, tag: int, vr: bytes, pos: int, implicit: bool, depth: int) -> int:
    """Skip an undefined-length element that pydicom reads as a sequence; decline others."""
    if not (_implicit_sequence(buf, tag, pos) if implicit else vr in (b"SQ", b"UN")):
        raise _Decline  # pydicom would search for a delimiter: not a plain file
    return _skip_sequence(buf, pos, implicit, depth)


def _implicit_sequence(buf: bytes, tag: int, pos: int) -> bool:
    """pydicom's rule: a sequence when the dictionary says SQ, or for a tag it does not know,
    when the value starts with an item tag."""
    vr = dictionary_vr(tag)
    if vr:
        return vr == "SQ"
    if pos + 4 > len(buf):
        raise _NeedMore
    return _TAG.unpack_from(buf, pos) == (0xFFFE, 0xE000)


@cache
def dictionary_vr(tag: int) -> str:
    """The VR of `tag` in pydicom's data dictionary ('' for a tag it does not know)."""
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def _skip_sequence(buf: bytes, pos: int, parent_implicit: bool, depth: int) -> int:
    """Walk the items of an undefined-length sequence; return the offset after its end."""
    if depth > MAX_NESTING:
        raise _TooDeep
    while True:
        tag, _vr, length, pos = _element(buf, pos, implicit=True)
        if tag == SEQUENCE_END:
            return pos
        if tag != ITEM:
            raise _Decline
        implicit = parent_implicit or _looks_implicit(buf, pos)
        stop = None if length == UNDEFINED_LENGTH else pos + length
        pos = _skip_item(buf, pos, stop, implicit, depth)


def _looks_implicit(buf: bytes, pos: int) -> bool:
    """pydicom reads an item of an explicit-VR sequence as implicit VR when its first
    element's VR bytes are not two capitals."""
    if pos + 6 > len(buf):
        raise _NeedMore
    return not _uppercase_pair(buf, pos + 4)


def _skip_item(buf: bytes, pos: int, stop: int | None, implicit: bool, depth: int) -> int:
    """Walk one item's elements up to its end (`stop`) or its delimiter."""
    while stop is None or pos < stop:
        tag, vr, length, vpos = _element(buf, pos, implicit)
        if tag >> 16 == 0xFFFE:
            if tag == ITEM_END and length == 0 and stop is None:
                return vpos
            raise _Decline
        if length == UNDEFINED_LENGTH:
            pos = _undefined_length(buf, tag, vr, vpos, implicit, depth + 1)
        else:
            pos = vpos + length
            if pos > len(buf):
                raise _NeedMore
        if stop is not None and pos > stop:
            raise _Decline  # the element runs past its item's end
    return pos


def _check_charset(vr: bytes, raw: bytes, implicit: bool) -> None:
    if not implicit and vr != b"CS":
        raise _Decline
    if _ascii(raw).rstrip("\x00 ").strip() not in ASCII_CHARSETS:
        raise _Decline


@cache
def _field_table() -> dict[int, tuple[str, str, bytes, Callable[[bytes], Any]]]:
    """Per used tag: record field, kind, dictionary VR and the converter of its bytes."""
    table = {}
    for tag, (name, kind) in FIELD_BY_TAG.items():
        vr = dictionary_vr(tag)
        table[tag] = (name, kind, vr.encode(), _CONVERTERS[vr])
    return table


def _store(
    fields: dict[str, Any],
    entry: tuple[str, str, bytes, Callable[[bytes], Any]],
    vr: bytes,
    raw: bytes,
    implicit: bool,
) -> None:
    """Convert one used element's value as pydicom would, then as the pydicom path does."""
    name, kind, expected, convert = entry
    if vr != expected and not implicit:
        raise _Decline  # pydicom would convert the bytes by the file's VR
    value = convert(raw)
    try:
        converted = convert_value(value, kind)
    except (ValueError, TypeError):
        converted = None  # as header._fields_from_dataset leaves a malformed value out
    if converted is not None:
        fields[name] = converted


def _ascii(raw: bytes) -> str:
    if raw.isascii() and b"\x1b" not in raw:
        return raw.decode("ascii")
    raise _Decline


def _multi(text: str) -> Any:
    """pydicom's ``multi_string``: trailing spaces and nulls off, split on backslashes."""
    parts = text.rstrip(" \x00").split("\\")
    return parts[0] if len(parts) == 1 else parts


def _us(raw: bytes) -> int | None:
    if not raw:
        return None
    if len(raw) != 2:
        raise _Decline
    value: int = _U16.unpack(raw)[0]
    return value


def _string(raw: bytes) -> Any:
    """CS, DA, TM (pydicom's ``convert_string``)."""
    return _multi(_ascii(raw))


def _text(raw: bytes) -> Any:
    """SH, LO (pydicom's ``convert_text``): each value loses trailing nulls and spaces."""
    parts = [p.rstrip("\x00 ") for p in _ascii(raw).split("\\")]
    return parts[0] if len(parts) == 1 else parts


def _person_name(raw: bytes) -> Any:
    text = _ascii(raw.rstrip(b"\x00 "))
    if "=" in text:
        raise _Decline  # component groups: left to pydicom's PersonName
    parts = text.split("\\")
    return parts[0] if len(parts) == 1 else parts


def _uid(raw: bytes) -> str:
    """UI: trailing nulls and spaces off, then pydicom's UID strips whitespace."""
    text = _ascii(raw).rstrip("\x00 ")
    if "\\" in text:
        raise _Decline
    return text.strip()


def _numbers(raw: bytes, pattern: re.Pattern[str], kind: type, strip: bool) -> Any:
    """DS (`strip`: pydicom strips the whole string first) and IS values."""
    text = _ascii(raw)
    values = _multi(text.strip() if strip else text)
    if isinstance(values, list):
        return [_number(part, pattern, kind) for part in values]
    return _number(values, pattern, kind)


def _number(text: str, pattern: re.Pattern[str], kind: type) -> Any:
    """One value: pydicom keeps an empty one as ''; anything but a plain number declines."""
    if not text:
        return text
    if not pattern.fullmatch(text):
        raise _Decline
    number = kind(text)
    if number in (_INF, -_INF):
        raise _Decline
    return number


_CONVERTERS = {
    "US": _us,
    "CS": _string,
    "DA": _string,
    "TM": _string,
    "SH": _text,
    "LO": _text,
    "PN": _person_name,
    "UI": _uid,
    "DS": lambda raw: _numbers(raw, _DS, float, strip=True),
    "IS": lambda raw: _numbers(raw, _IS, int, strip=False),
}
