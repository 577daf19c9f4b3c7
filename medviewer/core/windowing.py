"""Display windowing: DICOM linear VOI windows, VOI LUTs, presets and auto-windowing.

Everything here maps stored (or modality-rescaled) pixel values to 8-bit display
values. The linear window follows DICOM PS3.3 C.11.2.1.2.1 ("LINEAR"): for window
center ``c`` and width ``w`` (``w >= 1``)::

    x <= c - 0.5 - (w - 1) / 2       -> 0
    x >  c - 0.5 + (w - 1) / 2       -> 255
    otherwise  y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255

and ``y`` is rounded half up to the nearest integer. The arithmetic is done in
float32 on every path, so the lookup-table path used for integer images and the
direct path used for float images give identical results for identical values.

This module depends on numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CT_PRESETS",
    "VoiLut",
    "WindowPreset",
    "apply_window",
    "auto_window",
    "presets_for_modality",
    "window_from_dicom",
    "window_lut",
]

U8Array = npt.NDArray[np.uint8]

#: Largest number of distinct input values (hi - lo + 1) served by a lookup table.
#: Every 8- and 16-bit image fits; wider integer images whose values span more
#: than this fall back to the float32 path.
MAX_LUT_SPAN = 1 << 16


def _check_window(center: float, width: float) -> None:
    """Raise ``ValueError`` unless center is finite and width is finite and >= 1."""
    if not math.isfinite(center):
        raise ValueError(f"window center must be finite, got {center!r}")
    if not (math.isfinite(width) and width >= 1):
        raise ValueError(f"window width must be a finite number >= 1, got {width!r}")


@dataclass(frozen=True)
class WindowPreset:
    """A named window (center/width pair) as in DICOM WindowCenter/WindowWidth.

    Raises ``ValueError`` when ``width`` is not a finite number >= 1.
    """

    name: str
    center: float
    width: float

    def __post_init__(self) -> None:
        _check_window(self.center, self.width)


CT_PRESETS: tuple[WindowPreset, ...] = (  # in number-key order (1..8) of the viewer
    WindowPreset("Brain", 40.0, 80.0),
    WindowPreset("Subdural", 80.0, 200.0),
    WindowPreset("Stroke", 40.0, 40.0),
    WindowPreset("Lung", -600.0, 1500.0),
    WindowPreset("Mediastinum", 50.0, 350.0),
    WindowPreset("Abdomen", 50.0, 400.0),
    WindowPreset("Liver", 30.0, 150.0),
    WindowPreset("Bone", 400.0, 1800.0),
)


def presets_for_modality(modality: str) -> tuple[WindowPreset, ...]:
    """Return the built-in window presets for a DICOM modality.

    Parameters
    ----------
    modality : str
        DICOM Modality (0008,0060), e.g. ``"CT"``; case and surrounding
        whitespace are ignored.

    Returns
    -------
    tuple of WindowPreset
        ``CT_PRESETS`` for CT, an empty tuple for every other modality.
    """
    return CT_PRESETS if modality.strip().upper() == "CT" else ()


def _window_inplace(
    x: npt.NDArray[np.float32], center: float, width: float, invert: bool
) -> npt.NDArray[np.float32]:
    """Apply the DICOM linear window to float32 ``x`` in place.

    The result holds whole numbers in [0, 255]; NaN maps to 0.
    """
    c0 = np.float32(center - 0.5)
    if width == 1:
        np.greater(x, c0, out=x, casting="unsafe")  # step: x > c - 0.5 -> 1
        np.multiply(x, np.float32(255), out=x)
    else:
        np.subtract(x, c0, out=x)
        np.divide(x, np.float32(width - 1), out=x)
        np.add(x, np.float32(0.5), out=x)
        np.multiply(x, np.float32(255), out=x)
        np.fmax(x, np.float32(0), out=x)  # fmax/fmin also send NaN to 0
        np.fmin(x, np.float32(255), out=x)
        np.add(x, np.float32(0.5), out=x)  # round half up
        np.floor(x, out=x)
    if invert:
        np.subtract(np.float32(255), x, out=x)
    return x


def window_lut(center: float, width: float, lo: int, hi: int, invert: bool = False) -> U8Array:
    """Build the uint8 lookup table of a linear window for inputs ``lo..hi``.

    Parameters
    ----------
    center, width : float
        Window center and width (``width >= 1``).
    lo, hi : int
        Smallest and largest input value covered (``lo <= hi``).
    invert : bool, optional
        Return ``255 - y`` (MONOCHROME1 display).

    Returns
    -------
    numpy.ndarray
        uint8 array of length ``hi - lo + 1``; entry ``k`` is the windowed value
        of input ``lo + k``.

    Raises
    ------
    ValueError
        If ``width < 1``, a value is not finite, or ``hi < lo``.
    """
    _check_window(center, width)
    if hi < lo:
        raise ValueError(f"hi ({hi}) must be >= lo ({lo})")
    x = np.arange(int(lo), int(hi) + 1, dtype=np.int64).astype(np.float32)
    return _window_inplace(x, center, width, invert).astype(np.uint8)


def _check_out(out: np.ndarray | None, shape: tuple[int, ...]) -> U8Array:
    """Return ``out`` (or a new array) after checking its dtype and shape."""
    if out is None:
        return np.empty(shape, dtype=np.uint8)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != shape:
        raise ValueError(f"out must be a uint8 array of shape {shape}")
    return out


def _as_numeric(array: npt.ArrayLike) -> np.ndarray:
    """Return ``array`` as a native-byte-order integer or floating ndarray."""
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"expected an integer or float array, got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _lut_index(arr: np.ndarray, lo: int, span: int) -> np.ndarray:
    """Return ``arr - lo`` as the smallest unsigned dtype holding ``0..span-1``.

    The subtraction runs on the unsigned view of ``arr`` and wraps modulo
    ``2**bits``, which is exact because the true result lies in ``[0, span)``.
    Numpy buffers the cast into the narrow output, so no wide temporary is made.
    """
    udt = np.dtype(f"u{arr.dtype.itemsize}")
    idx_dtype = np.uint8 if span <= 1 << 8 else np.uint16 if span <= 1 << 16 else np.uint32
    idx = np.empty(arr.shape, dtype=idx_dtype)
    offset = udt.type(lo % (1 << (8 * udt.itemsize)))
    np.subtract(arr.view(udt), offset, out=idx, casting="unsafe")
    return idx


def _lut_range(arr: np.ndarray) -> tuple[int, int] | None:
    """Return ``(lo, hi)`` of an integer array when it suits the LUT path, else None."""
    if not np.issubdtype(arr.dtype, np.integer) or arr.size == 0:
        return None
    lo, hi = int(arr.min()), int(arr.max())
    return (lo, hi) if hi - lo + 1 <= MAX_LUT_SPAN else None


def apply_window(
    array: npt.ArrayLike,
    center: float,
    width: float,
    invert: bool = False,
    out: U8Array | None = None,
) -> U8Array:
    """Map pixel values to 8-bit display values with the DICOM linear window.

    Integer images whose values span at most ``MAX_LUT_SPAN`` values go through a
    lookup table indexed by ``array - min`` in the narrowest unsigned dtype;
    other images are windowed directly in float32. Both paths give identical
    results for identical values.

    Parameters
    ----------
    array : array_like
        Integer or float pixel values of any shape (typically 2-D or 3-D).
    center, width : float
        Window center and width (``width >= 1``).
    invert : bool, optional
        Return ``255 - y`` (MONOCHROME1 display).
    out : numpy.ndarray, optional
        uint8 array of the same shape to write the result into.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape (``out`` when given). NaN maps to 0
        (255 when inverted).

    Raises
    ------
    ValueError
        If ``width < 1``, center/width are not finite, or ``out`` does not match.
    TypeError
        If ``array`` is neither integer nor floating point.
    """
    _check_window(center, width)
    arr = _as_numeric(array)
    result = _check_out(out, arr.shape)
    bounds = _lut_range(arr)
    if bounds is not None:
        lut = window_lut(center, width, bounds[0], bounds[1], invert)
        result[...] = lut[_lut_index(arr, bounds[0], bounds[1] - bounds[0] + 1)]
    elif arr.size:
        x = _window_inplace(arr.astype(np.float32), center, width, invert)
        np.copyto(result, x, casting="unsafe")
    return result


@dataclass(frozen=True, eq=False)
class VoiLut:
    """A DICOM VOI LUT (PS3.3 C.11.2.1.1) mapping values to ``0..2**bits - 1``.

    ``data`` is stored as a read-only uint8/uint16 copy. Equality is identity
    (``eq=False``) because numpy arrays have no single truth value.

    Attributes
    ----------
    first_mapped : int
        Input value mapped to ``data[0]`` (LUT Descriptor, second value).
    data : numpy.ndarray
        LUT entries (LUT Data), each in ``0..2**bits - 1``.
    bits : int
        Bits per entry (LUT Descriptor, third value), 1..16.
    explanation : str
        LUT Explanation (0028,3003): what the LUT shows, empty when not given.
    """

    first_mapped: int
    data: np.ndarray = field(repr=False)
    bits: int
    explanation: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be in 1..16, got {self.bits}")
        object.__setattr__(self, "first_mapped", int(self.first_mapped))
        object.__setattr__(self, "data", _lut_data(self.data))

    def display_table(self, invert: bool = False) -> U8Array:
        """Return ``data`` scaled to 0..255 (rounded half up), optionally inverted.

        Parameters
        ----------
        invert : bool, optional
            Return ``255 - y`` (MONOCHROME1 display).

        Returns
        -------
        numpy.ndarray
            uint8 array with one entry per LUT entry.
        """
        scaled = self.data.astype(np.float64) * (255.0 / ((1 << self.bits) - 1))
        table = np.floor(np.minimum(scaled, 255.0) + 0.5).astype(np.uint8)
        return 255 - table if invert else table

    def apply(self, array: npt.ArrayLike, invert: bool = False) -> U8Array:
        """Map pixel values through the LUT to 8-bit display values.

        Values below ``first_mapped`` map to ``data[0]``, values above
        ``first_mapped + len(data) - 1`` map to ``data[-1]``. Float values are
        rounded to the nearest entry (NaN maps to ``data[0]``).

        Parameters
        ----------
        array : array_like
            Integer or float pixel values of any shape.
        invert : bool, optional
            Return ``255 - y`` (MONOCHROME1 display).

        Returns
        -------
        numpy.ndarray
            uint8 array of the same shape.
        """
        arr = _as_numeric(array)
        table = self.display_table(invert)
        bounds = _lut_range(arr)
        if bounds is None:
            return table[self._float_index(arr)]
        lo, hi = bounds
        full = table[np.clip(np.arange(lo, hi + 1) - self.first_mapped, 0, table.size - 1)]
        display: U8Array = full[_lut_index(arr, lo, hi - lo + 1)]
        return display

    def equivalent_window(self) -> tuple[float, float]:
        """Return the linear window ``(center, width)`` spanning the LUT's ramp.

        The ramp runs from the last input of the LUT's flat start (the inputs mapped
        like the first one) to the first input of its flat end. This approximates the
        LUT's contrast: where a window/level drag can start.

        Returns
        -------
        tuple of float
            ``(center, width)`` with ``width >= 1``.
        """
        data = self.data
        after_start = np.flatnonzero(data != data[0])
        if after_start.size == 0:  # a constant LUT
            return float(self.first_mapped), 1.0
        before_end = np.flatnonzero(data != data[-1])
        lo = self.first_mapped + int(after_start[0]) - 1
        hi = self.first_mapped + int(before_end[-1]) + 1
        return (lo + hi) / 2.0, max(float(hi - lo), 1.0)

    def _float_index(self, arr: np.ndarray) -> npt.NDArray[np.intp]:
        """Return the clamped LUT index of each value of a float (or wide) array."""
        x = np.rint(arr.astype(np.float64) - self.first_mapped)
        np.fmax(x, 0, out=x)
        np.fmin(x, self.data.size - 1, out=x)
        return x.astype(np.intp)


def _lut_data(data: npt.ArrayLike) -> np.ndarray:
    """Validate VOI LUT entries and return them as a read-only uint8/uint16 copy."""
    arr = np.array(data)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError("VOI LUT data must be a non-empty 1-D integer array")
    if arr.dtype not in (np.uint8, np.uint16):
        if int(arr.min()) < 0 or int(arr.max()) > 0xFFFF:
            raise ValueError("VOI LUT entries must lie in 0..65535")
        arr = arr.astype(np.uint16)
    arr.flags.writeable = False
    return arr


def auto_window(
    array: npt.ArrayLike,
    low_pct: float = 0.5,
    high_pct: float = 99.5,
    max_samples: int = 1_000_000,
) -> tuple[float, float]:
    """Estimate a window from percentiles of the pixel values.

    Parameters
    ----------
    array : array_like
        Pixel values of any shape. Non-finite values are ignored.
    low_pct, high_pct : float, optional
        Percentiles (0..100, ``low_pct <= high_pct``) mapped to the window edges.
    max_samples : int, optional
        At most this many values are used: every ``k``-th element of the
        flattened array, ``k = ceil(size / max_samples)`` (deterministic).

    Returns
    -------
    tuple of float
        ``(center, width)`` with ``center = (p_low + p_high) / 2`` and
        ``width = max(p_high - p_low, 1)``; a constant array gives
        ``(value, 1.0)``.

    Raises
    ------
    ValueError
        If the percentiles or ``max_samples`` are invalid, or there is no
        finite value.
    """
    if not 0 <= low_pct <= high_pct <= 100:
        raise ValueError(f"need 0 <= low_pct <= high_pct <= 100, got {low_pct}, {high_pct}")
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    sample = _subsample(np.asarray(array), max_samples)
    if sample.size == 0:
        raise ValueError("auto_window needs at least one finite value")
    lo, hi = (float(v) for v in np.percentile(sample, [low_pct, high_pct]))
    return (lo + hi) / 2.0, max(hi - lo, 1.0)


def _subsample(arr: np.ndarray, max_samples: int) -> np.ndarray:
    """Return every k-th flattened element (at most ``max_samples``), finite only."""
    flat = arr.reshape(-1)
    step = max(1, -(-flat.size // max_samples))
    sample = flat[::step]
    if np.issubdtype(sample.dtype, np.floating):
        sample = sample[np.isfinite(sample)]
    return sample


def _as_list(values: Any) -> list[Any]:
    """Turn a DICOM value (None, scalar, string or multi-value) into a list."""
    if values is None:
        return []
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return [values]
    return list(values)


def _to_float(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None when it is not one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _preset_name(explanations: Sequence[Any], index: int) -> str:
    """Return the explanation at ``index`` or the fallback name ``DICOM <index+1>``."""
    if index < len(explanations):
        text = str(explanations[index]).strip()
        if text:
            return text
    return f"DICOM {index + 1}"


def window_from_dicom(
    center_values: Any,
    width_values: Any,
    explanations: Any = None,
) -> tuple[WindowPreset, ...]:
    """Turn DICOM WindowCenter/WindowWidth values into window presets.

    Parameters
    ----------
    center_values, width_values : float, sequence of float or None
        WindowCenter (0028,1050) and WindowWidth (0028,1051) values as pydicom
        returns them: a scalar, a multi-value, or None when absent. Numeric
        strings are accepted. Values are paired by position; extra values in
        the longer one are ignored.
    explanations : str, sequence of str or None, optional
        WindowCenterWidthExplanation (0028,1055), used as preset names.

    Returns
    -------
    tuple of WindowPreset
        One preset per pair whose center is finite and width is finite and
        >= 1. A pair without an explanation is named ``"DICOM <n>"``, ``n`` being
        its 1-based position in the DICOM values. Empty when either input is None.
    """
    names = _as_list(explanations)
    centers, widths = _as_list(center_values), _as_list(width_values)
    presets = []
    for index, (c, w) in enumerate(zip(centers, widths, strict=False)):
        center, width = _to_float(c), _to_float(w)
        if center is None or width is None or width < 1:
            continue
        presets.append(WindowPreset(_preset_name(names, index), center, width))
    return tuple(presets)
