"""Executing a stack's plan: its slices decoded into one preallocated array.

:func:`iter_decode` carries out a :class:`~medviewer.io.stack_plan.StackPlan` (made once by
:func:`~medviewer.io.stack_plan.plan_stack`; nothing here decides a type). Uncompressed
little-endian greyscale files whose header the fast parser understood are read with
``os.preadv`` straight into their slice of the output array (threads: the reads release the
GIL), then masked and rescaled in place. Everything else goes through pydicom's pixel
handlers (pylibjpeg, openjpeg, RLE, gdcm: :mod:`medviewer.io.pydicom_pixels`), in worker
processes for compressed data so every core decodes. A mosaic's one frame is decoded, then
its tiles are copied out.

The plan's type may be narrower than the stored range needs (int16 for a signed 16-bit CT
with intercept -1024, whose data nearly always fits): such slices are checked before they
are written, and one that does not fit raises :class:`SliceOverflow` instead of wrapping, so
the caller can widen and decode it again.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import replace
from functools import cache
from typing import Any

import numpy as np

from medviewer.core.errors import CancelledError, LoadError
from medviewer.io import header_fields
from medviewer.io.decoder_pool import pool
from medviewer.io.header import InstanceRecord, decoded_bytes
from medviewer.io.mosaic import Mosaic
from medviewer.io.stack_plan import FrameSource, StackPlan, stored_dtype, stored_range

GREY = frozenset({"MONOCHROME1", "MONOCHROME2"})
MEMBER_BATCH = 32
"""Most zip members decoded by one task: their archive is opened once per batch (opening
parses its whole directory), and closed when the batch ends."""
MEMBER_BATCH_BYTES = 64 * 1024**2
"""Most decoded bytes one batch of zip members holds before it hands them over."""

_Task = tuple[Callable[..., None], tuple[Any, ...], list[int]]
"""A task of :func:`_run`: a function that writes its slices into the output, its
arguments, and the output indices it fills."""
_DecodeJob = tuple[str, str, list[int]]
"""(path, zip member, frames) of one file to decode."""


class SliceOverflow(LoadError):
    """A slice's rescaled values do not fit the output array's type; nothing was clipped
    (:class:`~medviewer.io.series.StackLoader` widens its array and decodes again)."""


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


def iter_decode(
    plan: StackPlan,
    out: np.ndarray,
    cancel: Callable[[], bool] | None = None,
    only: Sequence[int] | None = None,
) -> Iterator[int]:
    """Decode every slice of `plan` (or those indexed by `only`) into ``out[k]``; yield each k
    as it is ready (completion order).

    `out` has the plan's shape, in its type (or the wide one).

    Raises
    ------
    CancelledError
        When `cancel` returns True; the remaining work is dropped.
    SliceOverflow
        When a slice's rescaled values do not fit ``out.dtype`` (only possible when it is
        narrower than the plan's wide type); the remaining work is dropped.
    LoadError
        When a file cannot be decoded (path and reason in the message).
    """
    if plan.mosaic is not None:
        yield from _mosaic_tiles(plan.mosaic, plan.frames, out, cancel, only)
        return
    yield from _decode_sources(plan.frames, out, cancel, only)


def _decode_sources(
    sources: Sequence[FrameSource],
    out: np.ndarray,
    cancel: Callable[[], bool] | None = None,
    only: Sequence[int] | None = None,
) -> Iterator[int]:
    """Decode each source (or those indexed by `only`) into ``out[k]``, yielding each k."""
    indices = range(len(sources)) if only is None else only
    chosen = [sources[k] for k in indices]
    groups, stop = _indices_by_record(sources, indices), threading.Event()
    if all(fast_path_ok(s.record) for s in chosen):
        tasks = _fast_tasks(sources, out, groups, stop)
    else:
        tasks = _pydicom_tasks(sources, out, groups, _use_processes(chosen))
    yield from _run(_threads(), tasks, cancel, stop)


def _mosaic_tiles(
    mosaic: Mosaic,
    sources: Sequence[FrameSource],
    out: np.ndarray,
    cancel: Callable[[], bool] | None,
    only: Sequence[int] | None,
) -> Iterator[int]:
    """Decode the mosaic's one frame, then copy each slice (of `only`, default all) out of
    its tile."""
    whole = replace(sources[0], tile=-1)
    image = np.zeros((1, whole.record.rows, whole.record.columns), out.dtype)
    for _ in _decode_sources([whole], image, cancel):
        pass
    for k in range(len(sources)) if only is None else only:
        out[k] = mosaic.tile(image[0], sources[k].tile)
        yield k


def _run(
    executor: Executor,
    tasks: list[_Task],
    cancel: Callable[[], bool] | None,
    stop: threading.Event,
) -> Iterator[int]:
    """Run tasks (each writes its slices into the output itself and returns None); `stop` is
    set when this ends, so that running tasks that check it drop their remaining slices."""
    from concurrent.futures import as_completed

    futures: dict[Future[None], list[int]] = {
        executor.submit(fn, *args): ix for fn, args, ix in tasks
    }
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
) -> list[_Task]:
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
    view = raw.data.cast("B")  # memoryview(raw): numpy declares __buffer__ for Python 3.12+
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
    lo, hi = stored_range(source.record, raw.dtype)
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
) -> list[_Task]:
    """One task per file on disk; zip members in batches (:data:`MEMBER_BATCH`), so that
    each batch opens their archive once and closes it at its end."""
    from medviewer.io import pydicom_pixels  # pydicom's pixel machinery: not at start-up

    decode = pool().decode if processes else pydicom_pixels.decode_frames
    tasks: list[_Task] = [
        (_decode_into, (decode, sources, out, ix), ix)
        for ix in groups
        if not sources[ix[0]].record.member
    ]
    decode_many = _decode_batch_in_worker if processes else pydicom_pixels.decode_batch
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


def _decode_batch_in_worker(jobs: list[_DecodeJob]) -> list[np.ndarray]:
    decoded: list[np.ndarray] = pool().call("decode_batch", jobs)
    return decoded


def _decode_batch_into(
    decode_many: Callable[[list[_DecodeJob]], list[np.ndarray]],
    sources: Sequence[FrameSource],
    out: np.ndarray,
    batch: list[list[int]],
) -> None:
    """Decode a batch of zip members and write their frames into their output slices."""
    jobs: list[_DecodeJob] = []
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
