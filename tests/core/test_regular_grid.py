"""Resampling tilted and unevenly spaced acquisitions onto a regular grid, against analytic truth.

Each acquisition is sampled from a function of LPS position at every slice's true position;
after resampling, every output voxel must hold that function at the LPS point the new affine
gives it. Linear interpolation reproduces a linear ramp exactly, so the ramp tests are tight;
a smooth blob checks that an off-centre structure lands where it is (and that the volume as
loaded, on the regular grid it cannot have, puts it elsewhere).
"""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.errors import CancelledError, GeometryError
from medviewer.core.geometry import slice_normal, voxel_to_patient
from medviewer.core.regular_grid import (
    needs_regular_grid,
    plan_regular_grid,
    resample_regular,
    slice_position_error,
)
from medviewer.core.volume import Volume, VolumeMetadata

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
OBLIQUE = (0.8660254037844387, 0.5, 0.0, 0.0, 0.0, -1.0)
PIXEL = (0.8, 0.6)  # (row spacing, column spacing)
ORIGIN = np.array([-20.0, -15.0, 30.0])
RAMP = np.array([1.5, -2.0, 3.25])
BLOB_CENTRE = np.array([-11.0, 4.0, 45.0])


def ramp(points: np.ndarray) -> np.ndarray:
    return points @ RAMP + 7.0


def blob(points: np.ndarray) -> np.ndarray:
    return 1000.0 * np.exp(-np.sum((points - BLOB_CENTRE) ** 2, axis=-1) / (2 * 3.0**2))


def axes_of(orientation) -> tuple[np.ndarray, np.ndarray]:
    """(column axis, row axis) vectors in mm per index step."""
    row_cosine, col_cosine = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    return row_cosine * PIXEL[1], col_cosine * PIXEL[0]


def acquisition(positions, function, shape=(24, 30), orientation=AXIAL, dtype=np.float64):
    """A volume as the loader builds it: true positions kept, shown on the mean step."""
    positions = np.asarray(positions, float)
    u, v = axes_of(orientation)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    plane = cols[..., None] * u + rows[..., None] * v
    points = positions[:, None, None, :] + plane[None]
    values = function(points)
    if np.issubdtype(dtype, np.integer):
        values = np.rint(values)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1] = u, v
    depth = (positions[-1] - positions[0]) @ slice_normal(orientation)
    affine[:3, 2] = slice_normal(orientation) * depth / (len(positions) - 1)
    affine[:3, 3] = positions[0]
    metadata = VolumeMetadata(
        series_uid="1.2.3.4",
        series_description="tilted",
        frame_of_reference_uid="1.2.3.9",
        warnings=("gantry tilt: ...",),
        source_frames=tuple(("f", k) for k in range(len(positions))),
        slice_positions=tuple(map(tuple, positions)),
    )
    return Volume(values.astype(dtype), affine, metadata)


def tilted_positions(count=20, lateral=(0.0, 0.7, 0.0), step=2.0, orientation=AXIAL):
    normal = slice_normal(orientation)
    per_slice = np.asarray(lateral) + normal * step
    return ORIGIN + np.arange(count)[:, None] * per_slice


def uneven_positions(distances=(0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.5)):
    return ORIGIN + np.asarray(distances)[:, None] * np.array([0.0, 0.0, 1.0])


def voxel_points(volume: Volume) -> np.ndarray:
    s, r, c = volume.shape
    index = np.stack(np.meshgrid(np.arange(c), np.arange(r), np.arange(s), indexing="ij"), -1)
    return voxel_to_patient(volume.affine, index).transpose(2, 1, 0, 3)  # [s, r, c, xyz]


def inside_mask(volume: Volume, fill: float) -> np.ndarray:
    return volume.array != fill


def centroid(volume: Volume) -> np.ndarray:
    weights = np.clip(volume.array.astype(float), 0, None)
    return np.tensordot(weights, voxel_points(volume), axes=3) / weights.sum()


def assert_orthogonal_regular(volume: Volume, orientation, spacing: float) -> None:
    u, v = axes_of(orientation)
    np.testing.assert_allclose(volume.affine[:3, 0], u, atol=1e-12)
    np.testing.assert_allclose(volume.affine[:3, 1], v, atol=1e-12)
    np.testing.assert_allclose(volume.affine[:3, 2], slice_normal(orientation) * spacing, atol=1e-9)


