"""Header-only reading of one DICOM file into an :class:`InstanceRecord`.

Two readers give the same record:

* a fast path (:mod:`medviewer.io.fastheader`) that parses the few top-level elements the
  browser and the loader need straight from the file's bytes, for the common little-endian
  files with plain ASCII text; it declines (returns None) on anything else;
* pydicom's ``dcmread(stop_before_pixels=True)``, the reference and the fallback.

Both locate the pixel data element (offset and length), so truncated files are caught from
the header alone and uncompressed pixels can later be read with one positioned read.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from medviewer.core.errors import LoadError
from medviewer.core.formatting import byte_size
from medviewer.io import header_fields
from medviewer.io.header_fields import (
    DEFAULTS,
    FIELDS,
    PIXEL_TAGS,
    PYDICOM_ONLY_TAGS,
    UNDEFINED_LENGTH,
    SkipFile,
    convert_value,
)

if TYPE_CHECKING:
    from pydicom.dataset import FileDataset


@dataclass(frozen=True)
class InstanceRecord:
    """What the index and the loader need to know of one DICOM file, without its pixels.

    ``path`` is the file on disk; ``member`` is the name inside a zip archive at ``path``
    (empty for plain files). ``pixel_offset`` is the byte offset of the Pixel Data value in
    the file (-1 when unknown) and ``pixel_length`` its length (-1 for encapsulated data).
    Orientation is DICOM's Image Orientation (Patient): row cosine then column cosine.
    """

    path: str
    member: str = ""
    file_size: int = 0
    mtime_ns: int = 0
    transfer_syntax: str = ""
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    acquisition_date: str = ""
    acquisition_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    study_id: str = ""
    modality: str = ""
    body_part: str = ""
    series_description: str = ""
    series_number: int | None = None
    acquisition_number: int | None = None
    instance_number: int | None = None
    image_type: str = ""
    position: tuple[float, ...] | None = None
    orientation: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, ...] | None = None
    imager_pixel_spacing: tuple[float, ...] | None = None
    magnification: float | None = None
    image_plane_pixel_spacing: tuple[float, ...] | None = None
    rt_image_sid: float | None = None
    radiation_machine_sad: float | None = None
    patient_orientation: tuple[str, ...] = ()
    slice_thickness: float | None = None
    rows: int = 0
    columns: int = 0
    frames: int = 1
    samples_per_pixel: int = 1
    photometric: str = ""
    planar_configuration: int = 0
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    rescale_slope: float | None = None
    rescale_intercept: float | None = None
    rescale_type: str = ""
    dose_units: str = ""
    dose_grid_scaling: float | None = None
    window_center: tuple[float, ...] = ()
    window_width: tuple[float, ...] = ()
    window_explanation: tuple[str, ...] = ()
    pixel_keyword: str = ""
    pixel_offset: int = -1
    pixel_length: int = -1
    needs_pydicom: bool = False
    value_lut: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # RT Dose: dose = stored value x DoseGridScaling (PS3.3 C.8.8.3), in DoseUnits; it is
        # the file's rescale when it has none of its own (set once: records are re-read).
        if self.dose_grid_scaling is not None and self.rescale_slope is None:
            object.__setattr__(self, "rescale_slope", self.dose_grid_scaling)
            object.__setattr__(self, "rescale_intercept", self.rescale_intercept or 0.0)
            if not self.rescale_type:
                units = DOSE_UNITS.get(self.dose_units.upper(), self.dose_units)
                object.__setattr__(self, "rescale_type", units)

    @property
    def location(self) -> str:
        """A display name: the path, or ``archive.zip::member`` for archive members."""
        return f"{self.path}::{self.member}" if self.member else self.path

    @property
    def is_color(self) -> bool:
        """True for RGB/YBR data and for palette colour (shown as RGB after its lookup table)."""
        return self.samples_per_pixel == 3 or self.photometric == "PALETTE COLOR"

    @property
    def frame_bytes(self) -> int:
        """Bytes one uncompressed frame needs (Bits Allocated 1 is packed)."""
        pixels = self.rows * self.columns * self.samples_per_pixel
        if self.bits_allocated == 1:
            return (pixels + 7) // 8
        if self.photometric == "YBR_FULL_422" and (
            self.transfer_syntax in header_fields.NATIVE_SYNTAXES
        ):
            pixels = pixels * 2 // 3  # two chroma samples shared by each pair of pixels
        return pixels * (self.bits_allocated // 8)


DOSE_UNITS = {"GY": "Gy", "RELATIVE": "relative"}
"""RT Dose DoseUnits as the units medviewer shows."""



def read_header(
    path: str | os.PathLike[str], member: str = "", data: bytes | None = None
) -> InstanceRecord:
    """Read one file's header into an :class:`InstanceRecord`.

    Non-DICOM files are told from their first 132 bytes, before any parsing; every
    failure to read one file becomes a :class:`SkipFile` with the reason, never an
    exception of another kind (except :class:`OSError`, which says the file itself
    cannot be read), so one bad file never stops a scan.

    Parameters
    ----------
    path : str or PathLike
        The file (or the zip archive holding `member`).
    member : str
        Name of the file inside the zip archive `path`; empty for plain files.
    data : bytes, optional
        The file's bytes when already in memory (zip members).

    Returns
    -------
    InstanceRecord

    Raises
    ------
    SkipFile
        With the reason the file cannot be used: not DICOM, truncated, no pixel data,
        unsupported transfer syntax or bits, missing required tag, too large for memory,
        sequences nested too deeply.
    """
    path = os.fspath(path)
    try:
        return _read_header(path, member, data)
    except (SkipFile, OSError):
        raise
    except RecursionError:
        raise SkipFile(NESTED_TOO_DEEP) from None
    except MemoryError:
        raise SkipFile("not enough memory to read the file's header") from None
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the others
        raise SkipFile(f"not a readable DICOM file: {type(exc).__name__}: {exc}") from None


NESTED_TOO_DEEP = "sequences nested too deeply to read (a damaged or deliberately malformed file)"
NOT_DICOM = "not a DICOM file"
SNIFF_BYTES = 132


def _read_header(path: str, member: str, data: bytes | None) -> InstanceRecord:
    # imported on the first read, not at start-up (the module takes ~5 ms to import)
    from medviewer.io.fastheader import looks_like_dicom, parse_fast

    size, mtime_ns = _stat(path, data)
    if not looks_like_dicom(_head(path, data), size):
        raise SkipFile(NOT_DICOM)  # no 'DICM' at byte 128, no DICOM element at the start
    fields = parse_fast(path, data, size)
    if fields is None:
        fields = parse_with_pydicom(path, data)
    record = InstanceRecord(path=path, member=member, file_size=size, mtime_ns=mtime_ns, **fields)
    check_usable(record)
    return record


def _head(path: str, data: bytes | None) -> bytes:
    """The first :data:`SNIFF_BYTES` bytes: all that is read to tell DICOM from other files."""
    with _open(path, data) as fp:
        return fp.read(SNIFF_BYTES)


def _stat(path: str, data: bytes | None) -> tuple[int, int]:
    st = os.stat(path)
    if data is not None:
        return len(data), st.st_mtime_ns
    return st.st_size, st.st_mtime_ns


SUPPORTED_BITS_ALLOCATED = (1, 8, 16, 32, 64)
"""The Bits Allocated values pydicom decodes (numpy has no 24- or 40-bit integers)."""
SUPPORTED_SAMPLES = (1, 3)


def check_usable(record: InstanceRecord) -> None:
    """Raise :class:`SkipFile` when `record` cannot become pixels on screen.

    Besides the required tags and the transfer syntax, the sizes the header claims are
    checked against the data before anything is allocated: uncompressed pixel data must
    hold Rows x Columns x Frames x Samples x Bits Allocated, compressed data must have at
    least a byte per frame, and the decoded image must fit in memory
    (:func:`memory_problem`).
    """
    if not record.pixel_keyword:
        raise SkipFile(
            "no pixel data (not an image: e.g. a report, presentation state or DICOMDIR)"
        )
    for name, tag in (
        ("rows", "(0028,0010) Rows"),
        ("columns", "(0028,0011) Columns"),
        ("bits_allocated", "(0028,0100) Bits Allocated"),
    ):
        if not getattr(record, name):
            raise SkipFile(f"missing required tag {tag}")
    if not record.photometric:
        raise SkipFile("missing required tag (0028,0004) Photometric Interpretation")
    if record.pixel_keyword == "PixelData" and not is_decodable(record.transfer_syntax):
        raise SkipFile(f"unsupported transfer syntax {record.transfer_syntax or '(none)'}")
    check_pixel_claims(record)


def check_pixel_claims(record: InstanceRecord, data_bytes: int | None = None) -> None:
    """Raise :class:`SkipFile` when the pixel layout the header claims is unsupported, does
    not fit the pixel data, or would not fit in memory once decoded.

    `data_bytes` is the pixel data's length when known (a dataset read whole); otherwise
    it comes from the record's offset, length and file size.
    """
    if record.bits_allocated not in SUPPORTED_BITS_ALLOCATED:
        raise SkipFile(
            f"unsupported BitsAllocated {record.bits_allocated} "
            "(pydicom decodes 1, 8, 16, 32 and 64 bits)"
        )
    if record.samples_per_pixel not in SUPPORTED_SAMPLES:
        raise SkipFile(
            f"unsupported Samples per Pixel {record.samples_per_pixel} (1 or 3 are shown)"
        )
    if record.frames < 0:
        raise SkipFile(f"invalid Number of Frames {record.frames}")
    if data_bytes is None:
        _check_length(record)
        data_bytes = _stored_bytes(record)
    elif (
        record.transfer_syntax in header_fields.NATIVE_SYNTAXES
        and data_bytes < expected_pixel_bytes(record)
    ):
        raise SkipFile(
            f"truncated: pixel data has {data_bytes} bytes, "
            f"Rows x Columns x Frames x Samples x Bits Allocated needs "
            f"{expected_pixel_bytes(record)}"
        )
    _check_frames_fit(record, data_bytes)
    problem = memory_problem(decoded_bytes(record))
    if problem:
        raise SkipFile(f"too large to open: {problem}")


def _check_length(record: InstanceRecord) -> None:
    if record.pixel_offset < 0:
        return
    native = record.transfer_syntax in header_fields.NATIVE_SYNTAXES
    deflated = record.transfer_syntax == header_fields.DEFLATED_LE
    if record.pixel_length >= 0 and (deflated or not native):
        return  # encapsulated data with a defined length: nothing to compare with
    if record.pixel_length < 0:
        if record.pixel_offset >= record.file_size:
            raise SkipFile("truncated: the file ends where its pixel data should start")
        if native:
            raise SkipFile(
                "uncompressed pixel data of undefined length (only compressed data has that)"
            )
        return
    expected = expected_pixel_bytes(record)
    available = record.file_size - record.pixel_offset
    if min(record.pixel_length, available) < expected:
        raise SkipFile(
            f"truncated: pixel data has {min(record.pixel_length, available)} bytes, "
            f"Rows x Columns x Frames x Samples x Bits Allocated needs {expected}"
        )


def expected_pixel_bytes(record: InstanceRecord) -> int:
    """Bytes uncompressed pixel data needs: Rows x Columns x Frames x Samples x Bits
    Allocated / 8, with 1-bit data packed across frame boundaries."""
    frames = max(record.frames, 1)
    if record.pixel_keyword != "PixelData":
        return record.rows * record.columns * frames * (record.bits_allocated // 8)
    if record.bits_allocated == 1:
        return (record.rows * record.columns * record.samples_per_pixel * frames + 7) // 8
    return record.frame_bytes * frames


def _stored_bytes(record: InstanceRecord) -> int | None:
    """The pixel data's length in the file (None when unknown: deflated files)."""
    if record.pixel_offset < 0:
        return None
    available = record.file_size - record.pixel_offset
    return available if record.pixel_length < 0 else min(record.pixel_length, available)


