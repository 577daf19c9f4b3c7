"""Model grids: reorientation by axis codes and resampling, against geometric truth."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.model_card import InputSpec
from medviewer.ai.transforms import model_grid_for, reorientation_for
from tests.ai.tiny_models import make_volume, patient_coordinates, rotation

# Unit (col, row, slice) directions in LPS of common acquisitions.
AXIAL = np.eye(3)  # cols -> L, rows -> P, slices -> S
AXIAL_FEET_FIRST = np.diag([1.0, 1.0, -1.0])  # slices toward I
SAGITTAL = np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float).T  # cols P, rows I, sl. R
CORONAL = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float).T  # cols L, rows I, sl. P
OBLIQUE = rotation("z", 25) @ rotation("x", -15) @ AXIAL

_CODE_VECTORS = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0),
                 "S": (0, 0, 1), "I": (0, 0, -1)}


def spec(**fields: object) -> InputSpec:
    values: dict[str, object] = {"dims": 3, "orientation": "RAS", "spacing": None, "size": None,
                                 "patch_size": None, "overlap": 0.25, "channels": 1,
                                 "intensity": ()}
    values.update(fields)
    return InputSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("directions", [AXIAL, AXIAL_FEET_FIRST, SAGITTAL, CORONAL, OBLIQUE],
                         ids=["axial", "feet-first", "sagittal", "coronal", "oblique"])
@pytest.mark.parametrize("codes", ["RAS", "LPS", "PLS", "SAR", "IRP"])
def test_model_dims_increase_toward_their_codes(directions: np.ndarray, codes: str) -> None:
    """Walking +1 along model dim i moves the patient toward code i (cosine > 0.8)."""
    volume = make_volume(np.zeros((6, 8, 10), np.float32), (0.7, 0.9, 2.5), directions)
    grid = model_grid_for(volume.affine, volume.shape, spec(orientation=codes))
    affine = grid.reorientation.model_affine(volume.affine, grid.source_shape)
    for i, code in enumerate(codes):
        step = affine[:3, i] / np.linalg.norm(affine[:3, i])
        assert step @ np.asarray(_CODE_VECTORS[code]) > 0.8, (codes, i)


@pytest.mark.parametrize("directions", [AXIAL, SAGITTAL, OBLIQUE], ids=["ax", "sag", "obl"])
def test_to_model_places_every_voxel_where_its_model_affine_says(directions: np.ndarray) -> None:
    volume = make_volume(np.arange(6 * 8 * 10, dtype=np.float32).reshape(6, 8, 10),
                         (0.7, 0.9, 2.5), directions, origin=(-3.0, 4.0, 10.0))
    grid = model_grid_for(volume.affine, volume.shape, spec(orientation="RAS"))
    model = grid.to_model(volume.array)
    affine = grid.reorientation.model_affine(volume.affine, grid.source_shape)
    world = patient_coordinates(volume)
    inverse = np.linalg.inv(volume.affine)
    for index in [(0, 0, 0), (2, 3, 4), tuple(n - 1 for n in model.shape)]:
        lps = affine @ np.array([*index, 1.0])
        col, row, sl = np.rint(inverse @ lps)[:3].astype(int)
        assert model[index] == volume.array[sl, row, col]
        assert np.allclose(world[sl, row, col], lps[:3])


def test_pls_is_the_dicom_pixel_array_of_an_axial_slice() -> None:
    """A 2D card saying PLS sees ``array[slice]`` exactly as stored (rows, cols)."""
    array = np.random.default_rng(1).normal(size=(5, 7, 9)).astype(np.float32)
    volume = make_volume(array)
    grid = model_grid_for(volume.affine, volume.shape, spec(dims=2, orientation="PLS"))
    model = grid.to_model(volume.array)
    for k in range(5):
        np.testing.assert_array_equal(model[:, :, k], array[k])


def test_ras_flips_rows_and_cols_of_an_axial_series() -> None:
    array = np.random.default_rng(2).normal(size=(5, 7, 9)).astype(np.float32)
    grid = model_grid_for(make_volume(array).affine, array.shape, spec(orientation="RAS"))
    model = grid.to_model(array)
    assert model.shape == (9, 7, 5)
    np.testing.assert_array_equal(model, array.transpose(2, 1, 0)[::-1, ::-1, :])


@pytest.mark.parametrize("directions", [AXIAL, CORONAL, OBLIQUE], ids=["ax", "cor", "obl"])
def test_round_trip_without_resampling_is_exact(directions: np.ndarray) -> None:
    array = np.random.default_rng(3).integers(0, 9, (6, 8, 10)).astype(np.uint8)
    volume = make_volume(array, (0.7, 0.9, 2.5), directions)
    grid = model_grid_for(volume.affine, volume.shape, spec(orientation="SAR"))
    assert not grid.resampled
    back = grid.to_volume(grid.to_model(array).astype(np.uint8), linear=False)
    np.testing.assert_array_equal(back, array)


def test_spacing_keeps_the_first_voxel_and_the_extent() -> None:
    volume = make_volume(np.zeros((21, 30, 40), np.float32), (0.5, 0.75, 2.0))
    grid = model_grid_for(volume.affine, volume.shape,
                          spec(orientation="LPS", spacing=(1.0, 1.5, 1.0)))
    # 39 x 0.5 = 19.5 mm -> 20 steps; 29 x 0.75 = 21.75 mm -> 15 steps; 20 x 2 = 40 mm -> 40.
    assert grid.shape == (21, 16, 41)
    assert grid.spacing == pytest.approx((1.0, 1.5, 1.0))
    assert grid.offset == (0.0, 0.0, 0.0)


def test_size_resizes_corner_to_corner() -> None:
    """As F.interpolate(align_corners=False): model voxel j sits at (j + .5) * n/m - .5."""
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32), (3, 4, 40)).copy()
    volume = make_volume(ramp)
    grid = model_grid_for(volume.affine, volume.shape, spec(dims=2, orientation="LPS",
                                                            size=(10, 4)))
    model = grid.to_model(ramp)
    assert model.shape == (10, 4, 3)
    expected = (np.arange(10) + 0.5) * 4 - 0.5
    np.testing.assert_allclose(model[:, 0, 0], expected, atol=1e-4)


def test_linear_ramp_survives_a_resampling_round_trip() -> None:
    """Linear interpolation of a linear function is exact inside the grid."""
    z, y, x = np.meshgrid(np.arange(12), np.arange(16), np.arange(20), indexing="ij")
    ramp = (0.5 * x + 2.0 * y - 1.5 * z).astype(np.float32)
    volume = make_volume(ramp, (0.8, 0.8, 2.0), OBLIQUE)
    grid = model_grid_for(volume.affine, volume.shape,
                          spec(orientation="RAS", spacing=(1.1, 1.3, 1.7)))
    assert grid.resampled
    back = grid.to_volume(grid.to_model(ramp), linear=True)
    inner = (slice(2, -2),) * 3  # the grids differ by under a voxel at the edges
    np.testing.assert_allclose(back[inner], ramp[inner], atol=1e-3)



def test_one_channel_probabilities_keep_their_channel_axis_through_resampling() -> None:
    """A sigmoid model's single probability channel ``[..., 1]`` comes back as ``[..., 1]``
    (SimpleITK drops the axis of a one-component vector image; a cascade run crashed on it)."""
    z, y, x = np.meshgrid(np.arange(12), np.arange(16), np.arange(20), indexing="ij")
    ramp = (0.5 * x + 2.0 * y - 1.5 * z).astype(np.float32)
    volume = make_volume(ramp, (0.8, 0.8, 2.0), OBLIQUE)
    grid = model_grid_for(volume.affine, volume.shape,
                          spec(orientation="RAS", spacing=(1.1, 1.3, 1.7)))
    model = grid.to_model(ramp)
    back = grid.to_volume(model[..., None], linear=True)
    assert back.shape == (*ramp.shape, 1)
    np.testing.assert_array_equal(back[..., 0], grid.to_volume(model, linear=True))
    inner = (slice(2, -2),) * 3
    np.testing.assert_allclose(back[inner][..., 0], ramp[inner], atol=1e-3)

def test_reorientation_is_a_permutation_even_when_two_axes_tie() -> None:
    directions = rotation("z", 45)  # cols and rows equally close to L and P
    reorientation = reorientation_for(make_volume(np.zeros((2, 2, 2))).affine @ _pad(directions),
                                      "RAS")
    assert sorted(reorientation.perm) == [0, 1, 2]


def _pad(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = matrix
    return out


@pytest.mark.parametrize(
    ("shape", "scale", "offset", "out", "linear"),
    [
        ((300, 280, 40), (0.55, 0.5, 1.0), (0.2, 0.25, 0.0), (545, 560, 40), True),
        ((64, 64, 64), (1.7, 1.3, 0.9), (0.3, -0.2, 0.1), (38, 50, 71), True),
        ((200, 200, 30), (1.83, 1.83, 1.0), (0.41, 0.41, 0.0), (110, 110, 30), False),
    ],
)
def test_blockwise_resampling_equals_one_pass(shape, scale, offset, out, linear, monkeypatch):
    import medviewer.ai.transforms as transforms

    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    one_pass = transforms._resample_block(array, scale, offset, out, linear)
    calls = []
    original = transforms._resample_block
    monkeypatch.setattr(transforms, "_resample_block", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(transforms, "RESAMPLE_BLOCK_VOXELS", 1 << 14)
    blocks = transforms.ModelGrid._resample(array, scale, offset, out, linear=linear)
    assert len(calls) > 3  # really in blocks
    # The same neighbours and weights; a block's origin may round the last bit differently.
    np.testing.assert_allclose(blocks, one_pass, rtol=0, atol=1e-6)


@pytest.mark.parametrize("directions", [AXIAL, AXIAL_FEET_FIRST, SAGITTAL, CORONAL],
                         ids=["axial", "feet-first", "sagittal", "coronal"])
@pytest.mark.parametrize("linear", [True, False])
def test_mapping_only_some_slices_back_equals_mapping_the_zeroed_array(directions, linear):
    """A 2D model's heatmap lives on a few slices: resampling just those gives the whole
    array's result, bit for bit, with the other slices 0."""
    volume = make_volume(np.zeros((9, 30, 40), np.float32), (0.7, 0.7, 2.0), directions)
    grid = model_grid_for(volume.affine, volume.shape,
                          spec(dims=2, orientation="PLS", spacing=(1.25, 1.25)))
    assert grid.scale[2] == 1.0 and grid.shape[0] != grid.reoriented_shape[0]
    rng = np.random.default_rng(3)
    cam = rng.random(grid.shape).astype(np.float32)
    spans = [(1, 3), (6, 7)]
    zeroed = np.zeros_like(cam)
    for a, b in spans:
        zeroed[:, :, a:b] = cam[:, :, a:b]
    fast = grid.to_volume_on_slices(cam, spans, linear=linear)
    np.testing.assert_array_equal(fast, grid.to_volume(zeroed, linear=linear))
    assert fast.shape == volume.shape
    axis = 2 - grid.reorientation.perm[2]  # the array axis the model's slices run along
    hot = np.flatnonzero(np.moveaxis(fast, axis, 0).reshape(fast.shape[axis], -1).any(axis=1))
    assert len(hot) == 3 and fast.any()
    # a grid that resamples the slices falls back to the whole array
    thick = model_grid_for(volume.affine, volume.shape,
                           spec(orientation="PLS", spacing=(1.25, 1.25, 1.0)))
    whole = rng.random(thick.shape).astype(np.float32)
    np.testing.assert_array_equal(thick.to_volume_on_slices(whole, [(0, 1)], linear=True),
                                  thick.to_volume(whole, linear=True))
