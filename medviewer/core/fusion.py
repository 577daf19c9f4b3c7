"""Fusion: a second volume (PET over CT) sampled on the pixels of the plane a view shows.

The plane's pixels are mapped through the plane's affine to LPS and through the other
volume's inverse affine to its voxels, and sampled there by trilinear interpolation, so the
two volumes may have any grids (a 4 mm PET over a 0.7 mm CT, tilted or not) as long as they
share a frame of reference. Pixels outside the other volume are NaN (drawn transparent).

:class:`FusionStyle` says how the sampled values are coloured: a window in the fused
volume's display units (SUV for a PET with an SUV factor), a colour map and an opacity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.core.geometry import PlaneSlice
from medviewer.core.plane_sampling import VolumeSampler
from medviewer.core.volume import Volume

#: Colour maps offered for a fused volume: name -> control points (position 0-1, RGB 0-255).
COLOR_MAPS: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    "hot iron": ((0.0, (0, 0, 0)), (0.35, (150, 0, 40)), (0.65, (255, 110, 0)),
                 (0.9, (255, 230, 80)), (1.0, (255, 255, 255))),
    "rainbow": ((0.0, (0, 0, 120)), (0.25, (0, 90, 255)), (0.5, (0, 220, 80)),
                (0.75, (255, 220, 0)), (1.0, (255, 0, 0))),
    "grey": ((0.0, (0, 0, 0)), (1.0, (255, 255, 255))),
}  # fmt: skip


@dataclass(frozen=True)
class FusionStyle:
    """How a fused volume is drawn.

    Attributes
    ----------
    low, high : float
        The window, in display units (SUV when the fused volume has a factor): `low` and
        below is transparent, `high` and above the colour map's end.
    opacity : float
        0-1, of the colours over the base image.
    color_map : str
        One of :data:`COLOR_MAPS`.
    """

    low: float = 0.0
    high: float = 6.0
    opacity: float = 0.5
    color_map: str = "hot iron"

    def __post_init__(self) -> None:
        if self.color_map not in COLOR_MAPS:
            raise ValueError(f"unknown colour map {self.color_map!r}; expected one of "
                             f"{', '.join(COLOR_MAPS)}")  # fmt: skip
        if not self.high > self.low:
            raise ValueError(f"the window's high ({self.high}) must exceed its low ({self.low})")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")


def fusable(fused: Volume | None, base: Volume | None) -> bool:
    """Whether `fused` can be drawn over `base`: both positioned, on one frame of reference
    (a known, non-empty FrameOfReferenceUID), and not the same series."""
    if base is None or fused is None or fused.is_color:
        return False
    a, b = fused.metadata, base.metadata
    return (a.positioned and b.positioned and bool(a.frame_of_reference_uid)
            and a.frame_of_reference_uid == b.frame_of_reference_uid
            and a.series_uid != b.series_uid)  # fmt: skip


def sample_plane(
    array: np.ndarray, affine: np.ndarray, plane: PlaneSlice, scale: float = 1.0,
    sampler: VolumeSampler | None = None,
) -> np.ndarray:
    """Linear samples of volume (`array`, `affine`) at the pixel centres of `plane`.

    Parameters
    ----------
    array : numpy.ndarray
        ``(slices, rows, cols)`` grey volume.
    affine : numpy.ndarray
        Its 4x4 index-to-LPS matrix.
    plane : PlaneSlice
        The shown plane (its affine and image shape).
    scale : float
        A factor applied to the samples (an SUV factor).
    sampler : VolumeSampler, optional
        The volume's sampler, kept between planes (its SimpleITK copy is made once).

    Returns
    -------
    numpy.ndarray
        float32 ``(rows, cols)`` of the plane; NaN where the pixel lies outside the volume.
    """
    sampler = sampler if sampler is not None else VolumeSampler(array, affine)
    values = sampler.sample(plane.affine, plane.image.shape[:2])
    if scale != 1.0:
        values *= np.float32(scale)
    return values


def color_table(name: str) -> np.ndarray:
    """The 256-entry RGB table of colour map `name` (uint8, (256, 3))."""
    points = COLOR_MAPS[name]
    positions = np.array([p for p, _ in points]) * 255.0
    colors = np.array([c for _, c in points], float)
    x = np.arange(256, dtype=float)
    return np.stack([np.interp(x, positions, colors[:, k]) for k in range(3)], axis=1).round(
    ).astype(np.uint8)


#: The share of the window over which the colours fade in from transparent (so the low,
#: dark end of a colour map does not darken the image under it).
FADE_IN = 0.25


def fusion_index(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 indices of sampled values into :func:`fusion_lut`: 0 for NaN and values below
    `low`, 1-255 across the window (rounded), 255 from `high` up."""
    index = (values - np.float32(low)) * np.float32(254.0 / (high - low))
    np.nan_to_num(index, copy=False, nan=-1.0)
    np.clip(index, -1.0, 254.0, out=index)
    index += 1.5  # rounded to the nearest entry
    return index.astype(np.uint8)


def fusion_lut(style: FusionStyle) -> np.ndarray:
    """The 256x4 RGBA table of :func:`fusion_index`: entry 0 transparent, then the colour
    map over the window, alpha rising from 0 to `opacity` over :data:`FADE_IN` of it."""
    table = color_table(style.color_map)
    position = np.clip(np.arange(256, dtype=float) - 1.0, 0.0, 254.0) / 254.0
    rgba = np.zeros((256, 4), np.uint8)
    rgba[:, :3] = table[np.round(position * 255.0).astype(np.intp)]
    alpha = np.clip(position / FADE_IN, 0.0, 1.0) * (style.opacity * 255.0)
    rgba[:, 3] = np.round(alpha).astype(np.uint8)
    rgba[0] = 0
    return rgba


def colorize(values: np.ndarray, style: FusionStyle) -> np.ndarray:
    """RGBA uint8 of sampled values (what the fusion layer draws, through its table)."""
    return np.asarray(fusion_lut(style)[fusion_index(values, style.low, style.high)])
