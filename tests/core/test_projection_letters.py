"""Edge letters from Patient Orientation and the plane nearest to an acquisition (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.geometry import (
    affine_from_dicom,
    native_plane,
    nearest_plane,
    projection_edge_letters,
)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (("L", "F"), {"left": "R", "right": "L", "top": "H", "bottom": "F"}),
        (("P", "F"), {"left": "A", "right": "P", "top": "H", "bottom": "F"}),
        (("AL", "FR"), {"left": "PR", "right": "AL", "top": "HL", "bottom": "FR"}),
        (("CR", "D"), {"left": "CD", "right": "CR", "top": "V", "bottom": "D"}),
    ],
)
def test_projection_edge_letters(orientation, expected) -> None:
    assert projection_edge_letters(orientation) == expected


@pytest.mark.parametrize("orientation", [(), ("L",), ("L", "X"), ("Q", "F"), ("L", "F", "A")])
def test_unknown_patient_orientation_gives_no_letters(orientation) -> None:
    assert projection_edge_letters(orientation) == {}


@pytest.mark.parametrize(
    ("orientation", "plane"),
    [
        ((1, 0, 0, 0, 1, 0), "axial"),
        ((1, 0, 0, 0, 0, -1), "coronal"),
        ((0, 1, 0, 0, 0, -1), "sagittal"),
        ((0.94, 0.34, 0, 0, 0, -1), "coronal"),  # 20 degrees off coronal
    ],
)
def test_native_plane_of_one_slice(orientation, plane) -> None:
    norm = np.linalg.norm(orientation[:3])
    unit = tuple(v / norm for v in orientation[:3]) + tuple(orientation[3:])
    affine = affine_from_dicom((0.0, 0.0, 0.0), unit, (0.5, 0.5), None)
    assert native_plane(affine) == plane
    assert nearest_plane(np.cross(unit[:3], unit[3:])) == plane
