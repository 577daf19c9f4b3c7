"""Patient-space geometry of DICOM volumes.

All patient coordinates are DICOM LPS millimetres: +x towards the patient's
Left, +y Posterior, +z Superior.

Volume arrays are indexed ``array[slice, row, col]`` and a 4x4 ``affine``
maps the homogeneous index ``(col, row, slice, 1)`` to ``(x, y, z, 1)``:

* ``affine[:3, 0]`` = row direction cosine * column spacing (``PixelSpacing[1]``),
* ``affine[:3, 1]`` = column direction cosine * row spacing (``PixelSpacing[0]``),
* ``affine[:3, 2]`` = slice step vector,
* ``affine[:3, 3]`` = Image Position (Patient) of slice 0.

The module also extracts the three standard viewer planes (axial, coronal,
sagittal) in radiological display convention as zero-copy numpy views.
"""

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medviewer.core.errors import GeometryError

__all__ = [
    "Plane",
    "PlaneSlice",
    "SliceSorting",
    "affine_from_dicom",
    "direction_of",
    "native_plane",
    "nearest_plane",
    "orientation_letters",
    "patient_to_voxel",
    "plane_count",
    "projection_edge_letters",
    "reslice",
    "slice_normal",
    "sort_slices",
    "spacing_of",
    "validate_affine",
    "voxel_to_patient",
]

Plane = Literal["axial", "coronal", "sagittal"]

FloatArray = NDArray[np.float64]

_UNIT_TOLERANCE = 1e-3
_ORTHOGONAL_TOLERANCE = 1e-3
_AFFINE_ORTHOGONAL_TOLERANCE = 1e-4
_LETTER_THRESHOLD = 1e-3
_TILT_LIMIT_DEGREES = 0.1
_MIN_SPACING_MM = 1e-9
_MAX_CONDITION = 1e12

# The anatomical letters of the LPS axes (x, y, z): (towards negative, towards positive).
# Every place that names or reads an axis letter (orientation labels, a model card's
# orientation code) uses this table.
AXIS_LETTERS: tuple[tuple[str, str], ...] = (("R", "L"), ("A", "P"), ("I", "S"))

