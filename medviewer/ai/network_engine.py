"""The click-to-segment engine of a promptable network (a card with ``task: "interactive"``).

Each prompt runs the network once on the card's cube (:mod:`medviewer.ai.prompt_region`)
centred on the object's first prompt: the first positive click or scribble (its middle
voxel), else the first box's centre, so every prompt of an object sees the same region and
the previous mask lines up. Prompts outside the cube do not reach the network. The result
inside the cube replaces the object's mask there; outside the cube the previous mask stays.
Only the connected parts that hold a positive prompt are kept (the largest part when none
does, e.g. a box), so another nodule in the cube does not join the object.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medviewer.ai.interactive import VoxelPrompts
from medviewer.ai.model_card import ModelCard
from medviewer.ai.prompt_region import (
    RoiGrid,
    paste_box,
    prompt_channels,
    roi_grid,
    sample_cube,
    scaled,
    stack_channels,
)
from medviewer.core.errors import CancelledError, InferenceError
from medviewer.core.geometry import voxel_to_patient
from medviewer.core.volume import Volume


class NetworkEngine:
    """A promptable network as an :class:`~medviewer.ai.interactive.Engine`.

    Parameters
    ----------
    card : ModelCard
        An interactive card (its weights are checked against their sha256 when loaded).
    device : str
        ``auto`` (a GPU when there is one), ``cpu``, ``cuda:0``...
    """

    def __init__(self, card: ModelCard, device: str = "auto") -> None:
        if card.task != "interactive" or card.input.prompts is None:
            raise InferenceError(f"model {card.id!r} is a {card.task} model, not a promptable "
                                 "(interactive) one")
        self.card = card
        self.name = card.id
        self.device = device

    def segment(self, volume: Volume, prompts: VoxelPrompts, previous: np.ndarray | None,
                cancel: Callable[[], bool]) -> np.ndarray:
        """The object's mask (bool, ``volume.shape``) after the network's run on its cube."""
        return self.run(volume, prompts, previous, cancel)[0]

    def run(self, volume: Volume, prompts: VoxelPrompts, previous: np.ndarray | None,
            cancel: Callable[[], bool]) -> tuple[np.ndarray, bool]:
        """:meth:`segment`, and whether the object reaches the cube's sides (it is larger
        than the model's region, or the model leaked)."""
        grid = roi_grid(self._centre(volume, prompts), self.card.input)
        x = self.network_input(volume, grid, prompts, previous)
        if cancel():
            raise CancelledError("superseded by a newer prompt")
        probability = self._run(x)
        threshold = self.card.output.threshold
        box, inside = paste_box(volume, grid, probability, threshold)
        first = np.array([b.start for b in box])
        inside = _parts_with(inside, [np.asarray(v) - first for v in prompts.positive])
        _, cube_voxels = paste_box(volume, grid, np.ones(grid.shape, np.float32), 0.5)
        mask = np.zeros(volume.shape, bool) if previous is None else previous  # fresh: reused
        mask[box] &= ~cube_voxels
        mask[box] |= inside
        return mask, _reaches_sides(probability >= threshold)

    def network_input(self, volume: Volume, grid: RoiGrid, prompts: VoxelPrompts,
                      previous: np.ndarray | None) -> np.ndarray:
        """The network's input ``[C, d0, d1, d2]`` (float32) for `prompts` on `grid`."""
        spec = self.card.input
        assert spec.prompts is not None
        image = scaled(sample_cube(volume, grid), spec)
        prior = None
        if previous is not None and "previous" in spec.prompts.channels:
            prior = sample_cube(volume, grid, previous, outside=0.0)  # cropped, then float
        boxes = [(grid.to_index(_lps(volume, [low]))[0], grid.to_index(_lps(volume, [high]))[0])
                 for low, high in prompts.boxes]
        channels = prompt_channels(spec.prompts, grid,
                                   grid.to_index(_lps(volume, prompts.positive)),
                                   grid.to_index(_lps(volume, prompts.negative)), prior, boxes)
        return stack_channels(spec.prompts, image, channels).astype(np.float32)

    def _centre(self, volume: Volume, prompts: VoxelPrompts) -> np.ndarray:
        if prompts.positive_groups:
            group = prompts.positive_groups[0]
            return _lps(volume, [group[len(group) // 2]])[0]
        if prompts.boxes:
            low, high = prompts.boxes[0]
            middle = (np.asarray(low, float) + np.asarray(high, float)) / 2
            return voxel_to_patient(volume.affine, middle[::-1][None])[0]
        raise InferenceError("start an object with a click inside it (or a box around it)")

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        from medviewer.ai.device import resolve_device
        from medviewer.ai.weights import load_network

        network = load_network(self.card, resolve_device(self.device))
        with torch.inference_mode():
            out = network(torch.from_numpy(x[None]).to(network.device))
        out = out.float().cpu().numpy()[0, 0]
        if self.card.output.activation == "sigmoid":
            out = 1.0 / (1.0 + np.exp(-np.clip(out, -60.0, 60.0)))
        return out.astype(np.float32)


def _lps(volume: Volume, voxels) -> np.ndarray:
    """``(slice, row, col)`` voxels as LPS points (N x 3)."""
    index = np.asarray(voxels, float).reshape(-1, 3)[:, ::-1]
    return voxel_to_patient(volume.affine, index).reshape(-1, 3)


def _reaches_sides(cube: np.ndarray) -> bool:
    """Whether any voxel on the cube's six faces is set."""
    return bool(cube[[0, -1]].any() or cube[:, [0, -1]].any() or cube[:, :, [0, -1]].any())


def _parts_with(mask: np.ndarray, seeds) -> np.ndarray:
    """The connected parts of `mask` holding a seed voxel (indices into `mask`); the largest
    part when none does."""
    import SimpleITK as sitk

    if not mask.any():
        return mask
    parts = sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(
        sitk.GetImageFromArray(mask.astype(np.uint8)), True)))
    keep = set()
    for seed in seeds:
        local = tuple(int(v) for v in seed)
        if all(0 <= v < n for v, n in zip(local, parts.shape, strict=True)) and parts[local]:
            keep.add(int(parts[local]))
    return np.isin(parts, sorted(keep or {1}))
