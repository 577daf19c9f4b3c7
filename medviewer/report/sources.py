"""The source images of a loaded series, as DICOM headers, for derived objects to reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from medviewer.core.errors import LoadError
from medviewer.core.volume import VolumeMetadata
from medviewer.io.header import read_location


@dataclass(frozen=True, eq=False)
class SourceImages:
    """The DICOM headers behind a volume, in the volume's slice order.

    Attributes
    ----------
    datasets : tuple of pydicom.Dataset
        One header per distinct source file, in the order of first use (pixel data not read).
    slices : tuple of (int, int)
        For each slice of the volume: index into `datasets` and the 0-based frame in it.
    locations : tuple of str
        Where each of `datasets` was read from (a path or ``archive.zip::member``).
    """

    datasets: tuple[Dataset, ...]
    slices: tuple[tuple[int, int], ...]
    locations: tuple[str, ...] = ()

    @property
    def first(self) -> Dataset:
        """The header of the first source file (patient, study, equipment)."""
        return self.datasets[0]

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
    return SourceImages(tuple(datasets), tuple(slices), tuple(where))


def _read_header(location: str) -> Dataset:
    return read_location(location, stop_before_pixels=True)
