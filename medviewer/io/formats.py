"""NIfTI, NRRD and MetaImage files through SimpleITK, into the same :class:`Volume`.

ITK converts every format's own convention (NIfTI's RAS, say) to LPS on reading, so the
affine is DICOM's convention whatever the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from medviewer.core.errors import LoadError
from medviewer.core.volume import Volume, VolumeMetadata

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a NIfTI / NRRD / MetaImage file (by its suffix)."""
    return Path(path).name.lower().endswith(IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike[str]) -> Volume:
    """Read a NIfTI / NRRD / MetaImage file into a :class:`Volume`.

    Raises
    ------
    LoadError
        When SimpleITK cannot read the file or the image is not 2D/3D scalar or RGB.
    """
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(os.fspath(path))
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise LoadError(f"{path}: cannot read image: {first_line}") from None
    metadata = VolumeMetadata(source_paths=(os.fspath(path),), series_description=Path(path).name)
    try:
        return Volume.from_sitk(image, metadata)
    except ValueError as exc:
        raise LoadError(f"{path}: {exc}") from None


def write_image(volume: Volume, path: str | os.PathLike[str]) -> None:
    """Write `volume` with its geometry to a NIfTI / NRRD / MetaImage file."""
    import SimpleITK as sitk

    sitk.WriteImage(volume.to_sitk(), os.fspath(path), useCompression=True)
