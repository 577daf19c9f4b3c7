"""The region an interactive (promptable) model sees, and its prompt channels.

An interactive card (``task: "interactive"``, :class:`~medviewer.ai.model_card.PromptSpec`)
runs on a cube of ``roi_mm`` centred on the object's first prompt, on the card's grid: model
dim ``d_i`` runs toward the card's orientation letter ``i`` (``"LPS"``: d0 toward the
patient's left, d1 posterior, d2 superior) at ``spacing[i]`` mm. The cube is sampled from the
series through its affine (linear for the image, so an oblique or anisotropic series is read
in true patient space), and the model's output is sampled back onto the series' own voxels
inside the cube. Training (:mod:`medviewer.training.interactive`) builds its cubes with the
same code, so the network sees at inference what it saw in training.

Prompts become channels as the card says: each prompt voxel a Gaussian of sigma
``radius_mm`` (peak 1; the maximum over voxels) or a ball of that radius, computed from a
distance map in mm (SimpleITK), so a long scribble costs what a click costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medviewer.ai.model_card import InputSpec, PromptSpec
from medviewer.core.geometry import letter_vector, patient_to_voxel, voxel_to_patient
from medviewer.core.volume import Volume


@dataclass(frozen=True)
class RoiGrid:
    """A cube on the model's grid in patient space.

    Attributes
    ----------
    shape : tuple of int
        Model voxels along ``(d0, d1, d2)``.
    spacing : tuple of float
        mm per model voxel along each dim.
    axes : ndarray
        3 x 3; column ``i`` is the LPS unit vector model dim ``i`` runs along.
    origin : ndarray
        LPS position (mm) of model voxel ``(0, 0, 0)``'s centre.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    axes: np.ndarray
    origin: np.ndarray

    @property
    def affine(self) -> np.ndarray:
        """4 x 4 map from model index ``(d0, d1, d2, 1)`` to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.axes * np.asarray(self.spacing)
        affine[:3, 3] = self.origin
        return affine

    def to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS points (N x 3) as continuous model indices (N x 3)."""
        return patient_to_voxel(self.affine, np.asarray(lps, float).reshape(-1, 3))

    def corners(self) -> np.ndarray:
        """The 8 corner voxel centres in LPS (8 x 3)."""
        ranges = [(0, n - 1) for n in self.shape]
        index = np.array([[a, b, c] for a in ranges[0] for b in ranges[1] for c in ranges[2]],
                         dtype=float)
        return voxel_to_patient(self.affine, index)


def roi_grid(centre_lps: Sequence[float] | np.ndarray, spec: InputSpec) -> RoiGrid:
    """The cube of ``spec.prompts.roi_mm`` centred on `centre_lps`, on the card's grid."""
    prompts = _prompts(spec)
    assert spec.spacing is not None
    spacing = tuple(float(s) for s in spec.spacing)
    shape = tuple(max(1, round(r / s)) for r, s in zip(prompts.roi_mm, spacing, strict=True))
    axes = np.array([letter_vector(c) for c in spec.orientation], dtype=float).T
    half = (np.asarray(shape, float) - 1) / 2 * np.asarray(spacing)
    origin = np.asarray(centre_lps, float) - axes @ half
    return RoiGrid(shape, spacing, axes, origin)  # type: ignore[arg-type]


def native_box(volume: Volume, grid: RoiGrid, margin: int = 1) -> tuple[slice, slice, slice]:
    """The ``(slice, row, col)`` index box of `volume` that holds `grid` (plus `margin`
    voxels), clipped to the series; empty slices when the cube misses the series."""
    ijk = patient_to_voxel(volume.affine, grid.corners())  # (col, row, slice)
    low = np.floor(ijk.min(axis=0)).astype(int) - margin
    high = np.ceil(ijk.max(axis=0)).astype(int) + margin + 1
    size = (volume.shape[2], volume.shape[1], volume.shape[0])
    low = np.clip(low, 0, size)
    high = np.clip(high, low, size)
    return (slice(int(low[2]), int(high[2])), slice(int(low[1]), int(high[1])),
            slice(int(low[0]), int(high[0])))


