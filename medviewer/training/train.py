"""Reproducible training of the demo models: data from seeds, fixed iterations, safetensors out.

Run ``python -m medviewer.training train MODEL_ID --out DIR``. The folder receives
``model.safetensors`` and a validated ``model.json`` whose ``metrics.training`` records the
seeds, iterations, time, device and library versions, and whose ``metrics.validation`` holds
the validation figures. Held-out test figures are added by ``evaluate --record``. How each
batch is sampled and augmented is :mod:`medviewer.training.sampling`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.ai.model_card import InputSpec, ModelCard, file_sha256
from medviewer.training import data, sampling
from medviewer.training.checkpoint import TrainingState
from medviewer.training.specs import RECIPES, ModelRecipe

Log = Callable[[str], None]


def train(model_id: str, out: Path, device: str = "auto", log: Log = print) -> Path:
    """Train `model_id` into folder `out` (created); return the card path."""
    import torch

    recipe = RECIPES[model_id]
    started = time.perf_counter()
    spec = _input_spec(recipe)
    torch.manual_seed(0)
    state = TrainingState(out, recipe, log)
    sets = state.data(lambda: _render_sets(recipe, spec, log))
    generated = time.perf_counter() - started
    log(f"data ready in {generated:.0f} s")
    target = _device(device)
    model = _network(recipe).to(target)
    if recipe.card["task"] == "interactive":
        from medviewer.training import prompting

        validation = prompting.fit(model, recipe, spec, sets, target, log, state, _optimise,
                                     _schedule)
    elif spec.dims == 3:
        validation = _fit_volumes(model, recipe, sets, target, log, state)
    elif recipe.card["task"] == "segmentation":
        validation = _fit_segmentation(model, recipe, sets, target, log, state)
    else:
        validation = _fit_classifier(model, recipe, sets, target, log, state)
    seconds = time.perf_counter() - started
    card = _write(model, recipe, out, validation, seconds, generated, target)
    state.finish()
    return card


def _render_sets(recipe: ModelRecipe, spec: InputSpec, log: Log) -> dict[str, tuple]:
    if recipe.id == "demo-cxr-nodule-cls":
        return _radiograph_sets(recipe, spec, log)
    if recipe.card["task"] == "interactive":
        from medviewer.training import interactive

        return interactive.cube_sets(recipe, spec, _pool_map, log)
    if spec.dims == 3:
        return _volume_sets(recipe, spec, log)
    return _ct_sets(recipe, spec, log)


# ------------------------------------------------------------------ data


def _input_spec(recipe: ModelRecipe) -> InputSpec:
    return ModelCard.from_dict(recipe.card, recipe.id).input


def _pool_map(function: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
    workers = render_workers()
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_single_thread) as pool:
        return pool.map(function, items, chunksize=4)


def render_workers() -> int:
    """Processes that render training data: ``MEDVIEWER_TRAIN_WORKERS`` when set (a GPU
    machine with many cores), else the cores up to 8 (each holds a whole CT while rendering)."""
    setting = os.environ.get("MEDVIEWER_TRAIN_WORKERS", "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ValueError(f"MEDVIEWER_TRAIN_WORKERS must be a positive integer, not {setting!r}")
        return int(setting)
    return max(1, min(os.cpu_count() or 1, 8))


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _ct_case(args: tuple[int, InputSpec, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, spec, count, crop = args
    images, labels = data.ct_case_slices(seed, spec, count)
    return data.fit(images, crop, 0.0).astype(np.float16), data.fit(labels, crop, 0)


def _ct_sets(recipe: ModelRecipe, spec: InputSpec, log: Log) -> dict[str, tuple[np.ndarray, ...]]:
    sets = {}
    for name, seeds in (("train", recipe.train_seeds), ("validation", recipe.validation_seeds)):
        log(f"rendering {len(seeds)} {name} cases x {recipe.slices_per_case} slices")
        parts = _pool_map(_ct_case, [(s, spec, recipe.slices_per_case, recipe.crop) for s in seeds])
        sets[name] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return sets


def _ct_patches(args: tuple[int, InputSpec, ModelRecipe]) -> tuple[np.ndarray, np.ndarray]:
    seed, spec, recipe = args
    extra = data.ExtraNodules(recipe.extra_nodules, recipe.extra_part_solid,
                              recipe.extra_on_vessel)
    images, labels = data.ct_case_patches(seed, spec, recipe.patches_per_case, recipe.patch,
                                          extra, recipe.branching_negatives)
    return images.astype(np.float16), labels


def _ct_whole(args: tuple[int, InputSpec, ModelRecipe]) -> tuple[np.ndarray, np.ndarray]:
    """A whole CT on the model grid, cropped or padded to ``patch``-cube around its centre."""
    seed, spec, recipe = args
    size = (spec.patch_size or (160,))[0]  # stored whole; training crops recipe.patch from it
    case = data.phantom.chest_case(seed)
    grid = data.phantom.ct_grid(case)
    hu, labels = data.phantom.render_ct(case, grid)
    if str(data.phantom.NODULE) not in recipe.card["output"]["labels"]:  # a lungs-only model
        labels = data.nodules_as_lung(case, grid, labels)
    image, model_labels = data.model_volume(data.axial_volume(hu, grid), spec, labels)
    assert model_labels is not None
    centre = [(n - 1) / 2 for n in image.shape]
    cube = data.centred_cube(image, centre, size, float(image.min()))
    labels_cube = data.centred_cube(model_labels, centre, size, 0)
    return cube[None, None].astype(np.float16), labels_cube[None]


def _volume_sets(recipe: ModelRecipe, spec: InputSpec, log: Log) -> dict[str, tuple]:
    make = _ct_patches if recipe.patches_per_case else _ct_whole
    sets = {}
    for name, seeds in (("train", recipe.train_seeds), ("validation", recipe.validation_seeds)):
        what = f"{recipe.patches_per_case} patches" if recipe.patches_per_case else "whole CT"
        log(f"rendering {len(seeds)} {name} cases x {what}")
        parts = _pool_map(make, [(s, spec, recipe) for s in seeds])
        sets[name] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return sets


def _radiograph_case(args: tuple[int, InputSpec, int]) -> list[tuple[np.ndarray, int, np.ndarray]]:
    seed, spec, crop = args
    return [(data.fit(image, crop, 0.0).astype(np.float16), target,
             data.evidence_target(image.shape, nodules, crop, spec.spacing[0]))
            for image, target, nodules in data.radiograph_samples(seed, spec)]


def _radiograph_sets(recipe: ModelRecipe, spec: InputSpec, log: Log) -> dict[str, tuple]:
    sets = {}
    for name, seeds in (("train", recipe.train_seeds), ("validation", recipe.validation_seeds)):
        log(f"rendering {len(seeds)} {name} radiograph cases")
        parts = _pool_map(_radiograph_case, [(s, spec, recipe.crop) for s in seeds])
        samples = [sample for part in parts for sample in part]
        sets[name] = (np.stack([s[0] for s in samples]), np.array([s[1] for s in samples]),
                      np.stack([s[2] for s in samples]))
    return sets


# ------------------------------------------------------------------ networks


def _device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _network(recipe: ModelRecipe):
    from medviewer.ai.weights import build_architecture

    card = ModelCard.from_dict(recipe.card, recipe.id)
    return build_architecture(card)


def _schedule(model, recipe: ModelRecipe):
    import torch

    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.learning_rate, total_steps=recipe.iterations, pct_start=0.15
    )
    return optimiser, scheduler


def _fit_segmentation(model, recipe: ModelRecipe, sets, device, log: Log, state) -> dict[str, Any]:
    import torch
    from monai.losses import DiceCELoss

    images, labels = sets["train"]
    rng = np.random.default_rng(1)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    optimiser, scheduler = _schedule(model, recipe)
    start = state.resume(model, optimiser, scheduler, rng)
    model.train()
    for step in range(start, recipe.iterations):
        pick = rng.integers(0, len(images), recipe.batch_size)
        x, y = sampling.random_shift(rng, images[pick], labels[pick])
        x = torch.from_numpy(sampling.intensity_jitter(rng, x)).to(device)
        y = torch.from_numpy(y.astype(np.int64))[:, None].to(device)
        loss = loss_fn(model(x), y)
        _optimise(optimiser, scheduler, loss, step, recipe, log)
        state.save(step + 1, model, optimiser, scheduler, rng)
    return _validate_segmentation(model, sets["validation"], device)


def _fit_volumes(model, recipe: ModelRecipe, sets, device, log: Log, state) -> dict[str, Any]:
    """3D training on patches (or random crops of whole CTs); Dice on the validation set."""
    import torch

    images, labels = sets["train"]
    rng = np.random.default_rng(1)
    loss_fn = _volume_loss(recipe)
    optimiser, scheduler = _schedule(model, recipe)
    start = state.resume(model, optimiser, scheduler, rng)
    model.train()
    for step in range(start, recipe.iterations):
        pick = rng.integers(0, len(images), recipe.batch_size)
        x, y = sampling.random_crops(rng, images[pick], labels[pick], recipe.patch)
        if recipe.flips:
            x, y = sampling.mirrored(rng, x, y)
        if recipe.partial_coverage:
            x, y = sampling.partial_coverage(rng, x, y, recipe.partial_coverage)
        x = torch.from_numpy(sampling.intensity_jitter(rng, x)).to(device)
        loss = loss_fn(model(x), _volume_target(recipe, y).to(device))
        _optimise(optimiser, scheduler, loss, step, recipe, log)
        state.save(step + 1, model, optimiser, scheduler, rng)
    return _validate_volumes(model, recipe, sets["validation"], device)


def _volume_loss(recipe: ModelRecipe):
    from monai.losses import DiceCELoss

    if recipe.card["output"]["activation"] == "sigmoid":  # one channel per label
        return DiceCELoss(sigmoid=True, batch=True)
    return DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)


def _volume_target(recipe: ModelRecipe, labels: np.ndarray):
    """Labels ``[B, ...]`` as the loss wants them: label indices, or one mask per label."""
    import torch

    if recipe.card["output"]["activation"] != "sigmoid":
        return torch.from_numpy(labels.astype(np.int64))[:, None]
    ids = [int(k) for k in recipe.card["output"]["labels"]]
    return torch.from_numpy(np.stack([labels == k for k in ids], axis=1).astype(np.float32))


def _validate_volumes(model, recipe: ModelRecipe, validation, device) -> dict[str, Any]:
    import torch

    from medviewer.training.metrics import dice

    images, labels = validation
    sigmoid = recipe.card["output"]["activation"] == "sigmoid"
    ids = [int(k) for k in recipe.card["output"]["labels"]]
    predicted = np.zeros(labels.shape, dtype=np.uint8)
    model.eval()
    with torch.inference_mode():
        for k in range(len(images)):
            out = model(torch.from_numpy(images[k : k + 1].astype(np.float32)).to(device))
            out = out.float().cpu().numpy()[0]
            if sigmoid:
                for channel, label in enumerate(ids):
                    predicted[k][out[channel] > 0] = label
            else:
                predicted[k] = out.argmax(axis=0)
    names = {int(k): v["name"] for k, v in recipe.card["output"]["labels"].items()}
    return {"samples": len(images),
            "dice_3d": {names[k]: round(dice(predicted, labels, k), 4) for k in ids}}


def _predict(model, images: np.ndarray, device, batch: int = 16) -> np.ndarray:
    import torch

    model.eval()
    outputs = []
    with torch.inference_mode():
        for k in range(0, len(images), batch):
            x = images[k : k + batch].astype(np.float32)
            x = torch.from_numpy(x if x.ndim == 4 else x[:, None]).to(device)
            outputs.append(torch.softmax(model(x).float(), dim=1).cpu().numpy())
    return np.concatenate(outputs)


def _validate_segmentation(model, validation, device) -> dict[str, Any]:
    from medviewer.training.metrics import dice

    images, labels = validation
    predicted = _predict(model, images, device).argmax(axis=1)
    names = {1: "left lung", 2: "right lung", 3: "nodule"}
    return {"slices": len(images),
            "dice_2d": {names[k]: round(dice(predicted, labels, k), 4) for k in names}}


def _fit_classifier(model, recipe: ModelRecipe, sets, device, log: Log, state) -> dict[str, Any]:
    import torch

    images, targets = _classifier_targets(sets["train"][:2])
    maps = sets["train"][2] if len(sets["train"]) > 2 else None
    if maps is None and sets["train"][1].ndim == 3 and hasattr(model, "evidence_map"):
        maps = sampling.label_evidence(sets["train"][1])  # CT slices: where the nodule voxels are
    positives, negatives = np.flatnonzero(targets == 1), np.flatnonzero(targets == 0)
    log(f"{len(positives)} positive and {len(negatives)} negative training samples")
    rng = np.random.default_rng(1)
    optimiser, scheduler = _schedule(model, recipe)
    start = state.resume(model, optimiser, scheduler, rng)
    model.train()
    half = recipe.batch_size // 2
    for step in range(start, recipe.iterations):
        pick = np.concatenate([rng.choice(positives, half), rng.choice(negatives, half)])
        if recipe.train_window and maps is not None:
            x, where = sampling.evidence_windows(
                rng, images[pick], maps[pick], recipe.train_window)
        else:
            x, where = sampling.random_shift_with_map(
                rng, images[pick], None if maps is None else maps[pick])
        x = torch.from_numpy(sampling.intensity_jitter(rng, x)).to(device)
        y = torch.from_numpy(targets[pick].astype(np.int64)).to(device)
        if where is None:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        else:  # one pass: the logits are the map's maximum; supervise the map where nodules are
            evidence = model.evidence_map(x)
            logits = torch.cat([torch.zeros_like(evidence[:, :1, 0, 0]),
                                evidence.flatten(2).amax(dim=2)], dim=1)
            expected = torch.from_numpy(where.astype(np.float32)).to(device)
            loss = torch.nn.functional.cross_entropy(logits, y)
            loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
                evidence[:, 0], expected, pos_weight=torch.tensor(20.0, device=device))
        _optimise(optimiser, scheduler, loss, step, recipe, log)
        state.save(step + 1, model, optimiser, scheduler, rng)
    val_images, val_targets = _classifier_targets(sets["validation"][:2])
    scores = _predict(model, val_images, device)[:, 1]
    from medviewer.training.metrics import roc_auc

    return {"samples": len(val_targets), "positives": int(val_targets.sum()),
            "auc": round(roc_auc(scores, val_targets), 4)}


def _classifier_targets(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Radiographs carry class targets; CT slices carry label maps (positive: any nodule)."""
    images, second = pair
    if second.ndim == 1:
        return images, second
    return images, (second == 3).any(axis=(1, 2)).astype(np.int64)


