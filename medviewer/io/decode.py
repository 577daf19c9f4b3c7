"""Pixel decoding into one preallocated array: a positioned-read fast path and pydicom.

Uncompressed little-endian greyscale files whose header the fast parser understood are
read with ``os.preadv`` straight into their slice of the output array (threads: the reads
release the GIL), then masked and rescaled in place. Everything else goes through
pydicom's pixel handlers (pylibjpeg, openjpeg, RLE, gdcm), in worker processes for
compressed data so every core decodes.

The output type may be narrower than the stored range needs (:func:`start_dtype`: int16 for
a signed 16-bit CT with intercept -1024, whose data nearly always fits): such slices are
checked before they are written, and one that does not fit raises :class:`SliceOverflow`
instead of wrapping, so the caller can widen and decode it again.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from medviewer.core.errors import CancelledError, LoadError
from medviewer.io import archive as zips
from medviewer.io import header_fields
from medviewer.io.decoder_pool import pool
from medviewer.io.header import (
    InstanceRecord,
    SkipFile,
    check_pixel_claims,
    dcmread_bounded,
    decoded_bytes,
    record_from_dataset,
    source_of,
)

GREY = frozenset({"MONOCHROME1", "MONOCHROME2"})
MEMBER_BATCH = 32
"""Most zip members decoded by one task: their archive is opened once per batch (opening
parses its whole directory), and closed when the batch ends."""
MEMBER_BATCH_BYTES = 64 * 1024**2
"""Most decoded bytes one batch of zip members holds before it hands them over."""


class SliceOverflow(LoadError):
    """A slice's rescaled values do not fit the output array's type; nothing was clipped
    (:class:`~medviewer.io.series.StackLoader` widens its array and decodes again)."""


@dataclass(frozen=True)
class FrameSource:
    """Where one output slice comes from, and how its stored values become modality values.

    ``tile`` is the slice's tile in a Siemens mosaic frame (see :mod:`medviewer.io.mosaic`),
    -1 when the slice is the whole frame.
    """

    record: InstanceRecord
    frame: int
    slope: float
    intercept: float
    tile: int = -1


def fast_path_ok(record: InstanceRecord) -> bool:
    """Whether the record's pixels can be read with positioned reads and numpy alone."""
    return (
        not record.member
        and not record.needs_pydicom
        and record.transfer_syntax in _little_endian_native()
        and record.pixel_keyword == "PixelData"
        and record.pixel_offset >= 0
        and record.pixel_length >= record.frame_bytes * record.frames
        and record.samples_per_pixel == 1
        and record.photometric in GREY
        and record.bits_allocated in (8, 16, 32)
        and 0 < record.bits_stored <= record.bits_allocated
    )


@cache
def _little_endian_native() -> frozenset[str]:
    """The syntaxes whose pixels are stored as they are in memory (explicit and implicit VR
    little endian)."""
    return frozenset({header_fields.EXPLICIT_VR_LE, header_fields.IMPLICIT_VR_LE})


def stored_dtype(record: InstanceRecord) -> np.dtype:
    """The dtype pydicom decodes `record`'s pixels to."""
    signed = record.pixel_representation == 1
    kind = "i" if signed else "u"
    size = max(record.bits_allocated, 8) // 8 if record.bits_allocated != 1 else 1
    return np.dtype(f"<{kind}{size}")


def output_dtype(sources: Sequence[FrameSource], decoded: np.dtype | None = None) -> np.dtype:
    """The dtype of the volume: the decoded dtype when nothing rescales, the smallest integer
    type that holds the rescaled range when slope and intercept are integral, else float32."""
    first = sources[0].record
    base = (decoded if decoded is not None else stored_dtype(first)).newbyteorder("=")
    if base.kind == "f":
        return np.dtype(np.float32)
    rescales = {(s.slope, s.intercept) for s in sources}
    if rescales == {(1.0, 0.0)}:
        return base
    if any(not float(v).is_integer() for pair in rescales for v in pair):
        return np.dtype(np.float32)
    lo, hi = _stored_range(first, base)
    ends = [lo * s + i for s, i in rescales] + [hi * s + i for s, i in rescales]
    for candidate in (np.int16, np.uint16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= min(ends) and max(ends) <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float32)


