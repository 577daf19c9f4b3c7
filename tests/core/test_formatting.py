"""The one rule for numbers, names and dates that people read (viewer, PDF, captions, CLI)."""

from __future__ import annotations

import doctest

import pytest

from medviewer.core import formatting as fmt


@pytest.mark.parametrize(("pn", "expected"), [
    ("TESTPERSON^ALICE", "TESTPERSON, Alice"),
    ("MÜLLER^Zoë", "MÜLLER, Zoë"),
    ("DOE^JOHN^A^DR^III", "DOE, DR John A, III"),
    ("SOLO", "SOLO"),
    ("^ALICE", "Alice"),
    ("=山田^太郎", "山田, 太郎"),
    ("", ""),
])
def test_person_name(pn, expected):
    assert fmt.person_name(pn) == expected


def test_names_dates_and_times():
    assert fmt.dicom_date("20260102") == "2026-01-02"
    assert fmt.dicom_date("2026") == "2026" and fmt.dicom_date("") == ""
    assert fmt.dicom_date("20261399") == "20261399"
    assert fmt.iso_time("2026-11-21T11:05:30+01:00") == "2026-11-21 10:05 UTC"
    assert fmt.iso_time("2026-11-21T10:05:00") == "2026-11-21 10:05 UTC"
    assert fmt.iso_time("soon") == "soon" and fmt.iso_time("") == ""
    assert fmt.sha_prefix("AB" * 32) == "ab" * 6
    assert [fmt.sex(s) for s in ("F", "M", "O", "", "X")] == ["Female", "Male", "Other", "", "X"]
    assert fmt.series(3, "chest ct", "CT") == "3 chest ct (CT)" and fmt.series(None, "", "") == ""


@pytest.mark.parametrize(("ml", "expected"), [
    (2451.37, "2451"),  # an organ: whole mL
    (999.96, "1000"),  # would be "1000.0" with a decimal
    (999.94, "999.9"),
    (123.456, "123.5"),  # issue 19: the findings table showed "123"
    (12.345, "12.3"),
    (9.999, "10.0"),
    (1.0368, "1.04"),
    (0.39456, "0.395"),
    (0.01234, "0.012"),
    (0.00144, "0.001"),
    (1e-5, "<0.001"),
    (0.0, "0"),
    (None, "—"),
    (float("nan"), "—"),
    (float("inf"), "—"),
])
def test_volume_keeps_about_three_significant_digits(ml, expected):
    assert fmt.volume_ml(ml) == expected


def test_lengths_areas_angles_and_means_have_one_decimal():
    assert fmt.length_mm(17.31) == "17.3" and fmt.length_mm(17.36) == "17.4"
    assert fmt.area_mm2(314.159) == "314.2" and fmt.angle_deg(90.0) == "90.0"
    assert fmt.mean_value(1174.9197, "HU") == "1174.9 HU" and fmt.mean_value(12.06) == "12.1"
    assert fmt.mean_value(None, "HU") == fmt.length_mm(None) == fmt.MISSING
    assert fmt.point_lps((-83.84, -104.0, 62.0)) == "(-83.8, -104.0, 62.0)"
    assert fmt.point_lps(None) == fmt.MISSING


def test_a_value_rounding_to_zero_has_no_minus_sign():
    assert fmt.length_mm(-0.04) == "0.0" and fmt.mean_value(-0.04, "HU") == "0.0 HU"
    assert fmt.point_lps((-0.01, 0.0, -0.06)) == "(0.0, 0.0, -0.1)"
    assert fmt.probability(-0.0001) == "0.000" and fmt.number(-0.001) == "0"
    assert fmt.length_mm(-10.04) == "-10.0"  # a real negative keeps its sign


def test_pixel_values_are_written_as_stored():
    assert [fmt.image_value(v) for v in (40.0, -1024.0, 3.14159265, 1e6, 2.5e-7)] == [
        "40", "-1024", "3.14159", "1000000", "2.5e-07"]
    assert fmt.image_value(40.0, "HU") == "40 HU" and fmt.image_value(None, "HU") == "—"


def test_probabilities_thresholds_windows_and_times():
    assert fmt.probability(0.875) == "0.875" and fmt.probability(0.497) == "0.497"
    assert fmt.threshold(0.5) == "0.50" and fmt.threshold(0.35) == "0.35"
    assert fmt.window(40.0, 400.0) == "W 400 L 40"
    assert fmt.window(-600, 1500.5) == "W 1500.5 L -600"
    assert fmt.seconds(1.25) == "1.25 s" and fmt.seconds(None) == "—"


def test_the_module_examples_hold():
    failed, attempted = doctest.testmod(fmt)
    assert attempted >= 7 and failed == 0


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1.0 KB"), (1536, "1.5 KB"),
     (10 * 1024, "10 KB"), (30 * 1024**2, "30 MB"), (int(3.7 * 1024**3), "3.7 GB"),
     (5 * 1024**5, "5.0 PB"), (2048 * 1024**5, "2048 PB")],
)  # fmt: skip
def test_byte_size_one_decimal_below_ten_of_a_unit(nbytes: int, text: str) -> None:
    assert fmt.byte_size(nbytes) == text
