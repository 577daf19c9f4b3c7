"""Training samples made from phantoms, through the same model-grid code the app runs.

Each sample is rendered by :mod:`medviewer.synthetic.phantom` at the acquisition's own
resolution (512 x 512 CT pixels, 1 mm radiograph pixels) and only then mapped to the model's
grid with :func:`medviewer.ai.transforms.model_grid_for` and the card's intensity ops, exactly as
:class:`medviewer.ai.runner.Runner` maps a loaded series. So what a model learns from is what it
will see in the viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from medviewer.ai.model_card import InputSpec
from medviewer.core.volume import Volume
from medviewer.synthetic import phantom


@dataclass(frozen=True)
class ExtraNodules:
    """Nodules drawn into a training case beyond its own (see
    :func:`medviewer.synthetic.phantom.with_extra_nodules`)."""

    count: int = 0
    part_solid_share: float = 0.0
    on_vessel_share: float = 0.0


def axial_volume(hu: np.ndarray, grid: phantom.AxialGrid) -> Volume:
    """A Volume for an array rendered on `grid` (slice step nominal when uneven)."""
    zs = np.asarray(grid.z_positions, dtype=float)
    steps = np.diff(zs)
    even = len(zs) > 1 and np.allclose(steps, steps[0], atol=1e-3)
    step = float(steps[0]) if even else 1.0
    affine = np.diag([grid.pixel_spacing, grid.pixel_spacing, step, 1.0])
    affine[:3, 3] = (grid.origin_xy[0], grid.origin_xy[1], zs[0])
    return Volume(hu, affine)


def radiograph_volume(radiograph: phantom.Radiograph) -> Volume:
    """The radiograph as medviewer loads an unpositioned DX: identity axes, pixel spacing."""
    spacing = radiograph.pixel_spacing
    affine = np.diag([spacing, spacing, 1.0, 1.0])
    return Volume(radiograph.pixels[None].astype(np.float32), affine)


def model_slices(volume: Volume, spec: InputSpec, labels: np.ndarray | None = None):
    """Images ``[n, d0, d1]`` (float32, intensity applied per slice) and labels for a 2D card."""
    import torch

    from medviewer.ai.transforms import apply_intensity, model_grid_for

    grid = model_grid_for(volume.affine, volume.shape, spec)
    image = grid.to_model(volume.array.astype(np.float32))  # [d0, d1, n]
    tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, 2, 0)))[:, None]
    if spec.intensity:
        tensor = torch.stack([apply_intensity(t, spec.intensity) for t in tensor])
        tensor = tensor.as_tensor() if hasattr(tensor, "as_tensor") else tensor
    images = np.asarray(tensor[:, 0], dtype=np.float32)
    if labels is None:
        return images, None
    model_labels = grid.to_model(labels.astype(np.float32), linear=False)
    return images, np.moveaxis(model_labels, 2, 0).round().astype(np.uint8)


def choose_slices(case: phantom.ChestCase, count: int, seed: int) -> list[int]:
    """`count` slice indices of the case's CT: half through nodules when it has any."""
    zs = np.asarray(phantom.ct_grid(case, size=8).z_positions)
    rng = np.random.default_rng([seed, 55])
    through = np.zeros(zs.shape, dtype=bool)
    for nodule in case.nodules:
        through |= np.abs(zs - nodule.centre_lps[2]) < nodule.diameter_mm / 2
    picked: set[int] = set()
    candidates = np.flatnonzero(through)
    if candidates.size:
        chosen = rng.choice(candidates, min(count // 2, candidates.size), replace=False)
        picked.update(chosen.tolist())
    rest = np.setdiff1d(np.arange(zs.size), np.fromiter(picked, int, len(picked)))
    picked.update(rng.choice(rest, min(count - len(picked), rest.size), replace=False).tolist())
    return sorted(int(k) for k in picked)


def ct_case_slices(seed: int, spec: InputSpec, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` axial slices of case `seed` on the model grid: (images, labels).

    Images are ``[n, 2c+1, H, W]`` with c = ``spec.context_slices``: each sample's neighbours
    in increasing z, repeated at the ends of the series, as the runner stacks them. Labels are
    the centre slices' ``[n, H, W]``.
    """
    case = phantom.chest_case(seed)
    full = phantom.ct_grid(case)
    last = len(full.z_positions) - 1
    context = spec.context_slices
    centres = choose_slices(case, count, seed)
    def around(k: int) -> list[int]:
        return [min(max(k + j, 0), last) for j in range(-context, context + 1)]

    needed = sorted({n for k in centres for n in around(k)})
    grid = replace(full, z_positions=tuple(full.z_positions[k] for k in needed))
    hu, labels = phantom.render_ct(case, grid)
    images, model_labels = model_slices(axial_volume(hu, grid), spec, labels)
    assert model_labels is not None
    row = {k: i for i, k in enumerate(needed)}
    stacks = np.stack([images[[row[n] for n in around(k)]] for k in centres])
    return stacks, model_labels[[row[k] for k in centres]]


def fit(array: np.ndarray, size: int, fill: float) -> np.ndarray:
    """Centre-crop or pad the last two dims of `array` to `size` x `size`."""
    out = np.full((*array.shape[:-2], size, size), fill, dtype=array.dtype)
    h, w = array.shape[-2:]
    src_r, dst_r = _centred(h, size)
    src_c, dst_c = _centred(w, size)
    out[..., dst_r, dst_c] = array[..., src_r, src_c]
    return out


def _centred(n: int, size: int) -> tuple[slice, slice]:
    if n >= size:
        start = (n - size) // 2
        return slice(start, start + size), slice(0, size)
    start = (size - n) // 2
    return slice(0, n), slice(start, start + n)


def radiograph_samples(seed: int, spec: InputSpec) -> list[tuple[np.ndarray, int, tuple]]:
    """Model-grid radiographs of case `seed`: (image [H, W], class, nodules ≥ 8 mm).

    Each nodule is (row, col, diameter mm), row and col in model-grid pixels.

    A case with a nodule of 8 mm or more also gives its twin without nodules, labelled
    normal: a matched pair that teaches the nodule and nothing else.
    """
    case = phantom.chest_case(seed)
    variants = [case]
    if case.radiograph_class == "nodule":
        variants.append(replace(case, nodules=()))
    from medviewer.ai.transforms import model_grid_for

    samples = []
    for variant in variants:
        radiograph = phantom.render_radiograph(variant)
        volume = radiograph_volume(radiograph)
        images, _ = model_slices(volume, spec)
        grid = model_grid_for(volume.affine, volume.shape, spec)  # PLS: d0 rows, d1 cols
        target = 1 if variant.radiograph_class == "nodule" else 0
        nodules = []
        for n in variant.nodules:
            if n.diameter_mm >= phantom.RADIOGRAPH_NODULE_MM:
                row, col = radiograph.project(n.centre_lps)
                nodules.append(((row - grid.offset[0]) / grid.scale[0],
                                (col - grid.offset[1]) / grid.scale[1], n.diameter_mm))
        samples.append((images[0], target, tuple(nodules)))
    return samples


# ------------------------------------------------------------------ 3D patches


def patch_centres(case: phantom.ChestCase, count: int, seed: int,
                  branching_share: float = 0.0) -> list[tuple[float, ...]]:
    """`count` patch centres (LPS mm) for a 3D nodule model: nodules first, then the lungs.

    Half the patches hold a nodule (its centre moved by up to 20 mm, so nodules are seen off
    the patch centre too); the rest are random points inside the lungs, which is where the
    vessels are that a nodule model must tell apart, and one in four of those random points
    anywhere in the lungs' box (chest wall, mediastinum, spine), because the model runs over
    the whole box of the grown lung mask. A `branching_share` of the points without a nodule
    are hard negatives instead: a branching of a vessel at least 3 mm thick (moved by up to
    4 mm), where a vessel looks most like a ball.
    """
    rng = np.random.default_rng([seed, 56])
    centres: list[tuple[float, ...]] = []
    nodules = list(case.nodules)
    rng.shuffle(nodules)
    for nodule in nodules[: count // 2]:
        shift = rng.uniform(-20.0, 20.0, 3)
        centres.append(tuple(float(v) for v in np.asarray(nodule.centre_lps) + shift))
    points, box = _lung_points(case)
    branchings = vessel_branchings(case)
    while len(centres) < count:
        if branchings.size and rng.random() < branching_share:
            where = branchings[rng.integers(len(branchings))] + rng.uniform(-4.0, 4.0, 3)
            centres.append(tuple(float(v) for v in where))
        elif rng.random() < 0.25:
            centres.append(tuple(float(v) for v in rng.uniform(box[0], box[1])))
        else:
            centres.append(tuple(float(v) for v in points[rng.integers(len(points))]))
    return centres


def vessel_branchings(case: phantom.ChestCase, min_radius_mm: float = 1.5) -> np.ndarray:
    """LPS points (N x 3) where a vessel of radius >= `min_radius_mm` ends and branches."""
    ends = [t.p1 for t in case.vessels if t.r1 >= min_radius_mm]
    return np.array(ends, dtype=float).reshape(-1, 3)


def _lung_points(case: phantom.ChestCase) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """LPS points inside the lungs (a coarse, noise-free render) and the lungs' box."""
    full = phantom.ct_grid(case)
    step = 8
    coarse = replace(full, rows=full.rows // step, cols=full.cols // step,
                     pixel_spacing=full.pixel_spacing * step,
                     z_positions=full.z_positions[:: max(1, round(6.0 / case.slice_spacing_mm))])
    _, labels = phantom.render_ct(case, coarse, noise=False)
    k, r, c = np.nonzero((labels == phantom.LEFT_LUNG) | (labels == phantom.RIGHT_LUNG))
    points = np.stack([coarse.xs()[c], coarse.ys()[r], coarse.zs()[k]], axis=1)
    return points, (points.min(axis=0), points.max(axis=0))


def ct_patch(case: phantom.ChestCase, centre: tuple[float, ...], spec: InputSpec,
             size: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``size``-cube (model voxels) of case's CT centred on `centre`: (image, labels).

    Only the part of the 512 x 512 series around the patch is rendered, at the series' own
    pixels and slices, then mapped to the model grid as the runner maps a series (so the
    patch is what the model sees at inference). Beyond the series' edge the image is the
    intensity of air after the card's ops, and the labels background.
    """
    full = phantom.ct_grid(case)
    sub = _sub_grid(full, centre, size * max(spec.spacing or (1.0,)) / 2 + 4.0)
    hu, labels = phantom.render_ct(case, sub)
    volume = axial_volume(hu, sub)
    images, model_labels = model_volume(volume, spec, labels)
    grid = _grid_of(volume, spec)
    origin = (sub.origin_xy[1], sub.origin_xy[0], sub.z_positions[0])  # PLS: row, col, slice
    steps = grid.spacing
    index = [(centre[a] - origin[i]) / steps[i] for i, a in enumerate((1, 0, 2))]
    air = float(images.min()) if images.size else 0.0
    return centred_cube(images, index, size, air), centred_cube(model_labels, index, size, 0)


def model_volume(volume: Volume, spec: InputSpec, labels: np.ndarray | None = None):
    """A 3D card's model-grid image (intensity applied) and labels (nearest) for `volume`."""
    import torch

    from medviewer.ai.transforms import apply_intensity

    grid = _grid_of(volume, spec)
    image = grid.to_model(volume.array.astype(np.float32))
    if spec.intensity:
        tensor = apply_intensity(torch.from_numpy(image)[None], spec.intensity)
        tensor = tensor.as_tensor() if hasattr(tensor, "as_tensor") else tensor
        image = np.asarray(tensor[0], dtype=np.float32)
    if labels is None:
        return image, None
    return image, grid.to_model(labels.astype(np.float32), linear=False).round().astype(np.uint8)


def _grid_of(volume: Volume, spec: InputSpec):
    from medviewer.ai.transforms import model_grid_for

    return model_grid_for(volume.affine, volume.shape, spec)


def _sub_grid(full: phantom.AxialGrid, centre: tuple[float, ...], half_mm: float):
    """The rows, columns and slices of `full` within `half_mm` of `centre` (at least one each)."""
    s = full.pixel_spacing
    c0 = int(np.clip(np.floor((centre[0] - half_mm - full.origin_xy[0]) / s), 0, full.cols - 1))
    c1 = int(np.clip(np.ceil((centre[0] + half_mm - full.origin_xy[0]) / s) + 1, c0 + 1, full.cols))
    r0 = int(np.clip(np.floor((centre[1] - half_mm - full.origin_xy[1]) / s), 0, full.rows - 1))
    r1 = int(np.clip(np.ceil((centre[1] + half_mm - full.origin_xy[1]) / s) + 1, r0 + 1, full.rows))
    zs = np.asarray(full.z_positions)
    near = np.flatnonzero(np.abs(zs - centre[2]) <= half_mm)
    if near.size < 2:  # beyond the series: its two nearest slices
        near = np.sort(np.argsort(np.abs(zs - centre[2]))[:2])
    return phantom.AxialGrid(
        rows=r1 - r0, cols=c1 - c0, pixel_spacing=s,
        origin_xy=(full.origin_xy[0] + c0 * s, full.origin_xy[1] + r0 * s),
        z_positions=tuple(float(zs[k]) for k in near),
    )


def centred_cube(
    array: np.ndarray, centre_index: list[float], size: int, fill: float
) -> np.ndarray:
    """The ``size``-cube of `array` whose centre is nearest `centre_index`, padded with `fill`."""
    out = np.full((size, size, size), fill, dtype=array.dtype)
    src, dst = [], []
    for axis, c in enumerate(centre_index):
        start = round(c - (size - 1) / 2)
        lo, hi = max(start, 0), min(start + size, array.shape[axis])
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[tuple(dst)] = array[tuple(src)]
    return out


def ct_case_patches(seed: int, spec: InputSpec, count: int, size: int,
                    extra: ExtraNodules | None = None,
                    branching_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """`count` patches of case `seed` (with `extra` nodules drawn into it, and a
    `branching_share` of its nodule-free patches at vessel branchings, see
    :func:`patch_centres`): images ``[n, 1, size, size, size]`` and labels
    ``[n, size, size, size]``."""
    case = phantom.chest_case(seed)
    if extra is not None and extra.count:
        case = phantom.with_extra_nodules(case, extra.count, extra.part_solid_share,
                                          extra.on_vessel_share)
    centres = patch_centres(case, count, seed, branching_share)
    pairs = [ct_patch(case, c, spec, size) for c in centres]
    return np.stack([p[0] for p in pairs])[:, None], np.stack([p[1] for p in pairs])


def nodules_as_lung(case: phantom.ChestCase, grid: phantom.AxialGrid,
                    labels: np.ndarray) -> np.ndarray:
    """`labels` with each nodule voxel given its lung's label (the lungs as a lung model sees
    them: a nodule is part of the lung it grows in, as ``fill_holes`` makes it)."""
    k, r, c = np.nonzero(labels == phantom.NODULE)
    if not k.size or not case.nodules:
        return labels
    points = np.stack([grid.xs()[c], grid.ys()[r], grid.zs()[k]], axis=1)
    centres = np.array([n.centre_lps for n in case.nodules])
    nearest = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    out = labels.copy()
    out[k, r, c] = np.array([n.side for n in case.nodules], dtype=labels.dtype)[nearest]
    return out


def evidence_target(shape, nodules, crop: int, spacing: float, stride: int = 8) -> np.ndarray:
    """Where the evidence map should fire: cells within a nodule's radius (after `fit`).

    ``[crop // stride] * 2`` uint8; cell i covers model pixels ``stride*i .. stride*i+stride-1``.
    """
    cells = crop // stride
    target = np.zeros((cells, cells), dtype=np.uint8)
    shifts = [(crop - n) // 2 if n < crop else -((n - crop) // 2) for n in shape]
    centres = (np.arange(cells) + 0.5) * stride - 0.5
    for row, col, diameter in nodules:
        r, c = row + shifts[0], col + shifts[1]
        radius = max(diameter / 2 / spacing, stride * 0.75)  # at least the nearest cell
        near = np.hypot(centres[:, None] - r, centres[None, :] - c) <= radius
        target[near] = 1
    return target
