"""VOI LUTs read from files, against pydicom's own ``apply_voi_lut`` on the same files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi, apply_voi_lut
from pydicom.sequence import Sequence as DicomSequence

from medviewer.io.series import load_series
from medviewer.io.voi import MAX_VOI_LUTS, lut_descriptor, lut_from_item, voi_luts_of
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.corpus import DATA_STORE
from tests.voi_samples import (
    add_voi_luts,
    expected_volume_display,
    lut_item,
    scaled,
    signed_series_with_luts,
)


def test_every_lut_of_a_signed_series_displays_as_pydicom_maps_it(tmp_path: Path) -> None:
    written = signed_series_with_luts(tmp_path)
    volume = load_series(tmp_path)
    np.testing.assert_array_equal(volume.array, written.values)  # rescaled: 2 x stored - 50
    meta = volume.metadata
    assert [lut.explanation for lut in meta.voi_luts] == ["SOFT", "WIDE"]
    assert meta.voi_lut is meta.voi_luts[0]
    assert (meta.voi_luts[0].first_mapped, meta.voi_luts[0].data.size) == (-2200, 1000)
    assert (meta.voi_luts[1].first_mapped, meta.voi_luts[1].data.size) == (-3000, 65536)
    assert meta.warnings == ()
    for index, lut in enumerate(meta.voi_luts):
        expected = expected_volume_display(volume, index)
        assert len(np.unique(expected)) > 20  # the slices cross the ramp, not only its ends
        np.testing.assert_array_equal(lut.apply(volume.array), expected)
        np.testing.assert_array_equal(lut.apply(volume.array, invert=True), 255 - expected)


def test_eight_bit_lut_packed_in_ow_equals_the_same_lut_unpacked(tmp_path: Path) -> None:
    # pydicom is no reference here: it indexes an 8-bit LUT with uint8 (entries past 255
    # wrap) and reads OW as one entry per word. The truth is the LUT's definition.
    spec = SeriesSpec(shape=(2, 16, 12), rescale_intercept=0.0, seed=32)
    entries = (np.arange(4095) * 7 // 100 % 256).astype(np.uint8)  # odd count: a pad byte
    unpacked, packed = tmp_path / "unpacked", tmp_path / "packed"
    add_voi_luts(write_series(unpacked, spec).paths,
                 lambda: lut_item([4095, 0, 8], entries, descriptor_vr="US"))
    written = write_series(packed, spec)
    add_voi_luts(written.paths, lambda: lut_item(
        [4095, 0, 8], entries.tobytes() + b"\0", descriptor_vr="US", data_vr="OW"))
    one, two = load_series(unpacked), load_series(packed)
    for volume in (one, two):
        lut = volume.metadata.voi_lut
        np.testing.assert_array_equal(lut.data, entries)
        assert (lut.bits, lut.first_mapped, volume.metadata.warnings) == (8, 0, ())
        truth = entries[np.clip(written.values.astype(int), 0, 4094)]  # 8 bits: 0..255 as they are
        np.testing.assert_array_equal(lut.apply(volume.array), truth)


def test_enhanced_file_shared_frame_voi_lut_is_read(tmp_path: Path) -> None:
    written = write_series(tmp_path, SeriesSpec(shape=(5, 16, 12), multiframe=True, seed=33))
    (path,) = written.paths
    ds = pydicom.dcmread(path)
    frame_voi = Dataset()
    frame_voi.VOILUTSequence = DicomSequence([lut_item([600, 0, 12], np.arange(600) * 6, "MF",
                                                       descriptor_vr="US")])
    ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence = DicomSequence([frame_voi])
    ds.save_as(path)
    volume = load_series(tmp_path)
    np.testing.assert_array_equal(volume.array, written.values)
    (lut,) = volume.metadata.voi_luts
    assert lut.explanation == "MF"
    holder = Dataset()  # pydicom reads VOI LUT Sequences at the top level only
    holder.VOILUTSequence = pydicom.dcmread(path).SharedFunctionalGroupsSequence[0] \
        .FrameVOILUTSequence[0].VOILUTSequence
    expected = scaled(apply_voi(volume.array, holder), 12)
    np.testing.assert_array_equal(lut.apply(volume.array), expected)


def test_per_frame_voi_luts_are_said_not_applied(tmp_path: Path) -> None:
    written = write_series(tmp_path, SeriesSpec(shape=(3, 16, 12), multiframe=True, seed=34))
    (path,) = written.paths
    ds = pydicom.dcmread(path)
    for item in ds.PerFrameFunctionalGroupsSequence:
        frame_voi = Dataset()
        frame_voi.VOILUTSequence = DicomSequence([lut_item([2, 0, 8], [0, 255], "",
                                                           descriptor_vr="US")])
        item.FrameVOILUTSequence = DicomSequence([frame_voi])
    ds.save_as(path)
    volume = load_series(tmp_path)
    assert volume.metadata.voi_luts == ()
    assert "per-frame VOI LUTs are not applied (only shared ones are)" in volume.metadata.warnings


def test_malformed_luts_are_left_out_with_a_warning(tmp_path: Path) -> None:
    written = write_series(tmp_path, SeriesSpec(shape=(2, 16, 12), seed=35))
    good = np.arange(256)
    missing = lut_item([256, 0, 8], good)
    del missing["LUTData"]
    bad = [
        lambda: lut_item([256, 0, 8], np.arange(100), descriptor_vr="US"),  # count mismatch
        lambda: lut_item([256, 0, 17], good, descriptor_vr="US"),  # bits > 16
        lambda: lut_item([256, 0, 8], good + 100, descriptor_vr="US"),  # beyond 8 bits
        lambda: missing,
        lambda: lut_item([256, 0], good, descriptor_vr="US"),  # two descriptor values
        lambda: lut_item([256, 0, 8], good, "GOOD", descriptor_vr="US"),
    ]
    add_voi_luts(written.paths, *bad)
    volume = load_series(tmp_path)
    np.testing.assert_array_equal(volume.array, written.values)
    assert [lut.explanation for lut in volume.metadata.voi_luts] == ["GOOD"]
    assert volume.metadata.warnings == (
        "VOI LUT 1 ignored: LUT Data holds 100 words, the LUT Descriptor gives 256 entries",
        "VOI LUT 2 ignored: the LUT Descriptor gives 17 bits per entry (1 to 16 allowed)",
        "VOI LUT 3 ignored: LUT Data holds 355, beyond 8 bits per entry",
        "VOI LUT 4 ignored: no LUTData",
        "VOI LUT 5 ignored: the LUT Descriptor has 2 values, not 3",
    )


def test_too_many_luts_are_capped() -> None:
    ds = Dataset()
    ds.VOILUTSequence = DicomSequence(
        [lut_item([2, 0, 8], [0, 255], f"L{n}", descriptor_vr="US") for n in range(40)]
    )
    luts = voi_luts_of(ds, signed=False)
    assert [lut.explanation for lut in luts.luts] == [f"L{n}" for n in range(MAX_VOI_LUTS)]
    assert luts.warnings == (f"40 VOI LUTs: only the first {MAX_VOI_LUTS} are offered",)


@pytest.mark.parametrize(
    ("value", "signed", "expected"),
    [
        ([0, 0, 16], False, (65536, 0, 16)),  # 0 entries means 65536
        ([256, 65000, 12], False, (256, 65000, 12)),  # unsigned pixels: unsigned
        ([256, 65000, 12], True, (256, -536, 12)),  # signed pixels: read as signed
        ([256, -536, 12], True, (256, -536, 12)),  # already SS
        ([-32768, -536, 12], True, (32768, -536, 12)),  # an SS entries count is unsigned
        (np.array([4, 0xFFFE, 8], "<u2").tobytes(), True, (4, -2, 8)),  # raw bytes (UN)
    ],
)
def test_lut_descriptor_rules(value, signed: bool, expected) -> None:
    assert lut_descriptor(value, signed) == expected


def test_big_endian_ow_data() -> None:
    item = lut_item([3, 5, 16], np.array([1, 2, 65535], ">u2").tobytes(), data_vr="OW",
                    descriptor_vr="US")
    lut = lut_from_item(item, signed=False, little_endian=False)
    np.testing.assert_array_equal(lut.data, [1, 2, 65535])
    assert lut.first_mapped == 5


def test_corpus_file_with_a_voi_lut_displays_as_pydicom_maps_it() -> None:
    path = DATA_STORE / "vlut_04.dcm"
    volume = load_series(path)
    ds = pydicom.dcmread(path)
    expected = scaled(apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds), 16)
    np.testing.assert_array_equal(volume.metadata.voi_lut.apply(volume.array[0]), expected)