# plane -> (normal, screen-right, screen-down) in LPS.
_PLANE_VECTORS: dict[str, tuple[FloatArray, FloatArray, FloatArray]] = {
    "axial": (np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
    "coronal": (np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "sagittal": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),
}


# --------------------------------------------------------------------------- helpers


def _as_vector(values: ArrayLike, size: int, name: str) -> FloatArray:
    """Return `values` as a finite float64 vector of length `size`."""
    arr = np.array(values, dtype=np.float64)
    if arr.shape != (size,):
        raise GeometryError(f"{name} must have exactly {size} values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GeometryError(f"{name} contains non-finite values: {arr.tolist()}")
    return arr


def _as_points(values: ArrayLike, name: str) -> FloatArray:
    """Return `values` as a float64 array whose last axis has length 3."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise GeometryError(f"{name} must have shape (..., 3), got shape {arr.shape}")
    return arr


def _split_orientation(orientation: Sequence[float]) -> tuple[FloatArray, FloatArray]:
    """Validate an Image Orientation (Patient) and return (row, column) cosines."""
    iop = _as_vector(orientation, 6, "Image Orientation (Patient)")
    row, col = iop[:3], iop[3:]
    for name, cosine in (("row", row), ("column", col)):
        length = float(np.linalg.norm(cosine))
        if abs(length - 1.0) > _UNIT_TOLERANCE:
            raise GeometryError(
                f"Image Orientation (Patient) {name} cosine {cosine.tolist()} is not a unit "
                f"vector (length {length:.6g}, tolerance {_UNIT_TOLERANCE:g})"
            )
    dot = float(row @ col)
    if abs(dot) > _ORTHOGONAL_TOLERANCE:
        raise GeometryError(
            f"Image Orientation (Patient) row and column cosines are not orthogonal "
            f"(dot product {dot:.6g}, tolerance {_ORTHOGONAL_TOLERANCE:g})"
        )
    return row, col


def _affine_array(affine: ArrayLike) -> FloatArray:
    """Return a float64 4x4 copy of `affine` with a finite, homogeneous layout."""
    arr = np.array(affine, dtype=np.float64)
    if arr.shape != (4, 4):
        raise GeometryError(f"affine must have shape (4, 4), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GeometryError("affine contains non-finite values (NaN or infinity)")
    if not np.array_equal(arr[3], [0.0, 0.0, 0.0, 1.0]):
        raise GeometryError(f"affine last row must be [0, 0, 0, 1], got {arr[3].tolist()}")
    return arr


def _nonzero_spacing(arr: FloatArray) -> FloatArray:
    """Return the column norms of the 3x3 part, raising on a zero-length axis."""
    spacing: FloatArray = np.linalg.norm(arr[:3, :3], axis=0)
    for axis, name in enumerate(("column", "row", "slice")):
        if spacing[axis] <= _MIN_SPACING_MM:
            raise GeometryError(
                f"affine has zero spacing along the {name} axis (affine column {axis})"
            )
    return spacing


def _check_orthogonal(directions: FloatArray) -> None:
    """Raise when unit axis directions are not pairwise orthogonal."""
    for a, b in ((0, 1), (0, 2), (1, 2)):
        dot = float(abs(directions[:, a] @ directions[:, b]))
        if dot > _AFFINE_ORTHOGONAL_TOLERANCE:
            raise GeometryError(
                f"affine axes {a} and {b} are not orthogonal (|cos angle| = {dot:.6g}, "
                f"tolerance {_AFFINE_ORTHOGONAL_TOLERANCE:g}); sheared volumes need resampling"
            )


def _invertible_affine(affine: ArrayLike) -> FloatArray:
    """Return a checked affine whose 3x3 part is safely invertible (shear allowed)."""
    arr = _affine_array(affine)
    _nonzero_spacing(arr)
    singular_values = np.linalg.svd(arr[:3, :3], compute_uv=False)
    if singular_values[-1] * _MAX_CONDITION <= singular_values[0]:
        raise GeometryError("affine 3x3 part is singular or nearly singular")
    return arr


# --------------------------------------------------------------------------- orientation


def slice_normal(orientation: Sequence[float]) -> FloatArray:
    """Return the unit slice normal ``cross(row_cosine, column_cosine)``.

    Parameters
    ----------
    orientation : sequence of float
        Image Orientation (Patient): row cosine followed by column cosine.

    Returns
    -------
    numpy.ndarray
        Unit vector of shape (3,) in LPS.

    Raises
    ------
    ValueError
        If there are not 6 finite values, a cosine is not unit length within
        1e-3, or the cosines are not orthogonal within 1e-3.
    """
    row, col = _split_orientation(orientation)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def orientation_letters(vector: ArrayLike, max_letters: int = 3) -> str:
    """Return the DICOM patient-orientation letters of a direction in LPS.

    Parameters
    ----------
    vector : array_like, shape (3,)
        Direction (any non-zero length) in LPS.
    max_letters : int, optional
        Maximum number of letters returned (default 3).

    Returns
    -------
    str
        Letters from ``L/R`` (+x/-x), ``P/A`` (+y/-y) and ``S/I`` (+z/-z),
        ordered by decreasing component magnitude; components whose magnitude
        after normalisation is not above 1e-3 are omitted.

    Raises
    ------
    ValueError
        If the vector is not 3 finite values, is zero, or `max_letters` < 1.
    """
    vec = _as_vector(vector, 3, "direction vector")
    length = float(np.linalg.norm(vec))
    if length == 0.0:
        raise GeometryError("cannot name the direction of a zero vector")
    if max_letters < 1:
        raise GeometryError(f"max_letters must be at least 1, got {max_letters}")
    unit = vec / length
    order = np.argsort(-np.abs(unit), kind="stable")
    letters = [AXIS_LETTERS[a][int(unit[a] > 0)] for a in order if abs(unit[a]) > _LETTER_THRESHOLD]
    return "".join(letters[:max_letters])


def letter_vector(letter: str) -> tuple[float, float, float]:
    """The LPS unit vector an axis letter points along (``"L"`` -> ``(1, 0, 0)``).

    Parameters
    ----------
    letter : str
        One of R, L, A, P, I, S (either case).

    Returns
    -------
    tuple of float
        The unit vector, in DICOM patient coordinates (+x Left, +y Posterior, +z Superior).

    Raises
    ------
    GeometryError
        If `letter` is not one of the six axis letters.
    """
    for axis, pair in enumerate(AXIS_LETTERS):
        if letter.upper() in pair:
            vector = [0.0, 0.0, 0.0]
            vector[axis] = 1.0 if pair.index(letter.upper()) == 1 else -1.0
            return (vector[0], vector[1], vector[2])
    raise GeometryError(f"not an axis letter: {letter!r} (one of R, L, A, P, I, S)")


# Patient Orientation (0020,0020) letters and their opposites (PS3.3 C.7.6.1.1.1): H/F are
# head/foot; the quadruped terms are anatomical directions of their own.
_OPPOSITE_LETTERS = {
    "L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H",
    "CR": "CD", "CD": "CR", "LE": "RT", "RT": "LE", "D": "V", "V": "D",
    "M": "L", "PR": "DI", "DI": "PR", "PA": "PL", "PL": "PA",
}  # fmt: skip


def _opposite_letters(letters: str) -> str:
    """The opposite of a Patient Orientation value, e.g. ``"LF"`` -> ``"RH"`` ("" if unknown)."""
    text, out = letters.strip().upper(), []
    while text:
        for size in (2, 1):
            if text[:size] in _OPPOSITE_LETTERS and (size == 1 or len(text) >= 2):
                out.append(_OPPOSITE_LETTERS[text[:size]])
                text = text[size:]
                break
        else:
            return ""
    return "".join(out)


def projection_edge_letters(patient_orientation: Sequence[str]) -> dict[str, str]:
    """Edge letters of an image shown as stored, from its Patient Orientation (0020,0020).

    Parameters
    ----------
    patient_orientation : sequence of str
        The row direction (towards the right edge) then the column direction (towards the
        bottom edge), e.g. ``("L", "F")`` for a PA chest radiograph.

    Returns
    -------
    dict
        ``left``/``right``/``top``/``bottom`` letters; empty when the value is not two
        known direction codes.
    """
    if len(patient_orientation) != 2:
        return {}
    right, bottom = (str(v).strip().upper() for v in patient_orientation)
    left, top = _opposite_letters(right), _opposite_letters(bottom)
    if not (left and top):
        return {}
    return {"left": left, "right": right, "top": top, "bottom": bottom}


def nearest_plane(normal: ArrayLike) -> Plane:
    """The standard plane (axial, coronal or sagittal) nearest to a slice normal."""
    vec = _as_vector(normal, 3, "slice normal")
    planes: tuple[Plane, Plane, Plane] = ("sagittal", "coronal", "axial")
    return planes[int(np.argmax(np.abs(vec)))]


def native_plane(affine: ArrayLike) -> Plane:
    """The standard plane nearest to a volume's acquired slices (its row x column plane).

    A single sagittal image shown in this plane is the image itself; in the axial plane it
    would be one row of pixels seen edge-on.
    """
    arr = _invertible_affine(affine)
    return nearest_plane(np.cross(arr[:3, 0], arr[:3, 1]))


# --------------------------------------------------------------------------- slice sorting


@dataclass(frozen=True, eq=False)
class SliceSorting:
    """Result of :func:`sort_slices`.

    Attributes
    ----------
    order : numpy.ndarray
        Integer indices into the input positions, sorted by increasing
        distance along the slice normal.
    distances : numpy.ndarray
        Sorted distances (mm) of the slices along the normal.
    spacing : float
        Median consecutive distance difference (mm); 0.0 for a single slice.
    step : numpy.ndarray
        Mean position difference between consecutive sorted slices, shape (3,);
        the unit normal for a single slice.
    warnings : tuple of str
        Human-readable geometry warnings (empty when the series is clean).
    """

    order: NDArray[np.intp]
    distances: FloatArray
    spacing: float
    step: FloatArray
    warnings: tuple[str, ...]


def _as_positions(positions: ArrayLike) -> FloatArray:
    """Return positions as a finite (n, 3) float64 array with n >= 1."""
    pos = np.array(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise GeometryError(f"positions must have shape (n, 3) with n >= 1, got shape {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise GeometryError("positions contain non-finite values")
    return pos


def _uneven_warnings(diffs: FloatArray, spacing: float, tolerance: float) -> list[str]:
    """Warn when consecutive distances deviate from the median spacing."""
    if diffs.size == 0:
        return []
    limit = max(tolerance, 0.01 * spacing)
    deviation = float(np.max(np.abs(diffs - spacing)))
    if deviation <= limit:
        return []
    return [
        f"uneven slice spacing: consecutive slice distances range from {diffs.min():.4g} to "
        f"{diffs.max():.4g} mm around a median spacing of {spacing:.4g} mm (largest deviation "
        f"{deviation:.4g} mm, allowed {limit:.4g} mm)"
    ]


def _gap_warnings(diffs: FloatArray, spacing: float, tolerance: float) -> list[str]:
    """Warn when some consecutive distances exceed 1.5 times the median spacing."""
    if spacing <= tolerance:
        return []
    gaps = diffs[diffs > 1.5 * spacing]
    if gaps.size == 0:
        return []
    sizes = ", ".join(f"{gap:.4g}" for gap in gaps)
    missing = int(sum(max(round(gap / spacing) - 1, 1) for gap in gaps))
    return [
        f"missing slices / gap: {gaps.size} gap(s) larger than 1.5 x the median spacing of "
        f"{spacing:.4g} mm (gap sizes {sizes} mm; about {missing} slice(s) missing)"
    ]


def _duplicate_warnings(diffs: FloatArray, tolerance: float) -> list[str]:
    """Warn when consecutive slices are closer than the tolerance along the normal."""
    close = diffs[diffs < tolerance]
    if close.size == 0:
        return []
    return [
        f"duplicate slice positions: {close.size} slice(s) lie within {tolerance:g} mm of the "
        f"previous slice along the normal (smallest separation {close.min():.4g} mm)"
    ]


def _tilt_warnings(vectors: FloatArray, normal: FloatArray, tolerance: float) -> list[str]:
    """Warn when consecutive position steps deviate from the normal by > 0.1 degree."""
    along = vectors @ normal
    steps = vectors[(along >= tolerance) & (along > 0.0)]
    if steps.shape[0] == 0:
        return []
    lateral = np.linalg.norm(np.cross(steps, normal), axis=1)
    angles = np.degrees(np.arctan2(lateral, steps @ normal))
    tilted = int(np.count_nonzero(angles > _TILT_LIMIT_DEGREES))
    if tilted == 0:
        return []
    return [
        f"gantry tilt: {tilted} of {angles.size} slice step(s) deviate from the slice normal by "
        f"up to {angles.max():.2f} degrees (limit {_TILT_LIMIT_DEGREES:g} degree); the volume "
        f"is sheared"
    ]


def _mean_step(sorted_positions: FloatArray, normal: FloatArray) -> FloatArray:
    """Return (p_last - p_first) / (n - 1), or the normal for a single slice."""
    count = sorted_positions.shape[0]
    if count < 2:
        return normal.copy()
    step: FloatArray = (sorted_positions[-1] - sorted_positions[0]) / (count - 1)
    return step


def sort_slices(
    positions: ArrayLike, orientation: Sequence[float], tolerance_mm: float = 0.01
) -> SliceSorting:
    """Sort slices by the projection of their Image Position onto the slice normal.

    Parameters
    ----------
    positions : array_like, shape (n, 3)
        Image Position (Patient) of each slice, in LPS mm.
    orientation : sequence of float
        Image Orientation (Patient) shared by the slices.
    tolerance_mm : float, optional
        Distance tolerance (mm) for duplicate and uneven-spacing checks.

    Returns
    -------
    SliceSorting
        Sorting order, sorted distances, spacing, mean step and warnings about
        uneven spacing, gaps, duplicate positions and gantry tilt.

    Raises
    ------
    ValueError
        For malformed positions, orientation or tolerance.
    """
    normal = slice_normal(orientation)
    pos = _as_positions(positions)
    tolerance = float(tolerance_mm)
    if not np.isfinite(tolerance) or tolerance < 0.0:
        raise GeometryError(f"tolerance_mm must be finite and >= 0, got {tolerance_mm}")
    projected = pos @ normal
    order = np.argsort(projected, kind="stable")
    distances = projected[order]
    sorted_pos = pos[order]
    diffs = np.diff(distances)
    spacing = float(np.median(diffs)) if diffs.size else 0.0
    warnings = (
        _uneven_warnings(diffs, spacing, tolerance)
        + _gap_warnings(diffs, spacing, tolerance)
        + _duplicate_warnings(diffs, tolerance)
        + _tilt_warnings(np.diff(sorted_pos, axis=0), normal, tolerance)
    )
    return SliceSorting(order, distances, spacing, _mean_step(sorted_pos, normal), tuple(warnings))


# --------------------------------------------------------------------------- affines


def affine_from_dicom(
    position: ArrayLike,
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    slice_step: ArrayLike | None = None,
) -> FloatArray:
    """Build the 4x4 index-to-LPS affine of a DICOM volume.

    Parameters
    ----------
    position : array_like
        Image Position (Patient) of the first slice (index 0).
    orientation : sequence of float
        Image Orientation (Patient): row cosine then column cosine.
    pixel_spacing : sequence of float
        DICOM PixelSpacing ``[row spacing, column spacing]`` in mm.
    slice_step : array_like or None, optional
        Position difference between consecutive slices; None uses the unit
        slice normal (1 mm).

    Returns
    -------
    numpy.ndarray
        Float64 4x4 matrix mapping ``(col, row, slice, 1)`` to ``(x, y, z, 1)``.

    Raises
    ------
    ValueError
        For malformed inputs, non-positive pixel spacing or a zero slice step.
    """
    row_cosine, col_cosine = _split_orientation(orientation)
    origin = _as_vector(position, 3, "Image Position (Patient)")
    row_spacing, col_spacing = _as_vector(pixel_spacing, 2, "PixelSpacing")
    if row_spacing <= 0.0 or col_spacing <= 0.0:
        raise GeometryError(f"PixelSpacing must be positive, got {[row_spacing, col_spacing]}")
    if slice_step is None:
        step = slice_normal(orientation)
    else:
        step = _as_vector(slice_step, 3, "slice step")
    if np.linalg.norm(step) <= _MIN_SPACING_MM:
        raise GeometryError("slice step must not be a zero vector")
    affine = np.eye(4)
    affine[:3, 0] = row_cosine * col_spacing
    affine[:3, 1] = col_cosine * row_spacing
    affine[:3, 2] = step
    affine[:3, 3] = origin
    return affine


def validate_affine(affine: ArrayLike) -> FloatArray:
    """Check a volume affine and return a float64 4x4 copy.

    Parameters
    ----------
    affine : array_like
        Candidate 4x4 index-to-LPS matrix.

    Returns
    -------
    numpy.ndarray
        Float64 copy of `affine`.

    Raises
    ------
    ValueError
        For a wrong shape, non-finite values, a last row other than
        ``[0, 0, 0, 1]``, zero spacing on an axis, or axis directions that are
        not orthogonal (pairwise ``|cos angle|`` > 1e-4).
    """
    arr = _affine_array(affine)
    spacing = _nonzero_spacing(arr)
    _check_orthogonal(arr[:3, :3] / spacing)
    return arr


def spacing_of(affine: ArrayLike) -> FloatArray:
    """Return the (col, row, slice) voxel spacings in mm (affine column norms).

    Parameters
    ----------
    affine : array_like
        4x4 index-to-LPS matrix.

    Returns
    -------
    numpy.ndarray
        Shape (3,) spacings.
    """
    spacings: FloatArray = np.linalg.norm(_affine_array(affine)[:3, :3], axis=0)
    return spacings


def direction_of(affine: ArrayLike) -> FloatArray:
    """Return the 3x3 matrix whose columns are the unit (col, row, slice) directions.

    Parameters
    ----------
    affine : array_like
        4x4 index-to-LPS matrix.

    Returns
    -------
    numpy.ndarray
        Shape (3, 3) matrix of unit column vectors in LPS.

    Raises
    ------
    ValueError
        If an axis has zero spacing.
    """
    arr = _affine_array(affine)
    return arr[:3, :3] / _nonzero_spacing(arr)


def voxel_to_patient(affine: ArrayLike, ijk: ArrayLike) -> FloatArray:
    """Map continuous voxel indices ``(col, row, slice)`` to LPS millimetres.

    Parameters
    ----------
    affine : array_like
        4x4 index-to-LPS matrix.
    ijk : array_like, shape (..., 3)
        Voxel indices ordered (col, row, slice).

    Returns
    -------
    numpy.ndarray
        LPS points with the same shape as `ijk`.
    """
    arr = _affine_array(affine)
    points = _as_points(ijk, "ijk")
    return points @ arr[:3, :3].T + arr[:3, 3]


def patient_to_voxel(affine: ArrayLike, xyz: ArrayLike) -> FloatArray:
    """Map LPS millimetres to continuous voxel indices ``(col, row, slice)``.

    Parameters
    ----------
    affine : array_like
        4x4 index-to-LPS matrix (must be invertible).
    xyz : array_like, shape (..., 3)
        LPS points.

    Returns
    -------
    numpy.ndarray
        Voxel indices with the same shape as `xyz`.

    Raises
    ------
    ValueError
        If the affine is malformed or singular.
    """
    arr = _invertible_affine(affine)
    points = _as_points(xyz, "xyz")
    inverse = np.linalg.inv(arr[:3, :3])
    return (points - arr[:3, 3]) @ inverse.T


# --------------------------------------------------------------------------- reslicing


@dataclass(frozen=True, eq=False)
class PlaneSlice:
    """One screen image of a standard plane.

    Attributes
    ----------
    image : numpy.ndarray
        View of the volume, shape (rows, cols) or (rows, cols, 3) for colour.
    affine : numpy.ndarray
        4x4 matrix mapping ``(screen_col, screen_row, 0, 1)`` to LPS; its third
        column is the step to the next slice of the plane.
    pixel_spacing : tuple of float
        (screen row spacing, screen column spacing) in mm.
    edge_letters : dict of str to str
        Orientation letters for the 'left', 'right', 'top' and 'bottom' edges.
    """

    image: np.ndarray
    affine: FloatArray
    pixel_spacing: tuple[float, float]
    edge_letters: dict[str, str]


@dataclass(frozen=True)
class _PlaneAxes:
    """Affine axes (0=col, 1=row, 2=slice) and signs used to display a plane."""

    through: int
    col: int
    row: int
    through_sign: int
    col_sign: int
    row_sign: int


def _plane_vectors(plane: str) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (normal, screen-right, screen-down) of a standard plane."""
    try:
        return _PLANE_VECTORS[plane]
    except KeyError:
        raise GeometryError(
            f"unknown plane {plane!r}; expected 'axial', 'coronal' or 'sagittal'"
        ) from None


def _sign(value: float) -> int:
    """Return -1 for negative values, +1 otherwise."""
    return -1 if value < 0.0 else 1


def _plane_axes(arr: FloatArray, plane: str) -> _PlaneAxes:
    """Choose the acquisition axes nearest to a plane's normal, right and down."""
    normal, right, down = _plane_vectors(plane)
    directions = arr[:3, :3] / _nonzero_spacing(arr)
    through = int(np.argmax(np.abs(normal @ directions)))
    rest = [axis for axis in range(3) if axis != through]
    col = max(rest, key=lambda axis: abs(float(right @ directions[:, axis])))
    row = rest[1] if col == rest[0] else rest[0]
    return _PlaneAxes(
        through=through,
        col=col,
        row=row,
        through_sign=_sign(float(normal @ directions[:, through])),
        col_sign=_sign(float(right @ directions[:, col])),
        row_sign=_sign(float(down @ directions[:, row])),
    )


def _volume_sizes(shape: Sequence[int]) -> tuple[int, int, int]:
    """Return the sizes along affine axes (col, row, slice) of a volume shape."""
    dims = tuple(int(n) for n in shape)
    if len(dims) not in (3, 4) or (len(dims) == 4 and dims[3] != 3):
        raise GeometryError(
            f"volume shape must be (slices, rows, cols) or (slices, rows, cols, 3), got {dims}"
        )
    return dims[2], dims[1], dims[0]


def _voxel_index(index: int, count: int, sign: int) -> int:
    """Convert a plane index (increasing along the normal) to a voxel index."""
    position = operator.index(index)
    if not 0 <= position < count:
        raise IndexError(f"plane index {position} out of range for {count} slice(s)")
    return position if sign > 0 else count - 1 - position


def _plane_view(volume: np.ndarray, axes: _PlaneAxes, voxel_index: int) -> np.ndarray:
    """Return the (rows, cols[, 3]) screen view of one slice without copying."""
    perm = (2 - axes.through, 2 - axes.row, 2 - axes.col, *range(3, volume.ndim))
    view: np.ndarray = volume.transpose(perm)[voxel_index]
    return view[:: axes.row_sign, :: axes.col_sign]


def _plane_affine(
    arr: FloatArray, axes: _PlaneAxes, sizes: tuple[int, int, int], voxel_index: int
) -> FloatArray:
    """Return the (screen_col, screen_row, k) -> LPS affine of a plane view."""
    corner = np.zeros(3)
    corner[axes.through] = voxel_index
    corner[axes.col] = 0 if axes.col_sign > 0 else sizes[axes.col] - 1
    corner[axes.row] = 0 if axes.row_sign > 0 else sizes[axes.row] - 1
    out = np.eye(4)
    out[:3, 0] = arr[:3, axes.col] * axes.col_sign
    out[:3, 1] = arr[:3, axes.row] * axes.row_sign
    out[:3, 2] = arr[:3, axes.through] * axes.through_sign
    out[:3, 3] = arr[:3, :3] @ corner + arr[:3, 3]
    return out


def _edge_letters(plane_affine: FloatArray) -> dict[str, str]:
    """Return orientation letters for the four screen edges."""
    right, down = plane_affine[:3, 0], plane_affine[:3, 1]
    return {
        "left": orientation_letters(-right),
        "right": orientation_letters(right),
        "top": orientation_letters(-down),
        "bottom": orientation_letters(down),
    }


def plane_count(shape: Sequence[int], affine: ArrayLike, plane: Plane) -> int:
    """Return how many slices of `plane` the volume provides.

    Parameters
    ----------
    shape : sequence of int
        Volume shape ``(slices, rows, cols)`` or ``(slices, rows, cols, 3)``.
    affine : array_like
        4x4 index-to-LPS matrix of the volume.
    plane : {'axial', 'coronal', 'sagittal'}
        Standard viewing plane.

    Returns
    -------
    int
        Number of valid indices for :func:`reslice`.
    """
    sizes = _volume_sizes(shape)
    axes = _plane_axes(_invertible_affine(affine), plane)
    return sizes[axes.through]


def reslice(array: np.ndarray, affine: ArrayLike, plane: Plane, index: int) -> PlaneSlice:
    """Extract one slice of a standard plane as a zero-copy view.

    The volume axis most aligned with the plane normal (axial +z, coronal +y,
    sagittal +x) is the through-plane axis; of the others, the one most aligned
    with screen-right gives screen columns and the other screen rows, each
    flipped to follow the radiological display convention. Oblique volumes use
    the nearest acquisition axes without interpolation.

    Parameters
    ----------
    array : numpy.ndarray
        Volume indexed ``[slice, row, col]`` (optionally with a trailing colour
        axis of 3).
    affine : array_like
        4x4 index-to-LPS matrix of the volume.
    plane : {'axial', 'coronal', 'sagittal'}
        Standard viewing plane.
    index : int
        Slice index counted in increasing patient coordinate along the plane
        normal (axial 0 is the most inferior slice).

    Returns
    -------
    PlaneSlice
        The view, its screen affine, pixel spacing and edge letters.

    Raises
    ------
    IndexError
        If `index` is out of range.
    ValueError
        For a malformed affine, volume shape or plane name.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy.ndarray, got {type(array).__name__}")
    sizes = _volume_sizes(array.shape)
    arr = _invertible_affine(affine)
    axes = _plane_axes(arr, plane)
    voxel_index = _voxel_index(index, sizes[axes.through], axes.through_sign)
    plane_affine = _plane_affine(arr, axes, sizes, voxel_index)
    spacing = (
        float(np.linalg.norm(plane_affine[:3, 1])),
        float(np.linalg.norm(plane_affine[:3, 0])),
    )
    return PlaneSlice(
        image=_plane_view(array, axes, voxel_index),
        affine=plane_affine,
        pixel_spacing=spacing,
        edge_letters=_edge_letters(plane_affine),
    )
