"""Tests for medviewer.core.windowing.

Expected window values are computed by hand (or by the pure-Python reference
below, written straight from DICOM PS3.3 C.11.2.1.2.1), never by the module.
"""

import dataclasses
import math
import sys

import numpy as np
import pytest

from medviewer.core.windowing import (
    CT_PRESETS,
    VoiLut,
    WindowPreset,
    apply_window,
    auto_window,
    presets_for_modality,
    window_from_dicom,
    window_lut,
)


def dicom_linear(x: float, c: float, w: float) -> int:
    """Reference DICOM LINEAR window to 0..255, rounded half up."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0
    if x > c - 0.5 + (w - 1) / 2:
        return 255
    return math.floor(((x - (c - 0.5)) / (w - 1) + 0.5) * 255 + 0.5)


# Integer center and even width: no input integer lands on a .5 rounding tie,
# so float32 and exact arithmetic must agree with the reference everywhere.
TIE_FREE_WINDOWS = [(40, 400), (-600, 1500), (400, 1800), (40, 80), (1000, 2)]


# --- presets ------------------------------------------------------------------


def test_ct_presets_values() -> None:
    # (center, width) in the viewer's number-key order 1..8 (issue 3's list, W/L there).
    assert [(p.name, p.center, p.width) for p in CT_PRESETS] == [
        ("Brain", 40, 80),
        ("Subdural", 80, 200),
        ("Stroke", 40, 40),
        ("Lung", -600, 1500),
        ("Mediastinum", 50, 350),
        ("Abdomen", 50, 400),
        ("Liver", 30, 150),
        ("Bone", 400, 1800),
    ]


def test_presets_for_modality() -> None:
    assert presets_for_modality("CT") == CT_PRESETS
    assert presets_for_modality(" ct ") == CT_PRESETS
    assert presets_for_modality("MR") == ()
    assert presets_for_modality("") == ()


def test_window_preset_is_frozen_and_validated() -> None:
    preset = WindowPreset("Brain", 40.0, 80.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.width = 10.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        WindowPreset("bad", 40.0, 0.5)


# --- linear window: exact values ----------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        # c=40, w=400: lower edge c-0.5-(w-1)/2 = -160, upper edge c-0.5+(w-1)/2 = 239,
        # linear part y = (x + 160) * 255 / 399.
        (-1000.0, 0),
        (-161.0, 0),
        (-160.5, 0),
        (-160.0, 0),  # lower boundary: x <= -160 -> 0
        (-159.0, 1),  # 255/399 = 0.639
        (-158.0, 1),  # 510/399 = 1.278
        (40.0, 128),  # 200*255/399 = 127.82
        (0.0, 102),  # 160*255/399 = 102.26
        (100.0, 166),  # 260*255/399 = 166.17
        (238.0, 254),  # 398*255/399 = 254.36
        (239.0, 255),  # upper boundary, linear part gives exactly 255
        (239.5, 255),
        (240.0, 255),
        (3000.0, 255),
    ],
)
def test_linear_window_hand_values(x: float, expected: int) -> None:
    arr = np.array([[x]], dtype=np.float64)
    assert apply_window(arr, 40, 400)[0, 0] == expected
    if x.is_integer():
        assert apply_window(arr.astype(np.int16), 40, 400)[0, 0] == expected


def test_fractional_window_hand_values() -> None:
    # c=0, w=2: edges -1 and 0; x=-0.5 -> ((0)/1 + 0.5)*255 = 127.5 -> 128 (half up).
    arr = np.array([[-1.5, -1.0, -0.75, -0.5, -0.25, 0.0, 0.25]], dtype=np.float32)
    # -0.75 -> 0.25*255 = 63.75 -> 64; -0.25 -> 0.75*255 = 191.25 -> 191
    assert apply_window(arr, 0, 2).tolist() == [[0, 0, 64, 128, 191, 255, 255]]


def test_rounding_ties_go_up() -> None:
    # c=0, w=256: y = x + 128 exactly, so half-integer inputs give .5 ties.
    arr = np.array([[-128.5, -127.5, 0.5, 126.5]], dtype=np.float32)
    assert apply_window(arr, 0, 256).tolist() == [[0, 1, 129, 255]]
    # Inversion is applied to the rounded value: 255 - round(y).
    assert apply_window(arr, 0, 256, invert=True).tolist() == [[255, 254, 126, 0]]


def test_width_one_is_step_function() -> None:
    # c=100, w=1: x <= 99.5 -> 0, x > 99.5 -> 255.
    floats = np.array([[-5.0, 99.0, 99.5, 99.51, 100.0, 1e6]], dtype=np.float32)
    assert apply_window(floats, 100, 1).tolist() == [[0, 0, 0, 255, 255, 255]]
    ints = np.array([[98, 99, 100, 101]], dtype=np.int16)
    assert apply_window(ints, 100, 1).tolist() == [[0, 0, 255, 255]]
    assert window_lut(100, 1, 98, 101).tolist() == [0, 0, 255, 255]


def test_invert_monochrome1() -> None:
    arr = np.array([[-200, -159, 40, 238, 300]], dtype=np.int16)
    assert apply_window(arr, 40, 400, invert=True).tolist() == [[255, 254, 127, 1, 0]]
    as_float = arr.astype(np.float32)
    assert apply_window(as_float, 40, 400, invert=True).tolist() == [[255, 254, 127, 1, 0]]


def test_invert_is_complement_everywhere() -> None:
    arr = np.arange(-2048, 3072, dtype=np.int16).reshape(64, 80)
    plain = apply_window(arr, 35.5, 301.25)
    inverted = apply_window(arr, 35.5, 301.25, invert=True)
    np.testing.assert_array_equal(inverted.astype(np.int16), 255 - plain.astype(np.int16))


@pytest.mark.parametrize(("c", "w"), TIE_FREE_WINDOWS)
def test_matches_reference_over_ct_range(c: int, w: int) -> None:
    values = np.arange(-2048, 3072, dtype=np.int16)
    expected = [dicom_linear(float(v), c, w) for v in values.tolist()]
    assert apply_window(values.reshape(64, 80), c, w).ravel().tolist() == expected
    assert window_lut(c, w, -2048, 3071).tolist() == expected


@pytest.mark.parametrize("width", [0.0, 0.999, -10.0, float("nan"), float("inf")])
def test_bad_width_raises(width: float) -> None:
    arr = np.zeros((2, 2), dtype=np.int16)
    with pytest.raises(ValueError):
        apply_window(arr, 40, width)
    with pytest.raises(ValueError):
        apply_window(arr.astype(np.float32), 40, width)
    with pytest.raises(ValueError):
        window_lut(40, width, 0, 10)


def test_bad_center_and_lut_bounds_raise() -> None:
    with pytest.raises(ValueError):
        apply_window(np.zeros((2, 2)), float("nan"), 400)
    with pytest.raises(ValueError):
        window_lut(40, 400, 10, 9)


def test_non_numeric_array_raises() -> None:
    with pytest.raises(TypeError):
        apply_window(np.zeros((2, 2), dtype=np.complex64), 40, 400)


# --- LUT vs float paths -------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "w", "invert"),
    [
        (40, 400, False),
        (40, 400, True),
        (-600, 1500, False),
        (35.5, 301.25, False),
        (0.3, 1.7, True),
        (100, 1, False),
        (100.25, 1, True),
        (-2000, 3, False),
        (1e4, 12345.6, False),
        # Windows where float32 and float64 arithmetic round some input differently
        # (626.54/2738.35 at x=1356, -28.93/1268.46 at x=-606): both paths must
        # still agree with each other.
        (626.54, 2738.35, False),
        (-28.93, 1268.46, True),
    ],
)
def test_lut_and_float_paths_identical(c: float, w: float, invert: bool) -> None:
    ints = np.arange(-2048, 3072, dtype=np.int16).reshape(64, 80)
    lut_result = apply_window(ints, c, w, invert=invert)
    for dtype in (np.float32, np.float64):
        float_result = apply_window(ints.astype(dtype), c, w, invert=invert)
        np.testing.assert_array_equal(lut_result, float_result)


def test_window_lut_entries() -> None:
    lut = window_lut(40, 400, -161, 240)
    assert lut.dtype == np.uint8
    assert lut.shape == (402,)
    assert lut[0] == 0  # -161
    assert lut[1] == 0  # -160
    assert lut[2] == 1  # -159
    assert lut[40 + 161] == 128
    assert lut[-2] == 255  # 239
    assert lut[-1] == 255  # 240
    np.testing.assert_array_equal(window_lut(40, 400, -161, 240, invert=True), 255 - lut)


def test_uint16_input() -> None:
    values = np.arange(0, 1 << 16, dtype=np.uint16)  # spans the full dtype
    arr = values.reshape(256, 256)
    c, w = 2048, 4096
    result = apply_window(arr, c, w)
    assert result.dtype == np.uint8
    expected = [dicom_linear(float(v), c, w) for v in range(0, 5000)]
    assert result.ravel()[:5000].tolist() == expected
    assert (result.ravel()[4096:] == 255).all()
    np.testing.assert_array_equal(result, apply_window(arr.astype(np.float32), c, w))


def test_uint16_offset_range() -> None:
    # lo != 0 exercises the index offset for unsigned data.
    arr = np.array([[1000, 1999], [2000, 3000]], dtype=np.uint16)
    # c=2000, w=1000: edges 1500 and 2499, y = (x - 1500) * 255 / 999
    assert apply_window(arr, 2000, 1000).tolist() == [[0, 127], [128, 255]]


def test_full_int16_range() -> None:
    arr = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16).reshape(256, 256)
    result = apply_window(arr, 40, 400)
    assert result[0, 0] == 0
    assert result[-1, -1] == 255
    np.testing.assert_array_equal(result, apply_window(arr.astype(np.float32), 40, 400))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint32, np.bool_])
def test_other_integer_dtypes(dtype: type) -> None:
    info_values = [0, 1] if dtype is np.bool_ else [0, 1, 5, 100, 120]
    if np.dtype(dtype).kind == "i":
        info_values = [-100, *info_values]
    arr = np.array([info_values], dtype=dtype)
    expected = [[dicom_linear(float(v), 10, 50) for v in info_values]]
    assert apply_window(arr, 10, 50).tolist() == expected


def test_int32_wide_range_uses_float_path_correctly() -> None:
    values = [-1_000_000, -100, -16, 0, 1, 9, 50, 1_000_000]
    arr = np.array([values], dtype=np.int32)
    expected = [[dicom_linear(float(v), 0, 32) for v in values]]
    assert apply_window(arr, 0, 32).tolist() == expected


def test_big_endian_input() -> None:
    arr = np.array([[-159, 40, 238]], dtype=">i2")
    assert apply_window(arr, 40, 400).tolist() == [[1, 128, 254]]


def test_nan_maps_to_black() -> None:
    arr = np.array([[np.nan, -np.inf, np.inf, 40.0]], dtype=np.float32)
    assert apply_window(arr, 40, 400).tolist() == [[0, 0, 255, 128]]
    assert apply_window(arr, 40, 400, invert=True).tolist() == [[255, 255, 0, 127]]


# --- shapes and out -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32, np.float64])
def test_3d_shape_preserved(dtype: type) -> None:
    arr = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 20).astype(dtype)
    result = apply_window(arr, 500, 1000)
    assert result.shape == (3, 4, 5)
    assert result.dtype == np.uint8
    expected = [dicom_linear(float(v), 500, 1000) for v in arr.ravel().tolist()]
    assert result.ravel().tolist() == expected


def test_non_contiguous_input() -> None:
    base = np.arange(-2048, 3072, dtype=np.int16).reshape(64, 80)
    view = base[::2, ::3]
    expected = [[dicom_linear(float(v), 40, 400) for v in row] for row in view.tolist()]
    assert apply_window(view, 40, 400).tolist() == expected
    assert apply_window(view.T, 40, 400).tolist() == np.array(expected).T.tolist()


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_out_parameter_written(dtype: type) -> None:
    arr = np.array([[[-200, 40], [238, 300]]], dtype=dtype)
    out = np.full(arr.shape, 7, dtype=np.uint8)
    result = apply_window(arr, 40, 400, out=out)
    assert result is out
    assert out.tolist() == [[[0, 128], [254, 255]]]


def test_out_parameter_non_contiguous() -> None:
    arr = np.array([[-200, 40], [238, 300]], dtype=np.int16)
    backing = np.zeros((2, 4), dtype=np.uint8)
    out = backing[:, ::2]
    apply_window(arr, 40, 400, out=out)
    assert backing.tolist() == [[0, 0, 128, 0], [254, 0, 255, 0]]


@pytest.mark.parametrize(
    "out",
    [np.zeros((2, 3), dtype=np.uint8), np.zeros((2, 2), dtype=np.int16), [[0, 0], [0, 0]]],
)
def test_out_parameter_validated(out: object) -> None:
    with pytest.raises(ValueError):
        apply_window(np.zeros((2, 2), dtype=np.int16), 40, 400, out=out)  # type: ignore[arg-type]


def test_empty_array() -> None:
    result = apply_window(np.zeros((0, 5), dtype=np.int16), 40, 400)
    assert result.shape == (0, 5)
    assert result.dtype == np.uint8


def test_lut_path_index_is_narrow() -> None:
    # The integer path must not allocate float64 or intp copies of a large image:
    # peak extra memory stays well below 8 bytes per pixel.
    import tracemalloc

    arr = np.arange(1 << 20, dtype=np.int64).astype(np.int16).reshape(1024, 1024)
    out = np.empty(arr.shape, dtype=np.uint8)
    tracemalloc.start()
    try:
        apply_window(arr, 40, 400, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * arr.size


# --- VOI LUT ------------------------------------------------------------------


def test_voi_lut_clamps_both_ends() -> None:
    lut = VoiLut(first_mapped=10, data=np.array([0, 1000, 2000, 4095], dtype=np.uint16), bits=12)
    arr = np.array([[-50, 9, 10, 11], [12, 13, 14, 5000]], dtype=np.int16)
    # 1000/4095*255 = 62.27 -> 62; 2000/4095*255 = 124.54 -> 125
    assert lut.apply(arr).tolist() == [[0, 0, 0, 62], [125, 255, 255, 255]]
    assert lut.apply(arr, invert=True).tolist() == [[255, 255, 255, 193], [130, 0, 0, 0]]


def test_voi_lut_negative_first_mapped_and_float_input() -> None:
    lut = VoiLut(first_mapped=-2, data=[10, 20, 30], bits=8)
    ints = np.array([[-5, -2, -1, 0, 1, 7]], dtype=np.int32)
    assert lut.apply(ints).tolist() == [[10, 10, 20, 30, 30, 30]]
    floats = np.array([[-5.0, -2.2, -0.9, 0.4, np.nan, 7.0]])
    assert lut.apply(floats).tolist() == [[10, 10, 20, 30, 10, 30]]


def test_voi_lut_uint16_input_and_3d() -> None:
    lut = VoiLut(first_mapped=0, data=np.arange(256, dtype=np.uint8), bits=8)
    arr = np.array([[[0, 100], [255, 65535]]], dtype=np.uint16)
    result = lut.apply(arr)
    assert result.shape == (1, 2, 2)
    assert result.tolist() == [[[0, 100], [255, 255]]]


def test_voi_lut_display_table_and_data_copy() -> None:
    source = np.array([0, 1, 2, 3], dtype=np.uint16)
    lut = VoiLut(first_mapped=0, data=source, bits=2)
    source[0] = 3
    # 1/3*255 = 85, 2/3*255 = 170
    assert lut.display_table().tolist() == [0, 85, 170, 255]
    assert not lut.data.flags.writeable


@pytest.mark.parametrize(
    ("data", "bits"),
    [([0, 1], 0), ([0, 1], 17), ([], 8), ([-1, 2], 8), ([0, 70000], 16), ([0.5, 1.0], 8)],
)
def test_voi_lut_validation(data: list[float], bits: int) -> None:
    with pytest.raises(ValueError):
        VoiLut(first_mapped=0, data=np.array(data), bits=bits)


@pytest.mark.parametrize(
    ("first", "data", "expected"),
    [
        # a 256-entry ramp from 0: 0 at input 0 .. 255 at input 255 -> centre 127.5, width 255
        (0, np.arange(256), (127.5, 255.0)),
        # flat 0 up to input 12, rising 13..14, flat max from 15: the ramp is 12..15
        (10, [0, 0, 0, 5, 9, 20, 20], (13.5, 3.0)),
        (-7, [4, 4, 4], (-7.0, 1.0)),  # constant: width 1 at its first input
        (0, [9, 5, 0, 0], (1.0, 2.0)),  # falling: the same ramp, inputs 0..2
    ],
)
def test_voi_lut_equivalent_window(first: int, data, expected) -> None:
    lut = VoiLut(first_mapped=first, data=np.array(data), bits=8, explanation="x")
    assert lut.equivalent_window() == expected
    assert repr(lut) == f"VoiLut(first_mapped={first}, bits=8, explanation='x')"


# --- auto window ----------------------------------------------------------------


def test_auto_window_known_array() -> None:
    arr = np.arange(1001, dtype=np.int16)
    # 0.5th percentile of 0..1000 is 5, 99.5th is 995.
    assert auto_window(arr) == (500.0, 990.0)
    assert auto_window(arr, 10, 90) == (500.0, 800.0)


def test_auto_window_subsamples_deterministically() -> None:
    arr = np.arange(10, dtype=np.float64).reshape(2, 5)
    # ceil(10/3) = 4: samples 0, 4, 8 -> percentiles 0/100 are 0 and 8.
    assert auto_window(arr, 0, 100, max_samples=3) == (4.0, 8.0)
    assert auto_window(arr, 0, 100) == (4.5, 9.0)


def test_auto_window_constant_and_narrow() -> None:
    assert auto_window(np.full((4, 4), 42, dtype=np.int16)) == (42.0, 1.0)
    assert auto_window(np.array([0.0, 0.2]), 0, 100) == pytest.approx((0.1, 1.0))


def test_auto_window_ignores_non_finite() -> None:
    arr = np.array([np.nan, 0.0, 10.0, np.inf, -np.inf])
    assert auto_window(arr, 0, 100) == (5.0, 10.0)


def test_auto_window_errors() -> None:
    with pytest.raises(ValueError):
        auto_window(np.array([np.nan]))
    with pytest.raises(ValueError):
        auto_window(np.zeros(0))
    with pytest.raises(ValueError):
        auto_window(np.zeros(3), 60, 40)
    with pytest.raises(ValueError):
        auto_window(np.zeros(3), max_samples=0)


# --- DICOM window attributes ----------------------------------------------------


def test_window_from_dicom_scalar() -> None:
    assert window_from_dicom(40.0, 400.0) == (WindowPreset("DICOM 1", 40.0, 400.0),)
    assert window_from_dicom("40", "400", "SOFT") == (WindowPreset("SOFT", 40.0, 400.0),)


def test_window_from_dicom_lists() -> None:
    presets = window_from_dicom([40, -600], [400, 1500], ["SOFT TISSUE", "LUNG"])
    assert presets == (
        WindowPreset("SOFT TISSUE", 40.0, 400.0),
        WindowPreset("LUNG", -600.0, 1500.0),
    )
    # Missing or blank explanations fall back to positional names.
    presets = window_from_dicom((40, -600, 400), (400, 1500, 1800), ["SOFT", " "])
    assert [p.name for p in presets] == ["SOFT", "DICOM 2", "DICOM 3"]


def test_window_from_dicom_none() -> None:
    assert window_from_dicom(None, None) == ()
    assert window_from_dicom(40, None) == ()
    assert window_from_dicom(None, [400]) == ()


def test_window_from_dicom_skips_bad_widths() -> None:
    presets = window_from_dicom([40, 50, 60, 70], [0.5, 350, 0, float("nan")])
    assert presets == (WindowPreset("DICOM 2", 50.0, 350.0),)
    assert window_from_dicom([40, "abc"], [400, 400]) == (WindowPreset("DICOM 1", 40.0, 400.0),)


def test_window_from_dicom_mismatched_lengths() -> None:
    presets = window_from_dicom([40, 50, 60], [400, 350])
    assert presets == (WindowPreset("DICOM 1", 40.0, 400.0), WindowPreset("DICOM 2", 50.0, 350.0))


# --- dependency rule ------------------------------------------------------------


def test_module_imports_numpy_only() -> None:
    import importlib
    import subprocess

    code = (
        "import sys, medviewer.core.windowing; "
        "bad = [m for m in ('pydicom', 'torch', 'PySide6', 'pyqtgraph') if m in sys.modules]; "
        "print(bad)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
    assert importlib.import_module("medviewer.core.windowing").apply_window is apply_window
