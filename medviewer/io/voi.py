"""VOI LUTs stored in DICOM files, as :class:`~medviewer.core.windowing.VoiLut` presets.

A file keeps its VOI LUTs in the VOI LUT Sequence (0028,3010) (PS3.3 C.11.2), an Enhanced
multi-frame file in the Frame VOI LUT functional group (PS3.3 C.7.6.16.2.10b). Each item
holds a LUT Descriptor (entries, first mapped value, bits per entry), the LUT Data and
optionally a LUT Explanation. The LUT maps values after the modality rescale, which is
what a loaded volume holds (pydicom's ``apply_voi_lut`` applies it after
``apply_modality_lut`` the same way).

Following PS3.3 C.11.2.1.1: a first descriptor value of 0 means 65536 entries; the second
value is signed when the pixel data is signed (Pixel Representation 1), whichever of US
or SS the file wrote; 8-bit entries may be packed two to a 16-bit word (low byte first).
A malformed LUT (entry count not matching the descriptor, more than 16 bits, entries
beyond their bits) is left out with a warning, never an error.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medviewer.core.windowing import VoiLut
from medviewer.io.header import NESTED_TOO_DEEP, InstanceRecord, dcmread_bounded, source_of

#: At most this many VOI LUTs of a file are kept (the standard sets no limit; a viewer's
#: preset list does).
MAX_VOI_LUTS = 16


@dataclass(frozen=True)
class VoiLuts:
    """The VOI LUTs of a file and what was wrong with those left out.

    Attributes
    ----------
    luts : tuple of VoiLut
        In file order; the first is the default.
    warnings : tuple of str
        One line per LUT left out (or per reason none could be read).
    """

    luts: tuple[VoiLut, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def default(self) -> VoiLut | None:
        """The first LUT, or None."""
        return self.luts[0] if self.luts else None


def read_voi_luts(record: InstanceRecord) -> VoiLuts:
    """Read the VOI LUTs of the file of `record` (header only, bounded).

    Only files that go through pydicom (``record.needs_pydicom``) can hold one; colour
    images have none that applies. Results are cached per file version.

    Parameters
    ----------
    record : InstanceRecord

    Returns
    -------
    VoiLuts
        Empty when the file has none; a warning instead of an error when it cannot be read.
    """
    if not record.needs_pydicom or record.is_color:
        return VoiLuts()
    return _read_cached(
        record.path, record.member, record.mtime_ns, record.file_size,
        record.pixel_representation == 1,
    )


@functools.lru_cache(maxsize=16)
def _read_cached(path: str, member: str, _mtime_ns: int, _size: int, signed: bool) -> VoiLuts:
    try:
        ds = dcmread_bounded(source_of(path, member), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - a damaged header loses its LUT, not the image
        reason = NESTED_TOO_DEEP if isinstance(exc, RecursionError) else f"{exc}"
        return VoiLuts(warnings=(f"VOI LUT not read: {reason}",))
    return voi_luts_of(ds, signed)


def voi_luts_of(ds: Any, signed: bool) -> VoiLuts:
    """The VOI LUTs of a pydicom dataset.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
    signed : bool
        The pixel data is signed (Pixel Representation 1): the first mapped value is too.

    Returns
    -------
    VoiLuts
    """
    try:
        items, warnings = _lut_items(ds)
    except Exception as exc:  # noqa: BLE001 - malformed sequences are said, not raised
        return VoiLuts(warnings=(f"VOI LUT not read: {exc}",))
    little = _little_endian(ds)
    luts = []
    for number, item in enumerate(items[:MAX_VOI_LUTS], 1):
        try:
            luts.append(lut_from_item(item, signed, little))
        except Exception as exc:  # noqa: BLE001 - one malformed LUT is left out
            warnings.append(f"VOI LUT {number} ignored: {exc}")
    if len(items) > MAX_VOI_LUTS:
        warnings.append(f"{len(items)} VOI LUTs: only the first {MAX_VOI_LUTS} are offered")
    return VoiLuts(tuple(luts), tuple(warnings))


def _lut_items(ds: Any) -> tuple[list[Any], list[str]]:
    """The VOI LUT Sequence items of the dataset or of its shared functional groups."""
    items = ds.get("VOILUTSequence")
    if items:
        return list(items), []
    shared = _frame_voi_items(ds.get("SharedFunctionalGroupsSequence"))
    if shared:
        return shared, []
    if _frame_voi_items(ds.get("PerFrameFunctionalGroupsSequence")):
        return [], ["per-frame VOI LUTs are not applied (only shared ones are)"]
    return [], []


def _frame_voi_items(groups: Any) -> list[Any]:
    """The VOI LUT Sequence of the first item's Frame VOI LUT Sequence, if any."""
    if not groups:
        return []
    frame_voi = groups[0].get("FrameVOILUTSequence")
    return list(frame_voi[0].get("VOILUTSequence") or []) if frame_voi else []