def _check_frames_fit(record: InstanceRecord, data_bytes: int | None) -> None:
    """Compressed frames need at least a byte each (a fragment per frame is the rule, but
    video syntaxes share one stream, so a byte is the safe lower bound)."""
    if record.transfer_syntax in header_fields.NATIVE_SYNTAXES or data_bytes is None:
        return
    frames = max(record.frames, 1)
    if frames > data_bytes:
        raise SkipFile(
            f"claims {frames} frames but its compressed pixel data has only {data_bytes} "
            "bytes (a damaged or deliberately malformed file)"
        )


MEMORY_FRACTION = 0.5
"""The largest share of the machine's physical memory one image or series may need once
decoded: the viewer also holds resliced planes, overlays and the AI's copies."""
FRAME_OVERHEAD = 256
"""Bytes of bookkeeping per frame (its source record and slot), counted with its pixels."""


def decoded_bytes(record: InstanceRecord) -> int:
    """Memory the decoded pixels of `record` take (as pydicom returns them)."""
    if record.pixel_keyword == "FloatPixelData":
        itemsize = 4
    elif record.pixel_keyword == "DoubleFloatPixelData":
        itemsize = 8
    else:
        itemsize = max(record.bits_allocated // 8, 1)
    frames = max(record.frames, 1)
    pixels = record.rows * record.columns * record.samples_per_pixel * frames
    return pixels * itemsize + frames * FRAME_OVERHEAD


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def memory_problem(nbytes: int) -> str | None:
    """Why `nbytes` of decoded pixels would not fit in memory (None when they fit): more
    than :data:`MEMORY_FRACTION` of the physical memory."""
    total = physical_memory()
    if total is None or nbytes <= total * MEMORY_FRACTION:
        return None
    return f"needs {byte_size(nbytes)} to decode; this machine has {byte_size(total)}"


@cache
def is_decodable(transfer_syntax: str) -> bool:
    """True when pydicom, with the installed plugins, can decode `transfer_syntax`."""
    if transfer_syntax in header_fields.NATIVE_SYNTAXES:
        return True
    from pydicom.pixels.decoders.base import get_decoder

    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except (NotImplementedError, ValueError, KeyError):
        return False


def parse_with_pydicom(path: str, data: bytes | None = None) -> dict[str, Any]:
    """Read the record's fields with pydicom (header only), the reference reader.

    Raises
    ------
    SkipFile
        When pydicom cannot read the file as DICOM (any failure of pydicom's, with its
        type and message), its sequences nest too deeply for pydicom's recursion, or its
        deflated dataset is damaged, truncated or would not fit in memory.
    """
    try:
        return _parse_with_pydicom(path, data)
    except SkipFile:
        raise
    except RecursionError:
        raise SkipFile(NESTED_TOO_DEEP) from None
    except zlib.error as exc:
        raise SkipFile(f"damaged deflated (compressed) dataset: {exc}") from None
    except (EOFError, struct.error):
        raise SkipFile("truncated: the file ends inside a data element") from None
    except Exception as exc:  # noqa: BLE001 - pydicom's reading of junk fails in many ways
        if type(exc).__name__ == "BytesLengthException":
            raise SkipFile(
                f"damaged: a value's length does not fit its value representation ({exc})"
            ) from None
        raise SkipFile(f"not a readable DICOM file: {type(exc).__name__}: {exc}") from None


def _parse_with_pydicom(path: str, data: bytes | None) -> dict[str, Any]:
    from pydicom.errors import InvalidDicomError

    with _open(path, data) as fp:
        try:
            ds, pixel = _read_bounded(fp, stop_before_pixels=True, force=False)
        except InvalidDicomError:
            ds, pixel = _read_bounded(fp, stop_before_pixels=True, force=True)
            if not _looks_like_dicom(ds):
                raise SkipFile("not a DICOM file") from None
    return _fields_from_dataset(ds, pixel)


INFLATE_STEP = 1 << 20
HEADER_INFLATE_LIMIT = 64 * 1024**2
"""Most inflated bytes held when only the header of a deflated file is read (all that comes
before its pixel data): a header is kilobytes, a few megabytes in large enhanced multi-frame
files; only the pixel data can be large, and a header read never inflates it into memory."""


def dcmread_bounded(
    source: str | os.PathLike[str] | io.BufferedIOBase | io.BytesIO,
    *,
    stop_before_pixels: bool = False,
    force: bool = True,
    limit: int | None = None,
) -> FileDataset:
    """``pydicom.dcmread``, safe for a deflated file: the one way medviewer reads a file
    whole (or its header) with pydicom.

    pydicom inflates a deflated dataset (transfer syntax 1.2.840.10008.1.2.1.99) whole in
    memory with one ``zlib.decompress``. Here the file meta group is read first, with
    pydicom's own functions (nothing inflated), to find the transfer syntax and where the
    dataset starts, exactly as ``dcmread`` does; a deflated dataset is then inflated once in
    bounded steps, keeping nothing, and refused when it is truncated, damaged, or inflates
    to more than `limit` bytes or more than fits in memory (:func:`memory_problem`).
    A header-only read (`stop_before_pixels`) of a deflated file then inflates only what
    comes before the pixel data, at most :data:`HEADER_INFLATE_LIMIT` bytes.

    Parameters
    ----------
    source : str, PathLike or binary file object
        A path (opened only when it is a regular file) or an open, seekable file.
    stop_before_pixels, force
        As for ``pydicom.dcmread``.
    limit : int, optional
        Most bytes a deflated dataset may inflate to (the memory limit when None).

    Returns
    -------
    pydicom.dataset.FileDataset

    Raises
    ------
    SkipFile
        With the reason, in words, when a deflated dataset is refused or a path is not a
        regular file.
    """
    if isinstance(source, str | os.PathLike):
        with _open(os.fspath(source), None) as fp:
            return _read_bounded(fp, stop_before_pixels, force, limit)[0]
    return _read_bounded(source, stop_before_pixels, force, limit)[0]


def _read_bounded(
    fp: Any, stop_before_pixels: bool, force: bool, limit: int | None = None
) -> tuple[FileDataset, tuple[str, int, int]]:
    """(dataset, (pixel keyword, value offset, value length)) of :func:`dcmread_bounded`;
    the pixel element is only located for header-only reads (offsets -1 when deflated)."""
    import pydicom

    found = _deflated_start(fp, force)
    if found is None:
        fp.seek(0)
        ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=force)
        pixel = _pixel_element_after_header(fp, ds) if stop_before_pixels else ("", -1, -1)
        return ds, pixel
    _check_inflation(fp, found[-1], limit)
    if stop_before_pixels:
        return _read_deflated_header(fp, *found)
    fp.seek(0)
    return pydicom.dcmread(fp, force=force), ("", -1, -1)


