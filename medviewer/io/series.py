"""From instance records to stacks to volumes.

A SeriesInstanceUID may hold several stacks (orientations, image sizes, acquisitions,
repeated positions, multi-frame objects); :func:`assemble_stacks` splits them and sorts
each along its slice normal. :class:`StackLoader` decodes a stack into one preallocated
array, as its plan says (:mod:`medviewer.io.stack_plan`), handing out slices as they are
ready; :func:`load_series` is the one-call form.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeAlias, TypeGuard, TypeVar

import numpy as np

from medviewer.core.errors import LoadError
from medviewer.core.geometry import SliceSorting, affine_from_dicom, slice_normal, sort_slices
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.core.windowing import window_from_dicom
from medviewer.io.decode import SliceOverflow, iter_decode
from medviewer.io.formats import is_image_file, read_image
from medviewer.io.header import InstanceRecord, memory_problem
from medviewer.io.mosaic import Mosaic, is_mosaic, read_mosaic
from medviewer.io.multiframe import FrameGeometry, FrameGroup, read_frame_geometry
from medviewer.io.pet import series_suv
from medviewer.io.scan import ScanResult, scan
from medviewer.io.stack_plan import FrameSource, StackPlan, plan_stack, slice_shape
from medviewer.io.voi import read_voi_luts

if TYPE_CHECKING:
    from medviewer.io.database import StudyDatabase

IDENTITY_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

_Key = TypeVar("_Key", bound=Hashable)
_StackKey = tuple[tuple[float, ...] | None, int, int, int, tuple[float, ...] | None, bool]
"""What the single-frame images of one stack share: orientation, rows, columns, samples per
pixel, pixel spacing (rounded), and whether the position is missing."""
_PositionKey = tuple[float, ...]
"""An Image Position (Patient) rounded to a thousandth of a mm (empty when missing)."""


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
    label : str
        What tells this stack from the others of its multi-frame file (e.g.
        ``"temporal position 2"``); empty otherwise.
    mosaic : Mosaic or None
        For a Siemens mosaic, its tiling: each frame source's ``tile`` is its slice.
    positions : numpy.ndarray or None
        ``(slices, 3)`` true Image Position (Patient) of each frame, in slice order; None when
        the files give none. The affine misplaces some of them when tilted or uneven.
    """

    series_uid: str
    frames: tuple[FrameSource, ...]
    affine: np.ndarray
    warnings: tuple[str, ...] = ()
    label: str = ""
    mosaic: Mosaic | None = None
    positions: np.ndarray | None = None

    @property
    def first(self) -> InstanceRecord:
        """The record of the first slice (patient, study and series fields)."""
        return self.frames[0].record

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols) of the volume this stack becomes."""
        return (len(self.frames), *slice_shape(self.first, self.mosaic))

    def describe(self) -> str:
        """One line for the user: size, modality, description."""
        s, r, c = self.shape
        text = f"{self.first.modality or '?'} {c}x{r}x{s} {self.first.series_description}".strip()
        return f"{text} ({self.label})" if self.label else text


# -- assembly -----------------------------------------------------------------------------


def assemble_stacks(records: Sequence[InstanceRecord]) -> list[Stack]:
    """Split records into regular stacks, largest first, each sorted along its normal."""
    stacks: list[Stack] = []
    for series_records in _group(_unique(records), lambda r: r.series_uid).values():
        singles = [r for r in series_records if r.frames <= 1 and not is_mosaic(r)]
        for record in series_records:
            if record.frames > 1:
                stacks.extend(_multiframe_stacks(record))
            elif is_mosaic(record):
                stacks.append(_mosaic_stack(record))
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


def _group(
    items: Sequence[InstanceRecord], key: Callable[[InstanceRecord], _Key]
) -> dict[_Key, list[InstanceRecord]]:
    groups: dict[_Key, list[InstanceRecord]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def _stack_key(record: InstanceRecord) -> _StackKey:
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
    seen: dict[_PositionKey, int] = defaultdict(int)
    for record in sorted(records, key=lambda r: (r.instance_number or 0, r.location)):
        key = _position_key(record)
        phases[seen[key]].append(record)
        seen[key] += 1
    return [phases[k] for k in sorted(phases)]


def _position_key(record: InstanceRecord) -> _PositionKey:
    return tuple(np.round(record.position or (), 3))


def _position_keys(records: list[InstanceRecord]) -> set[_PositionKey]:
    return {_position_key(r) for r in records}


def _positioned_stack(records: list[InstanceRecord]) -> Stack:
    first = records[0]
    orientation = first.orientation or IDENTITY_ORIENTATION
    positions = np.array([r.position for r in records], dtype=float)
    spacing, spacing_warnings = _pixel_spacing(first)
    order, affine, warnings = _placed(positions, orientation, spacing, first)
    return Stack(
        first.series_uid,
        tuple(_frame(records[i], 0) for i in order),
        affine,
        (*warnings, *spacing_warnings),
        positions=positions[order],
    )


def _step_vector(
    sorting: SliceSorting, orientation: Sequence[float], first: InstanceRecord, warnings: list[str]
) -> np.ndarray:
    normal = slice_normal(orientation)
    if sorting.spacing <= 0:
        thickness = first.slice_thickness or 1.0
        return normal * thickness
    if any("tilt" in w for w in sorting.warnings):
        warnings.append(
            "volume is shown on the slice normal without tilt correction: "
            "positions off the centre are shifted along the table; resample it onto a "
            "regular grid for exact positions"
        )
        return normal * sorting.spacing
    return np.asarray(sorting.step, dtype=float)


def _pixel_spacing(record: InstanceRecord) -> tuple[tuple[float, float], list[str]]:
    """Pixel spacing (row, column) in mm and what it means when it is not at the patient.

    Pixel Spacing is at the patient (or calibrated). Projection images may give only:
    Imager Pixel Spacing (DX/CR/MG/XA, at the detector), divided by the Estimated
    Radiographic Magnification Factor when the file has one (PS3.3 C.8.11.4.1.1); or an RT
    Image's Image Plane Pixel Spacing (at the image receptor, RT Image SID from the source),
    scaled to the isocentre plane by SAD / SID when both distances are given.
    """
    if _usable_spacing(record.pixel_spacing):
        return (record.pixel_spacing[0], record.pixel_spacing[1]), []
    if _usable_spacing(record.imager_pixel_spacing):
        return _imager_spacing(record.imager_pixel_spacing, record.magnification)
    if _usable_spacing(record.image_plane_pixel_spacing):
        return _rt_image_spacing(record)
    return (1.0, 1.0), ["no pixel spacing in the files: 1 mm assumed, measurements are in pixels"]


def _imager_spacing(
    spacing: tuple[float, ...], magnification: float | None
) -> tuple[tuple[float, float], list[str]]:
    if magnification is not None and np.isfinite(magnification) and magnification >= 1.0:
        return (spacing[0] / magnification, spacing[1] / magnification), [
            "pixel spacing is Imager Pixel Spacing divided by the estimated radiographic "
            f"magnification factor {magnification:g} (approximate at the patient)"
        ]
    return (spacing[0], spacing[1]), [
        "pixel spacing is Imager Pixel Spacing (at the detector, not at the patient)"
    ]


def _rt_image_spacing(record: InstanceRecord) -> tuple[tuple[float, float], list[str]]:
    spacing = record.image_plane_pixel_spacing
    assert spacing is not None
    sad, sid = record.radiation_machine_sad, record.rt_image_sid
    if sad and sid and sad > 0 and sid > 0 and np.isfinite(sad / sid):
        scale = sad / sid
        return (spacing[0] * scale, spacing[1] * scale), [
            f"pixel spacing is the RT Image's Image Plane Pixel Spacing scaled to the isocentre "
            f"(SAD {sad:g} mm / SID {sid:g} mm)"
        ]
    return (spacing[0], spacing[1]), [
        "pixel spacing is the RT Image's Image Plane Pixel Spacing (at the image receptor, "
        "not at the isocentre)"
    ]


def _usable_spacing(spacing: tuple[float, ...] | None) -> TypeGuard[tuple[float, ...]]:
    return spacing is not None and len(spacing) >= 2 and min(spacing[:2]) > 0


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


def _multiframe_stacks(record: InstanceRecord) -> list[Stack]:
    """The stacks of one multi-frame file: one per frame group (see :mod:`.multiframe`)."""
    geometry = read_frame_geometry(record)
    frames = [_frame(record, k, *geometry.rescale[k]) for k in range(record.frames)]
    spacing, spacing_warnings = _pixel_spacing(replace(record, pixel_spacing=geometry.spacing))
    return [
        _frame_group_stack(record, geometry, group, frames, spacing, spacing_warnings)
        for group in geometry.groups
    ]


def _frame_group_stack(
    record: InstanceRecord,
    geometry: FrameGeometry,
    group: FrameGroup,
    frames: list[FrameSource],
    spacing: tuple[float, float],
    spacing_warnings: list[str],
) -> Stack:
    orientation = group.orientation or IDENTITY_ORIENTATION
    chosen = [frames[k] for k in group.frames]
    if geometry.positions is None:
        unplaced = ("no per-frame positions: frames stacked in file order", *spacing_warnings)
        affine = affine_from_dicom(record.position or (0.0, 0.0, 0.0), orientation, spacing, None)
        return Stack(record.series_uid, tuple(chosen), affine, unplaced, group.label)
    positions = geometry.positions[list(group.frames)]
    order, affine, warnings = _placed(positions, orientation, spacing, record)
    return Stack(
        record.series_uid,
        tuple(chosen[i] for i in order),
        affine,
        (*warnings, *spacing_warnings),
        group.label,
        positions=positions[order],
    )


def _placed(
    positions: np.ndarray,
    orientation: Sequence[float],
    spacing: tuple[float, float],
    record: InstanceRecord,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Slice order along the normal, the affine and the geometry warnings of positioned
    frames (one stack)."""
    sorting = sort_slices(positions, orientation)
    warnings: list[str] = []
    step = _step_vector(sorting, orientation, record, warnings)
    affine = affine_from_dicom(positions[sorting.order[0]], orientation, spacing, step)
    return sorting.order, affine, (*sorting.warnings, *warnings)


