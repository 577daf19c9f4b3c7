"""Click-to-segment accuracy on held-out phantom CTs, with simulated clicks as nnInteractive
and RadioActive evaluate them: the first click at the object's centre (its voxel farthest
from its boundary), each next one at the centre of the largest error region (missed: a
positive click; extra: a negative one). Dice after each click, per object; means with 95 %
cluster-bootstrap intervals over cases (a case: one CT and its objects).

Objects: every nodule of at least 6 mm (its truth component), each lung, and (``--kinds``)
the heart and the aorta, whose truth is the phantom's own shapes as :func:`render_ct` draws
them (the heart's ellipsoid less the aorta; the aorta's tubes outside the lungs and airways).

``python -m medviewer.training evaluate-clicks --seeds 5000-5029 [--clicks 3]
[--kinds nodule,lung]``
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from medviewer.ai.interactive import InteractiveSession, Point
from medviewer.ai.interactive_engines import engine_named
from medviewer.core.geometry import voxel_to_patient
from medviewer.core.volume import Volume
from medviewer.synthetic import phantom
from medviewer.training import data
from medviewer.training.metrics import bootstrap, gather

NODULE_MIN_MM = 6.0


@dataclass(frozen=True)
class ObjectRun:
    """One object's Dice after each click, and the seconds each click took."""

    case: int
    kind: str  # "nodule" or "lung"
    size_mm: float
    dice: tuple[float, ...]
    seconds: tuple[float, ...]


def organ_truths(case: Any, grid: Any, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The heart and the aorta of a case rendered on `grid`, as the phantom draws them."""
    x, y = grid.xs()[None, :], grid.ys()[:, None]
    heart = np.stack([phantom._heart_mask(case, x, y, float(z)) for z in grid.zs()])
    aorta = np.zeros(labels.shape, dtype=bool)
    for region, ratio in phantom._tube_regions(grid, case.aorta):
        aorta[region] |= ratio < 1.0
    for region, ratio in phantom._tube_regions(grid, case.airways):
        aorta[region] &= ratio >= 1.25
    outside_lungs = labels == 0
    aorta &= outside_lungs
    return {"heart": heart & ~aorta & outside_lungs, "aorta": aorta}


def truth_objects(case: Any, volume: Volume, labels: np.ndarray, grid: Any = None
                  ) -> Iterator[tuple[str, float, np.ndarray]]:
    """(kind, size, truth mask) of each nodule >= 6 mm (its connected component holding its
    centre) and each lung of a rendered case; with its `grid`, the heart and the aorta too."""
    import SimpleITK as sitk

    components = sitk.GetArrayFromImage(sitk.ConnectedComponent(
        sitk.GetImageFromArray((labels == phantom.NODULE).astype(np.uint8)), True))
    for nodule in case.nodules:
        if nodule.diameter_mm < NODULE_MIN_MM:
            continue
        ijk = np.rint(np.linalg.solve(volume.affine[:3, :3],
                                      np.asarray(nodule.centre_lps) - volume.affine[:3, 3]))
        col, row, slc = (int(v) for v in ijk)
        inside = all(0 <= v < n for v, n in zip((slc, row, col), labels.shape, strict=True))
        label = int(components[slc, row, col]) if inside else 0
        if label:
            yield "nodule", float(nodule.diameter_mm), components == label
    for side in (phantom.LEFT_LUNG, phantom.RIGHT_LUNG):
        lung = labels == side
        if lung.any():
            yield "lung", 0.0, lung
    if grid is not None:
        for kind, mask in organ_truths(case, grid, labels).items():
            if mask.any():
                yield kind, 0.0, mask


def centre_voxel(mask: np.ndarray, spacing: np.ndarray) -> tuple[int, int, int]:
    """The voxel of `mask` farthest (mm) from its boundary."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([float(v) for v in spacing[::-1]])
    depth = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=True, squaredDistance=False, useImageSpacing=True))
    s, r, c = np.unravel_index(int(np.argmax(np.where(mask, depth, -np.inf))), mask.shape)
    return int(s), int(r), int(c)


