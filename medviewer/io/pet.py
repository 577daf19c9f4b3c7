"""The SUV attributes of a PET series, read from its files (see :mod:`medviewer.core.suv`).

The first file's header gives the units, decay correction, radiopharmaceutical, weight and
the vendors' private factors; the earliest Acquisition Date/Time comes from every image's
record (the index reads it). A header that cannot be read gives a factor with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from medviewer.core.suv import SuvFactor, SuvInputs, parse_datetime, suv_factor
from medviewer.io.header import NESTED_TOO_DEEP, InstanceRecord, dcmread_bounded, source_of

PET_MODALITIES = frozenset({"PT"})


def series_suv(records: Sequence[InstanceRecord]) -> SuvFactor | None:
    """The SUVbw factor of a PET series (None for other modalities).

    Parameters
    ----------
    records : sequence of InstanceRecord
        The series' images (the first one's header is read).
    """
    if not records or records[0].modality not in PET_MODALITIES:
        return None
    first = records[0]
    acquisition = _earliest_acquisition(records)
    try:
        inputs = _read_inputs(first.path, first.member, first.mtime_ns, first.file_size)
    except Exception as exc:  # noqa: BLE001 - a damaged header loses SUV, not the image
        reason = NESTED_TOO_DEEP if isinstance(exc, RecursionError) else f"{exc}"
        return SuvFactor(None, reason=f"no SUV: the header could not be read: {reason}")
    if acquisition is not None:
        inputs = _with_acquisition(inputs, *acquisition)
    return suv_factor(inputs)


def _earliest_acquisition(records: Sequence[InstanceRecord]) -> tuple[str, str] | None:
    times = []
    for record in records:
        moment = parse_datetime(record.acquisition_date or record.study_date,
                                record.acquisition_time)  # fmt: skip
        if moment is not None:
            times.append((moment, record.acquisition_date or record.study_date,
                          record.acquisition_time))  # fmt: skip
    if not times:
        return None
    _, date, time = min(times)
    return date, time


def _with_acquisition(inputs: SuvInputs, date: str, time: str) -> SuvInputs:
    from dataclasses import replace

    return replace(inputs, acquisition_date=date, acquisition_time=time)


@functools.lru_cache(maxsize=16)
def _read_inputs(path: str, member: str, _mtime_ns: int, _size: int) -> SuvInputs:
    ds = dcmread_bounded(source_of(path, member), stop_before_pixels=True)
    drug = _first_item(ds, "RadiopharmaceuticalInformationSequence")
    return SuvInputs(
        units=str(ds.get("Units", "") or ""),
        decay_correction=str(ds.get("DecayCorrection", "") or ""),
        series_date=str(ds.get("SeriesDate", "") or ""),
        series_time=str(ds.get("SeriesTime", "") or ""),
        acquisition_date=str(ds.get("AcquisitionDate", "") or ""),
        acquisition_time=str(ds.get("AcquisitionTime", "") or ""),
        injection_datetime=str(_get(drug, "RadiopharmaceuticalStartDateTime") or ""),
        injection_time=str(_get(drug, "RadiopharmaceuticalStartTime") or ""),
        dose_bq=_number(_get(drug, "RadionuclideTotalDose")),
        half_life_s=_number(_get(drug, "RadionuclideHalfLife")),
        weight_kg=_number(ds.get("PatientWeight")),
        philips_suv_factor=_number(_private(ds, 0x7053, "Philips PET Private Group", 0x00)),
        ge_scan_datetime=str(_private(ds, 0x0009, "GEMS_PETD_01", 0x0D) or ""),
    )


def _first_item(ds: Any, keyword: str) -> Any:
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _get(item: Any, keyword: str) -> Any:
    return None if item is None else item.get(keyword)


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value[0] if isinstance(value, (list, tuple)) else value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if number == number else None  # NaN: absent


def _private(ds: Any, group: int, creator: str, offset: int) -> Any:
    """The value of a private element, found through its creator (None when absent)."""
    try:
        block = ds.private_block(group, creator)
        element = block[offset]
    except KeyError:
        return None
    value = element.value
    return value.decode("ascii", "replace").strip("\0 ") if isinstance(value, bytes) else value
