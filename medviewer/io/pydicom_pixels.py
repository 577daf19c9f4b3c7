"""One file's frames as pydicom decodes them: the pixel handlers' path of the loader.

:func:`decode_frames` reads a file (or a zip archive's member) whole with pydicom and returns
the frames asked for, palette colour expanded and the Modality LUT applied; the decoder
worker processes (:mod:`medviewer.io.decode_worker`) run it and :func:`decode_batch`.

Importing this module imports pydicom's pixel machinery (a quarter of a second): the
loader (:mod:`medviewer.io.decode`, :mod:`medviewer.io.stack_plan`) imports it on first use,
not at start-up.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom import uid
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut

from medviewer.core.errors import LoadError
from medviewer.io import archive as zips
from medviewer.io.header import (
    check_pixel_claims,
    dcmread_bounded,
    record_from_dataset,
    source_of,
)
from medviewer.io.header_fields import SkipFile

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

JPEG_2000_SYNTAXES = frozenset(
    str(syntax)
    for syntax in (
        uid.JPEG2000Lossless,
        uid.JPEG2000,
        uid.HTJ2KLossless,
        uid.HTJ2KLosslessRPCL,
        uid.HTJ2K,
    )
)
"""The JPEG 2000 syntaxes a decoder process sends to pylibjpeg's openjpeg plugin."""


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
    if one_thread and syntax in JPEG_2000_SYNTAXES and _have_openjpeg():
        try:
            ds.pixel_array_options(decoding_plugin="pylibjpeg")
            pixels: np.ndarray = ds.pixel_array
            return pixels
        except Exception:  # noqa: BLE001 - GDCM may read what openjpeg refuses
            ds.pixel_array_options(decoding_plugin="")
    fallback: np.ndarray = ds.pixel_array
    return fallback


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


def _check_claims(ds: Dataset, path: str, member: str) -> None:
    """Refuse, before pydicom allocates, pixel claims the data cannot back (LoadError)."""
    record = record_from_dataset(ds, path, member)
    if not record.pixel_keyword:
        return  # pydicom says what is missing
    value = ds[record.pixel_keyword].value
    try:
        check_pixel_claims(record, len(value) if value is not None else 0)
    except SkipFile as exc:
        raise LoadError(f"{record.location}: {exc}") from None
