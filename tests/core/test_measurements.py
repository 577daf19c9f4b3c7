"""Tests for medviewer.core.measurements against hand-computed truth.

Plane affines come from ``geometry.reslice`` on volumes whose affines are written out
here; expected distances, angles, pixel counts and means are computed by hand or by plain
Python loops over pixel centres, never by the function under test.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medviewer.core.geometry import reslice
from medviewer.core.measurements import (
    Measurement,
    RoiStats,
    angle_deg,
    distance_mm,
    on_plane,
    patient_to_screen,
    probe_value,
    roi_area,
    roi_mask,
    roi_outline,
    roi_stats,
    screen_to_patient,
    summary,
)

SETTINGS = settings(max_examples=80, deadline=None, database=None)

# Axial acquisition, 0.7 x 0.7 mm pixels, 2.5 mm slices, origin (-20, -30, 100).
ANISO = np.array(
    [[0.7, 0, 0, -20.0], [0, 0.7, 0, -30.0], [0, 0, 2.5, 100.0], [0, 0, 0, 1]], dtype=float
)
VOLUME = np.zeros((20, 64, 64))


def _rotation(ax: float, az: float) -> np.ndarray:
    """Rotation about x by `ax` then about z by `az` (radians)."""
    cx, sx, cz, sz = math.cos(ax), math.sin(ax), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx


def _oblique_affine(ax: float, az: float) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = _rotation(ax, az) @ np.diag([0.8, 0.6, 2.0])
    affine[:3, 3] = [12.0, -40.0, 75.0]
    return affine


def _m(kind: str, points: list, plane: str = "axial", **kw: str) -> Measurement:
    return Measurement(kind, tuple(map(tuple, points)), plane, "1.2.3", **kw)  # type: ignore[arg-type]


def _on_screen(affine: np.ndarray, kind: str, *screen: tuple[float, float]) -> Measurement:
    """A measurement drawn at screen positions of a plane."""
    return _m(kind, [screen_to_patient(affine, c, r) for c, r in screen])


# --------------------------------------------------------------------------- coordinates


def test_screen_to_patient_on_axial_plane_is_the_hand_computed_point() -> None:
    plane = reslice(VOLUME, ANISO, "axial", 5)
    # axial: screen col -> +x, row -> +y, slice 5 -> z = 100 + 5 * 2.5
    np.testing.assert_allclose(screen_to_patient(plane.affine, 10, 20), [-13.0, -16.0, 112.5])
    np.testing.assert_allclose(patient_to_screen(plane.affine, [-13.0, -16.0, 115.0]), [10, 20, 1])


def test_distance_on_axial_plane_uses_in_plane_spacing() -> None:
    plane = reslice(VOLUME, ANISO, "axial", 5)
    m = _on_screen(plane.affine, "distance", (10, 10), (13, 14))
    # 3 and 4 pixels of 0.7 mm: a 2.1-2.8-3.5 triangle.
    assert distance_mm(*m.points) == pytest.approx(3.5, abs=1e-12)
    assert summary(m) == "Distance 3.5 mm"


def test_distance_on_sagittal_plane_uses_through_plane_spacing() -> None:
    plane = reslice(VOLUME, ANISO, "sagittal", 30)
    # sagittal: screen col -> +y (0.7 mm), screen row -> -z (2.5 mm per slice)
    np.testing.assert_allclose(np.abs(plane.affine[:3, :2]), [[0, 0], [0.7, 0], [0, 2.5]])
    vertical = _on_screen(plane.affine, "distance", (10, 2), (10, 6))
    assert distance_mm(*vertical.points) == pytest.approx(4 * 2.5, abs=1e-12)
    slanted = _on_screen(plane.affine, "distance", (10, 2), (13, 6))
    assert distance_mm(*slanted.points) == pytest.approx(math.hypot(3 * 0.7, 4 * 2.5))
    # both end points keep x = the sagittal slice position, -20 + 30 * 0.7
    assert all(p[0] == pytest.approx(1.0) for p in slanted.points)


def test_three_four_five_triangle() -> None:
    a, b, c = (0.0, 0.0, 0.0), (3.0, 0.0, 0.0), (3.0, 4.0, 0.0)
    assert distance_mm(a, b) == 3.0
    assert distance_mm(b, c) == 4.0
    assert distance_mm(a, c) == 5.0
    assert angle_deg(a, b, c) == pytest.approx(90.0)
    assert angle_deg(b, a, c) == pytest.approx(math.degrees(math.atan2(4, 3)))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((1, 0, 0), (0, 1, 0), 90.0),
        ((1, 0, 0), (1, 1, 0), 45.0),
        ((1, 0, 0), (-5, 0, 0), 180.0),
        ((2, 0, 0), (7, 0, 0), 0.0),
        ((0, 0, 3), (0, 2, 2), 45.0),
    ],
)
def test_angles(a: tuple, b: tuple, expected: float) -> None:
    vertex = np.array([10.0, -4.0, 7.0])
    assert angle_deg(vertex + a, vertex, vertex + b) == pytest.approx(expected, abs=1e-9)


def test_angle_summary() -> None:
    m = _m("angle", [(0, 5, 0), (0, 0, 0), (5, 0, 0)])
    assert summary(m) == "Angle 90.0°"


def test_zero_length_arm_is_an_error() -> None:
    with pytest.raises(ValueError, match="first arm has zero length"):
        angle_deg((1, 2, 3), (1, 2, 3), (4, 5, 6))
    with pytest.raises(ValueError, match="second arm has zero length"):
        angle_deg((0, 0, 0), (1, 2, 3), (1, 2, 3))


def test_oblique_screen_patient_round_trip() -> None:
    affine = _oblique_affine(math.radians(25), math.radians(35))
    plane = reslice(np.zeros((10, 30, 40)), affine, "axial", 4)
    screen = np.array([7.25, 13.5, 0.0])
    expected = plane.affine[:3, :3] @ screen + plane.affine[:3, 3]  # plain matrix algebra
    xyz = screen_to_patient(plane.affine, *screen)
    np.testing.assert_allclose(xyz, expected, atol=1e-12)
    np.testing.assert_allclose(patient_to_screen(plane.affine, xyz), screen, atol=1e-9)
    # a point 3 mm further along the slice step is 3 / 2.0 = 1.5 slices away
    step = plane.affine[:3, 2] / np.linalg.norm(plane.affine[:3, 2])
    np.testing.assert_allclose(
        patient_to_screen(plane.affine, xyz + 3.0 * step), [7.25, 13.5, 1.5], atol=1e-9
    )


@SETTINGS
@given(
    ax=st.floats(-math.pi, math.pi),
    az=st.floats(-math.pi, math.pi),
    plane=st.sampled_from(["axial", "coronal", "sagittal"]),
    col=st.floats(-100, 600),
    row=st.floats(-100, 600),
    k=st.floats(-5, 5),
)
def test_screen_patient_round_trip_property(
    ax: float, az: float, plane: str, col: float, row: float, k: float
) -> None:
    sliced = reslice(np.zeros((6, 7, 8)), _oblique_affine(ax, az), plane, 2)  # type: ignore[arg-type]
    xyz = screen_to_patient(sliced.affine, col, row, k)
    np.testing.assert_allclose(patient_to_screen(sliced.affine, xyz), [col, row, k], atol=1e-8)


def test_patient_to_screen_is_vectorised() -> None:
    plane = reslice(VOLUME, ANISO, "coronal", 3)
    screens = np.array([[1.0, 2.0, 0.0], [5.0, 6.0, -1.0]])
    xyz = np.array([screen_to_patient(plane.affine, *s) for s in screens])
    np.testing.assert_allclose(patient_to_screen(plane.affine, xyz), screens, atol=1e-9)


def test_on_plane_only_on_the_drawn_slice() -> None:
    drawn = reslice(VOLUME, ANISO, "axial", 5)
    m = _on_screen(drawn.affine, "distance", (3, 4), (40, 50))
    assert on_plane(m, drawn.affine)
    assert not on_plane(m, reslice(VOLUME, ANISO, "axial", 6).affine)
    assert not on_plane(m, reslice(VOLUME, ANISO, "axial", 4).affine)
    # 0.4 slice (1 mm) off the plane is still on it; 0.6 slice is not
    near = m.moved([np.add(p, (0, 0, 1.0)) for p in m.points])
    far = m.moved([np.add(p, (0, 0, 1.5)) for p in m.points])
    assert on_plane(near, drawn.affine)
    assert not on_plane(far, drawn.affine)
    assert on_plane(far, drawn.affine, tolerance=0.7)
    # one end point off the plane is enough to hide it
    tilted = m.moved([m.points[0], np.add(m.points[1], (0, 0, 2.5))])
    assert not on_plane(tilted, drawn.affine)


# --------------------------------------------------------------------------- ROIs

DISK_CENTRE = (32, 32)
DISK_RADIUS = 10


def _disk_plane() -> tuple[np.ndarray, np.ndarray]:
    """Axial slice of a volume holding 100 inside a 10-pixel disk, 0 elsewhere."""
    rows, cols = np.indices((64, 64))
    disk = (cols - DISK_CENTRE[0]) ** 2 + (rows - DISK_CENTRE[1]) ** 2 <= DISK_RADIUS**2
    volume = np.broadcast_to(np.where(disk, 100.0, 0.0), (20, 64, 64))
    plane = reslice(volume, ANISO, "axial", 7)
    return plane.image, plane.affine


def _in_disk(c: int, r: int) -> bool:
    return (c - DISK_CENTRE[0]) ** 2 + (r - DISK_CENTRE[1]) ** 2 <= DISK_RADIUS**2


def test_ellipse_inside_disk_is_constant() -> None:
    image, affine = _disk_plane()
    m = _on_screen(affine, "ellipse", (27, 27), (37, 37))  # circle of radius 5 px
    stats = roi_stats(image, affine, m)
    expected_pixels = sum((c - 32) ** 2 + (r - 32) ** 2 <= 25 for c in range(64) for r in range(64))
    assert expected_pixels == 81
    assert stats == RoiStats(
        mean=100.0, sd=0.0, min=100.0, max=100.0, area_mm2=stats.area_mm2, pixels=81
    )
    assert stats.area_mm2 == pytest.approx(math.pi * 3.5**2)
    assert summary(m, image, affine, "HU") == (
        "Ellipse mean 100.0 HU, SD 0.0, min 100, max 100, area 38.5 mm²"
    )


def test_rectangle_half_over_disk() -> None:
    image, affine = _disk_plane()
    m = _on_screen(affine, "rectangle", (50, 44), (32, 20))  # any corner order
    inside = [(c, r) for c in range(32, 51) for r in range(20, 45)]
    hits = sum(_in_disk(c, r) for c, r in inside)
    stats = roi_stats(image, affine, m)
    assert stats.pixels == len(inside) == 19 * 25
    assert stats.mean == pytest.approx(100.0 * hits / len(inside))
    assert 0.0 < stats.mean < 100.0
    assert (stats.min, stats.max) == (0.0, 100.0)
    p = hits / len(inside)
    assert stats.sd == pytest.approx(100.0 * math.sqrt(p * (1 - p)))  # population SD
    assert stats.area_mm2 == pytest.approx((18 * 0.7) * (24 * 0.7))


def test_rectangle_mask_includes_its_boundary_pixels() -> None:
    _, affine = _disk_plane()
    mask = roi_mask((64, 64), affine, _on_screen(affine, "rectangle", (2, 3), (5, 9)))
    expected = np.zeros((64, 64), dtype=bool)
    expected[3:10, 2:6] = True
    np.testing.assert_array_equal(mask, expected)


def test_ellipse_mask_matches_pixel_centre_loop() -> None:
    _, affine = _disk_plane()
    m = _on_screen(affine, "ellipse", (10.5, 20.2), (30.3, 27.9))
    c0, r0, a, b = (10.5 + 30.3) / 2, (20.2 + 27.9) / 2, (30.3 - 10.5) / 2, (27.9 - 20.2) / 2
    expected = np.array(
        [[((c - c0) / a) ** 2 + ((r - r0) / b) ** 2 <= 1 for c in range(64)] for r in range(64)]
    )
    np.testing.assert_array_equal(roi_mask((64, 64, 3), affine, m), expected)


def test_roi_clipped_at_image_edge() -> None:
    _, affine = _disk_plane()
    m = _on_screen(affine, "rectangle", (-10, -10), (1, 2))
    assert roi_mask((64, 64), affine, m).sum() == 2 * 3


def test_circle_area_in_mm() -> None:
    image, affine = _disk_plane()
    radius_mm = 7.0  # 10 pixels of 0.7 mm
    m = _on_screen(affine, "ellipse", (22, 22), (42, 42))
    stats = roi_stats(image, affine, m)
    assert stats.area_mm2 == pytest.approx(math.pi * radius_mm**2)
    assert stats.pixels * 0.7 * 0.7 == pytest.approx(math.pi * radius_mm**2, rel=0.03)
    assert stats.pixels == sum(_in_disk(c, r) for c in range(64) for r in range(64))
    assert summary(m) == f"Ellipse area {math.pi * 49:.1f} mm²"
    assert summary(m, plane_affine=affine) == f"Ellipse area {math.pi * 49:.1f} mm²"


def test_roi_with_no_pixel_inside_gives_nan() -> None:
    image, affine = _disk_plane()
    m = _on_screen(affine, "ellipse", (100, 100), (120, 110))
    stats = roi_stats(image, affine, m)
    assert stats.pixels == 0
    assert all(math.isnan(v) for v in (stats.mean, stats.sd, stats.min, stats.max))
    assert stats.area_mm2 == pytest.approx(math.pi * 7.0 * 3.5)
    assert summary(m, image, affine).startswith("Ellipse no pixels inside")


def test_roi_stats_rejects_colour_and_non_roi() -> None:
    image, affine = _disk_plane()
    roi = _on_screen(affine, "rectangle", (1, 1), (4, 4))
    with pytest.raises(ValueError, match="colour image"):
        roi_stats(np.zeros((64, 64, 3)), affine, roi)
    with pytest.raises(ValueError, match=r"ellipse or rectangle.*'distance'"):
        roi_stats(image, affine, _on_screen(affine, "distance", (1, 1), (4, 4)))


def test_roi_mask_on_a_512_reslice_is_the_pixel_centre_ellipse() -> None:
    """A 512x512 image, as the viewer draws on (its speed: benchmarks/bench_responsiveness.py)."""
    plane = reslice(np.zeros((3, 512, 512)), ANISO, "axial", 1)
    (c_lo, r_lo), (c_hi, r_hi) = (20.3, 30.6), (490.2, 500.9)
    m = _on_screen(plane.affine, "ellipse", (c_lo, r_lo), (c_hi, r_hi))
    c0, r0, a, b = (c_lo + c_hi) / 2, (r_lo + r_hi) / 2, (c_hi - c_lo) / 2, (r_hi - r_lo) / 2
    r, c = np.ogrid[:512, :512]
    expected = ((c - c0) / a) ** 2 + ((r - r0) / b) ** 2 <= 1
    np.testing.assert_array_equal(roi_mask((512, 512), plane.affine, m), expected)


# --------------------------------------------------------------------------- probe


def test_probe_value_grey_colour_and_outside() -> None:
    image, affine = _disk_plane()
    centre = screen_to_patient(affine, 32, 32)
    assert probe_value(image, affine, centre) == 100.0
    assert probe_value(image, affine, screen_to_patient(affine, 2.4, 3.49)) == 0.0
    assert probe_value(image, affine, screen_to_patient(affine, -0.6, 3)) is None
    assert probe_value(image, affine, screen_to_patient(affine, 3, 63.6)) is None
    assert probe_value(image, affine, screen_to_patient(affine, 32, 32, k=1.0)) is None
    colour = np.zeros((64, 64, 3), dtype=np.uint8)
    colour[5, 9] = (10, 20, 30)
    assert probe_value(colour, affine, screen_to_patient(affine, 9.2, 4.8)) == (10.0, 20.0, 30.0)


def test_probe_summary() -> None:
    image, affine = _disk_plane()
    image = image.copy()
    image[32, 31] = 40.0
    m = _m("probe", [screen_to_patient(affine, 31, 32)])
    x, y, z = m.points[0]
    assert (x, y, z) == pytest.approx((-20 + 31 * 0.7, -30 + 32 * 0.7, 100 + 7 * 2.5))
    assert summary(m, image, affine, "HU") == "Probe 40 HU at (1.7, -7.6, 117.5) mm LPS"
    assert summary(m) == "Probe at (1.7, -7.6, 117.5) mm LPS"
    labelled = _m("distance", [(0, 0, 0), (0, 0, 42.3)], label="aorta")
    assert summary(labelled) == "aorta: Distance 42.3 mm"


# --------------------------------------------------------------------------- model


def test_to_dict_from_dict_round_trip_through_json() -> None:
    m = _m("angle", [(1.5, -2.25, 3.0), (0, 0, 0), (1e-3, 7, -8)], plane="coronal", label="knee")
    back = Measurement.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    assert back.id == m.id and back.label == "knee" and back.plane == "coronal"
    assert isinstance(back.points, tuple) and all(isinstance(p, tuple) for p in back.points)


def test_moved_keeps_id_and_validates() -> None:
    m = _m("distance", [(0, 0, 0), (1, 1, 1)])
    moved = m.moved([(1, 2, 3), np.array([4.0, 5.0, 6.0])])
    assert moved.id == m.id and moved.points == ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    assert m.points == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="distance measurement needs exactly 2 point"):
        m.moved([(1, 2, 3)])


def test_ids_are_unique() -> None:
    assert _m("probe", [(0, 0, 0)]).id != _m("probe", [(0, 0, 0)]).id


@pytest.mark.parametrize(
    ("kind", "points", "plane", "message"),
    [
        ("line", [(0, 0, 0), (1, 1, 1)], "axial", "unknown measurement kind 'line'"),
        ("distance", [(0, 0, 0)], "axial", "distance measurement needs exactly 2 point.*got 1"),
        ("angle", [(0, 0, 0), (1, 1, 1)], "axial", "angle measurement needs exactly 3"),
        ("probe", [(0, 0, 0), (1, 1, 1)], "axial", "probe measurement needs exactly 1"),
        ("ellipse", [(0, 0, 0), (1, 1, 1), (2, 2, 2)], "axial", "ellipse .* exactly 2"),
        ("distance", [(0, 0, 0), (1, math.nan, 1)], "axial", "non-finite"),
        ("distance", [(0, 0, 0), (1, math.inf, 1)], "axial", "non-finite"),
        ("distance", [(0, 0, 0), (1, 1)], "axial", "point 1 must have 3 coordinates"),
        ("probe", [(0, 0, 0)], "oblique", "unknown plane 'oblique'"),
    ],
)
def test_invalid_measurements(kind: str, points: list, plane: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Measurement(kind, tuple(points), plane, "1.2.3")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not a dict", "must be a mapping"),
        ({"kind": "probe", "plane": "axial", "series_uid": "1"}, "missing key.*points"),
        ({"kind": "probe", "points": "0,0,0", "plane": "axial", "series_uid": "1"}, "'points'"),
        (
            {"kind": "probe", "points": [["0", 0, 0]], "plane": "axial", "series_uid": "1"},
            "point 0",
        ),
        (
            {"kind": "probe", "points": [[True, 0, 0]], "plane": "axial", "series_uid": "1"},
            "point 0",
        ),
        ({"kind": 3, "points": [[0, 0, 0]], "plane": "axial", "series_uid": "1"}, "'kind'"),
        ({"kind": "probe", "points": [[0, 0, 0]], "plane": "axial", "series_uid": 1}, "series_uid"),
        (
            {"kind": "probe", "points": [[0, 0, 0]], "plane": "axial", "series_uid": "1", "id": ""},
            "id",
        ),
        ({"kind": "dot", "points": [[0, 0, 0]], "plane": "axial", "series_uid": "1"}, "'dot'"),
    ],
)
def test_from_dict_rejects_bad_input(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Measurement.from_dict(data)  # type: ignore[arg-type]


def test_bad_plane_affine_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        patient_to_screen(np.eye(3), (0, 0, 0))
    with pytest.raises(ValueError, match="singular"):
        screen_to_patient(np.diag([1.0, 1.0, 0.0, 1.0]), 0, 0)


def test_roi_outline_follows_an_oblique_drawing_plane() -> None:
    # a plane turned 30 degrees about z, 0.5 x 0.8 mm pixels, at z = 12
    a = math.radians(30)
    right = np.array([math.cos(a), math.sin(a), 0.0])
    down = np.array([-math.sin(a), math.cos(a), 0.0])
    plane = np.eye(4)
    plane[:3, 0], plane[:3, 1], plane[:3, 3] = right * 0.5, down * 0.8, (5.0, -3.0, 12.0)

    def corner(c: float, r: float) -> np.ndarray:
        return (plane @ [c, r, 0, 1])[:3]

    roi = Measurement("ellipse", (corner(10, 20), corner(50, 30)), "axial", "s")
    kind, points = roi_outline(plane, roi)
    # axes: 40 px x 0.5 mm = 20 mm across (major), 10 px x 0.8 mm = 8 mm down (minor)
    assert kind == "ELLIPSE"
    np.testing.assert_allclose(points, [corner(10, 25), corner(50, 25), corner(30, 20),
                                        corner(30, 30)], atol=1e-9)
    assert roi_area(plane, roi) == pytest.approx(math.pi * 20 * 8 / 4)
    kind, points = roi_outline(plane, Measurement("rectangle", roi.points, "axial", "s"))
    assert kind == "POLYGON" and len(points) == 5
    np.testing.assert_allclose(points[:4], [corner(10, 20), corner(50, 20), corner(50, 30),
                                            corner(10, 30)], atol=1e-9)
    np.testing.assert_allclose(points[4], points[0])
    with pytest.raises(ValueError):
        roi_outline(plane, Measurement("distance", roi.points, "axial", "s"))
