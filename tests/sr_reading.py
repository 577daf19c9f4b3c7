"""Reading an SR document's numbers back, to check what medviewer wrote (test-only code).

Walks the content tree with pydicom only, independently of the highdicom objects that wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pydicom

_MEASUREMENT_GROUP = ("125007", "DCM")
_TRACKING_IDENTIFIER = ("112039", "DCM")
_DERIVATION = ("121401", "DCM")


def sr_numbers(sr: pydicom.Dataset) -> list[dict[str, Any]]:
    """Every numeric measurement of an SR document, in document order.

    Parameters
    ----------
    sr : pydicom.Dataset
        An SR document (as written, or read back).

    Returns
    -------
    list of dict
        ``{"tracking": str, "name": str, "value": float, "unit": str}`` per NUM content item:
        the Tracking Identifier of its measurement group (empty outside groups), its concept
        name's meaning prefixed by its derivation's when it has one (``"Maximum Diameter"``),
        its value (the Floating Point Value when present) and its UCUM unit code.
    """
    found: list[dict[str, Any]] = []
    _walk(sr.get("ContentSequence", []), "", found)
    return found


def _walk(items: Iterable[pydicom.Dataset], tracking: str, found: list[dict[str, Any]]) -> None:
    for item in items:
        if item.ValueType == "NUM":
            number = _number(item, tracking)
            if number is not None:
                found.append(number)
        elif item.ValueType == "CONTAINER":
            inner = _group_tracking(item) if _concept(item) == _MEASUREMENT_GROUP else tracking
            _walk(item.get("ContentSequence", []), inner, found)


def _concept(item: pydicom.Dataset) -> tuple[str, str]:
    code = item.ConceptNameCodeSequence[0]
    return str(code.get("CodeValue", "")), str(code.CodingSchemeDesignator)


def _group_tracking(group: pydicom.Dataset) -> str:
    for item in group.get("ContentSequence", []):
        if item.ValueType == "TEXT" and _concept(item) == _TRACKING_IDENTIFIER:
            return str(item.TextValue)
    return ""


def _number(item: pydicom.Dataset, tracking: str) -> dict[str, Any] | None:
    values = item.get("MeasuredValueSequence", [])
    if not values:
        return None
    measured = values[0]
    value = measured.get("FloatingPointValue")
    name = str(item.ConceptNameCodeSequence[0].CodeMeaning)
    for child in item.get("ContentSequence", []):
        if child.ValueType == "CODE" and _concept(child) == _DERIVATION:
            name = f"{child.ConceptCodeSequence[0].CodeMeaning} {name}"
    return {
        "tracking": tracking,
        "name": name,
        "value": float(value if value is not None else measured.NumericValue),
        "unit": str(measured.MeasurementUnitsCodeSequence[0].CodeValue),
    }
