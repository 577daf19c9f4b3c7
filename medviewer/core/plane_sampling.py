"""Sampling a volume on any plane in patient space (SimpleITK's resampler, in C++).

A :class:`VolumeSampler` keeps one SimpleITK copy of a volume (made on first use: the array's
size again in memory) and resamples it onto the pixel grid of a plane given by its affine
(``(col, row, 0, 1)`` -> LPS, as :class:`~medviewer.core.geometry.PlaneSlice` has it), with
linear or nearest-neighbour interpolation. Pixels whose centre falls outside the volume get
`outside` (NaN by default). This is what true oblique planes, planes of a tilted acquisition
read in patient axes, and fused volumes are drawn with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medviewer.core.errors import GeometryError


class VolumeSampler:
    """Resamples one grey volume (`array`, `affine`) onto planes.

    Parameters
    ----------
    array : numpy.ndarray
        ``(slices, rows, cols)``.
    affine : numpy.ndarray
        Its 4x4 index ``(col, row, slice)`` -> LPS matrix.
    """

    def __init__(self, array: np.ndarray, affine: np.ndarray) -> None:
        if array.ndim != 3:
            raise GeometryError("only grey volumes (slices, rows, cols) are resampled on planes")
        self.array = array
        self.affine = np.asarray(affine, float)
        self._image: Any = None
        self._filters: dict[tuple[bool, str], Any] = {}

    def _sitk_image(self) -> Any:
        if self._image is None:
            import SimpleITK as sitk

            linear = self.affine[:3, :3]
            spacing = np.linalg.norm(linear, axis=0)
            image = sitk.GetImageFromArray(self.array)
            image.SetSpacing([float(v) for v in spacing])
            image.SetOrigin([float(v) for v in self.affine[:3, 3]])
            image.SetDirection([float(v) for v in (linear / spacing).ravel()])
            self._image = image
        return self._image

    def sample(
        self,
        plane_affine: np.ndarray,
        shape: tuple[int, int],
        *,
        nearest: bool = False,
        outside: float = float("nan"),
        dtype: str = "float32",
    ) -> np.ndarray:
        """The volume at the pixel centres of a plane.

        Parameters
        ----------
        plane_affine : numpy.ndarray
            4x4: column 0 the step to the next column (mm, LPS), column 1 to the next row,
            column 2 the plane normal (any length), column 3 pixel (0, 0).
        shape : (rows, cols)
        nearest : bool
            Nearest-neighbour (label maps, fast drags) instead of linear.
        outside : float
            The value of pixels outside the volume.
        dtype : str
            ``"float32"``, or ``"uint8"``/``"int16"`` for nearest-neighbour label maps.

        Returns
        -------
        numpy.ndarray
            ``(rows, cols)`` of `dtype`.
        """
        import SimpleITK as sitk

        rows, cols = int(shape[0]), int(shape[1])
        if rows < 1 or cols < 1:
            raise GeometryError(f"a plane needs at least one pixel, got {rows} x {cols}")
        plane = np.asarray(plane_affine, float)
        steps = plane[:3, :3].copy()
        spacing = np.linalg.norm(steps, axis=0)
        if np.any(spacing[:2] <= 0):
            raise GeometryError("the plane's pixel steps must not be zero")
        spacing[2] = spacing[2] if spacing[2] > 0 else 1.0
        steps[:, 2] = steps[:, 2] if np.linalg.norm(steps[:, 2]) > 0 else np.cross(steps[:, 0],
                                                                                    steps[:, 1])
        directions = steps / np.linalg.norm(steps, axis=0)
        reference = sitk.Image(cols, rows, 1, sitk.sitkUInt8)
        reference.SetSpacing([float(v) for v in spacing])
        reference.SetOrigin([float(v) for v in plane[:3, 3]])
        reference.SetDirection([float(v) for v in directions.ravel()])
        pixel = {"float32": sitk.sitkFloat32, "uint8": sitk.sitkUInt8,
                 "int16": sitk.sitkInt16}[dtype]  # fmt: skip
        resampler = self._filter(nearest, dtype)
        resampler.SetReferenceImage(reference)
        resampler.SetOutputPixelType(pixel)
        resampler.SetDefaultPixelValue(float(outside) if dtype == "float32" else int(outside))
        out = resampler.Execute(self._sitk_image())
        return np.asarray(sitk.GetArrayFromImage(out)[0])

    def _filter(self, nearest: bool, dtype: str) -> Any:
        import SimpleITK as sitk

        key = (nearest, dtype)
        if key not in self._filters:
            resampler = sitk.ResampleImageFilter()
            resampler.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
            self._filters[key] = resampler
        return self._filters[key]
