"""Training data and training of the promptable demo network (``demo-ct-interactive``).

Samples are cubes of the card's region (:mod:`medviewer.ai.prompt_region`) centred on a
click inside a nodule, built by the same code the engine runs: the part of the phantom CT
around the nodule is rendered at the series' own pixels and slices, then the cube is
sampled through the affine. Each nodule gives two cubes: one centred on the nodule's centre
(the first click a user and the evaluation give) and one on a random voxel of it. How the
prompts are simulated and the network trained is :mod:`medviewer.training.prompting`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from medviewer.ai.model_card import InputSpec
from medviewer.ai.prompt_region import roi_grid, sample_cube, scaled
from medviewer.core.geometry import voxel_to_patient
from medviewer.synthetic import phantom
from medviewer.training import data

Log = Callable[[str], None]
MIN_DIAMETER_MM = 4.0
"""Nodules smaller than this are not trained on (the targets start at 6 mm)."""


def case_cubes(seed: int, spec: InputSpec, extra: data.ExtraNodules
               ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[n, d0, d1, d2]`` (intensity applied, float16) and truth masks (uint8) of
    the cubes of case `seed`'s nodules of at least :data:`MIN_DIAMETER_MM`."""
    case = phantom.with_extra_nodules(phantom.chest_case(seed), extra.count,
                                      extra.part_solid_share, extra.on_vessel_share)
    rng = np.random.default_rng([seed, 811])
    images, truths = [], []
    prompts = spec.prompts
    assert prompts is not None
    for nodule in case.nodules:
        if nodule.diameter_mm < MIN_DIAMETER_MM:
            continue
        reach = max(prompts.roi_mm) / 2 * np.sqrt(3) + nodule.diameter_mm / 2 + 4.0
        volume, truth = _nodule_region(case, nodule, reach)
        if truth is None:
            continue
        voxels = np.argwhere(truth)
        chosen = voxels[rng.integers(len(voxels))]
        random_click = voxel_to_patient(volume.affine, chosen[::-1].astype(float)[None])[0]
        for click in (np.asarray(nodule.centre_lps, float), random_click):
            grid = roi_grid(click, spec)
            image = scaled(sample_cube(volume, grid), spec)
            cube = sample_cube(volume, grid, truth.astype(np.float32), outside=0.0) >= 0.5
            if cube.any():
                images.append(image.astype(np.float16))
                truths.append(cube.astype(np.uint8))
    shape = roi_grid((0.0, 0.0, 0.0), spec).shape
    if not images:
        return np.zeros((0, *shape), np.float16), np.zeros((0, *shape), np.uint8)
    return np.stack(images), np.stack(truths)


def _nodule_region(case: phantom.ChestCase, nodule: phantom.Nodule, reach_mm: float):
    """The rendered CT around `nodule` (a Volume) and the nodule's truth component on it."""
    import SimpleITK as sitk

    full = phantom.ct_grid(case)
    sub = data._sub_grid(full, nodule.centre_lps, reach_mm)
    hu, labels = phantom.render_ct(case, sub)
    volume = data.axial_volume(hu, sub)
    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(
        sitk.GetImageFromArray((labels == phantom.NODULE).astype(np.uint8)), True))
    ijk = np.rint(np.linalg.solve(volume.affine[:3, :3],
                                  np.asarray(nodule.centre_lps) - volume.affine[:3, 3]))
    col, row, slc = (int(v) for v in ijk)
    if not all(0 <= v < n for v, n in zip((slc, row, col), labels.shape, strict=True)):
        return volume, None
    label = int(components[slc, row, col])
    return volume, (components == label if label else None)


def cube_sets(recipe: Any, spec: InputSpec, pool_map: Callable[..., list[Any]],
              log: Log) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cubes of the training and validation seeds (rendered in worker processes)."""
    extra = data.ExtraNodules(recipe.extra_nodules, recipe.extra_part_solid,
                              recipe.extra_on_vessel)
    sets = {}
    for name, seeds in (("train", recipe.train_seeds), ("validation", recipe.validation_seeds)):
        log(f"rendering the nodule cubes of {len(seeds)} {name} cases")
        parts = pool_map(_cubes_of, [(s, spec, extra) for s in seeds])
        sets[name] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        log(f"{len(sets[name][0])} {name} cubes")
    return sets


def _cubes_of(args: tuple[int, InputSpec, data.ExtraNodules]) -> tuple[np.ndarray, np.ndarray]:
    return case_cubes(*args)
