"""From instance records to stacks to volumes.

A SeriesInstanceUID may hold several stacks (orientations, image sizes, acquisitions,
repeated positions, multi-frame objects); :func:`assemble_stacks` splits them and sorts
each along its slice normal. :class:`StackLoader` decodes a stack into one preallocated
array, handing out slices as they are ready; :func:`load_series` is the one-call form.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from medviewer.core.errors import LoadError
from medviewer.core.geometry import affine_from_dicom, slice_normal, sort_slices
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.core.windowing import window_from_dicom
from medviewer.io.decode import (
    FrameSource,
    SliceOverflow,
    decoded_dtype,
    iter_decode,
    output_dtype,
    start_dtype,
)
from medviewer.io.formats import is_image_file, read_image
from medviewer.io.header import (
    FRAME_OVERHEAD,
    NESTED_TOO_DEEP,
    InstanceRecord,
    SkipFile,
    check_pixel_claims,
    dcmread_bounded,
    memory_problem,
    source_of,
)
from medviewer.io.scan import ScanResult, scan

IDENTITY_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class Stack:
    """Frames that form one regular volume, in slice order.

    Attributes
    ----------
    frames : tuple of FrameSource
        One per output slice, sorted along the slice normal.
    affine : numpy.ndarray
        4x4 index (col, row, slice) -> LPS mm of the assembled volume.
    warnings : tuple of str
        Geometry warnings (uneven spacing, gaps, tilt, missing positions...).
    """

    series_uid: str
    frames: tuple[FrameSource, ...]
    affine: np.ndarray
    warnings: tuple[str, ...] = ()

    @property
    def first(self) -> InstanceRecord:
        """The record of the first slice (patient, study and series fields)."""
        return self.frames[0].record

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols) of the volume this stack becomes."""
        return (len(self.frames), self.first.rows, self.first.columns)

    def describe(self) -> str:
        """One line for the user: size, modality, description."""
        s, r, c = self.shape
        return f"{self.first.modality or '?'} {c}x{r}x{s} {self.first.series_description}".strip()


# -- assembly -----------------------------------------------------------------------------


def assemble_stacks(records: Sequence[InstanceRecord]) -> list[Stack]:
    """Split records into regular stacks, largest first, each sorted along its normal."""
    stacks: list[Stack] = []
    for series_records in _group(_unique(records), lambda r: r.series_uid).values():
        singles = [r for r in series_records if r.frames <= 1]
        for record in series_records:
            if record.frames > 1:
                stacks.append(_multiframe_stack(record))
        for group in _group(singles, _stack_key).values():
            stacks.extend(_single_frame_stacks(group))
    return sorted(stacks, key=lambda s: (-len(s.frames), s.series_uid, s.first.location))


def _unique(records: Sequence[InstanceRecord]) -> list[InstanceRecord]:
    seen: set[str] = set()
    unique = []
    for record in records:
        key = record.sop_instance_uid or record.location
        if key not in seen:
            seen.add(key)
            unique.append(record)
    return unique


