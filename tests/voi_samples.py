"""Synthetic DICOM files carrying VOI LUTs, and pydicom's display of them (the truth).

Nothing here is patient data: the series come from
:func:`medviewer.synthetic.dicom_writer.write_series` and the LUTs are made up. The truth is
pydicom's own ``apply_voi(apply_modality_lut(...))`` scaled to 0..255 the way
:meth:`medviewer.core.windowing.VoiLut.display_table` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi
from pydicom.sequence import Sequence as DicomSequence

from medviewer.core.volume import Volume
from medviewer.synthetic.dicom_writer import SeriesSpec, WrittenSeries, write_series

#: A signed CT-like series: stored -2048..2046, rescaled by 2x - 50 (the LUTs map the result);
#: its slices hold -4146..-3050, -2192..-1090, -238..862 and 1716..2800.
SIGNED_SPEC = SeriesSpec(
    shape=(4, 16, 12), signed=True, rescale_slope=2.0, rescale_intercept=-50.0, seed=31
)


def lut_item(descriptor, data, explanation: str = "", descriptor_vr: str = "SS",
             data_vr: str = "US") -> Dataset:
    """One VOI LUT Sequence item, its descriptor and data written with the VRs given."""
    item = Dataset()
    item.add_new(0x00283002, descriptor_vr, list(descriptor))
    if data_vr == "OW":
        item.add_new(0x00283006, "OW", bytes(data))
    else:
        item.add_new(0x00283006, data_vr, [int(v) for v in data])
    if explanation:
        item.LUTExplanation = explanation
    return item


def soft_lut() -> Dataset:
    """1000 entries of 12 bits from -2200: a ramp over -2200..-1201 (slice 1's values)."""
    data = np.round(np.linspace(0, 4095, 1000)).astype(int)
    return lut_item([1000, -2200, 12], data, "SOFT")


def wide_lut() -> Dataset:
    """65536 entries (descriptor 0) of 16 bits from -3000, written as OW: a smooth S-curve."""
    x = np.arange(65536) - 3000
    data = np.round(65535 / (1 + np.exp(-(x - 500) / 400.0))).astype("<u2")
    return lut_item([0, -3000, 16], data.tobytes(), "WIDE", data_vr="OW")


def add_voi_luts(paths, *items_of) -> None:
    """Give every file of `paths` a VOI LUT Sequence: one fresh item per factory."""
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.VOILUTSequence = DicomSequence([make() for make in items_of])
        ds.save_as(path)


def signed_series_with_luts(folder: Path) -> WrittenSeries:
    """The signed series with two VOI LUTs (SOFT, then WIDE) in every file."""
    written = write_series(folder, SIGNED_SPEC)
    add_voi_luts(written.paths, soft_lut, wide_lut)
    return written


def pydicom_display(ds: Dataset, index: int) -> np.ndarray:
    """pydicom's VOI LUT `index` of `ds` on its rescaled pixels, scaled to 0..255 (uint8)."""
    mapped = apply_voi(apply_modality_lut(ds.pixel_array, ds), ds, index=index)
    bits = int(ds.VOILUTSequence[index].LUTDescriptor[2])
    return scaled(mapped, bits)


def scaled(mapped: np.ndarray, bits: int) -> np.ndarray:
    """LUT outputs of `bits` bits as 0..255, rounded half up (as ``display_table``)."""
    values = mapped.astype(np.float64) * (255.0 / ((1 << bits) - 1))
    return np.floor(np.minimum(values, 255.0) + 0.5).astype(np.uint8)


def expected_volume_display(volume: Volume, index: int) -> np.ndarray:
    """pydicom's display of every slice of `volume`, from the file each slice came from."""
    out = np.empty(volume.array.shape, np.uint8)
    for k, (location, frame) in enumerate(volume.metadata.source_frames):
        ds = pydicom.dcmread(location)
        display = pydicom_display(ds, index)
        out[k] = display[frame] if display.ndim == 3 else display
    return out
