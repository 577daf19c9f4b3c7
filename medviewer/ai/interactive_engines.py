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
        return AutoEngine(network, ClassicalEngine())  # type: ignore[arg-type]
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


class AutoEngine:
    """A promptable network, and the classical engine for what the network cannot hold.

    Each prompt runs the network; when it finds nothing, or its object reaches the sides of
    its region (a structure larger than the model's cube), the classical engine segments the
    object from the same prompts instead. :attr:`last` names the engine that answered.
    """

    def __init__(self, network: Any, classical: Engine) -> None:
        self.network, self.classical = network, classical
        self.name = f"auto ({network.name}, else {classical.name})"
        self.last = ""

    def segment(self, volume: Volume, prompts: VoxelPrompts, previous: np.ndarray | None,
                cancel: Callable[[], bool]) -> np.ndarray:
        """The network's mask, or the classical engine's (see the class docstring)."""
        mask, too_large = self.network.run(volume, prompts, previous, cancel)
        if mask.any() and not too_large:
            self.last = self.network.name
            return mask
        self.last = self.classical.name
        return self.classical.segment(volume, prompts, previous, cancel)
