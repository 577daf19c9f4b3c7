"""Rigid registration against a known motion: a phantom moved by a known rotation and shift
is mapped back within 1 mm and 1 degree; the point-pair link is exact."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.errors import CancelledError
from medviewer.core.registration import RigidMap, register_rigid
from medviewer.core.volume import Volume, VolumeMetadata


def _phantom(affine: np.ndarray, shape=(40, 64, 64)) -> Volume:
    """An asymmetric body: an ellipsoid with a dense ball off centre and a rod, at LPS
    positions independent of the grid."""
    k, r, c = np.indices(shape, dtype=float)
    lps = np.einsum("ij,jklm->iklm", affine[:3, :3], np.stack([c, r, k])) + affine[:3, 3, None,
                                                                                    None, None]
    x, y, z = lps
    values = np.where((x / 70) ** 2 + (y / 50) ** 2 + (z / 45) ** 2 < 1, 40.0, -1000.0)
    values[(x - 25) ** 2 + (y + 10) ** 2 + (z - 12) ** 2 < 12**2] = 900.0
    values[((x + 30) ** 2 + (y - 15) ** 2 < 6**2) & (np.abs(z) < 30)] = 400.0
    meta = VolumeMetadata(modality="CT", series_uid="1.2.3.1", frame_of_reference_uid="1.2.3.2")
    return Volume(values.astype(np.float32), affine, meta)


def _grid(origin) -> np.ndarray:
    affine = np.diag([2.5, 2.5, 2.5, 1.0])
    affine[:3, 3] = origin
    return affine


def moved_pair() -> tuple[Volume, Volume, RigidMap]:
    """The phantom (current) and the same body moved by 6 degrees about z and (9, -6, 4) mm,
    on another grid (prior), with the true map from current to prior."""
    angle = np.radians(6.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1.0]])  # fmt: skip
    shift = np.array([9.0, -6.0, 4.0])
    truth = RigidMap(tuple(rotation.ravel()), tuple(shift), "truth")  # type: ignore[arg-type]
    current = _phantom(_grid((-80.0, -80.0, -50.0)))
    prior_grid = _grid((-85.0, -75.0, -48.0))
    k, r, c = np.indices(current.shape, dtype=float)
    lps = np.einsum("ij,jklm->klmi", prior_grid[:3, :3], np.stack([c, r, k])) + prior_grid[:3, 3]
    back = (lps - shift) @ rotation  # prior point -> current point (rotation^T)
    x, y, z = np.moveaxis(back, -1, 0)
    values = np.where((x / 70) ** 2 + (y / 50) ** 2 + (z / 45) ** 2 < 1, 40.0, -1000.0)
    values[(x - 25) ** 2 + (y + 10) ** 2 + (z - 12) ** 2 < 12**2] = 900.0
    values[((x + 30) ** 2 + (y - 15) ** 2 < 6**2) & (np.abs(z) < 30)] = 400.0
    meta = VolumeMetadata(modality="CT", series_uid="1.2.3.99", frame_of_reference_uid="1.2.3.98")
    prior = Volume(values.astype(np.float32), prior_grid, meta)
    return current, prior, truth


def test_a_known_motion_is_recovered():
    current, prior, truth = moved_pair()
    found = register_rigid(current, prior)
    for point in ([25.0, -10.0, 12.0], [-30.0, 15.0, 0.0], [0.0, 0.0, 30.0]):
        assert np.linalg.norm(found.map.apply(point) - truth.apply(point)) < 1.0
    assert abs(found.map.rotation_degrees() - 6.0) < 1.0
    assert found.iterations > 0 and found.metric < 0 and found.map.method == "registration"


def test_points_give_the_translation_and_the_inverse_undoes_it():
    link = RigidMap.from_points(np.array([10.0, 20.0, 30.0]), np.array([12.0, 18.0, 80.0]))
    assert link.translation == (2.0, -2.0, 50.0) and link.method == "points"
    np.testing.assert_allclose(link.apply([0.0, 0.0, 0.0]), [2.0, -2.0, 50.0])
    np.testing.assert_allclose(link.inverse().apply(link.apply([5.0, 6.0, 7.0])), [5.0, 6.0, 7.0])


def test_a_registration_can_be_cancelled():
    volume = _phantom(_grid((-80.0, -80.0, -50.0)))
    with pytest.raises(CancelledError):
        register_rigid(volume, volume, cancel=lambda: True)
