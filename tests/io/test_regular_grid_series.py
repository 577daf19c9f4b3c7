"""Tilted and unevenly spaced DICOM stacks: true slice positions kept, resampled exactly.

The files are written from an analytic function of LPS position evaluated at every voxel's
true position; after loading and resampling, every voxel must hold the function at the LPS
point its affine gives (within the integer rounding of the stored and resampled values). The
volume as loaded (a regular grid the acquisition does not have) fails the same check. SimpleITK
is the peer: its linear resampler, given the stack as the sheared image it is, must agree.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medviewer.core.geometry import voxel_to_patient
from medviewer.core.regular_grid import needs_regular_grid, resample_regular
from medviewer.core.volume import Volume
from medviewer.io.series import load_series
from medviewer.synthetic.dicom_writer import SeriesSpec, positions_of, write_series

SHAPE = (12, 20, 16)
PIXEL = (0.7, 0.9)  # (row, column) spacing
TILT_STEP = (0.0, 1.2, 2.5)  # gantry tilted ~25.6 degrees: each slice 1.2 mm further back
ORIGIN = (-100.0, -120.0, 50.0)
RAMP = np.array([20.0, 15.0, 30.0])  # HU per mm along x, y, z
BLOB_CENTRE = np.array([-86.0, -100.0, 60.0])  # inside every slice it crosses
FILL = -3000


def ramp(points: np.ndarray) -> np.ndarray:
    return points @ RAMP - RAMP @ np.array(ORIGIN) - 300.0


def blob(points: np.ndarray) -> np.ndarray:
    return 1500.0 * np.exp(-np.sum((points - BLOB_CENTRE) ** 2, axis=-1) / (2 * 2.5**2)) - 1000


def spec_of(function, shape=SHAPE, **changes) -> SeriesSpec:
    """A CT whose HU are `function` of each voxel's true LPS position."""
    spec = SeriesSpec(shape=shape, pixel_spacing=PIXEL, origin=ORIGIN, seed=41, **changes)
    positions = positions_of(spec)
    rows, cols = np.mgrid[: shape[1], : shape[2]]
    u = np.asarray(spec.orientation[:3]) * PIXEL[1]
    v = np.asarray(spec.orientation[3:]) * PIXEL[0]
    plane = cols[..., None] * u + rows[..., None] * v
    hu = function(positions[:, None, None, :] + plane[None])
    return SeriesSpec(**{**spec.__dict__, "values": np.rint(hu).astype(np.int64) + 1024})


def voxel_points(volume: Volume) -> np.ndarray:
    s, r, c = volume.shape
    index = np.stack(np.meshgrid(np.arange(c), np.arange(r), np.arange(s), indexing="ij"), -1)
    return voxel_to_patient(volume.affine, index).transpose(2, 1, 0, 3)


def ramp_error(volume: Volume, inside: np.ndarray) -> float:
    return float(np.max(np.abs(volume.array[inside] - ramp(voxel_points(volume))[inside])))


def centroid(volume: Volume) -> np.ndarray:
    weights = np.clip(volume.array.astype(float) + 1000.0, 0, None)
    return np.tensordot(weights, voxel_points(volume), axes=3) / weights.sum()


def dicom_positions(volume: Volume) -> np.ndarray:
    """Image Position (Patient) of each slice as pydicom reads it from the slice's file/frame."""
    positions = []
    for location, frame in volume.metadata.source_frames:
        ds = pydicom.dcmread(location, stop_before_pixels=True)
        if "PerFrameFunctionalGroupsSequence" in ds:
            ds = ds.PerFrameFunctionalGroupsSequence[frame].PlanePositionSequence[0]
        positions.append([float(v) for v in ds.ImagePositionPatient])
    return np.array(positions)


