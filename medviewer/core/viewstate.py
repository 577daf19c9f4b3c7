"""What a slice viewport shows, as plain numbers: slice index, window or VOI LUT, invert,
linking.

The Qt viewport keeps one :class:`ViewState` and draws it; every rule about how user input
changes it (scrolling, window/level drags, number-key presets, jumping to a point) lives here
so it is tested without Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from medviewer.core.geometry import Plane, plane_count, reslice
from medviewer.core.slab import Slab
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.core.windowing import VoiLut, WindowPreset, auto_window, presets_for_modality

MIN_WIDTH = 1.0


@dataclass(frozen=True)
class ViewState:
    """The displayed plane, slice and display mapping of one viewport.

    Attributes
    ----------
    plane : str
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    index : int
        Slice of the plane, counted along the plane normal (0 = most inferior/posterior/right).
    count : int
        Number of slices of the plane.
    center, width : float
        Window level and width in modality units. While a VOI LUT is shown they
        approximate its contrast (where a window/level drag starts).
    invert : bool
        Show inverted grey levels.
    voi_lut : int or None
        Index (in :func:`voi_luts_of`) of the VOI LUT the image is shown through;
        None for the linear window ``center``/``width``.
    slab : Slab or None
        The thick-slab projection shown around the slice (:mod:`medviewer.core.slab`), or
        None for the slice itself.
    rotation : tuple of 9 float or None
        The MPR frame's rotation (row-major 3x3, LPS) when the plane is resampled in a
        rotated patient frame (:mod:`medviewer.core.oblique`; `index` and `count` are then
        that grid's); None for the acquisition's own planes.
    """

    plane: Plane
    index: int
    count: int
    center: float
    width: float
    invert: bool = False
    voi_lut: int | None = None
    slab: Slab | None = None
    rotation: tuple[float, ...] | None = None

    @property
    def linear_window(self) -> tuple[float, float] | None:
        """``(center, width)`` of the linear window shown, None while a VOI LUT is."""
        return (self.center, self.width) if self.voi_lut is None else None

    def scrolled(self, step: int) -> ViewState:
        """Move `step` slices, stopping at the first and last slice."""
        return self.at(self.index + step)

    def at(self, index: int) -> ViewState:
        """Show slice `index` (clamped to the plane's range)."""
        return replace(self, index=int(np.clip(index, 0, max(self.count - 1, 0))))

    def with_slab(self, slab: Slab | None) -> ViewState:
        """Show `slab` around the slice (None: the slice alone)."""
        return replace(self, slab=slab)

    def windowed(self, center: float, width: float) -> ViewState:
        """Use a new linear window (width at least 1), leaving any VOI LUT."""
        width = max(float(width), MIN_WIDTH)
        return replace(self, center=float(center), width=width, voi_lut=None)

    def through_lut(self, index: int, lut: VoiLut) -> ViewState:
        """Show the image through VOI LUT `lut` (number `index` of the volume's)."""
        center, width = lut.equivalent_window()
        return replace(self, center=center, width=width, voi_lut=index)

    def dragged(self, dx: float, dy: float, sensitivity: float) -> ViewState:
        """Window/level drag: right widens, left narrows; down raises the level.

        Parameters
        ----------
        dx, dy : float
            Mouse movement in screen pixels (y grows downwards).
        sensitivity : float
            Modality units per screen pixel (see :func:`drag_sensitivity`).

        A drag from a VOI LUT starts from its equivalent window and leaves the LUT.
        """
        return self.windowed(self.center + dy * sensitivity, self.width + dx * sensitivity)


def drag_sensitivity(value_range: float) -> float:
    """Units per pixel of a window/level drag: a 512-pixel drag spans the value range."""
    return max(float(value_range) / 512.0, 0.05)


def initial_state(
    volume: Volume, plane: Plane = "axial", sample: np.ndarray | None = None
) -> ViewState:
    """The state a freshly opened volume is shown in: middle slice, the files' first VOI
    LUT when they have one, else the default window.

    `sample` (the slices decoded so far) stands in for the array while it is loading.
    """
    count = plane_count(volume.array.shape, volume.affine, plane)
    invert = volume.metadata.photometric == "MONOCHROME1"
    luts = () if volume.is_color else voi_luts_of(volume.metadata)
    if luts:
        return ViewState(plane, count // 2, count, 0.0, 1.0, invert).through_lut(0, luts[0])
    center, width = default_window(volume, sample)
    return ViewState(plane, count // 2, count, center, width, invert)


def voi_luts_of(metadata: VolumeMetadata) -> tuple[VoiLut, ...]:
    """The VOI LUTs of a volume: ``voi_luts``, else the single ``voi_lut``, else none."""
    if metadata.voi_luts:
        return metadata.voi_luts
    return (metadata.voi_lut,) if metadata.voi_lut is not None else ()


def voi_lut_names(metadata: VolumeMetadata) -> tuple[str, ...]:
    """Preset names of the VOI LUTs: ``"VOI LUT: <explanation>"`` or ``"VOI LUT <n>"``."""
    return tuple(
        f"VOI LUT: {lut.explanation}" if lut.explanation else f"VOI LUT {n}"
        for n, lut in enumerate(voi_luts_of(metadata), 1)
    )


def default_window(volume: Volume, sample: np.ndarray | None = None) -> tuple[float, float]:
    """The first window stored in the files, else robust percentiles (0.5-99.5 %).

    `sample` (e.g. the slices loaded so far) replaces the whole array for the percentiles.
    """
    presets = volume.metadata.window_presets
    if presets:
        return presets[0].center, presets[0].width
    data = volume.array if sample is None else sample
    if volume.is_color or data.size == 0:
        return 127.5, 255.0
    lo, hi = _finite_percentiles(data)
    return (lo + hi) / 2.0, max(hi - lo, MIN_WIDTH)


def _finite_percentiles(data: np.ndarray) -> tuple[float, float]:
    if data.dtype.kind == "f" and not np.isfinite(data).any():
        return 0.0, 1.0  # nothing to measure (an all-NaN slice): any window shows it
    center, width = auto_window(data)
    return center - width / 2.0, center + width / 2.0


def preset_for_key(volume: Volume, key: int) -> WindowPreset | None:
    """The window of number key `key` (1-9): CT reading presets, else the files' windows.

    Key 0 gives the robust-percentile window of any modality.
    """
    if key == 0:
        center, width = _auto(volume)
        return WindowPreset("Auto", center, width)
    presets = presets_for_modality(volume.metadata.modality) or volume.metadata.window_presets
    return presets[key - 1] if 1 <= key <= len(presets) else None


def _auto(volume: Volume) -> tuple[float, float]:
    lo, hi = _finite_percentiles(volume.array)
    return (lo + hi) / 2.0, max(hi - lo, MIN_WIDTH)


def plane_index_of(volume: Volume, plane: Plane, point: npt.ArrayLike) -> int | None:
    """The slice of `plane` that contains the LPS `point`, or None when it lies outside."""
    number = int(image_numbers_of(volume, point, plane)[0])
    return number - 1 if number else None


def array_slice_centre(volume: Volume, index: int, axis: int = 0) -> np.ndarray:
    """The LPS centre of array slice `index` along `axis` (0 slices, 1 rows, 2 columns).

    What a per-slice result (e.g. a 2D classifier's probability for slice `index`, counted
    along its ``slice_axis``) points at: the middle of that slice of the array.
    """
    centre = [(n - 1) / 2.0 for n in volume.array.shape[:3]]  # [slice, row, col]
    centre[axis] = float(index)
    lps: np.ndarray = (volume.affine @ np.array([centre[2], centre[1], centre[0], 1.0]))[:3]
    return lps


def array_index_of(volume: Volume, point: npt.ArrayLike, axis: int = 0) -> int:
    """The index along array `axis` (0 slices, 1 rows, 2 columns) nearest an LPS point."""
    index = np.linalg.inv(volume.affine) @ np.append(np.asarray(point, float), 1.0)
    return int(np.clip(round(float(index[2 - axis])), 0, volume.array.shape[axis] - 1))


def image_numbers_of(volume: Volume, points: npt.ArrayLike, plane: Plane = "axial") -> np.ndarray:
    """The ``Im`` number (plane index + 1) a viewport of `plane` shows for each LPS point.

    The number counts the plane's slices in the viewer's order (axial: from inferior), which
    differs from the array's slice order for feet-first or non-axial acquisitions. Points
    outside the volume along the plane normal get 0.

    Parameters
    ----------
    volume : Volume
    points : array_like
        ``(n, 3)`` LPS points (or one point of 3).
    plane : str
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int numbers, 1-based.
    """
    xyz = np.atleast_2d(np.asarray(points, float))
    count = plane_count(volume.array.shape, volume.affine, plane)
    if count == 0:
        return np.zeros(len(xyz), int)
    first = reslice(volume.array, volume.affine, plane, 0)
    homogeneous = np.column_stack([xyz, np.ones(len(xyz))])
    k = np.floor((homogeneous @ np.linalg.inv(first.affine).T)[:, 2] + 0.5)
    inside = np.isfinite(k) & (k >= 0) & (k < count)
    return np.where(inside, np.nan_to_num(k) + 1, 0).astype(int)


def slice_position_mm(plane_affine: npt.ArrayLike) -> float:
    """Position of a displayed plane along its normal in mm (axial: the S coordinate)."""
    affine = np.asarray(plane_affine, float)
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    normal /= np.linalg.norm(normal)
    if normal[int(np.argmax(np.abs(normal)))] < 0:
        normal = -normal
    return float(normal @ affine[:3, 3])


def nice_scale_length(mm_per_pixel: float, target_pixels: float = 100.0) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^n mm) about `target_pixels` long on screen."""
    if mm_per_pixel <= 0 or not np.isfinite(mm_per_pixel):
        raise ValueError(f"mm per pixel must be positive, got {mm_per_pixel}")
    raw = mm_per_pixel * target_pixels
    power = 10.0 ** np.floor(np.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if factor * power >= raw * 0.7:
            return float(factor * power)
    return float(10.0 * power)
