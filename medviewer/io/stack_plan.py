"""What decoding one stack takes, decided once, before any pixel is decoded.

:func:`plan_stack` turns a stack's frames (in slice order) into a :class:`StackPlan`: where
each output slice comes from (file, frame, mosaic tile) and its rescale, the output array's
shape, the type decoding starts in and the type every value fits. The loader
(:class:`medviewer.io.series.StackLoader`) allocates the plan's array and
:func:`medviewer.io.decode.iter_decode` executes the plan; neither decides a type.

The start type may be narrower than the wide one (:func:`start_dtype`: int16 for a signed
16-bit CT with intercept -1024, whose data nearly always fits): a slice that does not fit
makes the decoder raise :class:`~medviewer.io.decode.SliceOverflow`, and the loader goes on
with :meth:`StackPlan.widened`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from medviewer.core.errors import LoadError
from medviewer.io.header import FRAME_OVERHEAD, InstanceRecord, check_pixel_claims
from medviewer.io.header_fields import SkipFile
from medviewer.io.mosaic import Mosaic


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


@dataclass(frozen=True)
class StackPlan:
    """How one stack decodes into one array.

    Attributes
    ----------
    frames : tuple of FrameSource
        One per output slice, in slice order: file, frame index, mosaic tile and rescale.
    shape : tuple of int
        The output array's shape: ``(slices, rows, cols)``, ``(..., 3)`` for colour.
    dtype : numpy.dtype
        The type decoding starts in.
    wide_dtype : numpy.dtype
        The type every stored value fits once rescaled; ``dtype`` unless that is narrower.
    mosaic : Mosaic or None
        For a Siemens mosaic: every slice is a tile (``FrameSource.tile``) of the one frame
        of ``frames[0]``, decoded once (in the wide type).
    """

    frames: tuple[FrameSource, ...]
    shape: tuple[int, ...]
    dtype: np.dtype
    wide_dtype: np.dtype
    mosaic: Mosaic | None = None

    @property
    def can_widen(self) -> bool:
        """Whether a slice may not fit ``dtype`` (it is narrower than ``wide_dtype``)."""
        return self.dtype != self.wide_dtype

    def widened(self) -> StackPlan:
        """The same plan in the wide type."""
        return replace(self, dtype=self.wide_dtype)

    @property
    def nbytes(self) -> int:
        """Memory the output array takes, with the bookkeeping of its frames."""
        pixels = int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize
        return pixels + len(self.frames) * FRAME_OVERHEAD


def plan_stack(frames: Sequence[FrameSource], mosaic: Mosaic | None = None) -> StackPlan:
    """The plan of a stack whose slices come from `frames` (in slice order).

    Decodes nothing, except the first frame of a file whose lookup table (Modality LUT,
    palette) decides the type (:func:`decoded_dtype`).

    Parameters
    ----------
    frames : sequence of FrameSource
        One per output slice.
    mosaic : Mosaic, optional
        The tiling when the slices are tiles of one mosaic frame.

    Returns
    -------
    StackPlan

    Raises
    ------
    medviewer.core.errors.LoadError
        When a file's pixel claims are ones its data cannot back: records may come from a
        database indexed by an older version, or files changed since.
    """
    _check_records(frames)
    first = frames[0].record
    decoded = decoded_dtype(first)
    shape = (len(frames), *slice_shape(first, mosaic))
    if first.is_color:
        return StackPlan(tuple(frames), (*shape, 3), decoded, decoded, mosaic)
    wide = output_dtype(frames, decoded)
    start = wide if mosaic is not None else start_dtype(frames, decoded, wide)
    return StackPlan(tuple(frames), shape, start, wide, mosaic)


def slice_shape(record: InstanceRecord, mosaic: Mosaic | None = None) -> tuple[int, int]:
    """(rows, cols) of one output slice: the frame's, or one mosaic tile's."""
    if mosaic is not None:
        return mosaic.tile_shape(record)
    return record.rows, record.columns


def _check_records(frames: Sequence[FrameSource]) -> None:
    """Refuse (LoadError) files whose pixel claims the data cannot back, before decoding."""
    for record in {id(f.record): f.record for f in frames}.values():
        try:
            check_pixel_claims(record)
        except SkipFile as exc:
            raise LoadError(f"{record.location}: {exc}") from None


# -- types ----------------------------------------------------------------------------------


def stored_dtype(record: InstanceRecord) -> np.dtype:
    """The dtype pydicom decodes `record`'s pixels to."""
    signed = record.pixel_representation == 1
    kind = "i" if signed else "u"
    size = max(record.bits_allocated, 8) // 8 if record.bits_allocated != 1 else 1
    return np.dtype(f"<{kind}{size}")


def decoded_dtype(record: InstanceRecord) -> np.dtype:
    """dtype pydicom produces for `record`; decodes the file only when a lookup table
    (Modality LUT, palette) decides it, since that means decoding it twice."""
    if record.pixel_keyword == "FloatPixelData":
        return np.dtype(np.float32)
    if record.pixel_keyword == "DoubleFloatPixelData":
        return np.dtype(np.float64)
    if not record.value_lut:
        return stored_dtype(record)
    from medviewer.io import pydicom_pixels  # pydicom's pixel machinery: not at start-up

    return pydicom_pixels.decode_frames(record.path, record.member, [0]).dtype


def output_dtype(sources: Sequence[FrameSource], decoded: np.dtype) -> np.dtype:
    """The dtype every value of the volume fits, given the `decoded` one
    (:func:`decoded_dtype`): that when nothing rescales, the smallest integer type that holds
    the rescaled range when slope and intercept are integral, else float32."""
    first = sources[0].record
    base = decoded.newbyteorder("=")
    if base.kind == "f":
        return np.dtype(np.float32)
    rescales = {(s.slope, s.intercept) for s in sources}
    if rescales == {(1.0, 0.0)}:
        return base
    if any(not float(v).is_integer() for pair in rescales for v in pair):
        return np.dtype(np.float32)
    lo, hi = stored_range(first, base)
    ends = [lo * s + i for s, i in rescales] + [hi * s + i for s, i in rescales]
    for candidate in (np.int16, np.uint16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= min(ends) and max(ends) <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float32)


def start_dtype(sources: Sequence[FrameSource], decoded: np.dtype, wide: np.dtype) -> np.dtype:
    """The dtype to decode into first: int16 where the `wide` one (:func:`output_dtype`) is
    int32 only for stored values the data rarely holds (8- or 16-bit storage, slope and
    intercept within int16), else `wide`."""
    small = all(abs(v) <= np.iinfo(np.int16).max for s in sources for v in (s.slope, s.intercept))
    if wide == np.int32 and decoded.itemsize <= 2 and small:
        return np.dtype(np.int16)
    return wide


def stored_range(record: InstanceRecord, base: np.dtype) -> tuple[int, int]:
    """The lowest and highest stored value `record`'s Bits Stored allows (`base`'s bits
    when it gives none)."""
    bits = record.bits_stored or base.itemsize * 8
    if record.pixel_representation == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1