@pytest.mark.parametrize("multiframe", [False, True], ids=["single-frame", "enhanced"])
def test_tilted_stack_keeps_positions_and_resamples_exactly(tmp_path, multiframe) -> None:
    write_series(tmp_path, spec_of(ramp, slice_step=TILT_STEP, multiframe=multiframe))
    volume = load_series(tmp_path)
    np.testing.assert_array_equal(volume.metadata.slice_positions, dicom_positions(volume))
    np.testing.assert_allclose(
        volume.metadata.slice_positions, np.add(ORIGIN, np.outer(np.arange(12), TILT_STEP))
    )
    assert needs_regular_grid(volume)
    everywhere = np.ones(volume.shape, bool)
    assert ramp_error(volume, everywhere) > 100.0  # as loaded: rows 1.2 mm/slice off
    out = resample_regular(volume, fill=FILL)
    assert out.array.dtype == volume.array.dtype == np.int16
    np.testing.assert_allclose(out.direction, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(out.spacing, (0.9, 0.7, 2.5))
    inside = out.array != FILL
    assert ramp_error(out, inside) <= 1.0  # stored and resampled values are both rounded
    assert out.shape == (12, 20 + 19, 16)  # 11 x 1.2 mm = 18.9 rows of shear covered
    assert inside.sum() >= 12 * 19 * 16


def test_regular_stack_needs_no_grid_and_keeps_its_positions(tmp_path) -> None:
    written = write_series(tmp_path, spec_of(ramp))
    volume = load_series(tmp_path)
    np.testing.assert_array_equal(volume.metadata.slice_positions, dicom_positions(volume))
    assert not needs_regular_grid(volume)
    assert ramp_error(volume, np.ones(volume.shape, bool)) <= 0.5
    np.testing.assert_allclose(volume.affine, written.affine, atol=1e-6)


def test_uneven_spacing_resamples_onto_the_median_spacing(tmp_path) -> None:
    offsets = (0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 9.0, 10.0, 11.0, 12.0, 13.0)
    write_series(tmp_path, spec_of(ramp, slice_offsets=offsets))
    volume = load_series(tmp_path)
    assert any("uneven" in w for w in volume.metadata.warnings)
    assert needs_regular_grid(volume)
    assert ramp_error(volume, np.ones(volume.shape, bool)) > 10.0  # on the mean step
    out = resample_regular(volume)
    assert out.shape == (14, 20, 16)
    np.testing.assert_allclose(out.spacing, (0.9, 0.7, 1.0))
    assert ramp_error(out, np.ones(out.shape, bool)) <= 1.0
    for k, depth in enumerate(offsets):  # acquired planes come through untouched
        np.testing.assert_array_equal(out.array[int(depth)], volume.array[k])


@pytest.mark.parametrize(
    "changes",
    [{"slice_step": TILT_STEP}, {"slice_offsets": np.r_[0:6, 7:21:2].astype(float).tolist()}],
    ids=["tilt", "uneven"],
)
def test_blob_centre_lands_on_its_lps_point(tmp_path, changes) -> None:
    write_series(tmp_path, spec_of(blob, shape=(13, 40, 30), **changes))
    volume = load_series(tmp_path)
    out = resample_regular(volume, fill=-1000)
    np.testing.assert_allclose(centroid(out), BLOB_CENTRE, atol=0.25)
    assert np.linalg.norm(centroid(volume) - BLOB_CENTRE) > 1.5  # as loaded: misplaced


def test_simpleitk_resampling_the_sheared_stack_agrees(tmp_path) -> None:
    """The tilted stack is exactly a sheared grid; ITK's linear resampler onto our grid is a peer.

    Every output slice lies on an acquired plane (the tilt step is 2.5 mm along the normal), so
    both interpolate in-plane only and must agree on the synthetic pattern, whose values change
    at every voxel.
    """
    write_series(tmp_path, SeriesSpec(shape=SHAPE, pixel_spacing=PIXEL, origin=ORIGIN,
                                      slice_step=TILT_STEP, seed=42))  # fmt: skip
    volume = load_series(tmp_path)
    out = resample_regular(volume, fill=FILL)
    sheared = sitk.GetImageFromArray(volume.array.astype(np.float64))
    step = np.asarray(TILT_STEP)
    sheared.SetSpacing((PIXEL[1], PIXEL[0], float(np.linalg.norm(step))))
    sheared.SetOrigin(ORIGIN)
    direction = np.column_stack([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), step / np.linalg.norm(step)])
    sheared.SetDirection(direction.ravel().tolist())
    peer = sitk.GetArrayFromImage(
        sitk.Resample(sheared, out.to_sitk(), sitk.Transform(), sitk.sitkLinear, float(FILL))
    )
    ours = out.array != FILL
    assert ours.sum() >= 12 * 19 * 16
    assert np.all(peer[ours] != FILL)  # ITK covers what we do (it extends half a voxel more)
    np.testing.assert_allclose(out.array[ours], np.rint(peer[ours]), atol=0)


def test_unpositioned_images_carry_no_positions(tmp_path) -> None:
    from medviewer.synthetic.dicom_writer import write_radiograph

    path, _values = write_radiograph(tmp_path)
    volume = load_series(path)
    assert volume.metadata.slice_positions == ()
    assert not needs_regular_grid(volume)
