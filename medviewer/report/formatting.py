"""How reports and exports write names, dates, times and numbers (one way, everywhere).

The PDF report, the CSV/JSON exports and the tests all format through these functions, so a
volume reads the same in every file and a test can compare a writer's output with
``volume_ml(stats.volume_ml)`` directly. Plain Python, no third-party imports.

Conventions
-----------
- A missing value (None, NaN, infinite) is written :data:`MISSING` (an em dash).
- Names are radiology style, ``FAMILY, Given``: see :func:`person_name`.
- Dates are ISO ``YYYY-MM-DD``; times are UTC to the minute, ``YYYY-MM-DD HH:MM UTC``.
- Volumes keep about three significant digits: see :func:`volume_ml`.
- Lengths and mean values have 1 decimal, probabilities 3, thresholds 2.
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


def volume_ml(v: float | None) -> str:
    """A volume in mL, with about three significant digits (no unit).

    1 decimal from 10 mL, 2 decimals from 1 mL, 3 decimals below 1 mL (a single CT voxel is
    about 0.001 mL); a positive volume that would round to zero is ``"<0.001"``, zero is
    ``"0"``.

    Examples
    --------
    >>> [volume_ml(v) for v in (123.456, 1.0368, 0.39456, 0.00144, 0.0001, 0.0)]
    ['123.5', '1.04', '0.395', '0.001', '<0.001', '0']
    """
    x = _finite(v)
    if x is None:
        return MISSING
    size = abs(x)
    if size == 0.0:
        return "0"
    if 0.0 < x < 0.0005:
        return "<0.001"
    decimals = 1 if size >= 9.995 else 2 if size >= 0.9995 else 3
    return f"{x:.{decimals}f}"


def length_mm(v: float | None) -> str:
    """A length in mm with 1 decimal (no unit): ``"17.3"``."""
    x = _finite(v)
    return MISSING if x is None else f"{x:.1f}"


def probability(p: float | None) -> str:
    """A probability with 3 decimals: ``"0.875"``."""
    x = _finite(p)
    return MISSING if x is None else f"{x:.3f}"


def threshold(t: float | None) -> str:
    """A decision threshold with 2 decimals: ``"0.50"``."""
    x = _finite(t)
    return MISSING if x is None else f"{x:.2f}"


def seconds(s: float | None) -> str:
    """A run time: ``"1.25 s"`` (2 decimals)."""
    x = _finite(s)
    return MISSING if x is None else f"{x:.2f} s"


def mean_value(v: float | None, units: str = "") -> str:
    """A mean image value with 1 decimal and its units: ``"1174.9 HU"``, ``"—"`` when None."""
    x = _finite(v)
    return MISSING if x is None else f"{x:.1f} {units}".strip()


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
