"""Simulated prompts and the training loop of the promptable demo network
(``demo-ct-interactive``; its cubes are :mod:`medviewer.training.interactive`).

Prompts are simulated while training, as DeepEdit and nnInteractive train: half the samples
are a first click (no previous mask); the other half are a correction, whose previous mask
is the truth spoiled as a first try spoils it (leaked along the tissue it touches above a
random threshold, grown, shrunk, or cut in half) and whose second click sits at the centre
of the largest error region (positive where the mask misses, negative where it leaks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from medviewer.ai.model_card import InputSpec
from medviewer.ai.prompt_region import prompt_channels, roi_grid, stack_channels

Log = Callable[[str], None]


def simulated_input(rng: np.random.Generator, spec: InputSpec, image: np.ndarray,
                    truth: np.ndarray, correct: bool) -> np.ndarray:
    """The network input ``[C, d0, d1, d2]`` for one cube: the first click at its centre,
    and with `correct` a spoiled previous mask and a click on its largest error."""
    from medviewer.training.click_eval import centre_voxel, largest_error

    prompts = spec.prompts
    assert prompts is not None and spec.spacing is not None
    grid = roi_grid((0.0, 0.0, 0.0), spec)
    centre = (np.asarray(grid.shape, float) - 1) / 2
    positive: list[np.ndarray] = [centre]
    negative: list[np.ndarray] = []
    previous = None
    if correct:
        previous = spoiled(rng, image, truth.astype(bool))
        error = largest_error(previous, truth.astype(bool))
        if error is not None:
            where = np.asarray(centre_voxel(error[0], np.asarray(spec.spacing)), float)
            (positive if error[1] else negative).append(where)
    channels = prompt_channels(prompts, grid, np.asarray(positive),
                               np.asarray(negative).reshape(-1, 3), previous)
    return stack_channels(prompts, image, channels)


def spoiled(rng: np.random.Generator, image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """`truth` as a first try spoils it: leaked into what it touches, grown, shrunk, or cut."""
    import SimpleITK as sitk

    kind = rng.choice(["leak", "grow", "shrink", "cut"], p=[0.4, 0.2, 0.15, 0.25])
    mask = sitk.GetImageFromArray(truth.astype(np.uint8))
    if kind == "leak":
        level = float(rng.uniform(0.25, 0.55))  # -650 to -230 HU after the card's scaling
        bright = sitk.GetImageFromArray((image > level).astype(np.uint8))
        touching = sitk.GetArrayFromImage(sitk.ConnectedComponent(bright | mask, True))
        labels = np.unique(touching[truth])
        leak = np.isin(touching, labels[labels > 0])
        if leak.sum() > truth.sum() * 1.2:
            return leak | truth
        kind = "grow"
    if kind == "grow":
        radius = int(rng.integers(1, 4))
        return sitk.GetArrayFromImage(sitk.BinaryDilate(mask, [radius] * 3)).astype(bool)
    if kind == "shrink":
        shrunk = sitk.GetArrayFromImage(sitk.BinaryErode(mask, [int(rng.integers(1, 3))] * 3))
        if shrunk.any():
            return shrunk.astype(bool)
    normal = rng.standard_normal(3)
    index = np.indices(truth.shape).reshape(3, -1).T
    centre = np.argwhere(truth).mean(axis=0)
    side = ((index - centre) @ normal).reshape(truth.shape) > 0
    cut = truth & side
    return cut if cut.any() else truth.copy()


def fit(model: Any, recipe: Any, spec: InputSpec, sets: dict[str, tuple], device: Any,
        log: Log, state: Any, optimise: Callable[..., None], schedule: Callable[..., Any]
        ) -> dict[str, Any]:
    """Train on simulated prompts (half first clicks, half corrections); validate."""
    import torch
    from monai.losses.dice import DiceCELoss

    images, truths = sets["train"]
    rng = np.random.default_rng(1)
    loss_fn = DiceCELoss(sigmoid=True)
    optimiser, scheduler = schedule(model, recipe)
    start = state.resume(model, optimiser, scheduler, rng)
    model.train()
    for step in range(start, recipe.iterations):
        pick = rng.integers(0, len(images), recipe.batch_size)
        x, y = batch(rng, spec, images[pick], truths[pick])
        loss = loss_fn(model(torch.from_numpy(x).to(device)), torch.from_numpy(y).to(device))
        optimise(optimiser, scheduler, loss, step, recipe, log)
        state.save(step + 1, model, optimiser, scheduler, rng)
    return validate(model, spec, sets["validation"], device)


def batch(rng: np.random.Generator, spec: InputSpec, images: np.ndarray,
          truths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[B, C, ...]`` and targets ``[B, 1, ...]``, mirrored and intensity-jittered."""
    xs, ys = [], []
    for image, truth in zip(images, truths, strict=True):
        axes = tuple(a for a in range(3) if rng.random() < 0.5)
        image = np.flip(image.astype(np.float32), axes) if axes else image.astype(np.float32)
        truth = np.flip(truth, axes) if axes else truth
        image = image * rng.uniform(0.95, 1.05) + rng.standard_normal(
            image.shape, dtype=np.float32) * rng.uniform(0.0, 0.02)
        xs.append(simulated_input(rng, spec, np.ascontiguousarray(image, np.float32),
                                  np.ascontiguousarray(truth), bool(rng.random() < 0.5)))
        ys.append(truth[None].astype(np.float32))
    return np.stack(xs).astype(np.float32), np.stack(ys)


def validate(model: Any, spec: InputSpec, validation: tuple[np.ndarray, np.ndarray],
             device: Any) -> dict[str, Any]:
    """Dice of the first click (cube centre) and of one correction, over validation cubes."""
    import torch

    from medviewer.training.metrics import dice

    images, truths = validation
    rng = np.random.default_rng(7)
    scores: dict[str, list[float]] = {"first_click": [], "correction": []}
    model.eval()
    with torch.inference_mode():
        for image, truth in zip(images, truths, strict=True):
            for name, correct in (("first_click", False), ("correction", True)):
                x = simulated_input(rng, spec, image.astype(np.float32), truth, correct)
                out = model(torch.from_numpy(x[None]).to(device)).float().cpu().numpy()[0, 0]
                scores[name].append(dice((out > 0).astype(np.uint8), truth, 1))
    return {"cubes": len(images),
            "dice_3d": {name: round(float(np.mean(v)), 4) for name, v in scores.items()}}
