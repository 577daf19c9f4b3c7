"""Volume validation and exact SimpleITK round trips."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core.errors import GeometryError
from medviewer.core.volume import Volume


def _oblique_affine() -> np.ndarray:
    angle = np.deg2rad(30)
    rotation = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array([0.7, 0.9, 2.5])
    affine[:3, 3] = [-10.0, 20.5, 33.0]
    return affine


def test_sitk_round_trip_keeps_voxels_and_geometry() -> None:
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    volume = Volume(array, _oblique_affine())
    image = volume.to_sitk()
    assert image.GetSize() == (6, 5, 4)
    # voxel (col=2, row=3, slice=1) lands at the same LPS point in both
    point = image.TransformIndexToPhysicalPoint((2, 3, 1))
    np.testing.assert_allclose(point, (volume.affine @ [2, 3, 1, 1])[:3], atol=1e-9)
    assert image[2, 3, 1] == array[1, 3, 2]
    back = Volume.from_sitk(image)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-12)


def test_colour_volume_round_trip() -> None:
    array = np.random.default_rng(0).integers(0, 255, (2, 3, 4, 3), dtype=np.uint8)
    volume = Volume(array, np.eye(4))
    assert volume.is_color and volume.shape == (2, 3, 4)
    back = Volume.from_sitk(volume.to_sitk())
    np.testing.assert_array_equal(back.array, array)


def test_from_2d_sitk_image_is_one_slice() -> None:
    image = sitk.Image(7, 5, sitk.sitkInt16)
    image.SetSpacing((0.5, 0.25))
    volume = Volume.from_sitk(image)
    assert volume.shape == (1, 5, 7)
    assert volume.spacing[:2] == pytest.approx([0.5, 0.25])


@pytest.mark.parametrize(
    ("array", "affine", "message"),
    [
        (np.zeros((2, 3)), np.eye(4), "slices, rows, cols"),
        (np.zeros((2, 3, 4, 2)), np.eye(4), "slices, rows, cols"),
        (np.zeros((2, 3, 4)), np.eye(3), "shape"),
        (
            np.zeros((2, 3, 4)),
            np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
            "orthogonal",
        ),
    ],
)
def test_invalid_volumes_are_rejected(array: np.ndarray, affine: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Volume(array, affine)


def test_geometry_errors_are_geometry_errors() -> None:
    with pytest.raises(GeometryError):
        Volume(np.zeros((2, 3, 4)), np.zeros((4, 4)))