@pytest.mark.parametrize("orientation", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_tilted_ramp_is_exact_at_every_output_voxel(orientation) -> None:
    u, v = axes_of(orientation)
    lateral = 0.45 * v / np.linalg.norm(v) + 0.2 * u / np.linalg.norm(u)  # shears both ways
    volume = acquisition(tilted_positions(lateral=lateral, orientation=orientation), ramp,
                         orientation=orientation)  # fmt: skip
    out = resample_regular(volume, fill=-1e6)
    assert_orthogonal_regular(out, orientation, 2.0)
    inside = out.array != -1e6
    truth = ramp(voxel_points(out))
    np.testing.assert_allclose(out.array[inside], truth[inside], atol=1e-9)
    # Every output slice lies on an acquired plane: it holds what that slice covers, within a
    # pixel's edge where the offset is fractional (bilinear needs both neighbours), no more.
    counts = inside.sum(axis=(1, 2))
    assert counts[0] == 24 * 30
    assert np.all((counts >= 23 * 29) & (counts <= 24 * 30))
    # The volume as loaded puts the same values elsewhere: off by the shear, not by rounding.
    assert np.max(np.abs(volume.array - ramp(voxel_points(volume)))) > 5.0


def test_output_covers_every_acquired_pixel_and_no_more() -> None:
    positions = tilted_positions(count=11, lateral=(0.0, 0.8 * 0.5, 0.0))  # half a row a slice
    volume = acquisition(positions, ramp)
    grid = plan_regular_grid(volume)
    assert grid.shape == (11, 24 + 5, 30)  # 10 slices x half a row: 5 more rows
    np.testing.assert_allclose(grid.affine[:3, 3], ORIGIN)
    out = resample_regular(volume, fill=-1e6)
    for k in range(0, 11, 2):  # on acquired planes with whole-row offsets: the very pixels
        np.testing.assert_array_equal(out.array[k, k // 2 : k // 2 + 24], volume.array[k])
        assert np.all(out.array[k, : k // 2] == -1e6)
        assert np.all(out.array[k, k // 2 + 24 :] == -1e6)


def test_integer_volume_keeps_dtype_and_acquired_pixels_exactly() -> None:
    positions = tilted_positions(count=8, lateral=(0.0, -0.8, 0.0), step=2.5)  # one row a slice
    volume = acquisition(positions, ramp, dtype=np.int16)
    out = resample_regular(volume)
    assert out.array.dtype == np.int16
    fill = volume.array.min()
    for k in range(8):  # moves one row towards the top each slice: rows 7-k onward
        np.testing.assert_array_equal(out.array[k, 7 - k : 7 - k + 24], volume.array[k])
    inside = out.array != fill
    np.testing.assert_allclose(out.array[inside], ramp(voxel_points(out))[inside], atol=0.5)
    assert np.all(out.array[0, :7] == fill)


def test_tilted_blob_lands_on_its_lps_centre() -> None:
    positions = tilted_positions(count=16, lateral=(0.0, 0.9, 0.0), step=2.0)
    volume = acquisition(positions, blob, shape=(40, 40))
    out = resample_regular(volume, fill=0.0)
    np.testing.assert_allclose(centroid(out), BLOB_CENTRE, atol=0.15)
    np.testing.assert_allclose(out.array, blob(voxel_points(out)) * (out.array != 0), atol=60.0)
    shown_off = np.linalg.norm(centroid(volume) - BLOB_CENTRE)
    assert shown_off > 5.0  # 7.5 slices x 0.9 mm: the loaded volume shows it shifted


def test_uneven_spacing_ramp_is_exact_and_planes_are_kept() -> None:
    volume = acquisition(uneven_positions(), ramp, dtype=np.float32)
    assert needs_regular_grid(volume)
    out = resample_regular(volume)
    assert out.shape == (9, 24, 30)  # 0..8 mm at the median spacing of 1 mm
    assert out.array.dtype == np.float32
    assert_orthogonal_regular(out, AXIAL, 1.0)
    np.testing.assert_allclose(out.array, ramp(voxel_points(out)), atol=1e-4)
    for k, depth in enumerate((0, 1, 2, 4, 5, 6)):  # acquired planes: their pixels exactly
        np.testing.assert_array_equal(out.array[depth], volume.array[k])
    assert "values across the 2.5 mm gap are interpolated" in out.metadata.warnings[0]


def test_uneven_blob_lands_on_its_centre_where_the_mean_step_does_not() -> None:
    distances = np.concatenate([np.arange(0, 15, 1.0), 15 + np.arange(0, 30, 2.0)])
    volume = acquisition(uneven_positions(distances), blob, shape=(40, 40))
    out = resample_regular(volume, fill=0.0)
    np.testing.assert_allclose(centroid(out), BLOB_CENTRE, atol=0.15)
    assert abs(centroid(volume)[2] - BLOB_CENTRE[2]) > 3.0


def test_gap_is_interpolated_and_said() -> None:
    volume = acquisition(uneven_positions((0.0, 1.0, 2.0, 6.0, 7.0)), ramp)
    out = resample_regular(volume)
    assert out.shape[0] == 8
    np.testing.assert_allclose(out.array, ramp(voxel_points(out)), atol=1e-9)
    assert "values across the 4 mm gap are interpolated" in out.metadata.warnings[0]


def test_metadata_says_what_was_resampled_and_gets_a_derived_uid() -> None:
    volume = acquisition(tilted_positions(count=6), ramp)
    out = resample_regular(volume)
    meta = out.metadata
    assert meta.warnings[0].startswith("resampled onto a regular grid from 6 acquired slices")
    assert "gantry tilt" in meta.warnings[0]
    assert meta.warnings[1] == "before resampling: gantry tilt: ..."
    assert meta.series_uid.startswith("2.25.") and len(meta.series_uid) <= 64
    assert meta.series_uid != "1.2.3.4"
    assert resample_regular(volume).metadata.series_uid == meta.series_uid  # deterministic
    assert meta.frame_of_reference_uid == "1.2.3.9"  # same patient space: views stay linked
    assert meta.source_frames == ()
    assert meta.series_description == "tilted (regular grid)"
    assert meta.extra["regular_grid_of"] == "1.2.3.4"
    assert len(meta.slice_positions) == out.shape[0]
    assert not needs_regular_grid(out)
    assert slice_position_error(out) < 1e-9


def test_needs_regular_grid_only_when_a_slice_is_misplaced() -> None:
    regular = acquisition(tilted_positions(lateral=(0, 0, 0)), ramp)
    assert not needs_regular_grid(regular)
    assert needs_regular_grid(acquisition(tilted_positions(), ramp))
    rounding = tilted_positions(lateral=(0.0, 1e-4, 0.0))  # 0.002 mm over 20 slices
    assert not needs_regular_grid(acquisition(rounding, ramp))
    unknown = Volume(regular.array, regular.affine, VolumeMetadata())
    assert not needs_regular_grid(unknown)
    with pytest.raises(GeometryError, match="0 slice positions for 20 slices"):
        resample_regular(unknown)


def test_repeated_position_is_refused() -> None:
    volume = acquisition(uneven_positions((0.0, 1.0, 1.0, 2.0)), ramp)
    with pytest.raises(GeometryError, match="repeat a position"):
        plan_regular_grid(volume)


def test_descending_slices_keep_their_order() -> None:
    positions = uneven_positions((0.0, 1.0, 2.0, 4.0, 5.0))[::-1]
    volume = acquisition(positions, ramp)
    out = resample_regular(volume)
    assert out.affine[2, 2] == pytest.approx(-1.0)  # from the first slice towards the last
    np.testing.assert_array_equal(out.array[0], volume.array[0])
    np.testing.assert_allclose(out.array, ramp(voxel_points(out)), atol=1e-9)


def test_colour_volume_resamples_each_channel() -> None:
    grey = acquisition(uneven_positions(), ramp)
    rgb = Volume(np.stack([grey.array] * 3, axis=-1), grey.affine, grey.metadata)
    out = resample_regular(rgb)
    assert out.array.shape == (*resample_regular(grey).shape, 3)
    np.testing.assert_allclose(out.array[..., 1], resample_regular(grey).array)


def test_progress_and_cancel() -> None:
    volume = acquisition(uneven_positions(), ramp)
    calls: list[tuple[int, int]] = []
    resample_regular(volume, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 9) for k in range(1, 10)]
    with pytest.raises(CancelledError):
        resample_regular(volume, cancel=lambda: True)
