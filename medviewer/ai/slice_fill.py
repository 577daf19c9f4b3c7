"""Fill between slices: an object drawn (or clicked) on some slices, completed on the slices
between them (3D Slicer's "Fill between slices", ITK-SNAP's interpolation).

Two methods, both SimpleITK:

- ``"distance"``: on each pair of consecutive drawn slices, the signed distance (mm, in the
  slice plane) to each outline, blended linearly by the position between them; a voxel is
  inside where the blend is <= 0 (Raya and Udupa's shape-based interpolation).
- ``"contour"``: ITK's morphological contour interpolation
  (``MorphologicalContourInterpolator``, Albu et al. 2008; Zukic et al., Insight Journal
  2016), which also handles an outline that splits or merges between the drawn slices.
  SimpleITK does not wrap it: it needs the optional ``itk-morphologicalcontourinterpolation``
  package (about 285 MB with ITK), so it is offered only where that is installed.

Which is closer to the truth is measured on the phantom's nodules and lungs
(``python -m medviewer.training evaluate-fill``) and written in docs/models.md.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

METHODS = ("distance", "contour")


def drawn_slices(mask: np.ndarray, axis: int) -> np.ndarray:
    """The indices along `axis` of the slices of `mask` that hold any voxel."""
    others = tuple(a for a in range(mask.ndim) if a != axis)
    return np.flatnonzero(mask.any(axis=others))


def fill_between_slices(mask: np.ndarray, axis: int, spacing: Sequence[float] | np.ndarray,
                        method: str = "distance") -> np.ndarray:
    """`mask` (bool, 3D) with the slices between its drawn slices along `axis` filled.

    Parameters
    ----------
    mask : ndarray of bool
        The object, drawn on some slices (any others are left as they are).
    axis : int
        The array axis across which slices are filled (0 for the slices of an axial series).
    spacing : sequence of float
        mm per voxel along each array axis (the distance method measures in the slice plane).
    method : str
        ``"distance"`` or ``"contour"`` (see the module docstring).

    Returns
    -------
    ndarray of bool
        A new mask; the drawn slices are unchanged. Fewer than two drawn slices: a copy.
    """
    if method not in METHODS:
        raise ValueError(f"unknown fill method {method!r}; use one of {', '.join(METHODS)}")
    drawn = drawn_slices(mask, axis)
    out = np.array(mask, dtype=bool, copy=True)
    if len(drawn) < 2:
        return out
    box = _box(mask)
    moved = np.moveaxis(out[box], axis, 0)  # a view: writes land in `out`
    plane = [s for a, s in enumerate(spacing) if a != axis]
    first = int(box[axis].start)
    slices = [int(k) - first for k in drawn]
    if method == "distance":
        _fill_by_distance(moved, slices, plane)
    else:
        _fill_by_contours(moved, slices)
    return out


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    found = np.argwhere(mask)
    low, high = found.min(axis=0), found.max(axis=0) + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _fill_by_distance(stack: np.ndarray, slices: list[int], plane: list[float]) -> None:
    """Shape-based interpolation on `stack` ([slice, a, b], written in place)."""
    distances = {k: _signed_distance(stack[k], plane) for k in slices}
    for k0, k1 in itertools.pairwise(slices):
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            stack[k] = (1.0 - t) * distances[k0] + t * distances[k1] < 0.0


def _signed_distance(section: np.ndarray, plane: list[float]) -> np.ndarray:
    """mm to the outline of `section` (2D): negative inside, positive outside, 0 half way
    between the outline's pixels and their outside neighbours (the mean of the distance maps
    of the section and of its complement: each alone is 0 on its own edge pixels)."""
    import SimpleITK as sitk

    def signed(mask: np.ndarray) -> np.ndarray:
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.SetSpacing([float(plane[1]), float(plane[0])])
        return sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))

    if section.all():
        return np.full(section.shape, -np.inf, np.float32)
    return 0.5 * (signed(section) - signed(~section))


def _fill_by_contours(stack: np.ndarray, slices: list[int]) -> None:
    """ITK's morphological contour interpolation across axis 0 of `stack` (in place)."""
    with warnings.catch_warnings():  # see _itk
        warnings.simplefilter("ignore")
        itk = _itk()
        image = itk.image_from_array(np.ascontiguousarray(stack, dtype=np.uint8))
        interpolator = itk.MorphologicalContourInterpolator.New(image)
        interpolator.SetAxis(2)  # numpy axis 0 is ITK's z
        interpolator.SetLabel(1)
        interpolator.Update()
        filled = itk.array_from_image(interpolator.GetOutput()) > 0
    between = np.zeros(len(stack), dtype=bool)
    between[slices[0]:slices[-1] + 1] = True
    between[slices] = False  # the drawn slices stay as drawn
    stack[between] = filled[between]


def available_methods() -> tuple[str, ...]:
    """The methods this installation can run (``contour`` needs ITK's module). Looked up on
    disk without importing ITK (seconds, and it pulls in torch) or reading every package's
    metadata (140 ms): the edit panel asks while the window is built."""
    from importlib.util import find_spec

    spec = find_spec("itk")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    module = Path("Configuration") / "MorphologicalContourInterpolationConfig.py"
    if any((Path(folder) / module).is_file() for folder in folders):
        return METHODS
    return ("distance",)


def _itk():
    """ITK with its contour interpolation module loaded. Its SWIG modules warn while they
    load (DeprecationWarning), and a warning turned into an error there crashes the process
    (measured: ``python -W error``), so they load with warnings ignored."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import itk  # type: ignore[import-untyped, import-not-found, unused-ignore]

            itk.MorphologicalContourInterpolator  # noqa: B018 (loads the module, or fails)
    except (ImportError, AttributeError):
        raise ValueError("the contour method needs ITK's MorphologicalContourInterpolation "
                         "(pip install itk-morphologicalcontourinterpolation, about 285 MB "
                         "with ITK); the distance method needs nothing more") from None
    return itk