def start_dtype(sources: Sequence[FrameSource], decoded: np.dtype | None = None) -> np.dtype:
    """The dtype to decode into first: int16 where :func:`output_dtype` needs int32 only for
    stored values the data rarely holds (8- or 16-bit storage, slope and intercept within
    int16), else :func:`output_dtype`. A slice that does not fit int16 makes
    :func:`iter_decode` raise :class:`SliceOverflow`."""
    wide = output_dtype(sources, decoded)
    base = decoded if decoded is not None else stored_dtype(sources[0].record)
    small = all(abs(v) <= np.iinfo(np.int16).max for s in sources for v in (s.slope, s.intercept))
    if wide == np.int32 and base.itemsize <= 2 and small:
        return np.dtype(np.int16)
    return wide


def _stored_range(record: InstanceRecord, base: np.dtype) -> tuple[int, int]:
    bits = record.bits_stored or base.itemsize * 8
    if record.pixel_representation == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def iter_decode(
    sources: Sequence[FrameSource],
    out: np.ndarray,
    cancel: Callable[[], bool] | None = None,
    only: Sequence[int] | None = None,
) -> Iterator[int]:
    """Decode every source (or those indexed by `only`) into ``out[k]``; yield each k as it
    is ready (completion order).

    Raises
    ------
    CancelledError
        When `cancel` returns True; the remaining work is dropped.
    SliceOverflow
        When a slice's rescaled values do not fit ``out.dtype`` (only possible when `out` is
        narrower than :func:`output_dtype`); the remaining work is dropped.
    LoadError
        When a file cannot be decoded (path and reason in the message).
    """
    indices = range(len(sources)) if only is None else only
    chosen = [sources[k] for k in indices]
    groups, stop = _indices_by_record(sources, indices), threading.Event()
    if all(fast_path_ok(s.record) for s in chosen):
        tasks = _fast_tasks(sources, out, groups, stop)
    else:
        tasks = _pydicom_tasks(sources, out, groups, _use_processes(chosen))
    yield from _run(_threads(), tasks, cancel, stop)


def _run(
    executor: Executor,
    tasks: list[tuple[Callable[..., None], tuple, list[int]]],
    cancel: Callable[[], bool] | None,
    stop: threading.Event,
) -> Iterator[int]:
    """Run tasks (each writes its slices into the output itself and returns None); `stop` is
    set when this ends, so that running tasks that check it drop their remaining slices."""
    from concurrent.futures import as_completed

    futures: dict[Future, list[int]] = {executor.submit(fn, *args): ix for fn, args, ix in tasks}
    try:
        for future in as_completed(set(futures)):
            if cancel is not None and cancel():
                raise CancelledError("loading cancelled")
            future.result()  # re-raises a task's LoadError here, in the caller's thread
            yield from futures.pop(future)
    finally:
        stop.set()
        for future in futures:
            future.cancel()


def _indices_by_record(sources: Sequence[FrameSource], indices: Iterable[int]) -> list[list[int]]:
    """Output slice `indices` grouped by the file they come from (one open/decode per file)."""
    groups: dict[int, list[int]] = {}
    for k in indices:
        groups.setdefault(id(sources[k].record), []).append(k)
    return list(groups.values())


# -- fast path --------------------------------------------------------------------------


def _fast_tasks(
    sources: Sequence[FrameSource],
    out: np.ndarray,
    groups: list[list[int]],
    stop: threading.Event,
) -> list:
    batches = _batches(groups, n=max(4 * _cpu_count(), 1))
    return [
        (_read_batch, (sources, out, batch, stop), [k for ks in batch for k in ks])
        for batch in batches
    ]


