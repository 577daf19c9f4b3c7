"""The source images of a loaded series, as DICOM headers, for derived objects to reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from medviewer.core.errors import LoadError
from medviewer.core.volume import VolumeMetadata


@dataclass(frozen=True, eq=False)
class SourceImages:
    """The DICOM headers behind a volume, in the volume's slice order.

    Attributes
    ----------
    datasets : tuple of pydicom.Dataset
        One header per distinct source file, in the order of first use (pixel data not read).
    slices : tuple of (int, int)
        For each slice of the volume: index into `datasets` and the 0-based frame in it.
    """

    datasets: tuple[Dataset, ...]
    slices: tuple[tuple[int, int], ...]

    @property
    def first(self) -> Dataset:
        """The header of the first source file (patient, study, equipment)."""
        return self.datasets[0]

    @property
    def multiframe(self) -> bool:
        """True when the slices come from one multi-frame file."""
        return len(self.datasets) == 1 and len(self.slices) > 1

    def slice_dataset(self, index: int) -> tuple[Dataset, int]:
        """The header and frame number (0-based) of slice `index`."""
        file_index, frame = self.slices[index]
        return self.datasets[file_index], frame

    def sop_uid_of_slice(self, index: int) -> str:
        """SOP Instance UID of the file slice `index` came from."""
        return str(self.slice_dataset(index)[0].SOPInstanceUID)


def read_source_images(metadata: VolumeMetadata) -> SourceImages:
    """Read the headers of the files a volume was loaded from (never modifies them).

    Raises
    ------
    LoadError
        When the volume was not loaded from DICOM files, or a file can no longer be read.
    """
    frames: Sequence[tuple[str, int]] = metadata.source_frames
    if not frames:
        raise LoadError("the series was not loaded from DICOM files, so it has no DICOM source")
    datasets: list[Dataset] = []
    where: dict[str, int] = {}
    slices = []
    for path, frame in frames:
        if path not in where:
            where[path] = len(datasets)
            datasets.append(_read_header(path))
        slices.append((where[path], int(frame)))
    return SourceImages(tuple(datasets), tuple(slices))


def _read_header(path: str) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise LoadError(f"{path}: cannot read the source image again ({exc})") from exc
