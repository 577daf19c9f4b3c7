"""A fast, exact reader of the top-level header elements of common DICOM files.

pydicom parses every element into Python objects, about 2,500 headers a second on one
core. The browser and the loader need some forty top-level values and the position of
the pixel data, so this module walks the element headers of little-endian files and
decodes only those values. It declines (returns None) whenever the file is anything but
plain: no preamble, big-endian or deflated syntax, non-ASCII text, elements that need
pydicom (LUTs, palettes, functional groups), malformed values. The caller then uses
pydicom. ``tests/io/test_header.py`` checks that both give identical records on the whole
test corpus.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from medviewer.io.header import (
    DEFAULTS,
    DEFLATED_LE,
    EXPLICIT_VR_BE,
    FIELD_BY_TAG,
    IMPLICIT_VR_LE,
    PIXEL_TAGS,
    PYDICOM_ONLY_TAGS,
    UNDEFINED_LENGTH,
)

CHUNK = 64 * 1024
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
VALID_VRS = frozenset(
    v.encode()
    for v in [
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FL",
        "FD",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
    ]
)
_EXPLICIT = struct.Struct("<HH2sH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD


class _Decline(Exception):
    """The file is not plain enough for the fast path."""


class _NeedMore(Exception):
    """The buffer ends before the header does."""


def parse_fast(path: str, data: bytes | None, size: int) -> dict[str, Any] | None:
    """Return the record fields of the file at `path` (or `data`), or None to defer to pydicom.

    Parameters
    ----------
    path : str
        File to read (ignored when `data` is given).
    data : bytes or None
        The whole file, when already in memory.
    size : int
        File size in bytes.
    """
    want = CHUNK
    while True:
        buf = data if data is not None else _read_head(path, min(want, size))
        try:
            return _parse(buf)
        except _Decline:
            return None
        except _NeedMore:
            if data is not None or len(buf) >= size:
                return None  # header runs past the end of the file: let pydicom explain
            want *= 8


def _read_head(path: str, n: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, 0)
    finally:
        os.close(fd)


def _parse(buf: bytes) -> dict[str, Any]:
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise _Decline
    syntax, pos = _parse_meta(buf, 132)
    if syntax in (EXPLICIT_VR_BE, DEFLATED_LE) or not syntax:
        raise _Decline
    implicit = syntax == IMPLICIT_VR_LE
    fields: dict[str, Any] = {"transfer_syntax": syntax, "needs_pydicom": False, "value_lut": False}
    _parse_dataset(buf, pos, implicit, fields)
    for key, value in DEFAULTS.items():
        fields.setdefault(key, value)
    return fields


def _parse_meta(buf: bytes, pos: int) -> tuple[str, int]:
    syntax = ""
    while pos + 8 <= len(buf) and _TAG.unpack_from(buf, pos)[0] == 0x0002:
        tag, _vr, length, vpos = _element(buf, pos, implicit=False)
        if length == UNDEFINED_LENGTH:
            raise _Decline
        if tag == 0x00020010:
            syntax = _ascii(buf[vpos : vpos + length]).strip("\x00 ")
        pos = vpos + length
    return syntax, pos


def _element(buf: bytes, pos: int, implicit: bool) -> tuple[int, bytes, int, int]:
    """Return (tag, vr, length, value offset) of the element header at `pos`."""
    if pos + 8 > len(buf):
        raise _NeedMore
    group, elem = _TAG.unpack_from(buf, pos)
    tag = group << 16 | elem
    if implicit or group == 0xFFFE:
        return tag, b"", _U32.unpack_from(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4 : pos + 6]
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Decline
    if vr in LONG_VRS:
        if pos + 12 > len(buf):
            raise _NeedMore
        return tag, vr, _U32.unpack_from(buf, pos + 8)[0], pos + 12
    return tag, vr, _U16.unpack_from(buf, pos + 6)[0], pos + 8


def _parse_dataset(buf: bytes, pos: int, implicit: bool, fields: dict[str, Any]) -> None:
    fields["pixel_keyword"], fields["pixel_offset"], fields["pixel_length"] = "", -1, -1
    end = len(buf)
    while pos + 8 <= end:
        if implicit:
            tag, vr, length, vpos = _element(buf, pos, implicit)
        else:  # inlined explicit-VR header: this loop is the scan's hot path
            group, elem, vr, length = _EXPLICIT.unpack_from(buf, pos)
            tag, vpos = group << 16 | elem, pos + 8
            if vr in LONG_VRS:
                if pos + 12 > end:
                    raise _NeedMore
                length, vpos = _U32.unpack_from(buf, pos + 8)[0], pos + 12
            elif vr not in VALID_VRS:
                raise _Decline
        if tag >= 0x7FE00008:
            _pixel_element(fields, tag, length, vpos)
            return
        if tag in PYDICOM_ONLY_TAGS:
            raise _Decline
        if length == UNDEFINED_LENGTH:
            pos = _skip_sequence(buf, vpos, implicit or vr == b"UN")
            continue
        if tag in FIELD_BY_TAG:
            if vpos + length > end:
                raise _NeedMore
            _store(fields, tag, vr, buf[vpos : vpos + length])
        pos = vpos + length
    # The buffer ended on an element boundary: either the file ends here (no pixel
    # data) or the chunk does; the caller can't tell which from here.
    raise _NeedMore


def _pixel_element(fields: dict[str, Any], tag: int, length: int, vpos: int) -> None:
    """Record the pixel element (or nothing, for a tag past where pixel data would be)."""
    if tag not in PIXEL_TAGS:
        return
    fields["pixel_keyword"] = PIXEL_TAGS[tag]
    fields["pixel_offset"] = vpos
    fields["pixel_length"] = -1 if length == UNDEFINED_LENGTH else length


def _skip_sequence(buf: bytes, pos: int, implicit: bool) -> int:
    while True:
        tag, _vr, length, vpos = _element(buf, pos, implicit=True)
        if tag == SEQUENCE_END:
            return vpos
        if tag != ITEM:
            raise _Decline
        pos = vpos + length if length != UNDEFINED_LENGTH else _skip_item(buf, vpos, implicit)


def _skip_item(buf: bytes, pos: int, implicit: bool) -> int:
    while True:
        tag, vr, length, vpos = _element(buf, pos, implicit)
        if tag == ITEM_END:
            return vpos
        if length == UNDEFINED_LENGTH:
            pos = _skip_sequence(buf, vpos, implicit or vr == b"UN")
        else:
            pos = vpos + length


def _store(fields: dict[str, Any], tag: int, vr: bytes, raw: bytes) -> None:
    name, kind = FIELD_BY_TAG[tag]
    if kind == "us":
        if vr not in (b"", b"US") or len(raw) < 2:
            raise _Decline
        fields[name] = _U16.unpack_from(raw, 0)[0]
        return
    value = _convert_text(_ascii(raw), kind)
    if value is not None:
        fields[name] = value


def _ascii(raw: bytes) -> str:
    if raw.isascii() and b"\x1b" not in raw:
        return raw.decode("ascii")
    raise _Decline


def _convert_text(text: str, kind: str) -> Any:
    """Convert a value's text as pydicom would, or decline when unsure."""
    text = text.rstrip("\x00 ")
    if not text.strip():
        return None
    try:
        if kind == "text":
            return text.strip()
        if kind == "uid":
            return text.strip("\x00 ")
        parts = text.split("\\")
        if kind == "int":
            return int(parts[0])
        if kind == "ds":
            return float(parts[0])
        if kind == "dsn":
            return tuple(float(p) for p in parts)
        return tuple(p.strip() for p in parts)
    except ValueError:
        raise _Decline from None