def _deflated_start(fp: Any, force: bool) -> tuple[Any, Any, Any, int] | None:
    """(preamble, file meta, command set, offset of the dataset) of a file whose dataset
    pydicom would inflate; None for any other file (nothing inflated, `fp` rewound)."""
    from pydicom.filereader import (
        _read_command_set_elements,
        _read_file_meta_info,
        read_preamble,
    )

    fp.seek(0)
    preamble = read_preamble(fp, force=True)
    if preamble is None and not force:
        fp.seek(0)
        return None  # pydicom refuses it (not DICOM) before reading further
    meta = _read_file_meta_info(fp)
    if meta.get("TransferSyntaxUID") != header_fields.DEFLATED_LE:
        fp.seek(0)
        return None
    command_set = _read_command_set_elements(fp)
    start = fp.tell()
    at_end = fp.read(1) == b""  # pydicom reads an empty dataset there: nothing to inflate
    fp.seek(0)
    return None if at_end else (preamble, meta, command_set, start)


def _check_inflation(fp: Any, start: int, limit: int | None) -> None:
    """Inflate the dataset at `start` once in bounded steps, keeping nothing, so that a
    truncated, damaged or bomb-sized stream is refused before pydicom inflates it whole."""
    fp.seek(start)
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    while not inflater.eof:
        pending = inflater.unconsumed_tail or fp.read(INFLATE_STEP)
        if not pending:
            break
        piece = _inflate(inflater, pending)
        total += len(piece)
        _check_inflated_size(total, len(piece), limit)
    fp.seek(0)
    if not inflater.eof:
        raise SkipFile("truncated: the deflated (compressed) dataset ends early")


