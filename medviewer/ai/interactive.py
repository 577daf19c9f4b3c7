"""Click to segment: prompts in patient space, objects that keep their prompts and masks, and a
session that refines an object with each new prompt (undo and redo per prompt).

Prompts are in LPS millimetres, as the viewer and the command line give them, whatever the
series' orientation or spacing; :func:`prompt_voxels` maps them onto the series grid (the
inverse of the series affine, rounded to the nearest voxel centre) and refuses a prompt
outside it. An engine (:class:`Engine`) turns an object's prompts into a mask on the series
grid; :mod:`medviewer.ai.classical_engine` is the one that needs no weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from medviewer.ai.regions import bounding_box
from medviewer.core.errors import InferenceError
from medviewer.core.findings import SegmentStats
from medviewer.core.geometry import patient_to_voxel
from medviewer.core.volume import Volume

Lps = tuple[float, float, float]
Voxel = tuple[int, int, int]
"""``(slice, row, col)`` indices into the volume's array."""


@dataclass(frozen=True)
class Point:
    """A click at `lps` (mm): inside the object (`positive`) or outside it."""

    lps: Lps
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """A box between two opposite corners in LPS mm. Corners on one plane (the same position
    along the slice axis) make a 2D box on that slice."""

    corner_a: Lps
    corner_b: Lps


@dataclass(frozen=True)
class Scribble:
    """A polyline through `points` (LPS mm), usually drawn on one plane; inside the object
    (`positive`) or outside it."""

    points: tuple[Lps, ...]
    positive: bool = True


Prompt = Point | Box | Scribble


@dataclass(frozen=True)
class VoxelPrompts:
    """An object's prompts on the series grid, as an engine reads them.

    Attributes
    ----------
    positive, negative : list of (slice, row, col)
        Seed voxels inside and outside the object (clicks, and scribbles sampled every half
        voxel).
    positive_groups : list of list of (slice, row, col)
        The positive seeds of each prompt apart (one click, one scribble), so an engine can
        grow each from its own statistics.
    boxes : list of ((s0, r0, c0), (s1, r1, c1))
        Inclusive voxel ranges.
    """

    positive: list[Voxel]
    negative: list[Voxel]
    positive_groups: list[list[Voxel]]
    boxes: list[tuple[Voxel, Voxel]]


class Engine(Protocol):
    """Turns an object's prompts into a mask on the series grid."""

    name: str

    def segment(self, volume: Volume, prompts: VoxelPrompts, previous: np.ndarray | None,
                cancel: Callable[[], bool]) -> np.ndarray:
        """A boolean mask shaped like ``volume.shape``. `previous` (the object's mask before
        this prompt, or None) is a fresh array the engine may change and return."""
        ...


def prompt_voxels(volume: Volume, prompts: Sequence[Prompt]) -> VoxelPrompts:
    """`prompts` (LPS mm) as voxels of `volume`; :class:`InferenceError` for one outside."""
    positive: list[Voxel] = []
    negative: list[Voxel] = []
    groups: list[list[Voxel]] = []
    boxes: list[tuple[Voxel, Voxel]] = []
    for prompt in prompts:
        if isinstance(prompt, Point):
            voxel = to_voxel(volume, prompt.lps)
            (positive if prompt.positive else negative).append(voxel)
            if prompt.positive:
                groups.append([voxel])
        elif isinstance(prompt, Scribble):
            voxels = _scribble_voxels(volume, prompt.points)
            (positive if prompt.positive else negative).extend(voxels)
            if prompt.positive:
                groups.append(voxels)
        else:
            a, b = to_voxel(volume, prompt.corner_a), to_voxel(volume, prompt.corner_b)
            low = tuple(min(x, y) for x, y in zip(a, b, strict=True))
            high = tuple(max(x, y) for x, y in zip(a, b, strict=True))
            boxes.append((low, high))  # type: ignore[arg-type]
    return VoxelPrompts(positive, negative, groups, boxes)


def _adds(prompt: Prompt) -> bool:
    """Whether `prompt` may add voxels (a positive click or scribble, a box)."""
    return isinstance(prompt, Box) or prompt.positive


def to_voxel(volume: Volume, lps: Lps) -> Voxel:
    """The ``(slice, row, col)`` voxel whose centre is nearest to `lps`."""
    col, row, slc = np.rint(patient_to_voxel(volume.affine, np.asarray(lps, float))).astype(int)
    voxel = (int(slc), int(row), int(col))
    if not all(0 <= v < n for v, n in zip(voxel, volume.shape, strict=True)):
        raise InferenceError(f"the prompt at {tuple(round(v, 1) for v in lps)} mm (LPS) is "
                             "outside the series")
    return voxel