def largest_error(prediction: np.ndarray, truth: np.ndarray
                  ) -> tuple[np.ndarray, bool] | None:
    """The largest connected region of missed (True) or extra (False) voxels."""
    import SimpleITK as sitk

    best: tuple[int, np.ndarray, bool] | None = None
    for error, positive in ((truth & ~prediction, True), (prediction & ~truth, False)):
        if not error.any():
            continue
        components = sitk.RelabelComponent(sitk.ConnectedComponent(
            sitk.GetImageFromArray(error.astype(np.uint8)), True))
        region = sitk.GetArrayFromImage(components) == 1
        size = int(region.sum())
        if best is None or size > best[0]:
            best = (size, region, positive)
    return None if best is None else (best[1], best[2])


def run_object(volume: Volume, truth: np.ndarray, clicks: int, engine: str = "classical",
               ) -> tuple[list[float], list[float]]:
    """Dice and seconds after each simulated click on one object."""
    spacing = volume.spacing[::-1]
    session = InteractiveSession(volume, engine_named(engine))
    dices: list[float] = []
    seconds: list[float] = []
    target, positive = truth, True
    prediction = np.zeros(truth.shape, dtype=bool)
    for _ in range(clicks):
        s, r, c = centre_voxel(target, spacing)
        x, y, z = (float(v) for v in voxel_to_patient(volume.affine, np.asarray([c, r, s], float)))
        started = time.perf_counter()
        prediction = session.add_prompt("object", Point((x, y, z), positive=positive))
        seconds.append(time.perf_counter() - started)
        dices.append(_dice(prediction, truth))
        error = largest_error(prediction, truth)
        if error is None:
            dices.extend([dices[-1]] * (clicks - len(dices)))
            break
        target, positive = error
    return dices, seconds


def evaluate_clicks(seeds: range, clicks: int = 3, engine: str = "classical",
                    log: Callable[[str], None] = print,
                    kinds: tuple[str, ...] = ("nodule", "lung")) -> dict[str, Any]:
    """Simulated clicks on every object (of `kinds`) of the phantom CTs of `seeds`: per-click
    mean Dice with intervals, per kind; and the click latency."""
    runs: list[ObjectRun] = []
    for index, seed in enumerate(seeds):
        case = phantom.chest_case(seed)
        grid = phantom.ct_grid(case)
        hu, labels = phantom.render_ct(case, grid)
        volume = data.axial_volume(hu, grid)
        organs = grid if {"heart", "aorta"} & set(kinds) else None
        for kind, size, truth in truth_objects(case, volume, labels, organs):
            if kind not in kinds:
                continue
            dices, seconds = run_object(volume, truth, clicks, engine)
            runs.append(ObjectRun(index, kind, size, tuple(dices), tuple(seconds)))
            log(f"seed {seed} {kind} {size:.1f} mm: Dice " +
                " ".join(f"{d:.3f}" for d in dices) +
                f" ({' '.join(f'{1000 * t:.0f}' for t in seconds)} ms)")
    return summarise_runs(runs, len(seeds), clicks, engine, f"{seeds.start}-{seeds.stop - 1}")


def summarise_runs(runs: list[ObjectRun], cases: int, clicks: int, engine: str,
                   seeds: str) -> dict[str, Any]:
    """Per kind: mean Dice after each click (cluster bootstrap over cases) and how many
    objects; the median click latency per kind."""
    report: dict[str, Any] = {"engine": engine, "seeds": seeds, "cases": cases,
                              "clicks": clicks, "kinds": {}}
    for kind in sorted({r.kind for r in runs}):
        mine = [r for r in runs if r.kind == kind]
        per_click = []
        for k in range(clicks):
            groups = [np.asarray([r.dice[k] for r in mine if r.case == c]) for c in range(cases)]

            def statistic(index: np.ndarray, g: list[np.ndarray] = groups) -> float:
                return _mean(gather(g, index))

            interval = bootstrap(statistic, cases)
            per_click.append(interval.to_json(3))
        times = [t for r in mine for t in r.seconds]
        report["kinds"][kind] = {
            "objects": len(mine), "dice_per_click": per_click,
            "median_seconds_per_click": round(float(np.median(times)), 3) if times else None,
            "min_dice_after_last_click": round(min(r.dice[-1] for r in mine), 3),
        }
    return report


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0