def _inflate(inflater: Any, pending: bytes) -> bytes:
    try:
        inflated: bytes = inflater.decompress(pending, INFLATE_STEP)
        return inflated
    except zlib.error as exc:
        raise SkipFile(f"damaged deflated (compressed) dataset: {exc}") from None


def _check_inflated_size(total: int, last: int, limit: int | None) -> None:
    if limit is not None and total > limit:
        raise SkipFile(
            "too large to open: the deflated dataset inflates to more than "
            f"{byte_size(limit)}, the most medviewer inflates for this file"
        )
    if memory_problem(total):
        raise SkipFile(
            "too large to open: the deflated dataset inflates to more than "
            f"{byte_size(total - last)}; this machine has "
            f"{byte_size(physical_memory() or 0)}"
        )


def _read_deflated_header(
    fp: Any, preamble: Any, meta: Any, command_set: Any, start: int
) -> tuple[FileDataset, tuple[str, int, int]]:
    """The header of a deflated file (all before its pixel data), as ``dcmread`` with
    ``stop_before_pixels`` reads it, inflating at most :data:`HEADER_INFLATE_LIMIT` bytes."""
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset

    stream = _InflatingReader(fp, start, HEADER_INFLATE_LIMIT)
    dataset = read_dataset(
        # pydicom annotates a BinaryIO; it only reads, seeks and tells (what the reader has)
        stream,  # type: ignore[arg-type]
        is_implicit_VR=False,
        is_little_endian=True,
        stop_when=lambda tag, _vr, _length: tag in PIXEL_TAGS,
    )
    if command_set:
        dataset.update(command_set)
    tag = stream.read(4)  # where read_dataset stopped: the pixel element, if any
    group, element = struct.unpack("<HH", tag) if len(tag) == 4 else (0, 0)
    keyword = PIXEL_TAGS.get(group << 16 | element, "")
    ds = FileDataset(fp, dataset, preamble, meta, False, True)
    ds.set_original_encoding(False, True, dataset.original_character_set)
    return ds, (keyword, -1, -1)


