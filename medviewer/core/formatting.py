"""How medviewer writes numbers, names, dates and times for people to read (one rule, one place).

The viewer (findings table, measurement labels and list, corner readouts), the PDF report,
key image captions and the CLI's summary all format through these functions, so a quantity
reads the same wherever it is shown: a finding of 123.456 mL is ``"123.5"`` in the table and
in the PDF. Plain Python, no third-party imports.

Files meant for programs (findings CSV and JSON, ``result.json``, DICOM SR) carry the measured
value unrounded instead, so that a reader never rounds an already rounded number: formatting
their value with the function here gives the text the viewer and the PDF show.

The rule
--------
- Volumes (mL): about three significant digits, :func:`volume_ml`: whole mL from 1000 mL,
  1 decimal from 10 mL, 2 from 1 mL, 3 below; ``"<0.001"`` for a trace.
- Lengths, diameters, slice positions and LPS coordinates (mm), areas (mm²) and angles
  (degrees): 1 decimal, :func:`length_mm`, :func:`point_lps`, :func:`area_mm2`,
  :func:`angle_deg`.
- Mean and SD of image values (HU ...): 1 decimal, :func:`mean_value`.
- One pixel's value (probe, ROI min/max, the mouse readout): as stored, whole numbers without
  decimals, others 6 significant digits, :func:`image_value`.
- Probabilities: 3 decimals, :func:`probability` (so that 0.497 is not shown as the 0.50 of
  a threshold it is below); decision thresholds: 2 decimals, :func:`threshold`.
- Window width and level: up to 2 decimals without trailing zeros, :func:`window`.
- Run times: 2 decimals and ``s``, :func:`seconds`. Counts (voxels, components, images):
  whole numbers, ``str(n)``.
- A missing value (None, NaN, infinite) is written :data:`MISSING` (an em dash).
- A value that rounds to zero is written without a minus sign (``"0.0"``, not ``"-0.0"``).
- Units are not part of the number (except :func:`mean_value`, :func:`image_value` and
  :func:`seconds`); callers
  write them (``"123.5 mL"``).
- Names are radiology style, ``FAMILY, Given``: see :func:`person_name`.
- Dates are ISO ``YYYY-MM-DD``; times are UTC to the minute, ``YYYY-MM-DD HH:MM UTC``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

#: Written for a value that is not known (None, NaN) or does not apply.
MISSING = "—"

_SEXES = {"M": "Male", "F": "Female", "O": "Other"}


def _finite(value: float | None) -> float | None:
    """`value` as a float, or None when it is missing (None, NaN or infinite)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _given_case(part: str) -> str:
    """``ALICE`` -> ``Alice``; mixed case (``McKay``, ``Zoë``) is kept as written."""
    return part.title() if part.isupper() else part