def sample_cube(volume: Volume, grid: RoiGrid, array: np.ndarray | None = None, *,
                linear: bool = True, outside: float | None = None) -> np.ndarray:
    """`array` (default: the volume's image; any array shaped like the volume) sampled on
    `grid`: float32 ``[d0, d1, d2]``. Beyond the series: `outside` (default: the box's
    minimum, the air of a CT)."""
    import SimpleITK as sitk

    source = volume.array if array is None else array
    box = native_box(volume, grid)
    crop = np.ascontiguousarray(source[box], dtype=np.float32)
    if crop.size == 0:
        return np.full(grid.shape, 0.0 if outside is None else outside, np.float32)
    image = _sitk_box(volume, box, crop)
    resample = sitk.ResampleImageFilter()
    resample.SetReferenceImage(_sitk_grid(grid))
    resample.SetInterpolator(sitk.sitkLinear if linear else sitk.sitkNearestNeighbor)
    resample.SetDefaultPixelValue(float(crop.min()) if outside is None else float(outside))
    out = sitk.GetArrayFromImage(resample.Execute(image))  # [d2, d1, d0]
    return np.ascontiguousarray(out.transpose(2, 1, 0), dtype=np.float32)


def scaled(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """`image` (a cube) with the card's intensity ops applied, float32."""
    import torch

    from medviewer.ai.transforms import apply_intensity

    if not spec.intensity:
        return image.astype(np.float32)
    tensor = apply_intensity(torch.from_numpy(image)[None], spec.intensity)
    tensor = tensor.as_tensor() if hasattr(tensor, "as_tensor") else tensor
    return np.asarray(tensor[0], dtype=np.float32)


def paste_back(volume: Volume, grid: RoiGrid, probability: np.ndarray,
               threshold: float = 0.5) -> np.ndarray:
    """A model-grid probability cube as a boolean mask on the series grid: the probability
    sampled (linear) at each series voxel inside the cube, at or above `threshold`."""
    mask = np.zeros(volume.shape, dtype=bool)
    box, crop = paste_box(volume, grid, probability, threshold)
    mask[box] = crop
    return mask


def paste_box(volume: Volume, grid: RoiGrid, probability: np.ndarray,
              threshold: float = 0.5) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """:func:`paste_back` on the series' box that holds the cube only: ``(box, mask of the
    box)`` (no whole-series array: a CT is 70 M voxels)."""
    import SimpleITK as sitk

    box = native_box(volume, grid, margin=0)
    shape = [s.stop - s.start for s in box]
    if any(n <= 0 for n in shape):
        return box, np.zeros([max(n, 0) for n in shape], dtype=bool)
    cube = sitk.GetImageFromArray(np.ascontiguousarray(probability.transpose(2, 1, 0),
                                                       dtype=np.float32))
    cube.CopyInformation(_sitk_grid(grid))
    target = _sitk_box(volume, box, np.zeros(shape, np.float32))
    resample = sitk.ResampleImageFilter()
    resample.SetReferenceImage(target)
    resample.SetInterpolator(sitk.sitkLinear)
    resample.SetDefaultPixelValue(0.0)
    return box, sitk.GetArrayFromImage(resample.Execute(cube)) >= threshold


def prompt_channels(spec: PromptSpec, grid: RoiGrid, positive: np.ndarray,
                    negative: np.ndarray, previous: np.ndarray | None,
                    boxes: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> dict[str, np.ndarray]:
    """The non-image channels the card names, each float32 ``grid.shape``.

    `positive` and `negative` are model indices (N x 3, continuous; those outside the cube
    dropped); `previous` the object's mask on the cube (or None); `boxes` pairs of
    opposite model-index corners.
    """
    out: dict[str, np.ndarray] = {}
    for name in spec.channels:
        if name == "positive":
            out[name] = _click_map(spec, grid, positive)
        elif name == "negative":
            out[name] = _click_map(spec, grid, negative)
        elif name == "previous":
            out[name] = (np.zeros(grid.shape, np.float32) if previous is None
                         else (previous > 0.5).astype(np.float32))
        elif name == "box":
            out[name] = _box_map(grid, boxes)
    return out


def stack_channels(spec: PromptSpec, image: np.ndarray,
                   channels: dict[str, np.ndarray]) -> np.ndarray:
    """``[C, d0, d1, d2]`` in the card's channel order (`image` already intensity-scaled)."""
    return np.stack([image if name == "image" else channels[name] for name in spec.channels])


def _click_map(spec: PromptSpec, grid: RoiGrid, points: np.ndarray) -> np.ndarray:
    """Each point's Gaussian (or ball) at its exact position; past :data:`EXACT_POINTS`
    points (a long scribble) from a distance map to the points' nearest voxels."""
    points = np.asarray(points, float).reshape(-1, 3)
    top = np.asarray(grid.shape) - 0.5
    points = points[np.all((points >= -0.5) & (points < top), axis=1)]
    if not len(points):
        return np.zeros(grid.shape, np.float32)
    if len(points) <= EXACT_POINTS:
        distance = _distance_to_points(grid, points)
    else:
        distance = _distance_map(grid, points)
    if spec.encoding == "disk":
        return (distance <= spec.radius_mm).astype(np.float32)
    return np.exp(-(distance ** 2) / (2.0 * spec.radius_mm ** 2)).astype(np.float32)


EXACT_POINTS = 32
"""Up to this many prompt points, their maps are computed at their exact positions."""


def _distance_to_points(grid: RoiGrid, points: np.ndarray) -> np.ndarray:
    """mm from each cube voxel to the nearest of `points` (model indices)."""
    spacing = np.asarray(grid.spacing)
    axes = [np.arange(n, dtype=np.float32) for n in grid.shape]
    best = np.full(grid.shape, np.inf, np.float32)
    for point in points:
        d0, d1, d2 = ((a - p) * s for a, p, s in zip(axes, point, spacing, strict=True))
        squared = d0[:, None, None] ** 2 + d1[None, :, None] ** 2 + d2[None, None, :] ** 2
        np.minimum(best, squared, out=best)
    return np.sqrt(best)


def _distance_map(grid: RoiGrid, points: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    seeds = np.zeros(grid.shape, dtype=np.uint8)
    index = np.clip(np.rint(points).astype(int), 0, np.asarray(grid.shape) - 1)
    seeds[tuple(index.T)] = 1
    image = sitk.GetImageFromArray(seeds.transpose(2, 1, 0).copy())
    image.SetSpacing([float(s) for s in grid.spacing])
    distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
    return np.maximum(distance.transpose(2, 1, 0), 0.0)


def _box_map(grid: RoiGrid, boxes: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    out = np.zeros(grid.shape, np.float32)
    top = np.asarray(grid.shape) - 1
    for a, b in boxes:
        low = np.clip(np.floor(np.minimum(a, b)).astype(int), 0, top)
        high = np.clip(np.ceil(np.maximum(a, b)).astype(int), 0, top)
        out[low[0]:high[0] + 1, low[1]:high[1] + 1, low[2]:high[2] + 1] = 1.0
    return out


def _prompts(spec: InputSpec) -> PromptSpec:
    if spec.prompts is None:
        raise ValueError("not an interactive card: input.prompts is missing")
    return spec.prompts


def _sitk_grid(grid: RoiGrid):
    import SimpleITK as sitk

    reference = sitk.Image([int(n) for n in grid.shape], sitk.sitkFloat32)
    reference.SetSpacing([float(s) for s in grid.spacing])
    reference.SetOrigin([float(v) for v in grid.origin])
    reference.SetDirection([float(v) for v in grid.axes.ravel()])
    return reference


def _sitk_box(volume: Volume, box: tuple[slice, slice, slice], crop: np.ndarray):
    """`crop` (the volume's voxels in `box`) as a SimpleITK image in patient space."""
    import SimpleITK as sitk

    affine = np.asarray(volume.affine, float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    first = voxel_to_patient(affine, np.array([[box[2].start, box[1].start, box[0].start]],
                                              float))[0]
    image = sitk.GetImageFromArray(crop)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in first])
    image.SetDirection([float(v) for v in (affine[:3, :3] / spacing).ravel()])
    return image