class _InflatingReader:
    """A deflated dataset as a read-only, seekable file, inflated only as far as it is
    read: at most `limit` inflated bytes are held (:class:`SkipFile` beyond)."""

    def __init__(self, fp: Any, start: int, limit: int) -> None:
        fp.seek(start)
        self._fp, self._limit = fp, limit
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._data = bytearray()
        self._pos = 0
        self.name = getattr(fp, "name", "<deflated dataset>")

    def _fill(self, end: int | None) -> None:
        while (end is None or len(self._data) < end) and not self._inflater.eof:
            pending = self._inflater.unconsumed_tail or self._fp.read(INFLATE_STEP)
            if not pending:
                return
            self._data += _inflate(self._inflater, pending)
            if len(self._data) > self._limit:
                raise SkipFile(
                    "too large to open: the header of the deflated dataset (all before its "
                    f"pixel data) inflates to more than {byte_size(self._limit)}"
                )

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative) from the position."""
        end = None if size is None or size < 0 else self._pos + size
        self._fill(end)
        chunk = bytes(self._data[self._pos : end])
        self._pos += len(chunk)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (bytes are inflated when read, not when sought)."""
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            self._fill(None)
            offset += len(self._data)
        self._pos = max(offset, 0)
        return self._pos

    def tell(self) -> int:
        """The position in the inflated dataset."""
        return self._pos