def _scribble_voxels(volume: Volume, points: Sequence[Lps]) -> list[Voxel]:
    """The voxels a polyline crosses, sampled every half voxel along each segment."""
    if not points:
        raise InferenceError("a scribble needs at least one point")
    ijk = patient_to_voxel(volume.affine, np.asarray(points, float))
    voxels: list[Voxel] = [to_voxel(volume, tuple(points[0]))]  # type: ignore[arg-type]
    for start, end in itertools.pairwise(ijk):
        steps = max(int(np.ceil(np.abs(end - start).max() * 2)), 1)
        for t in np.linspace(0.0, 1.0, steps + 1)[1:]:
            col, row, slc = np.rint(start + t * (end - start)).astype(int)
            voxel = (int(slc), int(row), int(col))
            inside = all(0 <= v < n for v, n in zip(voxel, volume.shape, strict=True))
            if inside and voxel != voxels[-1]:
                voxels.append(voxel)
    return voxels


@dataclass(frozen=True)
class StoredMask:
    """A mask kept as the box that holds it (a whole CT is 70 M voxels; an object's history
    must not keep one such array per prompt)."""

    shape: tuple[int, int, int]
    box: tuple[slice, ...]
    crop: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray) -> StoredMask:
        """`mask` cut to the box of its True voxels (an empty box when there is none)."""
        found = bounding_box(mask)  # from projections: no index array of every voxel
        box = found.slices if found is not None else (slice(0, 0),) * 3
        shape = (int(mask.shape[0]), int(mask.shape[1]), int(mask.shape[2]))
        return cls(shape, box, mask[box].copy())

    def keep_within(self, mask: np.ndarray) -> None:
        """Clear the voxels of `mask` (whole grid, in place) that this mask does not hold."""
        for axis, part in enumerate(self.box):
            before = [slice(None)] * 3
            before[axis] = slice(0, part.start)
            mask[tuple(before)] = False
            before[axis] = slice(part.stop, None)
            mask[tuple(before)] = False
        mask[self.box] &= self.crop

    def full(self) -> np.ndarray:
        """The mask on the whole grid."""
        mask = np.zeros(self.shape, dtype=bool)
        mask[self.box] = self.crop
        return mask


@dataclass
class InteractiveObject:
    """One structure being segmented: its prompts and its mask after each of them.

    Attributes
    ----------
    name : str
        What the user calls it ("nodule 1").
    prompts : list of Prompt
        Every prompt so far, in order.
    masks : list of StoredMask
        The mask after each prompt (``masks[i]`` follows ``prompts[i]``), kept as its box.
    undone : list of tuple
        Prompts and masks taken back by :meth:`undo`, for :meth:`redo`.
    """

    name: str
    prompts: list[Prompt] = field(default_factory=list)
    masks: list[StoredMask] = field(default_factory=list)
    undone: list[tuple[Prompt, StoredMask]] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray | None:
        """The current mask on the whole grid, a new array (None before the first prompt)."""
        return self.masks[-1].full() if self.masks else None

    def undo(self) -> bool:
        """Take back the last prompt; False when there is none."""
        if not self.prompts:
            return False
        self.undone.append((self.prompts.pop(), self.masks.pop()))
        return True

    def redo(self) -> bool:
        """Put back the last prompt taken back; False when there is none."""
        if not self.undone:
            return False
        prompt, mask = self.undone.pop()
        self.prompts.append(prompt)
        self.masks.append(mask)
        return True


class InteractiveSession:
    """Objects on one series, refined prompt by prompt by `engine`.

    Parameters
    ----------
    volume : Volume
        The series (grey values; colour series are refused).
    engine : Engine
        What turns prompts into masks.
    """

    def __init__(self, volume: Volume, engine: Engine) -> None:
        if volume.is_color:
            raise InferenceError("click to segment needs a grey-scale series")
        self.volume = volume
        self.engine = engine
        self.objects: dict[str, InteractiveObject] = {}

    def add_prompt(self, name: str, prompt: Prompt,
                   cancel: Callable[[], bool] = lambda: False) -> np.ndarray:
        """Refine object `name` (created on its first prompt) with `prompt`; its new mask.

        A cancelled run (`cancel` true: a newer prompt superseded it) raises
        :class:`~medviewer.core.errors.CancelledError` and leaves the object as it was.
        """
        obj = self.objects.get(name) or InteractiveObject(name)
        prompts = [*obj.prompts, prompt]
        voxels = prompt_voxels(self.volume, prompts)  # refuses a prompt outside first
        if not voxels.positive and not voxels.boxes:
            raise InferenceError("start an object with a click inside it (or a box around it)")
        stored = obj.masks[-1] if obj.masks else None
        mask = self.engine.segment(self.volume, voxels, obj.mask, cancel)
        if stored is not None and not _adds(prompt):
            stored.keep_within(mask)  # a negative prompt only removes, whatever the engine
        obj.prompts.append(prompt)
        obj.masks.append(StoredMask.of(mask))
        obj.undone.clear()
        self.objects[name] = obj
        return mask

    def summary(self, name: str) -> SegmentStats:
        """Voxels, volume (mL), longest (Feret) diameter (mm) and centroid of object `name`,
        measured as a model's segments are (:func:`medviewer.ai.statistics.segment_statistics`)."""
        from medviewer.ai.statistics import segment_statistics

        mask = self.objects[name].mask
        labels = (np.zeros(self.volume.shape, np.uint8) if mask is None
                  else mask.astype(np.uint8))
        return segment_statistics(labels, self.volume.affine, {1: name},
                                  self.volume.array)[1]
