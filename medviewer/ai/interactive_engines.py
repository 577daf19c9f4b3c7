"""The click-to-segment engines by name (the command line's ``--engine``, the viewer's tool):
``classical`` (no weights), the id or folder of an installed promptable model (a card with
``task: "interactive"``, e.g. ``demo-ct-interactive``), or ``auto``: the installed promptable
model for the series' modality, falling back to the classical engine for an object the model
cannot hold (nothing found, or the object reaches the sides of its region: a lung, the heart),
and the classical engine alone when no such model is installed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from medviewer.ai.interactive import Engine, VoxelPrompts
from medviewer.core.errors import InferenceError, ModelCardError
from medviewer.core.volume import Volume

CLASSICAL = "classical"
AUTO = "auto"


def engine_named(name: str, device: str = "auto", registry: Any = None,
                 modality: str = "") -> Engine:
    """The engine for `name` (`modality` chooses the model of ``auto``);
    :class:`InferenceError` for an unknown or non-promptable one."""
    from medviewer.ai.classical_engine import ClassicalEngine

    if name == CLASSICAL:
        return ClassicalEngine()
    if name == AUTO:
        models = interactive_models(registry, modality)
        if not models:
            return ClassicalEngine()
        network = engine_named(models[0], device, registry)
        return AutoEngine(network, ClassicalEngine())
    from medviewer.ai.network_engine import NetworkEngine
    from medviewer.ai.registry import ModelRegistry

    try:
        entry = (registry or ModelRegistry()).get(name)
    except ModelCardError:
        known = ", ".join([CLASSICAL, AUTO, *interactive_models(registry)])
        raise InferenceError(f"no interactive engine {name!r} (available: {known})") from None
    return NetworkEngine(entry.card, device)


def interactive_models(registry: Any = None, modality: str = "") -> list[str]:
    """The ids of the installed promptable models (for `modality` when given)."""
    from medviewer.ai.registry import ModelRegistry

    return [entry.card.id for entry in (registry or ModelRegistry()).entries()
            if entry.card.task == "interactive"
            and (not modality or modality.upper() in entry.card.modalities)]


MIN_OBJECT_MM3 = 30.0
"""The network's object must be at least this large (a 3.9 mm ball)."""
MIN_CT_CONTRAST = 300.0
"""On CT, the network's object must be this much denser (HU) than the darkest quarter of
the 2 voxels around it: a nodule against lung. A click on the heart, the aorta or a lung got
a few dozen voxels of a vessel or of the same tissue from the nodule network."""


class AutoEngine:
    """A promptable network, and the classical engine for what the network cannot hold.

    Each prompt runs the network. Its object is taken when it looks like what the network
    was made for: it holds a positive prompt, does not reach the sides of its region (a
    structure larger than the model's cube), is at least :data:`MIN_OBJECT_MM3`, and, on CT,
    stands out from its surroundings by :data:`MIN_CT_CONTRAST`. Otherwise the classical
    engine segments the object from the same prompts. :attr:`last` names the engine that
    answered.
    """

    def __init__(self, network: Any, classical: Engine) -> None:
        self.network, self.classical = network, classical
        self.name = f"auto ({network.name}, else {classical.name})"
        self.last = ""

    def segment(self, volume: Volume, prompts: VoxelPrompts, previous: np.ndarray | None,
                cancel: Callable[[], bool]) -> np.ndarray:
        """The network's mask, or the classical engine's (see the class docstring)."""
        kept = None if previous is None else previous.copy()  # the network may reuse it
        mask, too_large = self.network.run(volume, prompts, previous, cancel)
        if not too_large and looks_like_an_object(volume, mask, prompts.positive):
            self.last = self.network.name
            return mask
        previous = kept
        self.last = self.classical.name
        return self.classical.segment(volume, prompts, previous, cancel)


def looks_like_an_object(volume: Volume, mask: np.ndarray, positive) -> bool:
    """Whether a network's `mask` holds a positive prompt, is at least
    :data:`MIN_OBJECT_MM3`, and on CT is :data:`MIN_CT_CONTRAST` denser than the darkest
    quarter of its surroundings (see :class:`AutoEngine`)."""
    from medviewer.ai.regions import bounding_box

    found = bounding_box(mask)
    if found is None or not any(mask[tuple(v)] for v in positive):
        return False
    box = found.slices
    voxels = int(np.count_nonzero(mask[box]))
    if voxels * float(np.prod(volume.spacing)) < MIN_OBJECT_MM3:
        return False
    if volume.metadata.modality.upper() != "CT":
        return True
    grown = tuple(slice(max(b.start - 3, 0), min(b.stop + 3, n))
                  for b, n in zip(box, volume.shape, strict=True))
    inside = mask[grown]
    values = volume.array[grown]
    shell = _dilated(inside, 2) & ~inside
    if not shell.any():
        return True
    contrast = float(np.median(values[inside])) - float(np.percentile(values[shell], 25))
    return contrast >= MIN_CT_CONTRAST


def _dilated(mask: np.ndarray, voxels: int) -> np.ndarray:
    import SimpleITK as sitk

    image = sitk.BinaryDilate(sitk.GetImageFromArray(mask.astype(np.uint8)), [voxels] * 3)
    return sitk.GetArrayViewFromImage(image).astype(bool)