def source_of(path: str, member: str = "") -> str | io.BytesIO:
    """What pydicom should read: the path, or the bytes of a zip archive's member."""
    if not member:
        return path
    from medviewer.io.archive import read_member  # bounded, checked; the archive opened once

    return io.BytesIO(read_member(path, member))


def split_location(location: str) -> tuple[str, str]:
    """``(path, member)`` of a location ``path`` or ``archive.zip::member`` (see
    :attr:`InstanceRecord.location`)."""
    path, sep, member = location.partition("::")
    if sep and os.path.isfile(path) and not os.path.exists(location):
        return path, member
    return location, ""


def read_location(location: str, stop_before_pixels: bool = False) -> FileDataset:
    """Read the file (or zip member) at `location` with pydicom, as the scanner does (forced:
    files without a preamble are read too; a deflated dataset bounded, see
    :func:`dcmread_bounded`).

    Raises
    ------
    LoadError
        With the location and the reason when it cannot be read.
    """
    import zipfile

    import pydicom

    path, member = split_location(location)
    try:
        return dcmread_bounded(source_of(path, member), stop_before_pixels=stop_before_pixels)
    except SkipFile as exc:
        raise LoadError(f"{location}: {exc}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile,
            pydicom.errors.InvalidDicomError) as exc:
        raise LoadError(f"{location}: cannot read the file again ({exc})") from exc


def _open(path: str, data: bytes | None) -> io.BufferedIOBase:
    """The bytes to parse; a path is opened only when it is a regular file (never blocks on
    a named pipe, never reads a device such as /dev/zero)."""
    import stat

    if data is not None:
        return io.BytesIO(data)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SkipFile("not a regular file (a named pipe, device or socket)")
    os.set_blocking(fd, True)
    stream = open(fd, "rb")  # noqa: SIM115 - the caller closes it (returned)
    # pydicom names the file in its messages (an fd would be a number)
    cast(io.FileIO, stream.raw).name = path
    return stream