def person_name(pn: str) -> str:
    """A DICOM person name (PN) as ``FAMILY, Given Middle`` for a report.

    The family name is kept as written (radiology lists are usually upper case); given and
    middle names written all in capitals are title-cased, any other spelling is kept. A name
    prefix goes before the given name, a suffix after a comma, both as written (a suffix such
    as ``III`` must not become ``Iii``). Of a multi-group name
    (``alphabetic=ideographic=phonetic``) the first non-empty group is used.

    Parameters
    ----------
    pn : str
        E.g. ``"TESTPERSON^ALICE"``, ``"Müller^Zoë"``, ``"DOE^JOHN^A^DR^III"``.

    Returns
    -------
    str
        E.g. ``"TESTPERSON, Alice"``, ``"Müller, Zoë"``, ``"DOE, DR John A, III"``; empty
        when `pn` is empty.

    Examples
    --------
    >>> person_name("TESTPERSON^ALICE")
    'TESTPERSON, Alice'
    >>> person_name("SOLO")
    'SOLO'
    """
    group = next((g for g in pn.split("=") if g.strip("^ ")), "")
    parts = [p.strip() for p in group.split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    first = " ".join(p for p in (prefix, _given_case(given), _given_case(middle)) if p)
    text = ", ".join(p for p in (family, first) if p)
    return f"{text}, {suffix}" if suffix and text else text or suffix


def dicom_date(d: str) -> str:
    """A DICOM date ``YYYYMMDD`` as ``YYYY-MM-DD``; anything else is returned unchanged.

    Examples
    --------
    >>> dicom_date("20260102")
    '2026-01-02'
    >>> dicom_date("")
    ''
    """
    text = d.strip()
    if len(text) != 8 or not text.isdigit():
        return d
    try:
        return datetime.strptime(text, "%Y%m%d").date().isoformat()
    except ValueError:
        return d


def iso_time(s: str) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM UTC`` (converted to UTC).

    A time without a zone is taken as UTC (medviewer writes UTC everywhere). A string that is
    not ISO 8601 is returned unchanged, so nothing is ever lost.

    Examples
    --------
    >>> iso_time("2026-11-21T11:05:30+01:00")
    '2026-11-21 10:05 UTC'
    """
    try:
        when = datetime.fromisoformat(s.strip())
    except ValueError:
        return s
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _fixed(x: float, decimals: int) -> str:
    """`x` with `decimals` decimals, never ``"-0.0"`` for a value that rounds to zero."""
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def volume_ml(v: float | None) -> str:
    """A volume in mL, with about three significant digits (no unit).

    Whole mL from 1000 mL (an organ), 1 decimal from 10 mL, 2 decimals from 1 mL, 3 decimals
    below 1 mL (a single CT voxel is about 0.001 mL); a positive volume that would round to
    zero is ``"<0.001"``, zero is ``"0"``.

    Examples
    --------
    >>> [volume_ml(v) for v in (2451.37, 123.456, 1.0368, 0.39456, 0.00144, 0.0001, 0.0)]
    ['2451', '123.5', '1.04', '0.395', '0.001', '<0.001', '0']
    """
    x = _finite(v)
    if x is None:
        return MISSING
    size = abs(x)
    if size == 0.0:
        return "0"
    if 0.0 < x < 0.0005:
        return "<0.001"
    decimals = 0 if size >= 999.95 else 1 if size >= 9.995 else 2 if size >= 0.9995 else 3
    return _fixed(x, decimals)


def length_mm(v: float | None) -> str:
    """A length, diameter or position in mm with 1 decimal (no unit): ``"17.3"``."""
    x = _finite(v)
    return MISSING if x is None else _fixed(x, 1)


def area_mm2(v: float | None) -> str:
    """An area in mm² with 1 decimal (no unit): ``"314.2"``."""
    x = _finite(v)
    return MISSING if x is None else _fixed(x, 1)


def angle_deg(v: float | None) -> str:
    """An angle in degrees with 1 decimal (no unit): ``"90.0"``."""
    x = _finite(v)
    return MISSING if x is None else _fixed(x, 1)


def probability(p: float | None) -> str:
    """A probability with 3 decimals: ``"0.875"``."""
    x = _finite(p)
    return MISSING if x is None else _fixed(x, 3)


def threshold(t: float | None) -> str:
    """A decision threshold with 2 decimals: ``"0.50"``."""
    x = _finite(t)
    return MISSING if x is None else _fixed(x, 2)


def seconds(s: float | None) -> str:
    """A run time: ``"1.25 s"`` (2 decimals)."""
    x = _finite(s)
    return MISSING if x is None else f"{_fixed(x, 2)} s"


def mean_value(v: float | None, units: str = "") -> str:
    """A mean (or SD) of image values with 1 decimal and its units: ``"1174.9 HU"``.

    ``"—"`` when None; without `units` just the number.
    """
    x = _finite(v)
    return MISSING if x is None else f"{_fixed(x, 1)} {units}".strip()


def image_value(v: float | None, units: str = "") -> str:
    """One pixel's value as stored, with its units: ``"40 HU"``, ``"3.14159"``.

    Whole numbers are written without decimals (CT, MR and most stored values), others with
    up to 6 significant digits, never in exponent notation for whole numbers.

    Examples
    --------
    >>> [image_value(v) for v in (40.0, -1024.0, 3.14159265, 1e6)]
    ['40', '-1024', '3.14159', '1000000']
    """
    x = _finite(v)
    if x is None:
        return MISSING
    text = str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.6g}"
    return f"{text} {units}".strip()


def number(v: float | None) -> str:
    """A number to 2 decimals without trailing zeros: ``400.0`` -> ``"400"``, ``-41.5``."""
    x = _finite(v)
    if x is None:
        return MISSING
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def window(center: float, width: float) -> str:
    """A display window as the viewer shows it: ``"W 400 L 40"``."""
    return f"W {number(width)} L {number(center)}"


def point_lps(p: Sequence[float] | None) -> str:
    """An LPS point in mm, 1 decimal each: ``"(-83.8, -104.0, 62.0)"``."""
    if p is None:
        return MISSING
    return "(" + ", ".join(length_mm(v) for v in p) + ")"


def sha_prefix(sha: str) -> str:
    """The first 12 hex digits of a SHA-256, lower case (enough to tell weights apart)."""
    return sha.strip().lower()[:12]


def sex(s: str) -> str:
    """DICOM Patient's Sex in words: ``"F"`` -> ``"Female"``, ``"M"``, ``"O"`` likewise.

    Empty stays empty; any other value is kept as written.
    """
    return _SEXES.get(s.strip().upper(), s.strip())


def series(number_: int | None, description: str, modality: str = "") -> str:
    """A series as one line: ``"1 chest ct (CT)"`` (the parts that are known)."""
    text = " ".join(p for p in ("" if number_ is None else str(number_), description) if p)
    if modality:
        return f"{text} ({modality})" if text else modality
    return text


def byte_size(nbytes: float) -> str:
    """A size of data or memory in words: ``4.3 TB``, ``24 GB``, ``512 bytes`` (units of 1024).

    One decimal below 10 of a unit, none above; whole bytes below 1 KB.
    """
    unit = "bytes"
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1024 or unit == "PB":
            break
        nbytes /= 1024
    if unit == "bytes":
        return f"{int(nbytes)} bytes"
    return f"{nbytes:.1f} {unit}" if nbytes < 10 else f"{nbytes:.0f} {unit}"