def _little_endian(ds: Any) -> bool:
    """Byte order of the dataset's OW values (little endian unless known otherwise)."""
    encoding = getattr(ds, "original_encoding", (None, True))
    return encoding[1] is not False


def lut_from_item(item: Any, signed: bool, little_endian: bool = True) -> VoiLut:
    """One VOI LUT Sequence item as a :class:`VoiLut`.

    Parameters
    ----------
    item : pydicom.dataset.Dataset
        With LUT Descriptor (0028,3002), LUT Data (0028,3006) and optionally
        LUT Explanation (0028,3003).
    signed : bool
        Read the first mapped value as signed (Pixel Representation 1).
    little_endian : bool
        Byte order of LUT Data stored as OW bytes.

    Returns
    -------
    VoiLut

    Raises
    ------
    ValueError
        When the item is malformed; the message says how.
    """
    entries, first, bits = lut_descriptor(_required(item, "LUTDescriptor"), signed, little_endian)
    if not 1 <= bits <= 16:
        raise ValueError(f"the LUT Descriptor gives {bits} bits per entry (1 to 16 allowed)")
    words = _words(_required(item, "LUTData"), little_endian)
    data = _entries(words, entries, bits)
    if int(data.max()) > (1 << bits) - 1:
        raise ValueError(f"LUT Data holds {int(data.max())}, beyond {bits} bits per entry")
    return VoiLut(first, data, bits, str(item.get("LUTExplanation") or "").strip())


def _required(item: Any, keyword: str) -> Any:
    value = item.get(keyword)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise ValueError(f"no {keyword}")
    return value


def lut_descriptor(value: Any, signed: bool, little_endian: bool = True) -> tuple[int, int, int]:
    """``(entries, first_mapped, bits)`` of a LUT Descriptor value (PS3.3 C.11.2.1.1).

    Parameters
    ----------
    value : sequence of int or bytes
        The three values as pydicom gives them (US, SS, or raw bytes).
    signed : bool
        Read the first mapped value as signed.
    little_endian : bool
        Byte order of a raw bytes value.

    Returns
    -------
    tuple of int
        Entries (0 read as 65536), first mapped value, bits per entry.
    """
    words = [int(w) & 0xFFFF for w in _words(value, little_endian)]
    if len(words) != 3:
        raise ValueError(f"the LUT Descriptor has {len(words)} values, not 3")
    entries, first, bits = words
    if signed and first >= 0x8000:
        first -= 0x10000
    return entries or 0x10000, first, bits


def _words(value: Any, little_endian: bool) -> np.ndarray:
    """A US/SS/OW value as an array of 16-bit words (int64)."""
    if isinstance(value, bytes | bytearray):
        if len(value) % 2:
            raise ValueError(f"{len(value)} bytes is not a whole number of 16-bit words")
        return np.frombuffer(value, "<u2" if little_endian else ">u2").astype(np.int64)
    values = value if isinstance(value, Sequence | np.ndarray) else [value]
    words = np.asarray(values, dtype=np.int64).reshape(-1)
    if words.size and (int(words.min()) < -0x8000 or int(words.max()) > 0xFFFF):
        raise ValueError("a LUT value does not fit in 16 bits")
    return words


def _entries(words: np.ndarray, entries: int, bits: int) -> np.ndarray:
    """The LUT entries of its data words: one per word, or 8-bit ones packed two per word."""
    if words.size == entries:
        return words & 0xFFFF
    if bits <= 8 and words.size == (entries + 1) // 2:
        pairs = np.stack([words & 0xFF, (words >> 8) & 0xFF], axis=1)
        return pairs.reshape(-1)[:entries]
    raise ValueError(
        f"LUT Data holds {words.size} words, the LUT Descriptor gives {entries} entries"
    )
