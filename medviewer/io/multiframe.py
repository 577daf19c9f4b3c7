"""Per-frame geometry of multi-frame objects, and the stacks their frames form.

An enhanced multi-frame file may hold several stacks: temporal positions, diffusion
directions, the segments of a SEG, frames of several orientations (a tri-plane localizer).
:func:`read_frame_geometry` reads each frame's position, orientation and rescale from the
functional groups (or an RT Dose grid's offsets), and groups the frames into stacks the way
the single-frame loader splits a series: by orientation and Stack ID always; when positions
repeat, by the non-spatial dimensions (temporal position, segment, b-value and gradient
direction, the file's other dimension indices), and, when they still repeat, by occurrence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from medviewer.core.errors import LoadError
from medviewer.core.geometry import nearest_plane, slice_normal
from medviewer.io.header import NESTED_TOO_DEEP, InstanceRecord, dcmread_bounded, source_of

if TYPE_CHECKING:
    from pydicom import Dataset

# Dimension index pointers that say where a frame is in space, not which stack it is in.
SPATIAL_DIMENSIONS = frozenset({0x00200032, 0x00209057})  # Image Position, In-Stack Position
# Dimension index pointers read by name already (Stack ID, Temporal Position Index,
# Referenced Segment Number, Diffusion b-value, Diffusion Gradient Orientation).
NAMED_DIMENSIONS = frozenset({0x00209056, 0x00209128, 0x0062000B, 0x00189087, 0x00189089})
ORIENTATION_DECIMALS = 4  # as the single-frame loader groups orientations
POSITION_DECIMALS = 3

_T = TypeVar("_T")
_Orientation = tuple[float, ...] | None
"""An Image Orientation (Patient), None when the file gives none."""


@dataclass(frozen=True)
class FrameGroup:
    """Frames (file order) that form one stack, and what tells the stack from the others.

    Attributes
    ----------
    frames : tuple of int
        Frame indices (0-based) in file order.
    orientation : tuple of float or None
        The frames' Image Orientation (Patient).
    label : str
        For the user, e.g. ``"temporal position 2"``; empty when the file holds one stack.
    """

    frames: tuple[int, ...]
    orientation: tuple[float, ...] | None
    label: str = ""


@dataclass(frozen=True)
class FrameGeometry:
    """Per-frame geometry and rescale of a multi-frame object.

    Attributes
    ----------
    positions : numpy.ndarray or None
        (frames, 3) Image Position (Patient) of every frame; None when any is missing.
    orientation : tuple of float or None
        The first group's orientation (the file's when it has one orientation).
    spacing : tuple of float or None
        Pixel Spacing (row, column).
    rescale : list of (slope, intercept)
        Per frame; None where the file gives none.
    groups : tuple of FrameGroup
        The stacks the frames form (one group for an ordinary multi-frame file).
    """

    positions: np.ndarray | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    rescale: list[tuple[float | None, float | None]]
    groups: tuple[FrameGroup, ...] = ()


def read_frame_geometry(record: InstanceRecord) -> FrameGeometry:
    """Read per-frame positions, orientations, spacing and rescale of a multi-frame file.

    Raises
    ------
    LoadError
        When the file's header cannot be read (damaged, nested too deeply).
    """
    try:
        ds = dcmread_bounded(source_of(record.path, record.member), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - deep nesting, damage: said with the file
        reason = NESTED_TOO_DEEP if isinstance(exc, RecursionError) else f"{exc}"
        raise LoadError(f"{record.location}: cannot read the frame geometry: {reason}") from None
    try:
        return _frame_geometry(ds, record)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # a damaged functional group (a list where one number belongs, text in a number)
        raise LoadError(
            f"{record.location}: cannot read the frame geometry: {type(exc).__name__}: {exc}"
        ) from None


def _frame_geometry(ds: Dataset, record: InstanceRecord) -> FrameGeometry:
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    if len(per_frame) != record.frames:
        per_frame = [None] * record.frames
    orientations = [
        _functional(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
        or record.orientation
        for item in per_frame
    ]
    spacing = _first(
        _functional(item, shared, "PixelMeasuresSequence", "PixelSpacing") for item in per_frame
    )
    rescale = [_rescale(item, shared, record) for item in per_frame]
    positions = _positions(ds, per_frame, shared, record, orientations[0] if orientations else None)
    groups = frame_groups(ds, per_frame, positions, orientations)
    return FrameGeometry(
        positions, groups[0].orientation, spacing or record.pixel_spacing, rescale, groups
    )


def _first(values: Iterable[_T | None]) -> _T | None:
    for value in values:
        if value is not None:
            return value
    return None


def _rescale(
    item: Dataset | None, shared: Dataset | None, record: InstanceRecord
) -> tuple[float | None, float | None]:
    slope = _functional(item, shared, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _functional(item, shared, "PixelValueTransformationSequence", "RescaleIntercept")
    return (
        slope[0] if slope else record.rescale_slope,
        intercept[0] if intercept else record.rescale_intercept,
    )


def _positions(
    ds: Dataset,
    per_frame: list[Dataset | None],
    shared: Dataset | None,
    record: InstanceRecord,
    orientation: _Orientation,
) -> np.ndarray | None:
    positions = [
        _functional(item, shared, "PlanePositionSequence", "ImagePositionPatient")
        for item in per_frame
    ]
    if positions and all(p is not None and len(p) == 3 for p in positions):
        return np.array(positions, dtype=float)
    return _grid_frame_positions(ds, record, orientation)


def _grid_frame_positions(
    ds: Dataset, record: InstanceRecord, orientation: _Orientation
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


def _functional(
    item: Dataset | None, shared: Dataset | None, sequence: str, attribute: str
) -> tuple[float, ...] | None:
    """A numeric attribute of a functional group: the frame's own, else the shared one."""
    value = _functional_value(item, shared, sequence, attribute)
    if value is None:
        return None
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None


