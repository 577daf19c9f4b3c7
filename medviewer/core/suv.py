"""Standardised uptake value (body weight) of a PET series, from its DICOM attributes.

SUVbw = C x W / D(t): the activity concentration C (Bq/ml, the image in ``BQML`` units) times
the patient weight W (g), over the injected dose D decayed from the injection to the time
the image is decay-corrected to:

* ``DecayCorrection`` ``START`` (the usual case): the images are decay-corrected to the scan
  start, the Series Date/Time. A series processed again later (its Series Time after its
  Acquisition Time) is corrected to the earliest acquisition instead, or to GE's private
  scan date/time (0009,100D of ``GEMS_PETD_01``) where present, as the QIBA vendor-neutral
  SUV pseudo-code does.
* ``ADMIN``: already corrected to the injection: D is the injected dose.
* ``NONE``: each frame would need its own decay from its acquisition time: not supported,
  reported as such.

So ``factor = W[g] / (dose[Bq] x 2^(-(t_scan - t_injection) / half_life))`` in g/ml per
Bq/ml, and SUV = stored value x rescale x factor. Philips images in counts (``CNTS``) carry
the factor itself in (7053,1000); images in ``GML`` are already SUV (factor 1). Times are
``RadiopharmaceuticalStartDateTime``, or ``RadiopharmaceuticalStartTime`` on the series date
(the day before when that would put the injection after the scan: a scan past midnight).

Every case that cannot give a factor returns one with ``factor`` None and the reason, which
the viewer and ``medviewer info`` show instead of a number. No pydicom here: the attributes
come in :class:`SuvInputs` (``medviewer.io.pet`` reads them from a file).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np


@dataclass(frozen=True)
class SuvInputs:
    """The attributes SUV needs, as the files give them (empty or None when absent).

    Attributes
    ----------
    units : str
        Units (0054,1001): ``BQML``, ``CNTS``, ``GML``...
    decay_correction : str
        Decay Correction (0054,1102): ``START``, ``ADMIN`` or ``NONE``.
    series_date, series_time, acquisition_date, acquisition_time : str
        DICOM DA/TM values of the series and of the earliest acquisition of its images.
    injection_datetime : str
        Radiopharmaceutical Start DateTime (0018,1078), DT.
    injection_time : str
        Radiopharmaceutical Start Time (0018,1072), TM.
    dose_bq : float or None
        Radionuclide Total Dose (0018,1074), Bq at the injection.
    half_life_s : float or None
        Radionuclide Half Life (0018,1075), s.
    weight_kg : float or None
        Patient's Weight (0010,1030), kg.
    philips_suv_factor : float or None
        Philips (7053,1000) SUV Scale Factor (for ``CNTS`` images).
    ge_scan_datetime : str
        GE (0009,100D) scan date/time (``GEMS_PETD_01``), DT.
    """

    units: str = ""
    decay_correction: str = ""
    series_date: str = ""
    series_time: str = ""
    acquisition_date: str = ""
    acquisition_time: str = ""
    injection_datetime: str = ""
    injection_time: str = ""
    dose_bq: float | None = None
    half_life_s: float | None = None
    weight_kg: float | None = None
    philips_suv_factor: float | None = None
    ge_scan_datetime: str = ""


@dataclass(frozen=True)
class SuvFactor:
    """What multiplies a PET image's (rescaled) values into SUVbw, or why nothing does.

    Attributes
    ----------
    factor : float or None
        g/ml per image unit; None when SUV cannot be computed (see `reason`).
    reason : str
        Why `factor` is None ("" when it is not).
    method : str
        How it was found: ``"decay"`` (dose decayed to the scan), ``"admin"`` (images
        corrected to the injection), ``"philips"`` (private factor), ``"gml"`` (already SUV).
    units : str
        The image's units (Units, 0054,1001).
    decay_s : float or None
        Seconds from the injection to the decay-correction time (``"decay"`` only).
    scan_time_source : str
        Which time the decay ran to: ``"series"``, ``"acquisition"``, ``"ge_private"``.
    """

    factor: float | None
    reason: str = ""
    method: str = ""
    units: str = ""
    decay_s: float | None = None
    scan_time_source: str = ""

    @property
    def available(self) -> bool:
        """True when the factor is known."""
        return self.factor is not None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description (``medviewer info --json``)."""
        return {"units": self.units, "suv_bw_factor": self.factor, "method": self.method,
                "decay_s": self.decay_s, "scan_time_source": self.scan_time_source,
                "reason": self.reason}  # fmt: skip