def _looks_like_dicom(ds: Any) -> bool:
    """Whether a force-read dataset is really DICOM rather than bytes parsed as elements."""
    try:
        uid_ok = "SOPClassUID" in ds or "SOPInstanceUID" in ds
        return bool(uid_ok or ("Rows" in ds and "Columns" in ds))
    except Exception:  # noqa: BLE001 - any parse failure of junk means "not DICOM"
        return False


def _pixel_element_after_header(fp: Any, ds: Any) -> tuple[str, int, int]:
    """Return (keyword, value offset, value length) of the pixel element at fp's position."""
    from pydicom.valuerep import BYTES_VR

    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return ("", -1, -1)
    big = not ds.original_encoding[1] if ds.original_encoding[1] is not None else False
    order = ">" if big else "<"
    group, elem = struct.unpack(order + "HH", head[:4])
    keyword = PIXEL_TAGS.get(group << 16 | elem, "")
    if not keyword:
        return ("", -1, -1)
    implicit = bool(ds.original_encoding[0])

    if implicit:
        (length,) = struct.unpack(order + "I", head[4:8])
        offset = start + 8
    elif head[4:6].decode("latin-1") in BYTES_VR:  # OB, OW, UN...: a 32-bit length
        if len(head) < 12:
            return (keyword, start + 12, 0)
        (length,) = struct.unpack(order + "I", head[8:12])
        offset = start + 12
    else:
        (length,) = struct.unpack(order + "H", head[6:8])
        offset = start + 8
    return (keyword, offset, -1 if length == UNDEFINED_LENGTH else length)


def record_from_dataset(ds: Any, path: str = "", member: str = "") -> InstanceRecord:
    """The record of a dataset pydicom read whole (pixel offset and length unknown)."""
    keyword = next((k for k in PIXEL_TAGS.values() if k in ds), "")
    fields = _fields_from_dataset(ds, (keyword, -1, -1))
    return InstanceRecord(path=path, member=member, **fields)


def _fields_from_dataset(ds: Any, pixel: tuple[str, int, int]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for tag, name, kind in FIELDS:
        try:
            elem = ds.get(tag)
            value = None if elem is None else elem.value
            converted = convert_value(value, kind)
        except Exception:  # noqa: BLE001 - a malformed value is left out, not fatal
            converted = None
        if converted is not None:
            fields[name] = converted
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not syntax:
        implicit = ds.original_encoding[0]
        syntax = header_fields.IMPLICIT_VR_LE if implicit else header_fields.EXPLICIT_VR_LE
    fields["transfer_syntax"] = syntax
    fields["pixel_keyword"], fields["pixel_offset"], fields["pixel_length"] = pixel
    fields["needs_pydicom"] = any(tag in ds for tag in PYDICOM_ONLY_TAGS)
    fields["value_lut"] = "ModalityLUTSequence" in ds or fields.get("photometric") == (
        "PALETTE COLOR"
    )
    if fields["needs_pydicom"]:
        with contextlib.suppress(Exception):  # malformed functional groups are left out
            _add_enhanced_geometry(ds, fields)
    for key, value in DEFAULTS.items():
        fields.setdefault(key, value)
    return fields


def _add_enhanced_geometry(ds: Any, fields: dict[str, Any]) -> None:
    """Fill position/orientation/spacing of the first frame from functional groups."""
    groups = []
    for keyword in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        seq = ds.get(keyword)
        if seq:
            groups.append(seq[0])
    for group, seq_name, attr, name in (
        (g, s, a, n)
        for g in groups
        for s, a, n in (
            ("PlanePositionSequence", "ImagePositionPatient", "position"),
            ("PlaneOrientationSequence", "ImageOrientationPatient", "orientation"),
            ("PixelMeasuresSequence", "PixelSpacing", "pixel_spacing"),
        )
    ):
        if name in fields or seq_name not in group or not group[seq_name].value:
            continue
        value = group[seq_name][0].get(attr)
        if value:
            fields[name] = tuple(float(v) for v in value)