def _functional_value(
    item: Dataset | None, shared: Dataset | None, sequence: str, attribute: str
) -> Any:
    for group in (item, shared):
        if group is None or sequence not in group or not group[sequence].value:
            continue
        value = group[sequence][0].get(attribute)
        if value is not None and value != "":
            return value
    return None


# -- grouping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dimension:
    """One per-frame value that may tell stacks apart: its name for the user, and values."""

    name: str
    values: list[Any]

    def varies(self, frames: Sequence[int]) -> bool:
        return len({self.values[k] for k in frames}) > 1


def frame_groups(
    ds: Dataset,
    per_frame: list[Dataset | None],
    positions: np.ndarray | None,
    orientations: list[_Orientation],
) -> tuple[FrameGroup, ...]:
    """Group a multi-frame file's frames into stacks (see the module docstring).

    Parameters
    ----------
    ds : pydicom.Dataset
        The file's header (Dimension Index Sequence, shared groups).
    per_frame : list
        Per-frame functional group items (None for files without them).
    positions : numpy.ndarray or None
        (frames, 3) positions; without them frames stay one stack in file order.
    orientations : list
        Each frame's Image Orientation (Patient) or None.
    """
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    count = len(per_frame)
    orientation_keys = [_rounded(o, ORIENTATION_DECIMALS) for o in orientations]
    stack_ids = _Dimension("stack", [_content(i, shared, "StackID") for i in per_frame])
    splitters = [_Dimension("orientation", orientation_keys), stack_ids]
    groups = _split([tuple(range(count))], splitters)
    if positions is not None:
        groups = _split_repeated_positions(
            groups, _stack_dimensions(ds, per_frame, shared), positions
        )
    labels = _labels(groups, [*splitters, *_stack_dimensions(ds, per_frame, shared)])
    return tuple(
        FrameGroup(frames, orientations[frames[0]] if frames else None, label)
        for frames, label in zip(groups, labels, strict=True)
    )


def _split(groups: list[tuple[int, ...]], dimensions: list[_Dimension]) -> list[tuple[int, ...]]:
    """Split each group by every dimension that varies in it (groups keep first-seen order)."""
    for dimension in dimensions:
        split: list[tuple[int, ...]] = []
        for frames in groups:
            if not dimension.varies(frames):
                split.append(frames)
                continue
            by_value: dict[Any, list[int]] = defaultdict(list)
            for k in frames:
                by_value[dimension.values[k]].append(k)
            split.extend(tuple(v) for _, v in sorted(by_value.items(), key=_value_order))
        groups = split
    return groups


def _value_order(item: tuple[Any, list[int]]) -> tuple[bool, str, Any, int]:
    value, frames = item
    return (value is None, str(type(value)), value if value is not None else 0, frames[0])


def _split_repeated_positions(
    groups: list[tuple[int, ...]], dimensions: list[_Dimension], positions: np.ndarray
) -> list[tuple[int, ...]]:
    """Where a group repeats positions, split it by the non-spatial dimensions, then by
    occurrence (the n-th frame at each position goes to stack n)."""
    out: list[tuple[int, ...]] = []
    for frames in groups:
        if _unique_positions(frames, positions):
            out.append(frames)
            continue
        for part in _split([frames], dimensions):
            out.extend(
                [part] if _unique_positions(part, positions) else _by_occurrence(part, positions)
            )
    return out


def _unique_positions(frames: Sequence[int], positions: np.ndarray) -> bool:
    return len({_rounded(positions[k], POSITION_DECIMALS) for k in frames}) == len(frames)