# ------------------------------------------------------------------ output


def library_versions() -> dict[str, str]:
    """Versions of what trained the model, for the card."""
    import monai
    import SimpleITK
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "monai": monai.__version__,
            "SimpleITK": SimpleITK.Version_VersionString()}


def _write(model, recipe: ModelRecipe, out: Path, validation, seconds, generated, device) -> Path:
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.safetensors"
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    card = json.loads(json.dumps(recipe.card))
    card["weights"]["sha256"] = file_sha256(weights)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    )
    card["metrics"] = {
        "training": {
            "seeds": recipe.seed_ranges(),
            "iterations": recipe.iterations,
            "batch_size": recipe.batch_size,
            "seconds": round(seconds, 1),
            "data_seconds": round(generated, 1),
            "device": device_name,
            "libraries": library_versions(),
            "command": f"python -m medviewer.training train {recipe.id} --out DIR",
        },
        "validation": validation,
    }
    ModelCard.from_dict(card, str(out / "model.json"))  # validate before writing
    path = out / "model.json"
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def _optimise(optimiser: Any, scheduler: Any, loss: Any, step: int, recipe: Any, log: Any) -> None:
    """One optimiser and scheduler step on `loss`, logged every 50 steps and at the end."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    scheduler.step()
    if step % 50 == 0 or step == recipe.iterations - 1:
        log(f"step {step}/{recipe.iterations} loss {loss.item():.4f}")
