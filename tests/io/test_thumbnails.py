"""Thumbnails: one decoded frame, the right half bright, physical aspect, a disk cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.core.windowing import apply_window, auto_window
from medviewer.io import decode, pydicom_pixels
from medviewer.io.header import InstanceRecord, read_header
from medviewer.io.scan import scan
from medviewer.io.thumbnails import ThumbnailCache, make_thumbnail, shrink
from medviewer.synthetic.dicom_writer import SeriesSpec, uid, write_radiograph, write_series

RLE_LOSSLESS = "1.2.840.10008.1.2.5"


def _half_bright_series(folder: Path, transfer_syntax: str = "1.2.840.10008.1.2.1") -> list:
    """5 slices of 32x32 with 0.5 mm rows, 1 mm columns; only the middle one is bright left."""
    values = np.zeros((5, 32, 32), dtype=np.int64)
    values[:, :, 16:] = 2000  # every other slice: right half bright
    values[2] = 0
    values[2, :, :16] = 2000  # the middle slice (sorted order): left half bright
    spec = SeriesSpec(
        shape=(5, 32, 32),
        pixel_spacing=(0.5, 1.0),
        values=values,
        transfer_syntax=transfer_syntax,
    )
    write_series(folder, spec)
    return scan([folder]).records


@pytest.fixture
def decoded_frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the frames either decode path (positioned reads, pydicom) produces."""
    frames: list[int] = []
    read_record, decode_frames = decode._read_record, pydicom_pixels.decode_frames

    def counting_read(sources, out, indices):
        frames.extend(indices)
        return read_record(sources, out, indices)

    def counting_decode(path, member, wanted):
        frames.extend(wanted)
        return decode_frames(path, member, wanted)

    monkeypatch.setattr(decode, "_read_record", counting_read)
    monkeypatch.setattr(pydicom_pixels, "decode_frames", counting_decode)
    return frames


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", RLE_LOSSLESS])
def test_middle_frame_only_with_physical_aspect(
    tmp_path: Path, decoded_frames: list[int], syntax: str
) -> None:
    records = _half_bright_series(tmp_path / "in", syntax)
    thumb = make_thumbnail(records, size=96)
    assert thumb.dtype == np.uint8
    assert thumb.shape == (48, 96)  # 32 x 0.5 mm high, 32 x 1 mm wide
    assert len(decoded_frames) == 1
    assert thumb[:, :48].min() == 255  # left half bright: the middle slice, not another
    assert thumb[:, 48:].max() == 0


def test_size_sets_the_longer_side(tmp_path: Path) -> None:
    records = _half_bright_series(tmp_path / "in")
    assert make_thumbnail(records, size=40).shape == (20, 40)
    with pytest.raises(ValueError, match="size"):
        make_thumbnail(records, size=0)


def test_monochrome1_is_inverted_with_auto_window(tmp_path: Path) -> None:
    path, values = write_radiograph(tmp_path, shape=(64, 48), spacing=(0.2, 0.2))
    thumb = make_thumbnail([read_header(path)], size=96)
    center, width = auto_window(values)
    expected = shrink(apply_window(values, center, width, invert=True), (96, 72))
    np.testing.assert_array_equal(thumb, expected)


def _write_rgb(path: Path) -> InstanceRecord:
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = uid(9, 9)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", uid(9, 9)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid(9, 1), uid(9, 2)
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 20, 30, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[:, :15, 0] = 255  # left half red
    rgb[:, 15:, 2] = 255  # right half blue
    ds.PixelData = rgb.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return read_header(path)


def test_colour_stays_three_channels(tmp_path: Path) -> None:
    thumb = make_thumbnail([_write_rgb(tmp_path / "rgb.dcm")], size=96)
    assert thumb.shape == (64, 96, 3)  # no spacing: 1 mm assumed, 20 x 30 pixels
    np.testing.assert_array_equal(thumb[:, :48].reshape(-1, 3).max(axis=0), [255, 0, 0])
    np.testing.assert_array_equal(thumb[:, :48].reshape(-1, 3).min(axis=0), [255, 0, 0])
    np.testing.assert_array_equal(thumb[:, 48:].reshape(-1, 3).min(axis=0), [0, 0, 255])


def test_shrink_averages_areas() -> None:
    image = np.array([[0, 255, 10, 20], [255, 0, 30, 40]], dtype=np.uint8)
    np.testing.assert_array_equal(shrink(image, (1, 2)), [[128, 25]])
    np.testing.assert_array_equal(shrink(image[:1, :2], (2, 4)), [[0, 0, 255, 255]] * 2)


def test_cache_round_trip_and_new_count_misses(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "thumbs")
    thumb = np.arange(48 * 96, dtype=np.uint32).reshape(48, 96).astype(np.uint8)
    assert cache.get("1.2.3", 10) is None
    cache.put("1.2.3", 10, thumb)
    np.testing.assert_array_equal(cache.get("1.2.3", 10), thumb)
    assert cache.get("1.2.3", 11) is None
    assert cache.get("1.2.4", 10) is None
    colour = np.zeros((4, 5, 3), dtype=np.uint8)
    cache.put("1.2.3", 11, colour)  # the series grew: the old file goes
    assert cache.get("1.2.3", 10) is None
    assert cache.get("1.2.3", 11).shape == (4, 5, 3)
    assert sorted(p.suffix for p in (tmp_path / "thumbs").iterdir()) == [".npy"]


def test_cache_rejects_bad_arrays_and_ignores_corrupt_files(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path)
    with pytest.raises(ValueError, match="not a thumbnail"):
        cache.put("1.2.3", 1, np.zeros((4, 4), dtype=np.float32))
    cache.path_for("1.2.3", 1).write_bytes(b"not numpy")
    assert cache.get("1.2.3", 1) is None


def test_default_folder_is_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = ThumbnailCache().folder
    assert folder.name == "thumbnails"
    assert folder.parent.name == "medviewer"