def _by_occurrence(frames: Sequence[int], positions: np.ndarray) -> list[tuple[int, ...]]:
    phases: dict[int, list[int]] = defaultdict(list)
    seen: dict[tuple[float, ...] | None, int] = defaultdict(int)
    for k in frames:
        key = _rounded(positions[k], POSITION_DECIMALS)
        phases[seen[key]].append(k)
        seen[key] += 1
    return [tuple(phases[n]) for n in sorted(phases)]


def _stack_dimensions(
    ds: Dataset, per_frame: list[Dataset | None], shared: Dataset | None
) -> list[_Dimension]:
    """The per-frame values that may tell stacks at one position apart."""
    dimensions = [
        _Dimension(
            "temporal position", [_content(i, shared, "TemporalPositionIndex") for i in per_frame]
        ),
        _Dimension("segment", [_segment(i, shared) for i in per_frame]),
        _Dimension("b", [_b_value(i, shared) for i in per_frame]),
        _Dimension("gradient", [_gradient(i, shared) for i in per_frame]),
    ]
    return dimensions + _other_dimension_indices(ds, per_frame, shared)


def _other_dimension_indices(
    ds: Dataset, per_frame: list[Dataset | None], shared: Dataset | None
) -> list[_Dimension]:
    """Components of Dimension Index Values that are not spatial (PS3.3 C.7.6.17)."""
    pointers = [
        item.get("DimensionIndexPointer") for item in ds.get("DimensionIndexSequence") or []
    ]
    labels = [
        str(item.get("DimensionDescriptionLabel") or "")
        for item in ds.get("DimensionIndexSequence") or []
    ]
    rows = [_content(i, shared, "DimensionIndexValues") for i in per_frame]
    dimensions = []
    for n, pointer in enumerate(pointers):
        if pointer is None or int(pointer) in SPATIAL_DIMENSIONS | NAMED_DIMENSIONS:
            continue
        values = [_component(row, n, len(pointers)) for row in rows]
        dimensions.append(_Dimension(labels[n] or f"dimension {n + 1}", values))
    return dimensions


def _component(row: Any, n: int, size: int) -> Any:
    if row is None:
        return None
    values = [row] if size == 1 and not isinstance(row, Sequence) else list(row)
    return int(values[n]) if n < len(values) else None


def _content(item: Dataset | None, shared: Dataset | None, attribute: str) -> Any:
    value = _functional_value(item, shared, "FrameContentSequence", attribute)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(int(v) for v in value)
    return value


def _segment(item: Dataset | None, shared: Dataset | None) -> int | None:
    value = _functional_value(
        item, shared, "SegmentIdentificationSequence", "ReferencedSegmentNumber"
    )
    return None if value is None else int(value)


def _b_value(item: Dataset | None, shared: Dataset | None) -> float | None:
    value = _functional(item, shared, "MRDiffusionSequence", "DiffusionBValue")
    return None if value is None else round(value[0], 3)


def _gradient(item: Dataset | None, shared: Dataset | None) -> tuple[float, ...] | None:
    for group in (item, shared):
        diffusion = _first_item(group, "MRDiffusionSequence")
        direction = _first_item(diffusion, "DiffusionGradientDirectionSequence")
        value = direction.get("DiffusionGradientOrientation") if direction is not None else None
        if value is not None:
            return _rounded([float(v) for v in value], ORIENTATION_DECIMALS)
    return None


def _first_item(dataset: Dataset | None, sequence: str) -> Dataset | None:
    if dataset is None or sequence not in dataset or not dataset[sequence].value:
        return None
    first: Dataset = dataset[sequence][0]
    return first


def _rounded(values: ArrayLike | None, decimals: int) -> tuple[float, ...] | None:
    if values is None:
        return None
    return tuple(float(v) + 0.0 for v in np.round(np.asarray(values, dtype=float), decimals))


def _labels(groups: list[tuple[int, ...]], dimensions: list[_Dimension]) -> list[str]:
    """Name each group by the dimensions whose values differ between groups."""
    if len(groups) < 2:
        return [""] * len(groups)
    firsts = [frames[0] for frames in groups]
    telling = [d for d in dimensions if d.varies(firsts)]
    labels = []
    for n, frames in enumerate(groups):
        parts = [
            _label_part(d, d.values[frames[0]]) for d in telling if d.values[frames[0]] is not None
        ]
        labels.append(", ".join(parts) if parts else f"repeat {n + 1}")
    if len(set(labels)) < len(labels):  # e.g. two oblique axial stacks
        labels = [f"{label} #{n + 1}" for n, label in enumerate(labels)]
    return labels


def _label_part(dimension: _Dimension, value: Any) -> str:
    if dimension.name == "b":
        return f"b={value:g}"
    if dimension.name == "orientation":
        return nearest_plane(slice_normal(value))
    if isinstance(value, tuple):
        value = "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{dimension.name} {value}"
