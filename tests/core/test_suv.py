"""SUV body weight against hand-computed values, and every case that cannot give one.

370 MBq of F-18 (half-life 6586.2 s) injected at 10:00:00 into 75 kg, scanned at 11:00:00:
decayed dose = 3.7e8 x 2^(-3600 / 6586.2) = 253 314 180 Bq, factor = 75 000 g / that =
2.96075e-4 g/ml per Bq/ml, so 10 000 Bq/ml is SUV 2.96075. At 11:30 (5400 s) the dose is
209 598 606 Bq and the factor 3.57827e-4; corrected to the injection (ADMIN) it is
75 000 / 3.7e8 = 2.02703e-4.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from medviewer.core.suv import SuvInputs, parse_dt, suv_factor, suv_statistics

F18 = SuvInputs(
    units="BQML", decay_correction="START", series_date="20250601", series_time="110000",
    acquisition_date="20250601", acquisition_time="110000", injection_time="100000",
    dose_bq=3.7e8, half_life_s=6586.2, weight_kg=75.0,
)  # fmt: skip


def test_decay_from_series_time():
    suv = suv_factor(F18)
    assert suv.factor == pytest.approx(2.960750161e-4, rel=1e-9)
    assert suv.decay_s == 3600.0 and suv.scan_time_source == "series"
    assert 10000 * suv.factor == pytest.approx(2.96075, rel=1e-6)
    assert suv.method == "decay" and suv.available and suv.reason == ""


def test_the_injection_datetime_wins_over_the_time():
    inputs = replace(F18, injection_datetime="20250601093000", injection_time="100000")
    assert suv_factor(inputs).decay_s == 5400.0
    assert suv_factor(inputs).factor == pytest.approx(3.578268067e-4, rel=1e-9)


def test_a_series_processed_later_decays_to_its_earliest_acquisition():
    """Series Time 12:30 after the acquisition at 11:30: the images were reconstructed
    again; they are decay-corrected to the acquisition, not to 12:30."""
    inputs = replace(F18, series_time="123000", acquisition_time="113000")
    suv = suv_factor(inputs)
    assert suv.scan_time_source == "acquisition" and suv.decay_s == 5400.0
    assert suv.factor == pytest.approx(3.578268067e-4, rel=1e-9)


def test_ge_private_scan_time_when_the_series_time_moved():
    inputs = replace(F18, series_time="123000", acquisition_time="113500",
                     ge_scan_datetime="20250601113000.000000")  # fmt: skip
    suv = suv_factor(inputs)
    assert suv.scan_time_source == "ge_private" and suv.decay_s == 5400.0


def test_an_injection_before_midnight_and_a_scan_after_it():
    inputs = replace(F18, series_date="20250602", series_time="003000",
                     acquisition_date="20250602", acquisition_time="003000",
                     injection_time="233000")  # fmt: skip
    suv = suv_factor(inputs)
    assert suv.decay_s == 3600.0
    assert suv.factor == pytest.approx(2.960750161e-4, rel=1e-9)


def test_images_corrected_to_the_injection_use_the_injected_dose():
    suv = suv_factor(replace(F18, decay_correction="ADMIN"))
    assert suv.method == "admin" and suv.factor == pytest.approx(75000 / 3.7e8)


def test_philips_counts_and_images_already_in_suv():
    philips = suv_factor(SuvInputs(units="CNTS", philips_suv_factor=0.000551))
    assert philips.method == "philips" and philips.factor == pytest.approx(0.000551)
    assert suv_factor(SuvInputs(units="GML")).factor == 1.0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"weight_kg": None}, "missing Patient's Weight (0010,1030)"),
        ({"weight_kg": 0.0}, "missing Patient's Weight (0010,1030)"),
        ({"dose_bq": None}, "missing Radionuclide Total Dose (0018,1074)"),
        ({"half_life_s": None}, "missing Radionuclide Half Life (0018,1075)"),
        ({"injection_time": ""}, "no Radiopharmaceutical Start DateTime or Time"),
        ({"series_date": "", "acquisition_date": ""}, "no Series Date/Time"),
        ({"decay_correction": "NONE"}, "Decay Correction (0054,1102) is NONE"),
        ({"units": "PROPCPS"}, "Units (0054,1001) is PROPCPS, not BQML"),
        ({"units": ""}, "Units (0054,1001) is missing, not BQML"),
        ({"units": "CNTS"}, "counts (CNTS) without Philips' SUV Scale Factor"),
        ({"injection_datetime": "20250601120000"}, "the injection (2025-06-01T12:00:00) is "
                                                    "after the scan"),
    ],
)  # fmt: skip
def test_what_cannot_give_an_suv_says_why(change, reason):
    suv = suv_factor(replace(F18, **change))
    assert suv.factor is None and not suv.available
    assert suv.reason.startswith("no SUV: ") and reason in suv.reason


def test_dicom_datetimes():
    assert parse_dt("20250601113000.25") == datetime(2025, 6, 1, 11, 30, 0, 250000)
    assert parse_dt("202506011130") == datetime(2025, 6, 1, 11, 30)
    assert parse_dt("20250601113000+0100") == datetime(2025, 6, 1, 11, 30)
    assert parse_dt("2025") is None and parse_dt("garbage!") is None and parse_dt("") is None


def test_roi_statistics_in_suv():
    stats = suv_statistics(np.array([1000.0, 5000.0, 12000.0]), 2.960750161e-4)
    assert stats["suv_max"] == pytest.approx(12000 * 2.960750161e-4)
    assert stats["suv_mean"] == pytest.approx(6000 * 2.960750161e-4)
    assert np.isnan(suv_statistics(np.array([]), 1.0)["suv_max"])


def test_an_acquisition_past_midnight_without_its_date():
    """Series at 23:50, the earliest acquisition at 00:10 with no Acquisition Date: the
    next day's, so the series time (before it) is the scan's."""
    inputs = replace(F18, series_date="20250601", series_time="235000", acquisition_date="",
                     acquisition_time="001000", injection_time="225000")  # fmt: skip
    suv = suv_factor(inputs)
    assert suv.scan_time_source == "series" and suv.decay_s == 3600.0
