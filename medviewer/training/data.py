"""Training samples made from phantoms, through the same model-grid code the app runs.

Each sample is rendered by :mod:`medviewer.synthetic.phantom` at the acquisition's own
resolution (512 x 512 CT pixels, 1 mm radiograph pixels) and only then mapped to the model's
grid with :func:`medviewer.ai.transforms.model_grid_for` and the card's intensity ops, exactly as
:class:`medviewer.ai.runner.Runner` maps a loaded series. So what a model learns from is what it
will see in the viewer.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from medviewer.ai.model_card import InputSpec
from medviewer.core.volume import Volume
from medviewer.synthetic import phantom


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