def _batches(groups: list[list[int]], n: int) -> list[list[list[int]]]:
    size = max(1, -(-len(groups) // n))
    return [groups[i : i + size] for i in range(0, len(groups), size)]


def _read_batch(
    sources: Sequence[FrameSource],
    out: np.ndarray,
    batch: list[list[int]],
    stop: threading.Event,
) -> None:
    for indices in batch:
        if stop.is_set():
            return  # the run ended (cancelled, failed, a slice overflowed): nobody waits
        _read_record(sources, out, indices)


def _read_record(sources: Sequence[FrameSource], out: np.ndarray, indices: list[int]) -> None:
    record = sources[indices[0]].record
    raw_dtype = stored_dtype(record)
    frame_shape = (record.rows, record.columns)
    fd = os.open(record.path, os.O_RDONLY)
    try:
        for k in indices:
            source = sources[k]
            offset = record.pixel_offset + source.frame * record.frame_bytes
            target = out[k]
            if out.dtype.itemsize == raw_dtype.itemsize and out.dtype.kind in "iu":
                raw = target.view(raw_dtype)
                _pread_into(fd, raw, offset, record)
                _finish_inplace(raw, target, record, source)
            else:
                raw = np.empty(frame_shape, raw_dtype)
                _pread_into(fd, raw, offset, record)
                _mask_unused_bits(raw, record)
                _rescale_into(raw, target, source)
    finally:
        os.close(fd)


def _pread_into(fd: int, raw: np.ndarray, offset: int, record: InstanceRecord) -> None:
    view = memoryview(raw).cast("B")
    got = os.preadv(fd, [view], offset)
    if got != len(view):
        raise LoadError(f"{record.path}: truncated pixel data ({got} of {len(view)} bytes)")


def _mask_unused_bits(raw: np.ndarray, record: InstanceRecord) -> None:
    """Clear (unsigned) or sign-extend (signed) the bits above Bits Stored, as pydicom does."""
    shift = raw.dtype.itemsize * 8 - record.bits_stored
    if shift > 0:
        np.left_shift(raw, shift, out=raw)
        np.right_shift(raw, shift, out=raw)


def _finish_inplace(
    raw: np.ndarray, target: np.ndarray, record: InstanceRecord, source: FrameSource
) -> None:
    _mask_unused_bits(raw, record)
    _check_range(raw, target.dtype, source)
    if source.slope != 1.0:
        np.multiply(target, target.dtype.type(source.slope), out=target, casting="unsafe")
    if source.intercept != 0.0:
        np.add(target, target.dtype.type(source.intercept), out=target, casting="unsafe")


def _rescale_into(raw: np.ndarray, target: np.ndarray, source: FrameSource) -> None:
    if target.dtype.kind == "f":
        np.multiply(raw, np.float32(source.slope), out=target, dtype=np.float32)
        np.add(target, np.float32(source.intercept), out=target)
        return
    _check_range(raw, target.dtype, source)
    np.multiply(raw, int(source.slope), out=target, dtype=target.dtype, casting="unsafe")
    if source.intercept:
        np.add(target, int(source.intercept), out=target, casting="unsafe")


def _check_range(raw: np.ndarray, dtype: np.dtype, source: FrameSource) -> None:
    """Raise :class:`SliceOverflow` when `raw` rescaled leaves integer `dtype`'s range.

    Reads the data (min and max) only when the rescaled stored range could leave it.
    """
    info = np.iinfo(dtype)
    lo, hi = _stored_range(source.record, raw.dtype)
    lo_fits = _rescaled_within((lo, lo), source, info)
    hi_fits = _rescaled_within((hi, hi), source, info)
    if (lo_fits and hi_fits) or not raw.size:
        return
    # the rescale is monotonic: only the end that can leave the range needs a pass (a signed
    # CT with intercept -1024 can only overflow below, so one min() per slice)
    low = lo if lo_fits else int(raw.min())
    high = hi if hi_fits else int(raw.max())
    if not _rescaled_within((low, high), source, info):
        raise SliceOverflow(
            f"{source.record.location}: frame {source.frame} does not fit {dtype.name}"
        )


def _rescaled_within(bounds: tuple[int, int], source: FrameSource, info: np.iinfo) -> bool:
    """Whether stored values in `bounds` stay in `info`'s range after the integral rescale."""
    ends = [b * int(source.slope) + int(source.intercept) for b in bounds]
    return info.min <= min(ends) and max(ends) <= info.max


# -- pydicom path -------------------------------------------------------------------------


def _pydicom_tasks(
    sources: Sequence[FrameSource], out: np.ndarray, groups: list[list[int]], processes: bool
) -> list:
    """One task per file on disk; zip members in batches (:data:`MEMBER_BATCH`), so that
    each batch opens their archive once and closes it at its end."""
    decode = pool().decode if processes else decode_frames
    tasks: list = [
        (_decode_into, (decode, sources, out, ix), ix)
        for ix in groups
        if not sources[ix[0]].record.member
    ]
    decode_many = _decode_batch_in_worker if processes else decode_batch
    members = [ix for ix in groups if sources[ix[0]].record.member]
    for batch in _member_batches(sources, members):
        indices = [k for ix in batch for k in ix]
        tasks.append((_decode_batch_into, (decode_many, sources, out, batch), indices))
    return tasks


def _member_batches(
    sources: Sequence[FrameSource], groups: list[list[int]]
) -> list[list[list[int]]]:
    """Groups (one per zip member) in batches of at most :data:`MEMBER_BATCH` members and
    :data:`MEMBER_BATCH_BYTES` decoded bytes (a member larger than that is alone)."""
    batches: list[list[list[int]]] = []
    size = 0
    for ix in groups:
        record = sources[ix[0]].record
        nbytes = decoded_bytes(record) // max(record.frames, 1) * len(ix)
        if not batches or len(batches[-1]) >= MEMBER_BATCH or size + nbytes > MEMBER_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(ix)
        size += nbytes
    return batches


def _decode_batch_in_worker(jobs: list[tuple[str, str, list[int]]]) -> list[np.ndarray]:
    return pool().call("decode_batch", jobs)


def _decode_batch_into(
    decode_many: Callable[[list[tuple[str, str, list[int]]]], list[np.ndarray]],
    sources: Sequence[FrameSource],
    out: np.ndarray,
    batch: list[list[int]],
) -> None:
    """Decode a batch of zip members and write their frames into their output slices."""
    jobs = []
    for indices in batch:
        record = sources[indices[0]].record
        jobs.append((record.path, record.member, [sources[k].frame for k in indices]))
    for indices, decoded in zip(batch, decode_many(jobs), strict=True):
        _write_decoded(decoded, sources, out, indices)


def _decode_into(
    decode: Callable[[str, str, list[int]], np.ndarray],
    sources: Sequence[FrameSource],
    out: np.ndarray,
    indices: list[int],
) -> None:
    """Decode one file's frames and write them (rescaled) into their output slices.

    Runs in the I/O thread, so no decoded array outlives its task.
    """
    record = sources[indices[0]].record
    decoded = decode(record.path, record.member, [sources[k].frame for k in indices])
    _write_decoded(decoded, sources, out, indices)


def _write_decoded(
    decoded: np.ndarray, sources: Sequence[FrameSource], out: np.ndarray, indices: list[int]
) -> None:
    """Write one file's decoded frames (rescaled) into their output slices."""
    for j, k in enumerate(indices):
        if out.ndim == 3:
            _rescale_into(decoded[j], out[k], sources[k])
        else:
            out[k] = decoded[j]


@cache
def jpeg_2000_syntaxes() -> frozenset[str]:
    """The JPEG 2000 syntaxes a decoder process sends to pylibjpeg's openjpeg plugin."""
    from pydicom import uid

    syntaxes = (uid.JPEG2000Lossless, uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL)
    return frozenset(str(syntax) for syntax in (*syntaxes, uid.HTJ2K))


def decode_frames(
    path: str, member: str, frames: list[int], one_thread: bool = False
) -> np.ndarray:
    """Decode `frames` of one file with pydicom: (n, rows, cols[, 3]) as pydicom returns them,
    palette colour expanded to RGB, the Modality LUT applied where the file has one (rescale
    is left to the caller).

    With `one_thread` (the decoder processes, one per core), JPEG 2000 goes through pydicom's
    pylibjpeg plugin (openjpeg on the calling thread) rather than its first choice, GDCM,
    which spreads each frame over every core: measured on 512x512 CT slices, 14 ms of CPU a
    frame against 22 ms for the same wall time, CPU the other processes need. The values are
    pydicom's either way (tests compare both plugins on every JPEG 2000 file of the corpus).
    """
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    where = f"{path}::{member}" if member else path
    try:
        ds = dcmread_bounded(source_of(path, member))  # a deflated file: inflation bounded
        _check_claims(ds, path, member)
        arr = _pixel_array(ds, one_thread)
    except LoadError:
        raise
    except SkipFile as exc:
        raise LoadError(f"{where}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - reported with the path, never a crash
        raise LoadError(f"{where}: cannot decode pixel data: {type(exc).__name__}: {exc}") from None
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames == 1:
        arr = arr[np.newaxis]
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    elif "ModalityLUTSequence" in ds:
        arr = apply_modality_lut(arr, ds)
    return np.ascontiguousarray(arr[frames])


def _pixel_array(ds: Any, one_thread: bool) -> np.ndarray:
    """pydicom's pixel array; single-threaded JPEG 2000 when asked and available (else, or
    when that plugin cannot decode the file, pydicom's own choice of plugin)."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if one_thread and syntax in jpeg_2000_syntaxes() and _have_openjpeg():
        try:
            ds.pixel_array_options(decoding_plugin="pylibjpeg")
            return ds.pixel_array
        except Exception:  # noqa: BLE001 - GDCM may read what openjpeg refuses
            ds.pixel_array_options(decoding_plugin="")
    return ds.pixel_array


@cache
def _have_openjpeg() -> bool:
    import importlib.util

    return importlib.util.find_spec("openjpeg") is not None


def decode_batch(
    jobs: list[tuple[str, str, list[int]]], one_thread: bool = False
) -> list[np.ndarray]:
    """:func:`decode_frames` of several ``(path, member, frames)`` jobs (one worker-process
    job): each zip archive is opened once for the batch and closed at its end."""
    with zips.keep_open():
        return [decode_frames(*job, one_thread=one_thread) for job in jobs]


def _check_claims(ds: object, path: str, member: str) -> None:
    """Refuse, before pydicom allocates, pixel claims the data cannot back (LoadError)."""
    record = record_from_dataset(ds, path, member)
    if not record.pixel_keyword:
        return  # pydicom says what is missing
    value = ds[record.pixel_keyword].value  # type: ignore[index]
    try:
        check_pixel_claims(record, len(value) if value is not None else 0)
    except SkipFile as exc:
        raise LoadError(f"{record.location}: {exc}") from None


def decoded_dtype(record: InstanceRecord) -> np.dtype:
    """dtype pydicom produces for `record`; decodes the file only when a lookup table
    (Modality LUT, palette) decides it, since that means decoding it twice."""
    if record.pixel_keyword == "FloatPixelData":
        return np.dtype(np.float32)
    if record.pixel_keyword == "DoubleFloatPixelData":
        return np.dtype(np.float64)
    if not record.value_lut:
        return stored_dtype(record)
    return decode_frames(record.path, record.member, [0]).dtype


# -- executors ----------------------------------------------------------------------------


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cache
def _threads() -> ThreadPoolExecutor:
    pool = ThreadPoolExecutor(max_workers=max(2, _cpu_count()), thread_name_prefix="medviewer-io")
    atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


def _use_processes(sources: Sequence[FrameSource]) -> bool:
    """Decoder processes for compressed data worth spreading; in-thread decoding otherwise."""
    records = {id(s.record): s.record for s in sources}.values()
    compressed = [r for r in records if r.transfer_syntax not in header_fields.NATIVE_SYNTAXES]
    return (
        _cpu_count() > 1 and len(compressed) >= 8 and not os.environ.get("MEDVIEWER_NO_PROCESSES")
    )
