"""Volume: a voxel array on a patient-space grid, plus the metadata a viewer needs.

The array is indexed ``array[slice, row, col]`` (a trailing axis of 3 for colour) and the
4x4 ``affine`` maps the homogeneous index ``(col, row, slice, 1)`` to patient LPS
millimetres, DICOM's convention (and SimpleITK's, whose images are LPS too).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.core.errors import GeometryError
from medviewer.core.geometry import direction_of, spacing_of, validate_affine
from medviewer.core.suv import SuvFactor
from medviewer.core.windowing import VoiLut, WindowPreset

if TYPE_CHECKING:
    import SimpleITK


@dataclass(frozen=True)
class VolumeMetadata:
    """Who and what a volume shows; everything optional so files without it still load.

    Attributes
    ----------
    modality : str
        DICOM Modality (``"CT"``, ``"MR"``...), empty when unknown.
    body_part : str
        Body Part Examined (``"CHEST"``), empty when the files do not say.
    units : str
        Units of the array values after rescale (``"HU"`` for CT, else the Rescale Type).
    window_presets : tuple of WindowPreset
        Window centre/width pairs stored in the files, first one is the default.
    voi_lut : VoiLut or None
        The default VOI LUT of the files (the first of `voi_luts`), shown instead of the
        window presets when present.
    voi_luts : tuple of VoiLut
        Every VOI LUT of the files (VOI LUT Sequence), in file order; each is a preset.
    photometric : str
        Photometric interpretation of the decoded array (``"MONOCHROME1"`` is shown inverted).
    warnings : tuple of str
        Geometry or decoding warnings found while loading (uneven spacing, gaps, tilt...).
    source_paths : tuple of str
        The files the volume was read from, in slice order.
    source_frames : tuple of (str, int)
        For each slice, the file and the frame (0-based) it was decoded from.
    slice_positions : tuple of (float, float, float)
        The true Image Position (Patient) of each slice, in slice order, when the volume was
        assembled from positioned slices (else empty). Where the affine puts a slice elsewhere
        (gantry tilt, uneven spacing), :mod:`medviewer.core.regular_grid` resamples from these.
    positioned : bool
        False when the files give no patient position/orientation (the affine is then the
        detector grid, so orientation letters and cross-series linking are meaningless).
    suv : SuvFactor or None
        For a PET series: what turns its values into SUVbw, or why nothing does
        (:mod:`medviewer.core.suv`); None for other modalities.
    patient_orientation : tuple of str
        For an image without patient position (a radiograph), DICOM's Patient Orientation:
        the anatomical directions of its rows and columns (e.g. ``("L", "F")``); empty when
        unknown or when the volume is positioned.
    """

    modality: str = ""
    body_part: str = ""
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    frame_of_reference_uid: str = ""
    units: str = ""
    photometric: str = "MONOCHROME2"
    window_presets: tuple[WindowPreset, ...] = ()
    voi_lut: VoiLut | None = None
    voi_luts: tuple[VoiLut, ...] = ()
    warnings: tuple[str, ...] = ()
    positioned: bool = True
    patient_orientation: tuple[str, ...] = ()
    source_paths: tuple[str, ...] = ()
    source_frames: tuple[tuple[str, int], ...] = ()
    slice_positions: tuple[tuple[float, float, float], ...] = ()
    suv: SuvFactor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def suv_bw_factor(self) -> float | None:
        """The SUVbw factor of a PET series (g/ml per image unit), None when there is none."""
        return None if self.suv is None else self.suv.factor


@dataclass(frozen=True, eq=False)
class Volume:
    """A voxel array with its exact patient-space geometry.

    Parameters
    ----------
    array : numpy.ndarray
        Shape ``(slices, rows, cols)`` or ``(slices, rows, cols, 3)`` for RGB, in modality
        units (CT in HU).
    affine : array_like
        4x4 matrix mapping ``(col, row, slice, 1)`` to LPS millimetres. Validated: shape,
        finite values, last row ``[0, 0, 0, 1]``, non-zero spacing, orthogonal axes.
    metadata : VolumeMetadata
        Patient, study and series description, presets and load warnings.

    Raises
    ------
    medviewer.core.errors.GeometryError
        When the array's shape or the affine is invalid.
    """

    array: np.ndarray
    affine: np.ndarray
    metadata: VolumeMetadata = field(default_factory=VolumeMetadata)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[3] != 3):
            raise GeometryError(
                f"Volume array must be (slices, rows, cols) or (slices, rows, cols, 3), "
                f"got shape {array.shape}"
            )
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "affine", validate_affine(self.affine))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(slices, rows, cols)``, without the colour axis."""
        s, r, c = self.array.shape[:3]
        return (s, r, c)

    @property
    def is_color(self) -> bool:
        """True for RGB volumes."""
        return self.array.ndim == 4

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along ``(col, row, slice)``."""
        return spacing_of(self.affine)

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit LPS directions of ``(col, row, slice)``."""
        return direction_of(self.affine)

    @property
    def origin(self) -> np.ndarray:
        """LPS position in mm of the centre of voxel ``(0, 0, 0)``."""
        return self.affine[:3, 3].copy()

    def with_array(self, array: np.ndarray) -> Volume:
        """Return a volume on the same grid holding `array` (same leading shape)."""
        if array.shape[:3] != self.shape:
            raise GeometryError(f"array shape {array.shape[:3]} != volume shape {self.shape}")
        return replace(self, array=array)

    def to_sitk(self) -> SimpleITK.Image:
        """Return a SimpleITK image with the same voxels and exactly the same geometry."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.array, isVector=self.is_color)
        image.SetSpacing([float(v) for v in self.spacing])
        image.SetOrigin([float(v) for v in self.origin])
        image.SetDirection([float(v) for v in self.direction.ravel()])
        return image

    @classmethod
    def from_sitk(cls, image: SimpleITK.Image, metadata: VolumeMetadata | None = None) -> Volume:
        """Build a volume from a 2D or 3D SimpleITK image (LPS, as ITK always is)."""
        import SimpleITK as sitk

        if image.GetDimension() == 2:
            image = sitk.JoinSeries(image)
        if image.GetDimension() != 3:
            raise GeometryError(f"only 2D and 3D images are supported, got {image.GetDimension()}D")
        array = sitk.GetArrayFromImage(image)
        if image.GetNumberOfComponentsPerPixel() not in (1, 3):
            raise GeometryError(
                f"{image.GetNumberOfComponentsPerPixel()}-component images are not supported"
            )
        direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
        affine = np.eye(4)
        affine[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
        affine[:3, 3] = image.GetOrigin()
        return cls(array, affine, metadata or VolumeMetadata())
