"""The math of the viewer's measurement tools: distance, angle, ROI statistics, probe.

Measurements are stored in patient LPS millimetres, so they survive reslicing, zooming and
reopening a series. A displayed plane is described by its 4x4 ``plane_affine`` (the
``affine`` of :class:`medviewer.core.geometry.PlaneSlice`), which maps the homogeneous
screen index ``(col, row, k, 1)`` to LPS, with pixel centres at integer ``(col, row)``
and ``k`` counting slices of the plane away from the displayed one.

This module depends on numpy only.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medviewer.core import formatting as fmt

__all__ = [
    "KINDS",
    "PLANES",
    "POINT_COUNTS",
    "ROI_KINDS",
    "Kind",
    "Measurement",
    "RoiStats",
    "angle_deg",
    "distance_mm",
    "on_plane",
    "patient_to_screen",
    "probe_value",
    "roi_mask",
    "roi_stats",
    "screen_to_patient",
    "summary",
]

Kind = Literal["distance", "angle", "ellipse", "rectangle", "probe"]

FloatArray = NDArray[np.float64]
Point = tuple[float, float, float]

KINDS: tuple[str, ...] = get_args(Kind)
PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
POINT_COUNTS: dict[str, int] = {
    "distance": 2,
    "angle": 3,
    "ellipse": 2,
    "rectangle": 2,
    "probe": 1,
}
ROI_KINDS: tuple[str, ...] = ("ellipse", "rectangle")

# LPS axes spanning each standard plane (screen-right, screen-down), used for the area of
# an ROI when no plane affine is at hand.
_PLANE_AXES: dict[str, tuple[int, int]] = {"axial": (0, 1), "coronal": (0, 2), "sagittal": (1, 2)}

# Pixel-centre tests allow this much rounding error (in pixels) on the ROI boundary.
_BOUNDARY_EPS = 1e-6
_MIN_ARM_MM = 1e-9
_MAX_CONDITION = 1e12
_ON_SLICE = 0.5


# --------------------------------------------------------------------------- measurement


def _as_point_tuple(values: object, kind: str, index: int) -> Point:
    """Return one point as a tuple of 3 finite floats, or raise ValueError."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{kind} point {index} is not 3 numbers: {values!r}") from None
    if arr.shape != (3,):
        raise ValueError(f"{kind} point {index} must have 3 coordinates, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{kind} point {index} has non-finite coordinates: {arr.tolist()}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


@dataclass(frozen=True)
class Measurement:
    """One measurement drawn on a displayed plane, stored in LPS millimetres.

    Parameters
    ----------
    kind : {'distance', 'angle', 'ellipse', 'rectangle', 'probe'}
        The tool that drew it.
    points : sequence of 3-sequences of float
        LPS points in mm: distance 2 end points; angle 3 (arm end, vertex, arm end);
        ellipse/rectangle 2 opposite corners of the bounding box, axis-aligned on the
        drawing plane; probe 1. Stored as a tuple of ``(x, y, z)`` float tuples.
    plane : {'axial', 'coronal', 'sagittal'}
        The plane it was drawn on.
    series_uid : str
        Series Instance UID of the series it belongs to.
    id : str, optional
        Unique identifier, a random hex UUID by default; kept by :meth:`moved`.
    label : str, optional
        Free text shown with the measurement.

    Raises
    ------
    ValueError
        For an unknown kind or plane, the wrong number of points for the kind,
        points that are not 3 finite numbers, or a non-string uid, id or label.
    """

    kind: Kind
    points: tuple[Point, ...]
    plane: str
    series_uid: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown measurement kind {self.kind!r}; expected one of {KINDS}")
        if self.plane not in PLANES:
            raise ValueError(f"unknown plane {self.plane!r}; expected one of {PLANES}")
        for name in ("series_uid", "id", "label"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not self.id:
            raise ValueError("measurement id must not be empty")
        object.__setattr__(self, "points", self._checked_points(self.points))

    def _checked_points(self, points: object) -> tuple[Point, ...]:
        """Validate the number and values of `points` for this kind."""
        if isinstance(points, str | bytes) or not isinstance(points, Iterable):
            raise ValueError(f"{self.kind} points must be a sequence of points, got {points!r}")
        items = list(points)
        expected = POINT_COUNTS[self.kind]
        if len(items) != expected:
            raise ValueError(
                f"a {self.kind} measurement needs exactly {expected} point(s), got {len(items)}"
            )
        return tuple(_as_point_tuple(p, self.kind, i) for i, p in enumerate(items))

    def moved(self, points: Sequence[ArrayLike]) -> Measurement:
        """Return a copy with new `points` (validated) and the same id, kind and label.

        Parameters
        ----------
        points : sequence of 3-sequences of float
            The new LPS points, as many as the kind needs.

        Returns
        -------
        Measurement
            The moved measurement.
        """
        return replace(self, points=self._checked_points(tuple(points)))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (strings, lists and finite floats only).

        Returns
        -------
        dict
            Keys ``kind``, ``points`` (list of ``[x, y, z]``), ``plane``, ``series_uid``,
            ``id`` and ``label``.
        """
        return {
            "kind": self.kind,
            "points": [list(p) for p in self.points],
            "plane": self.plane,
            "series_uid": self.series_uid,
            "id": self.id,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """Rebuild a measurement from :meth:`to_dict` output (unknown keys are ignored).

        Parameters
        ----------
        data : mapping
            As written by :meth:`to_dict`; ``id`` and ``label`` are optional.

        Returns
        -------
        Measurement
            The measurement, equal to the one that was serialised.

        Raises
        ------
        ValueError
            When `data` is not a mapping, a required key is missing, a value has the
            wrong type, or the measurement is invalid.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"measurement data must be a mapping, got {type(data).__name__}")
        missing = [k for k in ("kind", "points", "plane", "series_uid") if k not in data]
        if missing:
            raise ValueError(f"measurement data is missing key(s): {', '.join(missing)}")
        for key in ("kind", "plane", "series_uid", "id", "label"):
            if key in data and not isinstance(data[key], str):
                raise ValueError(f"measurement {key!r} must be a string, got {data[key]!r}")
        points = _points_from_json(data["points"])
        extra = {k: data[k] for k in ("id", "label") if k in data}
        return cls(data["kind"], points, data["plane"], data["series_uid"], **extra)


def _points_from_json(raw: object) -> tuple[Point, ...]:
    """Check that `raw` is a list of lists of 3 real numbers (no strings or booleans)."""
    if not isinstance(raw, list | tuple):
        raise ValueError(f"measurement 'points' must be a list of [x, y, z], got {raw!r}")
    points: list[Point] = []
    for i, point in enumerate(raw):
        if not (isinstance(point, list | tuple) and len(point) == 3 and all(map(_is_real, point))):
            raise ValueError(f"measurement point {i} must be [x, y, z] numbers, got {point!r}")
        x, y, z = point
        points.append((float(x), float(y), float(z)))
    return tuple(points)


def _is_real(value: object) -> bool:
    """True for int and float values, not for booleans or strings."""
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- coordinates


def _plane_matrix(plane_affine: ArrayLike) -> FloatArray:
    """Return `plane_affine` as a checked, invertible float64 4x4 matrix."""
    arr = np.array(plane_affine, dtype=np.float64)
    if arr.shape != (4, 4):
        raise ValueError(f"plane affine must have shape (4, 4), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("plane affine contains non-finite values (NaN or infinity)")
    if not np.array_equal(arr[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"plane affine last row must be [0, 0, 0, 1], got {arr[3].tolist()}")
    singular = np.linalg.svd(arr[:3, :3], compute_uv=False)
    if singular[-1] * _MAX_CONDITION <= singular[0]:
        raise ValueError("plane affine is singular or nearly singular")
    return arr


def _as_xyz(values: ArrayLike, name: str) -> FloatArray:
    """Return `values` as a finite float64 array whose last axis has length 3."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def screen_to_patient(
    plane_affine: ArrayLike, col: float, row: float, k: float = 0.0
) -> FloatArray:
    """Map a screen position of a displayed plane to LPS millimetres.

    Parameters
    ----------
    plane_affine : array_like
        4x4 ``(screen_col, screen_row, k, 1) -> LPS`` matrix of the plane.
    col, row : float
        Screen column and row in pixels (pixel centres at integers).
    k : float, optional
        Offset in slices of the plane from the displayed one (default 0).

    Returns
    -------
    numpy.ndarray
        Shape (3,) LPS point.
    """
    arr = _plane_matrix(plane_affine)
    screen = _as_xyz([col, row, k], "screen position")
    return arr[:3, :3] @ screen + arr[:3, 3]


def patient_to_screen(plane_affine: ArrayLike, xyz: ArrayLike) -> FloatArray:
    """Map LPS millimetres to ``(col, row, k)`` of a displayed plane.

    Parameters
    ----------
    plane_affine : array_like
        4x4 ``(screen_col, screen_row, k, 1) -> LPS`` matrix of the plane.
    xyz : array_like, shape (..., 3)
        LPS points.

    Returns
    -------
    numpy.ndarray
        Same shape as `xyz`: screen column, screen row and the signed offset ``k`` in
        slices from the displayed plane.
    """
    inverse = np.linalg.inv(_plane_matrix(plane_affine))
    points = _as_xyz(xyz, "xyz")
    screen: FloatArray = points @ inverse[:3, :3].T + inverse[:3, 3]
    return screen


def on_plane(measurement: Measurement, plane_affine: ArrayLike, tolerance: float = 0.5) -> bool:
    """Whether every point of `measurement` lies within `tolerance` slices of the plane.

    Parameters
    ----------
    measurement : Measurement
        The measurement.
    plane_affine : array_like
        4x4 matrix of the displayed plane.
    tolerance : float, optional
        Largest ``|k|`` accepted, in slices of the plane (default 0.5).

    Returns
    -------
    bool
        True when the measurement should be drawn on this slice.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0.0):
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    screen = patient_to_screen(plane_affine, measurement.points)
    return bool(np.all(np.abs(screen[:, 2]) <= tolerance))


# --------------------------------------------------------------------------- lengths


def distance_mm(p: ArrayLike, q: ArrayLike) -> float:
    """Euclidean distance in mm between two LPS points.

    Parameters
    ----------
    p, q : array_like, shape (3,)
        LPS points in mm.

    Returns
    -------
    float
        ``|q - p|``.
    """
    a, b = _as_point(p, "p"), _as_point(q, "q")
    return float(np.linalg.norm(b - a))


def angle_deg(a: ArrayLike, vertex: ArrayLike, b: ArrayLike) -> float:
    """Angle at `vertex` between the arms to `a` and `b`, in degrees (0 to 180).

    Parameters
    ----------
    a, vertex, b : array_like, shape (3,)
        Arm end, vertex and the other arm end, LPS mm.

    Returns
    -------
    float
        The angle in degrees.

    Raises
    ------
    ValueError
        When an arm has zero length.
    """
    v = _as_point(vertex, "vertex")
    u, w = _as_point(a, "a") - v, _as_point(b, "b") - v
    for name, arm in (("first", u), ("second", w)):
        if np.linalg.norm(arm) <= _MIN_ARM_MM:
            raise ValueError(f"angle {name} arm has zero length (its end is on the vertex)")
    cross = float(np.linalg.norm(np.cross(u, w)))
    return math.degrees(math.atan2(cross, float(u @ w)))


def _as_point(values: ArrayLike, name: str) -> FloatArray:
    """Return `values` as a finite (3,) float64 vector."""
    arr = _as_xyz(values, name)
    if arr.shape != (3,):
        raise ValueError(f"{name} must be one point of 3 coordinates, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------- ROIs


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the pixels of an ellipse or rectangle ROI.

    Attributes
    ----------
    mean, sd, min, max : float
        In modality units; SD is the population SD (ddof=0); NaN when no pixel is inside.
    area_mm2 : float
        Geometric area of the shape in mm² (not the pixel count times pixel area).
    pixels : int
        Number of pixels whose centres are inside.
    """

    mean: float
    sd: float
    min: float
    max: float
    area_mm2: float
    pixels: int


@dataclass(frozen=True)
class _ScreenBox:
    """An ROI's bounding box in screen pixels (pixel centres at integers)."""

    c0: float
    r0: float
    c1: float
    r1: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.c0 + self.c1) / 2.0, (self.r0 + self.r1) / 2.0

    @property
    def half(self) -> tuple[float, float]:
        return (self.c1 - self.c0) / 2.0, (self.r1 - self.r0) / 2.0


def _check_roi(measurement: Measurement) -> None:
    """Raise ValueError unless the measurement is an ellipse or rectangle."""
    if measurement.kind not in ROI_KINDS:
        raise ValueError(
            f"ROI statistics need an ellipse or rectangle measurement, got {measurement.kind!r}"
        )


def _screen_box(plane_affine: ArrayLike, measurement: Measurement) -> _ScreenBox:
    """Map the ROI corners to screen and order them (min, max) along col and row."""
    screen = patient_to_screen(plane_affine, measurement.points)
    cols, rows = np.sort(screen[:, 0]), np.sort(screen[:, 1])
    return _ScreenBox(float(cols[0]), float(rows[0]), float(cols[1]), float(rows[1]))


def _index_range(low: float, high: float, size: int) -> range:
    """Integer pixel centres in [low, high] (with rounding slack), clipped to the image."""
    start = max(math.ceil(low - _BOUNDARY_EPS), 0)
    stop = min(math.floor(high + _BOUNDARY_EPS), size - 1)
    return range(start, max(stop + 1, start))


def roi_mask(
    shape: Sequence[int], plane_affine: ArrayLike, measurement: Measurement
) -> NDArray[np.bool_]:
    """Boolean mask of the pixels whose centres lie inside an ellipse or rectangle ROI.

    The two corners are mapped to screen ``(col, row)``; the rectangle includes its
    boundary, the ellipse is ``((c - c0) / a)**2 + ((r - r0) / b)**2 <= 1`` with
    ``a, b`` its half-extents in pixels (an ellipse of zero width or height has no pixels).

    Parameters
    ----------
    shape : sequence of int
        Image shape ``(rows, cols)`` or ``(rows, cols, 3)``.
    plane_affine : array_like
        4x4 matrix of the displayed plane.
    measurement : Measurement
        An ellipse or rectangle.

    Returns
    -------
    numpy.ndarray
        Bool array of shape ``(rows, cols)``.

    Raises
    ------
    ValueError
        For another kind of measurement or a malformed shape or affine.
    """
    _check_roi(measurement)
    if len(shape) < 2:
        raise ValueError(f"shape must be (rows, cols[, 3]), got {tuple(shape)}")
    n_rows, n_cols = int(shape[0]), int(shape[1])
    mask = np.zeros((n_rows, n_cols), dtype=bool)
    box = _screen_box(plane_affine, measurement)
    cols = _index_range(box.c0, box.c1, n_cols)
    rows = _index_range(box.r0, box.r1, n_rows)
    if not cols or not rows:
        return mask
    window = mask[rows.start : rows.stop, cols.start : cols.stop]
    if measurement.kind == "rectangle":
        window[...] = True
    else:
        window[...] = _ellipse_window(box, rows, cols)
    return mask


def _ellipse_window(box: _ScreenBox, rows: range, cols: range) -> NDArray[np.bool_]:
    """Inside-ellipse test on the pixel centres of the bounding-box window."""
    (cc, rc), (a, b) = box.centre, box.half
    if a <= 0.0 or b <= 0.0:
        return np.zeros((len(rows), len(cols)), dtype=bool)
    dc = ((np.arange(cols.start, cols.stop, dtype=np.float64) - cc) / a) ** 2
    dr = ((np.arange(rows.start, rows.stop, dtype=np.float64) - rc) / b) ** 2
    return dr[:, None] + dc[None, :] <= 1.0 + _BOUNDARY_EPS


def roi_outline(plane_affine: ArrayLike, measurement: Measurement) -> tuple[str, FloatArray]:
    """An ROI's outline in LPS mm, as DICOM SR 3D graphic data.

    Returns
    -------
    (str, numpy.ndarray)
        ``("POLYGON", 5 x 3)`` for a rectangle (its corners, closed), or ``("ELLIPSE", 4 x 3)``
        for an ellipse (the ends of its major axis, then of its minor axis), on the plane the
        ROI was drawn on (oblique when the series is).
    """
    _check_roi(measurement)
    arr = _plane_matrix(plane_affine)
    box = _screen_box(arr, measurement)
    if measurement.kind == "rectangle":
        corners = [(box.c0, box.r0), (box.c1, box.r0), (box.c1, box.r1), (box.c0, box.r1)]
        points = [screen_to_patient(arr, c, r) for c, r in [*corners, corners[0]]]
        return "POLYGON", np.array(points)
    (cc, rc), (hc, hr) = box.centre, box.half
    across = [screen_to_patient(arr, cc - hc, rc), screen_to_patient(arr, cc + hc, rc)]
    down = [screen_to_patient(arr, cc, rc - hr), screen_to_patient(arr, cc, rc + hr)]
    col_spacing, row_spacing = np.linalg.norm(arr[:3, :2], axis=0)
    major, minor = (across, down) if hc * col_spacing >= hr * row_spacing else (down, across)
    return "ELLIPSE", np.array([*major, *minor])


def roi_area(plane_affine: ArrayLike, measurement: Measurement) -> float:
    """Geometric area (mm²) of an ellipse or rectangle ROI on its plane."""
    return _roi_area(plane_affine, measurement)


def _roi_area(plane_affine: ArrayLike, measurement: Measurement) -> float:
    """Geometric area (mm²) of the ROI using the plane's pixel spacing."""
    arr = _plane_matrix(plane_affine)
    col_spacing, row_spacing = np.linalg.norm(arr[:3, :2], axis=0)
    box = _screen_box(arr, measurement)
    width = (box.c1 - box.c0) * float(col_spacing)
    height = (box.r1 - box.r0) * float(row_spacing)
    return _shape_area(measurement.kind, width, height)


def _shape_area(kind: str, width: float, height: float) -> float:
    """Area of a rectangle, or of the ellipse inscribed in it."""
    return width * height if kind == "rectangle" else math.pi * width * height / 4.0


def roi_stats(image: np.ndarray, plane_affine: ArrayLike, measurement: Measurement) -> RoiStats:
    """Mean, SD, min, max, area and pixel count of an ellipse or rectangle ROI.

    Parameters
    ----------
    image : numpy.ndarray
        The displayed 2-D grey image ``(rows, cols)`` in modality units.
    plane_affine : array_like
        4x4 matrix of the displayed plane.
    measurement : Measurement
        An ellipse or rectangle.

    Returns
    -------
    RoiStats
        Statistics over :func:`roi_mask`; NaN statistics and 0 pixels when no pixel
        centre is inside.

    Raises
    ------
    ValueError
        For a colour (or otherwise non-2-D) image or a measurement that is not an ROI.
    """
    _check_roi(measurement)
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(
            f"ROI statistics need a 2-D grey image, got shape {image.shape}"
            + (" (a colour image)" if image.ndim == 3 and image.shape[2] == 3 else "")
        )
    values = image[roi_mask(image.shape, plane_affine, measurement)].astype(np.float64)
    area = _roi_area(plane_affine, measurement)
    if values.size == 0:
        nan = float("nan")
        return RoiStats(nan, nan, nan, nan, area, 0)
    return RoiStats(
        mean=float(values.mean()),
        sd=float(values.std(ddof=0)),
        min=float(values.min()),
        max=float(values.max()),
        area_mm2=area,
        pixels=int(values.size),
    )


# --------------------------------------------------------------------------- probe


def probe_value(
    image: np.ndarray, plane_affine: ArrayLike, xyz: ArrayLike
) -> float | tuple[float, ...] | None:
    """Value of the pixel nearest to an LPS point on the displayed plane.

    Parameters
    ----------
    image : numpy.ndarray
        Displayed image ``(rows, cols)`` or ``(rows, cols, 3)``.
    plane_affine : array_like
        4x4 matrix of the displayed plane.
    xyz : array_like, shape (3,)
        LPS point in mm.

    Returns
    -------
    float, tuple of float or None
        The grey value, or one value per channel for colour; None when the nearest
        pixel is outside the image or the point is more than half a slice off the plane.
    """
    image = np.asarray(image)
    col, row, k = patient_to_screen(plane_affine, _as_point(xyz, "xyz"))
    c, r = math.floor(col + 0.5), math.floor(row + 0.5)
    if abs(k) > _ON_SLICE or not (0 <= r < image.shape[0] and 0 <= c < image.shape[1]):
        return None
    value = image[r, c]
    if np.ndim(value) == 0:
        return float(value)
    return tuple(float(v) for v in np.ravel(value))


# --------------------------------------------------------------------------- text


def _area_without_image(measurement: Measurement, plane_affine: ArrayLike | None) -> float:
    """ROI area from the plane affine when given, else from the drawing plane's LPS axes."""
    if plane_affine is not None:
        return _roi_area(plane_affine, measurement)
    right, down = _PLANE_AXES[measurement.plane]
    diff = np.subtract(measurement.points[1], measurement.points[0])
    return _shape_area(measurement.kind, abs(float(diff[right])), abs(float(diff[down])))


def _roi_summary(
    measurement: Measurement,
    image: np.ndarray | None,
    plane_affine: ArrayLike | None,
    units: str,
    suv_factor: float | None = None,
) -> str:
    name = measurement.kind.capitalize()
    if image is None or plane_affine is None:
        area = _area_without_image(measurement, plane_affine)
        return f"{name} area {fmt.area_mm2(area)} mm²"
    stats = roi_stats(image, plane_affine, measurement)
    area_text = f"area {fmt.area_mm2(stats.area_mm2)} mm²"
    if stats.pixels == 0:
        return f"{name} no pixels inside, {area_text}"
    suv = (f", SUVmax {stats.max * suv_factor:.2f}, SUVmean {stats.mean * suv_factor:.2f}"
           if suv_factor is not None else "")  # fmt: skip
    return (
        f"{name} mean {fmt.mean_value(stats.mean, units)}, SD {fmt.mean_value(stats.sd)}, "
        f"min {fmt.image_value(stats.min)}, max {fmt.image_value(stats.max)}{suv}, {area_text}"
    )


def _probe_summary(
    measurement: Measurement,
    image: np.ndarray | None,
    plane_affine: ArrayLike | None,
    units: str,
    suv_factor: float | None = None,
) -> str:
    where = f"at {fmt.point_lps(measurement.points[0])} mm LPS"
    if image is None or plane_affine is None:
        return f"Probe {where}"
    value = probe_value(image, plane_affine, measurement.points[0])
    if value is None:
        return f"Probe outside image {where}"
    if isinstance(value, tuple):
        text = "RGB (" + ", ".join(fmt.image_value(v) for v in value) + ")"
    else:
        text = fmt.image_value(value, units)
        if suv_factor is not None:
            text += f" (SUV {value * suv_factor:.2f})"
    return f"Probe {text} {where}"


def summary(
    measurement: Measurement,
    image: np.ndarray | None = None,
    plane_affine: ArrayLike | None = None,
    units: str = "",
    suv_factor: float | None = None,
) -> str:
    """One line describing a measurement, as the viewer shows and lists it.

    Parameters
    ----------
    measurement : Measurement
        The measurement; a non-empty label is put in front (``"label: ..."``).
    image : numpy.ndarray, optional
        The displayed image, for ROI statistics and probe values.
    plane_affine : array_like, optional
        4x4 matrix of the displayed plane (needed with `image`; alone it gives the ROI area).
    units : str, optional
        Modality units (``"HU"``) written after the mean and the probe value.
    suv_factor : float, optional
        A PET series' SUVbw factor (:mod:`medviewer.core.suv`): ROIs add SUVmax and SUVmean,
        probes the SUV.

    Returns
    -------
    str
        E.g. ``"Distance 42.3 mm"``, ``"Angle 90.0°"``,
        ``"Ellipse mean 39.8 HU, SD 12.1, min 2, max 80, area 314.2 mm²"`` or
        ``"Probe 40 HU at (12.0, -30.5, 100.0) mm LPS"``. Without image and affine an ROI
        gives its area only and a probe its position only.
    """
    points = measurement.points
    if measurement.kind == "distance":
        text = f"Distance {fmt.length_mm(distance_mm(points[0], points[1]))} mm"
    elif measurement.kind == "angle":
        text = f"Angle {fmt.angle_deg(angle_deg(points[0], points[1], points[2]))}°"
    elif measurement.kind == "probe":
        text = _probe_summary(measurement, image, plane_affine, units, suv_factor)
    else:
        text = _roi_summary(measurement, image, plane_affine, units, suv_factor)
    return f"{measurement.label}: {text}" if measurement.label else text
