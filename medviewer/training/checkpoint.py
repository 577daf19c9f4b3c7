"""Resumable training: the rendered data and the optimiser's progress, kept beside the output.

A run writes into ``OUT/.training/``: ``data/*.npy`` (the rendered training and validation
sets, read back with ``allow_pickle=False``), ``checkpoint.pt`` (model, optimiser and scheduler
state, read back with ``torch.load(weights_only=True)``, which refuses anything but tensors
and plain containers), with the step and the sampling generator's state as JSON text, all in
one file written atomically.
``recipe.json`` fingerprints the recipe: data rendered for other seeds or another input is
cleared, and a checkpoint of other training settings (iterations, batch, rate) is not resumed.
A finished run removes its checkpoint and keeps the data; an interrupted one resumes
where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.core.staging import staged_file
from medviewer.training.specs import ModelRecipe

EVERY = 100  # steps between checkpoints


def recipe_fingerprint(recipe: ModelRecipe, *, data_only: bool = False) -> str:
    """sha256 of what in the recipe changes the data (`data_only`) or the whole run."""
    fields = dict(recipe.__dict__)
    if data_only:
        fields = {key: fields[key] for key in _DATA_FIELDS}
        fields["input"] = recipe.card["input"]
        fields["code"] = _data_code_hash(recipe.card["task"] == "interactive")
    text = json.dumps(fields, sort_keys=True, default=str)  # ranges as "range(a, b)"
    return hashlib.sha256(text.encode()).hexdigest()


_DATA_FIELDS = ("id", "train_seeds", "validation_seeds", "crop", "slices_per_case", "patch",
                "patches_per_case", "extra_nodules", "extra_part_solid", "extra_on_vessel",
                "branching_negatives")


def _data_code_hash(cubes: bool = False) -> str:
    """sha256 of the code that renders training data (the phantom and the sampling; with
    `cubes`, the promptable model's cubes too), so data rendered by earlier code is not
    reused."""
    from medviewer.ai import prompt_region
    from medviewer.synthetic import phantom
    from medviewer.training import data, interactive

    digest = hashlib.sha256()
    for module in (phantom, data, *((prompt_region, interactive) if cubes else ())):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


class TrainingState:
    """The cache and checkpoint folder of one training run into `out`."""

    def __init__(self, out: Path, recipe: ModelRecipe, log: Callable[[str], None]) -> None:
        self.root = out / ".training"
        self.log = log
        stamp = self.root / "recipe.json"
        now = {"id": recipe.id, "data": recipe_fingerprint(recipe, data_only=True),
               "run": recipe_fingerprint(recipe)}
        try:
            before = json.loads(stamp.read_text()) if self.root.exists() else now
        except (OSError, ValueError):
            before = {}
        if before.get("data") != now["data"]:
            log(f"{self.root} holds another recipe's data: starting afresh")
            shutil.rmtree(self.root)
        elif before.get("run") != now["run"] and (self.root / "checkpoint.pt").exists():
            log(f"{self.root} holds another recipe's checkpoint: training afresh on its data")
            (self.root / "checkpoint.pt").unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(now) + "\n")

    # ---------------------------------------------------------------- data

    def data(self, make: Callable[[], dict[str, tuple[np.ndarray, ...]]]
             ) -> dict[str, tuple[np.ndarray, ...]]:
        """The training sets: read from the cache, else made by `make` and cached."""
        folder = self.root / "data"
        index = folder / "index.json"
        if index.is_file():
            counts = json.loads(index.read_text())
            self.log(f"reading cached data from {folder}")
            return {name: tuple(np.load(folder / f"{name}-{i}.npy", allow_pickle=False)
                                for i in range(count)) for name, count in counts.items()}
        sets = make()
        folder.mkdir(exist_ok=True)
        for name, arrays in sets.items():
            for i, array in enumerate(arrays):
                with staged_file(folder / f"{name}-{i}.npy") as part, open(part, "wb") as out:
                    np.save(out, array, allow_pickle=False)
        index.write_text(json.dumps({name: len(arrays) for name, arrays in sets.items()}))
        return sets

    # ---------------------------------------------------------------- progress

    def resume(self, model: Any, optimiser: Any, scheduler: Any,
               rng: np.random.Generator) -> int:
        """Load the last checkpoint into the objects given; return the step to start from."""
        import torch

        path = self.root / "checkpoint.pt"
        if not path.is_file():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        info = json.loads(state["progress"])
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = info["rng"]
        self.log(f"resuming at step {info['step']}")
        return int(info["step"])

    def save(self, step: int, model: Any, optimiser: Any, scheduler: Any,
             rng: np.random.Generator, *, force: bool = False) -> None:
        """Checkpoint after `step` steps, every :data:`EVERY` steps (or when `force`)."""
        import torch

        if not force and step % EVERY:
            return
        state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                 "scheduler": scheduler.state_dict(),
                 "progress": json.dumps({"step": step, "rng": rng.bit_generator.state})}
        with staged_file(self.root / "checkpoint.pt") as part:
            torch.save(state, part)

    def finish(self) -> None:
        """The run is written: remove the checkpoint (the rendered data stays, for the next
        run of a recipe with the same data; delete ``OUT/.training`` to reclaim the space)."""
        (self.root / "checkpoint.pt").unlink(missing_ok=True)