def suv_factor(inputs: SuvInputs) -> SuvFactor:
    """The SUVbw factor of a PET series (see the module's notes), or the reason there is none."""
    units = inputs.units.strip().upper()
    if units == "GML":
        return SuvFactor(1.0, method="gml", units=units)
    if units == "CNTS":
        if inputs.philips_suv_factor is not None and inputs.philips_suv_factor > 0:
            return SuvFactor(float(inputs.philips_suv_factor), method="philips", units=units)
        return _none(units, "the image is in counts (CNTS) without Philips' SUV Scale Factor "
                            "(7053,1000)")  # fmt: skip
    if units != "BQML":
        return _none(units, f"Units (0054,1001) is {units or 'missing'}, not BQML")
    missing = _missing(inputs)
    if missing:
        return _none(units, "missing " + ", ".join(missing))
    assert inputs.weight_kg is not None and inputs.dose_bq is not None
    correction = inputs.decay_correction.strip().upper()
    if correction == "ADMIN":
        return SuvFactor(inputs.weight_kg * 1000.0 / inputs.dose_bq, method="admin", units=units)
    if correction != "START":
        return _none(units, f"Decay Correction (0054,1102) is {correction or 'missing'}: only "
                            "START and ADMIN are supported")  # fmt: skip
    return _decayed(inputs, units)


def _decayed(inputs: SuvInputs, units: str) -> SuvFactor:
    assert inputs.weight_kg is not None and inputs.dose_bq is not None
    scan, source = scan_datetime(inputs)
    if scan is None:
        return _none(units, "no Series Date/Time (0008,0021/0031) to decay the dose to")
    injection = injection_datetime(inputs, scan)
    if injection is None:
        return _none(units, "no Radiopharmaceutical Start DateTime or Time (0018,1078/1072)")
    half_life = inputs.half_life_s
    if half_life is None or half_life <= 0:
        return _none(units, "missing Radionuclide Half Life (0018,1075)")
    decay_s = (scan - injection).total_seconds()
    if decay_s < 0:
        return _none(units, f"the injection ({injection.isoformat()}) is after the scan "
                            f"({scan.isoformat()})")  # fmt: skip
    decayed = inputs.dose_bq * 2.0 ** (-decay_s / half_life)
    return SuvFactor(inputs.weight_kg * 1000.0 / decayed, method="decay", units=units,
                     decay_s=decay_s, scan_time_source=source)  # fmt: skip


def _missing(inputs: SuvInputs) -> list[str]:
    missing = []
    if inputs.weight_kg is None or inputs.weight_kg <= 0:
        missing.append("Patient's Weight (0010,1030)")
    if inputs.dose_bq is None or inputs.dose_bq <= 0:
        missing.append("Radionuclide Total Dose (0018,1074)")
    return missing


def _none(units: str, reason: str) -> SuvFactor:
    return SuvFactor(None, reason=f"no SUV: {reason}", units=units)


def scan_datetime(inputs: SuvInputs) -> tuple[datetime | None, str]:
    """The time the images are decay-corrected to, and which attribute gave it."""
    series = parse_datetime(inputs.series_date, inputs.series_time)
    acquisition = parse_datetime(inputs.acquisition_date or inputs.series_date,
                                 inputs.acquisition_time)  # fmt: skip
    if (series is not None and acquisition is not None and not inputs.acquisition_date
            and acquisition < series - timedelta(hours=12)):
        acquisition += timedelta(days=1)  # no Acquisition Date: a scan past midnight
    if series is not None and (acquisition is None or series <= acquisition):
        return series, "series"
    ge = parse_dt(inputs.ge_scan_datetime)
    if ge is not None:
        return ge, "ge_private"
    if acquisition is not None:
        return acquisition, "acquisition"
    return None, ""


def injection_datetime(inputs: SuvInputs, scan: datetime) -> datetime | None:
    """The injection time: the DT attribute, else the TM on the scan's day (or the day before
    when that would follow the scan)."""
    full = parse_dt(inputs.injection_datetime)
    if full is not None:
        return full
    time = parse_datetime(scan.strftime("%Y%m%d"), inputs.injection_time)
    if time is None:
        return None
    return time - timedelta(days=1) if time > scan else time


def parse_datetime(da: str, tm: str) -> datetime | None:
    """A DICOM DA + TM pair (``20250601``, ``101530.25``) as a datetime; None if either fails."""
    da, tm = (da or "").strip(), (tm or "").strip()
    if len(da) != 8 or not da.isdigit() or len(tm) < 2:
        return None
    return parse_dt(da + tm)


def parse_dt(value: str) -> datetime | None:
    """A DICOM DT (``YYYYMMDDHHMMSS.FFFFFF``, an offset ignored) as a datetime, or None."""
    text = (value or "").strip()
    for sign in "+-":
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    main, _, fraction = text.partition(".")
    if len(main) < 10 or not main.isdigit() or (fraction and not fraction.isdigit()):
        return None
    main = main.ljust(14, "0")[:14]
    try:
        moment = datetime.strptime(main, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return moment + timedelta(microseconds=round(float("0." + (fraction or "0")) * 1e6))


def suv_statistics(values: np.ndarray, factor: float) -> dict[str, float]:
    """SUVmax and SUVmean of an ROI's image values (NaN for an empty ROI)."""
    if values.size == 0:
        return {"suv_max": float("nan"), "suv_mean": float("nan")}
    scaled = np.asarray(values, np.float64) * factor
    return {"suv_max": float(scaled.max()), "suv_mean": float(scaled.mean())}