def _mosaic_stack(record: InstanceRecord) -> Stack:
    """The slices of a Siemens mosaic, each a tile of its one frame (see :mod:`.mosaic`)."""
    mosaic = read_mosaic(record)
    orientation = record.orientation or IDENTITY_ORIENTATION
    positions = np.asarray(mosaic.first_position) + np.outer(np.arange(mosaic.count), mosaic.step)
    spacing, spacing_warnings = _pixel_spacing(record)
    order, affine, warnings = _placed(positions, orientation, spacing, record)
    base = _frame(record, 0)
    return Stack(
        record.series_uid,
        tuple(replace(base, tile=int(k)) for k in order),
        affine,
        (*mosaic.warnings, *warnings, *spacing_warnings),
        mosaic=mosaic,
        positions=positions[order],
    )


# -- loading ------------------------------------------------------------------------------


class StackLoader:
    """Decode one stack into a preallocated array, slice by slice.

    ``loader.array`` exists from the start (blank); :meth:`slices` yields each slice index
    as soon as its pixels are in place, so a viewer can show them progressively.

    The stack's :class:`~medviewer.io.stack_plan.StackPlan` (``loader.plan``) decides the
    array's shape and type once. It may start in a type narrower than the stored range
    needs (int16 for a signed 16-bit CT with intercept -1024); a slice that does not fit it
    widens the array to the plan's wide type: ``loader.array`` is then a new array holding
    the slices decoded so far, and the rest decode into it.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.plan = plan_stack(stack.frames, stack.mosaic)
        self.array = _allocate(self.plan)
        self.done = np.zeros(len(stack.frames), dtype=bool)

    def slices(
        self, cancel: Callable[[], bool] | None = None, only: Sequence[int] | None = None
    ) -> Iterator[int]:
        """Decode the slices not decoded yet (of `only`, default all; a mosaic's one decode
        gives them all), yielding each slice index as it is ready; a slice that overflows
        the array's type widens it once.

        Raises
        ------
        medviewer.core.errors.CancelledError
            When `cancel` returns True (checked after every slice).
        medviewer.core.errors.LoadError
            When a file cannot be decoded, or the widened volume would not fit in memory.
        """
        if only is None or self.plan.mosaic is not None:
            only = range(len(self.done))
        try:
            yield from self._decode(cancel, only)
        except SliceOverflow:
            if not self.plan.can_widen:
                raise
            self._widen()
            yield from self._decode(cancel, only)

    def _decode(self, cancel: Callable[[], bool] | None, wanted: Sequence[int]) -> Iterator[int]:
        todo = [k for k in wanted if not self.done[k]]
        for index in iter_decode(self.plan, self.array, cancel, only=todo):
            self.done[index] = True
            yield index

    def _widen(self) -> None:
        """Move to a new array of the wide type, with the slices decoded so far (exact:
        they fit the narrower type)."""
        plan = self.plan.widened()
        wide = _allocate(plan)
        mask = self.done.reshape(-1, *([1] * (self.array.ndim - 1)))
        np.copyto(wide, self.array, where=mask)
        self.array, self.plan = wide, plan

    def volume(self) -> Volume:
        """The loaded volume (call after :meth:`slices` is exhausted)."""
        if not self.done.all():
            raise LoadError(f"{int((~self.done).sum())} slices are not loaded yet")
        return Volume(self.array, self.stack.affine, stack_metadata(self.stack))


def _allocate(plan: StackPlan) -> np.ndarray:
    """The blank array of `plan` (calloc: lazy, blank until decoded); LoadError, before
    allocating, when it would not fit in memory."""
    problem = memory_problem(plan.nbytes)
    if problem:
        location = plan.frames[0].record.location
        raise LoadError(f"{location}: the series is too large to open: {problem}")
    return np.zeros(plan.shape, dtype=plan.dtype)


def stack_metadata(stack: Stack) -> VolumeMetadata:
    """Patient/study/series fields, presets (windows, VOI LUTs) and warnings of a stack."""
    first = stack.first
    voi = read_voi_luts(first)
    suv = series_suv([frame.record for frame in stack.frames])
    units = "HU" if first.modality == "CT" else first.rescale_type or (suv.units if suv else "")
    presets = window_from_dicom(
        first.window_center or None, first.window_width or None, first.window_explanation or None
    )
    return VolumeMetadata(
        modality=first.modality,
        body_part=first.body_part,
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
        voi_lut=voi.default,
        voi_luts=voi.luts,
        warnings=stack.warnings + voi.warnings,
        source_paths=tuple(dict.fromkeys(f.record.location for f in stack.frames)),
        source_frames=tuple((f.record.location, f.frame) for f in stack.frames),
        slice_positions=_positions(stack),
        positioned=first.orientation is not None,
        patient_orientation=first.patient_orientation if first.orientation is None else (),
        suv=suv,
    )


def _positions(stack: Stack) -> tuple[tuple[float, float, float], ...]:
    if stack.positions is None:
        return ()
    return tuple((float(x), float(y), float(z)) for x, y, z in stack.positions)


SeriesSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | int
DatabaseSource: TypeAlias = "StudyDatabase | str | os.PathLike[str]"
"""The study database for a series id: open, or the path of its file."""


def find_stacks(
    source: SeriesSource, db: DatabaseSource | None = None
) -> tuple[list[Stack], ScanResult]:
    """Scan `source` (folder, file, list of files or database series id) into stacks."""
    if isinstance(source, int):
        from medviewer.io.database import StudyDatabase

        database = db if isinstance(db, StudyDatabase) else StudyDatabase(db)
        result = ScanResult(records=database.series_records(source))
    else:
        paths = [source] if isinstance(source, str | os.PathLike) else list(source)
        result = scan(paths)
    return assemble_stacks(result.records), result


def load_series(
    source: SeriesSource,
    *,
    stack: int = 0,
    db: DatabaseSource | None = None,
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
            volume: Volume = stop.value
            return volume
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
    db: DatabaseSource | None = None,
    stack: int = 0,
    cancel: Callable[[], bool] | None = None,
    interval_s: float = 0.03,
    middle_first: bool = True,
) -> Generator[LoadStarted | SlicesLoaded, None, Volume]:
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


def _check_stack(source: SeriesSource, stacks: list[Stack], stack: int, result: ScanResult) -> None:
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
    loaded = f"{stack}: {stacks[stack].describe()}"
    extra = f"source holds {len(stacks)} stacks; loaded {loaded}; others: " + "; ".join(others)
    warnings = (*volume.metadata.warnings, extra)
    return replace(volume, metadata=replace(volume.metadata, warnings=warnings))