def _group(items: Sequence[InstanceRecord], key: Callable[[InstanceRecord], object]) -> dict:
    groups: dict[object, list[InstanceRecord]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def _stack_key(record: InstanceRecord) -> tuple:
    orientation = tuple(np.round(record.orientation, 4)) if record.orientation else None
    spacing = tuple(np.round(record.pixel_spacing, 4)) if record.pixel_spacing else None
    return (
        orientation,
        record.rows,
        record.columns,
        record.samples_per_pixel,
        spacing,
        record.position is None,
    )


def _single_frame_stacks(records: list[InstanceRecord]) -> list[Stack]:
    if any(r.position is None or r.orientation is None for r in records):
        return [_unpositioned_stack(records)]
    return [_positioned_stack(group) for group in _split_repeats(records)]


def _split_repeats(records: list[InstanceRecord]) -> list[list[InstanceRecord]]:
    """Split records that repeat positions: by acquisition number, else by occurrence."""
    if len(_position_keys(records)) == len(records):
        return [records]
    by_acquisition = _group(records, lambda r: r.acquisition_number)
    if len(by_acquisition) > 1 and all(
        len(_position_keys(g)) == len(g) for g in by_acquisition.values()
    ):
        return [by_acquisition[k] for k in sorted(by_acquisition, key=lambda a: (a is None, a))]
    phases: dict[int, list[InstanceRecord]] = defaultdict(list)
    seen: dict[tuple, int] = defaultdict(int)
    for record in sorted(records, key=lambda r: (r.instance_number or 0, r.location)):
        key = _position_key(record)
        phases[seen[key]].append(record)
        seen[key] += 1
    return [phases[k] for k in sorted(phases)]


def _position_key(record: InstanceRecord) -> tuple:
    return tuple(np.round(record.position or (), 3))


def _position_keys(records: list[InstanceRecord]) -> set[tuple]:
    return {_position_key(r) for r in records}


def _positioned_stack(records: list[InstanceRecord]) -> Stack:
    first = records[0]
    orientation = first.orientation or IDENTITY_ORIENTATION
    sorting = sort_slices(np.array([r.position for r in records]), orientation)
    ordered = [records[i] for i in sorting.order]
    warnings = list(sorting.warnings)
    step = _step_vector(sorting, orientation, first, warnings)
    spacing, spacing_warnings = _pixel_spacing(first)
    affine = affine_from_dicom(ordered[0].position, orientation, spacing, step)
    frames = tuple(_frame(r, 0) for r in ordered)
    return Stack(first.series_uid, frames, affine, tuple(warnings + spacing_warnings))


def _step_vector(
    sorting, orientation: Sequence[float], first: InstanceRecord, warnings: list[str]
) -> np.ndarray:
    normal = slice_normal(orientation)
    if sorting.spacing <= 0:
        thickness = first.slice_thickness or 1.0
        return normal * thickness
    if any("tilt" in w for w in sorting.warnings):
        warnings.append(
            "volume is shown on the slice normal without tilt correction: "
            "positions off the centre are shifted along the table"
        )
        return normal * sorting.spacing
    return np.asarray(sorting.step, dtype=float)


def _pixel_spacing(record: InstanceRecord) -> tuple[tuple[float, float], list[str]]:
    if _usable_spacing(record.pixel_spacing):
        return (record.pixel_spacing[0], record.pixel_spacing[1]), []
    if _usable_spacing(record.imager_pixel_spacing):
        spacing = record.imager_pixel_spacing
        return (spacing[0], spacing[1]), [
            "pixel spacing is Imager Pixel Spacing (at the detector, not at the patient)"
        ]
    return (1.0, 1.0), ["no pixel spacing in the files: 1 mm assumed, measurements are in pixels"]


def _usable_spacing(spacing: tuple[float, ...] | None) -> bool:
    return bool(spacing) and len(spacing) >= 2 and min(spacing[:2]) > 0  # type: ignore[arg-type]


def _unpositioned_stack(records: list[InstanceRecord]) -> Stack:
    ordered = sorted(records, key=lambda r: (r.instance_number or 0, r.location))
    spacing, warnings = _pixel_spacing(ordered[0])
    affine = affine_from_dicom((0.0, 0.0, 0.0), IDENTITY_ORIENTATION, spacing, None)
    if len(ordered) > 1:
        warnings.append("no patient position: images stacked in instance-number order")
    elif ordered[0].position is None:
        warnings.append("no patient position: the image is shown in detector coordinates")
    frames = tuple(_frame(r, 0) for r in ordered)
    return Stack(ordered[0].series_uid, frames, affine, tuple(warnings))


def _frame(
    record: InstanceRecord, index: int, slope: float | None = None, intercept: float | None = None
) -> FrameSource:
    slope = record.rescale_slope if slope is None else slope
    intercept = record.rescale_intercept if intercept is None else intercept
    return FrameSource(
        record,
        index,
        1.0 if slope is None else float(slope),
        0.0 if intercept is None else float(intercept),
    )


def _multiframe_stack(record: InstanceRecord) -> Stack:
    geometry = read_frame_geometry(record)
    frames = [_frame(record, k, *geometry.rescale[k]) for k in range(record.frames)]
    warnings: list[str] = []
    orientation = geometry.orientation or IDENTITY_ORIENTATION
    spacing, spacing_warnings = _pixel_spacing(replace(record, pixel_spacing=geometry.spacing))
    if geometry.positions is None:
        warnings.append("no per-frame positions: frames stacked in file order")
        affine = affine_from_dicom(record.position or (0.0, 0.0, 0.0), orientation, spacing, None)
        return Stack(record.series_uid, tuple(frames), affine, tuple(warnings + spacing_warnings))
    sorting = sort_slices(geometry.positions, orientation)
    step = _step_vector(sorting, orientation, record, warnings)
    affine = affine_from_dicom(geometry.positions[sorting.order[0]], orientation, spacing, step)
    ordered = tuple(frames[i] for i in sorting.order)
    return Stack(
        record.series_uid,
        ordered,
        affine,
        tuple(list(sorting.warnings) + warnings + spacing_warnings),
    )


@dataclass(frozen=True)
class FrameGeometry:
    """Per-frame geometry and rescale of a multi-frame object."""

    positions: np.ndarray | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    rescale: list[tuple[float | None, float | None]]


def read_frame_geometry(record: InstanceRecord) -> FrameGeometry:
    """Read per-frame positions, orientation, spacing and rescale of a multi-frame file."""
    try:
        ds = dcmread_bounded(source_of(record.path, record.member), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - deep nesting, damage: said with the file
        reason = NESTED_TOO_DEEP if isinstance(exc, RecursionError) else f"{exc}"
        raise LoadError(f"{record.location}: cannot read the frame geometry: {reason}") from None
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or [None] * record.frames
    positions, rescale = [], []
    orientation, spacing = record.orientation, record.pixel_spacing
    for item in per_frame:
        pos = _functional(item, shared, "PlanePositionSequence", "ImagePositionPatient")
        positions.append(pos)
        orientation = (
            _functional(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
            or orientation
        )
        spacing = _functional(item, shared, "PixelMeasuresSequence", "PixelSpacing") or spacing
        slope = _functional(item, shared, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _functional(
            item, shared, "PixelValueTransformationSequence", "RescaleIntercept"
        )
        rescale.append(
            (
                slope[0] if slope else record.rescale_slope,
                intercept[0] if intercept else record.rescale_intercept,
            )
        )
    have_positions = all(p is not None for p in positions) and len(positions) == record.frames
    array = np.array(positions, dtype=float) if have_positions else None
    if array is None:
        array = _grid_frame_positions(ds, record, orientation)
    return FrameGeometry(array, orientation, spacing, rescale)


def _grid_frame_positions(
    ds: Any, record: InstanceRecord, orientation: tuple[float, ...] | None
) -> np.ndarray | None:
    """Frame positions of an RT Dose grid (PS3.3 C.8.8.3.2): Image Position Patient moved
    along the normal (row x column direction) by each GridFrameOffsetVector value.

    An offset vector starting with 0 is relative to the first frame; one starting elsewhere
    holds the frames' coordinates along the normal (the "absolute" form, whose first value is
    the first frame's), so both are taken relative to their first value.
    """
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is None or record.position is None or orientation is None:
        return None
    values = np.atleast_1d(np.asarray(offsets, dtype=float))
    if values.shape != (record.frames,) or not np.all(np.isfinite(values)):
        return None
    normal = slice_normal(orientation)
    return np.asarray(record.position, float) + np.outer(values - values[0], normal)


def _functional(item, shared, sequence: str, attribute: str) -> tuple[float, ...] | None:
    for group in (item, shared):
        if group is None or sequence not in group or not group[sequence].value:
            continue
        value = group[sequence][0].get(attribute)
        if value is not None and value != "":
            values = (
                value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
            )
            return tuple(float(v) for v in values)
    return None


# -- loading ------------------------------------------------------------------------------


class StackLoader:
    """Decode one stack into a preallocated array, slice by slice.

    ``loader.array`` exists from the start (blank); :meth:`slices` yields each slice index
    as soon as its pixels are in place, so a viewer can show them progressively.

    The array starts in the type the data nearly always fits (:func:`start_dtype`: int16
    for a signed 16-bit CT with intercept -1024). A slice that does not fit it widens the
    array to the type of the whole stored range (:func:`output_dtype`): ``loader.array``
    is then a new array holding the slices decoded so far, and the rest decode into it.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        first = stack.first
        _check_records(stack)
        decoded = decoded_dtype(first)
        self.wide = output_dtype(stack.frames, decoded)
        self.dtype = start_dtype(stack.frames, decoded)
        shape: tuple[int, ...] = stack.shape
        if first.is_color:
            shape = (*shape, 3)
            self.dtype = self.wide = decoded
        _check_fits(stack, shape, self.dtype)
        self.array = np.zeros(shape, dtype=self.dtype)  # calloc: lazy, blank until decoded
        self.done = np.zeros(len(stack.frames), dtype=bool)

    def slices(
        self, cancel: Callable[[], bool] | None = None, only: Sequence[int] | None = None
    ) -> Iterator[int]:
        """Decode the slices not decoded yet (of `only`, default all), yielding each slice
        index as it is ready; a slice that overflows the array's type widens it once.

        Raises
        ------
        medviewer.core.errors.CancelledError
            When `cancel` returns True (checked after every slice).
        medviewer.core.errors.LoadError
            When a file cannot be decoded, or the widened volume would not fit in memory.
        """
        try:
            yield from self._decode(cancel, only)
        except SliceOverflow:
            if self.dtype == self.wide:
                raise
            self._widen()
            yield from self._decode(cancel, only)

    def _decode(
        self, cancel: Callable[[], bool] | None, only: Sequence[int] | None
    ) -> Iterator[int]:
        wanted = range(len(self.done)) if only is None else only
        todo = [k for k in wanted if not self.done[k]]
        for index in iter_decode(self.stack.frames, self.array, cancel, only=todo):
            self.done[index] = True
            yield index

    def _widen(self) -> None:
        """Move to a new array of the wide type, with the slices decoded so far (exact:
        they fit the narrower type)."""
        _check_fits(self.stack, self.array.shape, self.wide)
        wide = np.zeros(self.array.shape, dtype=self.wide)
        mask = self.done.reshape(-1, *([1] * (self.array.ndim - 1)))
        np.copyto(wide, self.array, where=mask)
        self.array, self.dtype = wide, self.wide

    def volume(self) -> Volume:
        """The loaded volume (call after :meth:`slices` is exhausted)."""
        if not self.done.all():
            raise LoadError(f"{int((~self.done).sum())} slices are not loaded yet")
        return Volume(self.array, self.stack.affine, stack_metadata(self.stack))


def _check_records(stack: Stack) -> None:
    """Refuse (LoadError) files whose pixel claims the data cannot back, before decoding:
    records may come from a database indexed by an older version, or files changed since."""
    for record in {id(f.record): f.record for f in stack.frames}.values():
        try:
            check_pixel_claims(record)
        except SkipFile as exc:
            raise LoadError(f"{record.location}: {exc}") from None


def _check_fits(stack: Stack, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse (LoadError) a volume that would not fit in memory, before allocating it."""
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    problem = memory_problem(nbytes + len(stack.frames) * FRAME_OVERHEAD)
    if problem:
        raise LoadError(f"{stack.first.location}: the series is too large to open: {problem}")


def stack_metadata(stack: Stack) -> VolumeMetadata:
    """Patient/study/series fields, presets and warnings of a stack."""
    first = stack.first
    units = "HU" if first.modality == "CT" else first.rescale_type
    presets = window_from_dicom(
        first.window_center or None, first.window_width or None, first.window_explanation or None
    )
    return VolumeMetadata(
        modality=first.modality,
        patient_name=first.patient_name,
        patient_id=first.patient_id,
        patient_birth_date=first.patient_birth_date,
        patient_sex=first.patient_sex,
        study_uid=first.study_uid,
        study_date=first.study_date,
        study_description=first.study_description,
        accession_number=first.accession_number,
        series_uid=first.series_uid,
        series_number=first.series_number,
        series_description=first.series_description,
        frame_of_reference_uid=first.frame_of_reference_uid,
        units=units,
        photometric="RGB" if first.is_color else first.photometric,
        window_presets=presets,
        warnings=stack.warnings,
        source_paths=tuple(dict.fromkeys(f.record.location for f in stack.frames)),
        source_frames=tuple((f.record.location, f.frame) for f in stack.frames),
        positioned=first.orientation is not None,
    )


SeriesSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | int


def find_stacks(source: SeriesSource, db: object | None = None) -> tuple[list[Stack], ScanResult]:
    """Scan `source` (folder, file, list of files or database series id) into stacks."""
    if isinstance(source, int):
        from medviewer.io.database import StudyDatabase

        database = db if isinstance(db, StudyDatabase) else StudyDatabase(db)  # type: ignore[arg-type]
        result = ScanResult(records=database.series_records(source))
    else:
        paths = [source] if isinstance(source, str | os.PathLike) else list(source)
        result = scan(paths)
    return assemble_stacks(result.records), result


def load_series(
    source: SeriesSource,
    *,
    stack: int = 0,
    db: object | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Volume:
    """Load a series into a :class:`Volume`, exactly as pydicom decodes it (rescaled).

    Parameters
    ----------
    source : path, list of paths or int
        A folder, a single file, a list of files, or a series id of the study database.
    stack : int
        Which stack when the source holds several (largest first); the others are listed
        in the volume's warnings.
    db : StudyDatabase or path, optional
        The database for an integer `source` (default: the user's database).
    progress : callable, optional
        ``progress(done, total)`` after each slice.
    cancel : callable, optional
        Polled after each slice; True raises :class:`~medviewer.core.errors.CancelledError`.

    Raises
    ------
    LoadError
        No loadable image in `source`, or a file fails to decode.
    """
    events = iter_load(
        source, db=db, stack=stack, cancel=cancel, interval_s=0.0, middle_first=False
    )
    done = total = 0
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, LoadStarted):  # a second one: the volume was widened mid-load
            total, done = event.volume.array.shape[0], len(event.loaded)
            if progress is not None and event.loaded:
                progress(done, total)
            continue
        done += len(event.indices)
        if progress is not None and event.indices:
            progress(done, total)


@dataclass(frozen=True)
class LoadStarted:
    """First event of :func:`iter_load`: the volume whose array fills in, and what is loaded.

    ``volume.array`` is written in place by the loader; slices not listed in ``loaded`` (or a
    later :class:`SlicesLoaded`) are zeros until then. A second LoadStarted replaces the
    volume: a slice did not fit the first array's type, so the loader moved the slices
    decoded so far (listed in ``loaded``) into a wider array, which fills in from then on.
    """

    volume: Volume
    loaded: tuple[int, ...]


@dataclass(frozen=True)
class SlicesLoaded:
    """Slices (first array axis) decoded since the previous event."""

    indices: tuple[int, ...]


def iter_load(
    source: SeriesSource,
    *,
    db: object | None = None,
    stack: int = 0,
    cancel: Callable[[], bool] | None = None,
    interval_s: float = 0.03,
    middle_first: bool = True,
) -> Iterator[LoadStarted | SlicesLoaded]:
    """Load a series progressively: the middle slice first, then the rest in batches.

    Yields one :class:`LoadStarted` (with `middle_first`, the middle slice is already
    decoded, so a viewer can show it at once), then :class:`SlicesLoaded` events at most
    every `interval_s` seconds, and a second LoadStarted if the volume is widened on the
    way (see :class:`StackLoader`). Returns the complete :class:`Volume`. Same sources and
    errors as :func:`load_series`; `cancel` is polled after every slice.
    """
    if isinstance(source, str | os.PathLike) and is_image_file(source):
        volume = read_image(source)
        yield LoadStarted(volume, tuple(range(volume.array.shape[0])))
        return volume
    stacks, result = find_stacks(source, db)
    _check_stack(source, stacks, stack, result)
    loader = StackLoader(stacks[stack])
    first: tuple[int, ...] = ()
    if middle_first:
        first = tuple(loader.slices(cancel, only=[len(loader.done) // 2]))
    volume = _with_other_stacks(
        Volume(loader.array, loader.stack.affine, stack_metadata(loader.stack)), stacks, stack
    )
    yield LoadStarted(volume, first)
    pending: list[int] = []
    last = time.monotonic()
    for index in loader.slices(cancel):
        if loader.array is not volume.array:  # widened: the slices so far are in a new array
            volume = replace(volume, array=loader.array)
            yield LoadStarted(volume, tuple(int(k) for k in np.flatnonzero(loader.done)))
            pending, last = [], time.monotonic()
            continue
        pending.append(index)
        if time.monotonic() - last >= interval_s:
            yield SlicesLoaded(tuple(pending))
            pending, last = [], time.monotonic()
    yield SlicesLoaded(tuple(pending))
    loader.volume()  # raises if a slice is missing
    return volume


def _check_stack(source: SeriesSource, stacks: list[Stack], stack: int, result: ScanResult):
    if not stacks:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in result.skipped[:3])
        raise LoadError(
            f"no loadable DICOM image in {source!r}" + (f" ({reasons})" if reasons else "")
        )
    if not 0 <= stack < len(stacks):
        raise LoadError(f"stack {stack} requested, {source!r} has {len(stacks)}")


def _with_other_stacks(volume: Volume, stacks: list[Stack], stack: int) -> Volume:
    if len(stacks) < 2:
        return volume
    others = [f"{i}: {s.describe()}" for i, s in enumerate(stacks) if i != stack]
    extra = f"source holds {len(stacks)} stacks; loaded {stack}, others: " + "; ".join(others)
    warnings = (*volume.metadata.warnings, extra)
    return replace(volume, metadata=replace(volume.metadata, warnings=warnings))
