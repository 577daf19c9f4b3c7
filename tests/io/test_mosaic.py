"""Siemens mosaics unpacked into their slices (issue 18).

The real mosaics are the Siemens files in nibabel's wheel (EPI and diffusion, anonymised
test data of that project). nibabel's own DICOM reader is the peer: its affine maps
(row, column, slice) where ours maps (column, row, slice), and its data is (rows, cols,
slices); both are compared exactly. Positions are also checked against the definition
(the first tile's offset from the mosaic's Image Position along the CSA slice normal).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import LoadError
from medviewer.io.series import find_stacks, load_series
from tests.corpus import nibabel_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



def _file(name: str, tmp_path: Path) -> Path:
    return nibabel_file(name, tmp_path)


def _nibabel(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

        return dicomwrappers.wrapper_from_file(str(path))


@pytest.mark.parametrize(
    ("name", "slices", "tile"),
    [
        ("siemens_dwi_0.dcm.gz", 48, 128),
        ("siemens_dwi_1000.dcm.gz", 48, 128),
    ],
)
def test_siemens_mosaic_against_nibabel(tmp_path: Path, name: str, slices: int, tile: int) -> None:
    path = _file(name, tmp_path)
    wrapper = _nibabel(path)
    volume = load_series(path)
    assert volume.shape == (slices, tile, tile)
    ours_as_nibabel = volume.affine[:, [1, 0, 2, 3]]  # (row, col, slice) order
    np.testing.assert_allclose(ours_as_nibabel, wrapper.affine, atol=1e-4)
    ds = pydicom.dcmread(path)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    expected = np.asarray(wrapper.get_data()).transpose(2, 0, 1)  # nibabel rescales too
    np.testing.assert_allclose(volume.array, expected, atol=1e-6)
    # and the tiles, taken from pydicom's mosaic by hand, in order
    side = int(np.ceil(np.sqrt(slices)))
    mosaic = ds.pixel_array * slope + intercept
    np.testing.assert_array_equal(volume.array[0], mosaic[:tile, :tile])
    r, c = divmod(slices - 1, side)
    np.testing.assert_array_equal(
        volume.array[-1], mosaic[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
    )


def test_a_mosaic_padded_beyond_its_tiles_warns(tmp_path: Path) -> None:
    # nibabel's 0.dcm: 48 slices in 7x7 tiles of 36 pixels in a 256-pixel image (resampled
    # test data). nibabel places the tiles with a tile of 256/7 = 36.57 pixels, we with 36.
    path = _file("0.dcm", tmp_path)
    wrapper = _nibabel(path)
    volume = load_series(path)
    assert volume.shape == (48, 36, 36)
    assert any("not a whole number" in w for w in volume.metadata.warnings)
    ours_as_nibabel = volume.affine[:, [1, 0, 2, 3]]
    np.testing.assert_allclose(ours_as_nibabel[:3, :3], wrapper.affine[:3, :3], atol=1e-4)
    shift = ours_as_nibabel[:3, 3] - wrapper.affine[:3, 3]
    pixel = float(pydicom.dcmread(path, stop_before_pixels=True).PixelSpacing[0])
    assert 0 < np.linalg.norm(shift) <= 0.5 * np.sqrt(2) * pixel
    mosaic = pydicom.dcmread(path).pixel_array  # nibabel cannot reshape this one's pixels
    for k in (0, 6, 7, 47):
        r, c = divmod(k, 7)
        tile = mosaic[r * 36 : (r + 1) * 36, c * 36 : (c + 1) * 36]
        np.testing.assert_array_equal(volume.array[k], tile)


def test_first_tile_position_from_the_definition(tmp_path: Path) -> None:
    # nibabel's oblique sample (26 degrees off axial) is a header without pixels: add some
    ds = pydicom.dcmread(_file("csa_slice_norm.dcm", tmp_path))
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((384, 384), np.uint16).tobytes()
    ds["PixelData"].VR = "OW"
    path = tmp_path / "oblique.dcm"
    ds.save_as(path)
    (stack,) = find_stacks(path)[0]
    assert stack.shape == (32, 64, 64)
    np.testing.assert_allclose(stack.affine[:, [1, 0, 2, 3]], _nibabel(path).affine, atol=1e-4)
    volume = stack  # its affine is the loaded volume's
    row_cos = np.array(ds.ImageOrientationPatient[:3], float)
    col_cos = np.array(ds.ImageOrientationPatient[3:], float)
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    first = (
        np.array(ds.ImagePositionPatient, float)
        + col_cos * row_spacing * (384 - 64) / 2
        + row_cos * col_spacing * (384 - 64) / 2
    )
    np.testing.assert_allclose(volume.affine[:3, 3], first, atol=1e-4)
    step = volume.affine[:3, 2]
    np.testing.assert_allclose(np.linalg.norm(step), float(ds.SpacingBetweenSlices), rtol=1e-6)
    np.testing.assert_allclose(
        step / np.linalg.norm(step), [0.0, 0.43994078, 0.89802679], atol=1e-6
    )  # the CSA Slice Normal Vector


def test_mosaic_series_is_a_stack_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "dwi"
    folder.mkdir()
    for name in ("siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"):
        shutil.copy(_file(name, tmp_path), folder / Path(name).stem)
    stacks, _ = find_stacks(folder)
    assert [s.shape for s in stacks] == [(48, 128, 128)] * 2
    assert {s.first.location for s in stacks} == {str(p) for p in folder.iterdir()}


def test_progressive_load_of_a_mosaic(tmp_path: Path) -> None:
    from medviewer.io.series import LoadStarted, iter_load

    path = _file("0.dcm", tmp_path)
    events = list(_events(iter_load(path)))
    assert isinstance(events[0], LoadStarted)
    # a mosaic is one decode: every slice is there when the first event says so
    loaded = sorted([*events[0].loaded, *(i for e in events[1:] for i in e.indices)])
    assert loaded == list(range(48))
    np.testing.assert_array_equal(events[0].volume.array, load_series(path).array)


def _events(generator):
    while True:
        try:
            yield next(generator)
        except StopIteration:
            return


def test_a_mosaic_too_small_for_its_tiles_is_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("0.dcm", tmp_path))
    ds.Rows, ds.Columns = 6, 6  # 48 slices need 7 tiles per side
    ds.PixelData = ds.PixelData[: 6 * 6 * 2]
    target = tmp_path / "small.dcm"
    ds.save_as(target)
    with pytest.raises(LoadError, match="7 tiles per side"):
        find_stacks(target)


def test_a_mosaic_without_a_slice_count_is_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("0.dcm", tmp_path))
    del ds[0x0029, 0x1010]  # the CSA image header
    ds[0x0019, 0x100A].value = 0
    target = tmp_path / "nocount.dcm"
    ds.save_as(target)
    with pytest.raises(LoadError, match="no usable number of images"):
        find_stacks(target)


def test_without_the_csa_header_the_public_count_is_used(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("0.dcm", tmp_path))
    del ds[0x0029, 0x1010]
    target = tmp_path / "nocsa.dcm"
    ds.save_as(target)
    volume = load_series(target)
    assert volume.shape == (48, 36, 36)
    assert any("CSA slice normal" in w for w in volume.metadata.warnings)
    np.testing.assert_array_equal(volume.array, load_series(_file("0.dcm", tmp_path)).array)
