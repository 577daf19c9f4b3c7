"""DICOM Comprehensive 3D SR: a TID 1500 measurement report of the AI results and measurements.

What goes in, per :class:`~medviewer.report.content.ReportContent`:

- every segment with voxels of a segmentation result: a TID 1411 volumetric group referencing
  the segment of the result's DICOM SEG (when one is given) with its volume, longest diameter
  and mean value; then its largest connected components (at most :data:`MAX_COMPONENTS`, only
  when it has several), each located by its centroid (a ``POINT`` volume surface);
- every classification result: a TID 1501 group with one probability per class and a
  qualitative evaluation (present/absent) per class;
- every user measurement with a value: a TID 1410 planar group with its 3D region;
- every AI group carries the model's TID 4019 algorithm identification (name, version, model
  id, weights hash, threshold, time of the user's edit), every AI measurement its name and
  version.

The free-text impression is not written: TID 1500 has no slot for it, and the report's only
observer is the device (medviewer), so the reader's own words would be attributed to it. The
impression goes into the PDF report (and its encapsulated-PDF copy) instead.

Terms without a standard code (class names, "probability of <class>") use the local coding
scheme :data:`LOCAL_SCHEME`, declared in the Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from medviewer.core.findings import AIResult, ComponentStats, ResultKey, SegmentStats
from medviewer.report.content import MeasurementLine, ReportContent
from medviewer.report.dicom_common import (
    CHARSET,
    MANUFACTURER,
    MODEL_NAME,
    equipment,
    is_known,
    is_positioned,
    segment_codes,
)
from medviewer.report.dicom_seg import segment_label
from medviewer.report.sources import SourceImages

__all__ = [
    "LOCAL_SCHEME",
    "MAX_COMPONENTS",
    "SERIES_DESCRIPTION",
    "frame_of_reference_uid",
    "measurement_report",
]

SERIES_DESCRIPTION = "AI measurement report"
#: Private coding scheme of the terms no standard scheme has (DICOM local-scheme convention).
LOCAL_SCHEME = "99MEDVIEWER"
#: Largest connected components listed per segment.
MAX_COMPONENTS = 10

_DEVICE_UID = generate_uid(entropy_srcs=["medviewer", "device observer"])

_UCUM_MEANINGS = {
    "mm": "millimeter",
    "ml": "milliliter",
    "mm2": "square millimeter",
    "deg": "degree",
    "[hnsf'U]": "Hounsfield unit",
    "1": "no units",
}

#: Modality -> CID 100 "Quantitative Diagnostic Imaging Procedures" code.
_PROCEDURES: dict[str, Code] = {
    "CT": codes.cid100.CTUnspecifiedBodyRegion,
    "MR": codes.cid100.MRIUnspecifiedBodyRegion,
    "PT": codes.cid100.PETUnspecifiedBodyRegion,
    "NM": codes.cid100.NMUnspecifiedBodyRegion,
    "CR": codes.cid100.XRUnspecifiedBodyRegion,
    "DX": codes.cid100.XRUnspecifiedBodyRegion,
    "DR": codes.cid100.XRUnspecifiedBodyRegion,
}

_Group = (
    hd.sr.MeasurementsAndQualitativeEvaluations
    | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
    | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
)


def measurement_report(
    content: ReportContent,
    sources: SourceImages,
    segmentations: Mapping[ResultKey, pydicom.Dataset] | None = None,
    *,
    series_uid: str | None = None,
    series_number: int = 902,
    instance_number: int = 1,
) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 measurement report of a report's AI results and user measurements.

    Parameters
    ----------
    content : ReportContent
        What to report (the impression is not written, see the module docstring).
    sources : SourceImages
        Headers of the source series: patient, study, frame of reference and evidence.
    segmentations : mapping, optional
        Result key -> the DICOM SEG written for that segmentation result. Segments of a result
        with a SEG are referenced in it (segment number = the label's position in the sorted
        labels of ``result.segments``, 1-based); results without one are reported unreferenced.
    series_uid : str, optional
        Series Instance UID of the SR (a new one by default).
    series_number, instance_number : int

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        The SR document, patient and study copied from the sources, not yet written.

    Raises
    ------
    ValueError
        When there is nothing to report, or a SEG does not hold the segment it should.
    """
    segs = dict(segmentations or {})
    frame_uid = frame_of_reference_uid(sources.first)
    groups: list[_Group] = []
    evidence: list[pydicom.Dataset] = list(sources.datasets)
    for result in content.results:
        seg = segs.get(result.key) if result.task == "segmentation" else None
        groups.extend(_result_groups(result, seg, sources, frame_uid, content.header.units))
        if seg is not None:
            evidence.append(seg)
    groups.extend(_user_groups(content.measurements, frame_uid))
    if not groups:
        raise ValueError("nothing to report: no AI result numbers and no measurement values")
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(content.results),
        procedure_reported=_PROCEDURES.get(
            str(sources.first.get("Modality", "")), codes.cid100.ImagingProcedure
        ),
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    return _document(report, evidence, content, series_uid, series_number, instance_number)


def _document(
    report: hd.sr.MeasurementReport,
    evidence: Sequence[pydicom.Dataset],
    content: ReportContent,
    series_uid: str | None,
    series_number: int,
    instance_number: int,
) -> hd.sr.Comprehensive3DSR:
    institution = content.header.institution[:64] or None
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=series_uid or hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        **equipment(),
        is_complete=True,
        institution_name=institution,
        series_description=SERIES_DESCRIPTION,
        coding_schemes=[
            CodingSchemeIdentificationItem(
                designator=LOCAL_SCHEME,
                name="medviewer local codes",
                responsible_organization=MANUFACTURER,
            )
        ],
        specific_character_set=CHARSET,
    )


def frame_of_reference_uid(ds: pydicom.Dataset) -> str | None:
    """The Frame of Reference UID of a positioned image, None when it has no patient position.

    Parameters
    ----------
    ds : pydicom.Dataset
        A source image header.

    Returns
    -------
    str or None
    """
    uid = ds.get("FrameOfReferenceUID")
    return str(uid) if uid and is_positioned(ds) else None


# --------------------------------------------------------------------------- codes


def _ucum(unit: str) -> CodedConcept:
    value = unit or "1"
    return CodedConcept(value, "UCUM", _UCUM_MEANINGS.get(value, value)[:64])


def _finding_codes(name: str) -> tuple[Code, Code]:
    """(category, type) of a segment or class name, as the SEG codes it."""
    category, kind, _regions = segment_codes(name)
    return category, kind


def _local(value: str, meaning: str) -> CodedConcept:
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", value) or "_"
    return CodedConcept(clean, LOCAL_SCHEME, meaning[:64])


def _class_concept(name: str) -> CodedConcept | Code:
    if name.strip().lower() == "normal":
        return codes.SCT.Normal
    return _finding_codes(name)[1] if is_known(name) else _local(name, name)


def _mean_concept(units: str) -> tuple[Code, Code | None, str]:
    """(concept name, derivation, UCUM unit) of a mean value in the image's units."""
    if units.upper() == "HU":
        return codes.DCM.AttenuationCoefficient, codes.SCT.Mean, "[hnsf'U]"
    return codes.SCT.Mean, None, "1"


# --------------------------------------------------------------------------- context


def _observation_context(results: Iterable[AIResult]) -> hd.sr.ObservationContext:
    names = list(dict.fromkeys(r.prediction.model.name for r in results if r.prediction.model.name))
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=_DEVICE_UID,
        name=MODEL_NAME,
        manufacturer_name=MANUFACTURER,
        model_name="; ".join(names) or None,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(codes.cid270.Device, device)
    )


def _algorithm(result: AIResult, full: bool = True) -> hd.sr.AlgorithmIdentification:
    """The model as TID 4019; `full` adds its id, weights hash, threshold and edit time."""
    model = result.prediction.model
    if not full:
        return hd.sr.AlgorithmIdentification(name=model.name or model.id, version=model.version)
    parameters = [f"model id: {model.id}", f"weights sha256: {model.sha256}"]
    if result.task == "classification":
        parameters.append(f"threshold: {result.prediction.threshold:g}")
    if result.edited:
        parameters.append(f"label map edited by the user: {result.edited}")
    return hd.sr.AlgorithmIdentification(
        name=model.name or model.id,
        version=model.version,
        parameters=parameters,
        family=codes.cid7162.ArtificialIntelligence,
    )


def _tracking(identifier: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=identifier)


def _measurement(
    name: Code | CodedConcept,
    value: float,
    unit: str,
    algorithm: hd.sr.AlgorithmIdentification | None = None,
    derivation: Code | None = None,
) -> hd.sr.Measurement:
    """A NUM item of `value` unrounded.

    Not the display rule of :mod:`medviewer.core.formatting`: an SR is read by programs
    (PACS, registries, trial databases) that format, average or compare the number
    themselves, so it holds the measured value: highdicom writes Numeric Value (DS, as many
    digits as 16 characters hold) and Floating Point Value (FD, the exact double). Displayed
    through the rule, the value reads as in the viewer and the PDF.
    """
    return hd.sr.Measurement(
        name=name, value=float(value), unit=_ucum(unit), algorithm_id=algorithm,
        derivation=derivation,
    )


# --------------------------------------------------------------------------- AI results


def _result_groups(
    result: AIResult,
    seg: pydicom.Dataset | None,
    sources: SourceImages,
    frame_uid: str | None,
    units: str,
) -> list[_Group]:
    if result.task == "classification":
        return [_classification_group(result)] if result.prediction.classes else []
    if result.task != "segmentation":
        return []
    groups: list[_Group] = []
    for label in sorted(result.statistics):
        stats = result.statistics[label]
        if stats.voxels > 0:
            site = _SegmentSite(result, label, seg, sources, frame_uid, units)
            groups.append(site.segment_group(stats))
            groups.extend(site.component_groups(stats))
    return groups


def _classification_group(result: AIResult) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    prediction = result.prediction
    algorithm = _algorithm(result, full=False)
    measurements = [
        _measurement(_local(f"P-{name}", f"Probability of {name}"), p, "1", algorithm)
        for name, p in prediction.classes.items()
    ]
    evaluations = [
        hd.sr.QualitativeEvaluation(
            _class_concept(name),
            codes.cid240.Present if name in prediction.decision else codes.cid240.Absent,
        )
        for name in prediction.classes
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(prediction.model.name or prediction.model.id),
        algorithm_id=_algorithm(result),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


class _SegmentSite:
    """How the groups of one segment are coded and located (SEG reference, frame of reference)."""

    def __init__(
        self,
        result: AIResult,
        label: int,
        seg: pydicom.Dataset | None,
        sources: SourceImages,
        frame_uid: str | None,
        units: str,
    ) -> None:
        segment = result.segments.get(label)
        named = segment.name if segment else result.statistics[label].name
        self.name = named or f"segment {label}"
        self.algorithm = _algorithm(result)
        self.short_algorithm = _algorithm(result, full=False)
        self.units = units
        self.frame_uid = frame_uid
        self.series_uid = str(sources.first.SeriesInstanceUID)
        self.reference: hd.sr.ReferencedSegment | None = None
        self.category, self.finding = _finding_codes(self.name)
        if seg is not None and segment is not None:
            number = sorted(result.segments).index(label) + 1
            self._refer(seg, number, segment_label(segment))

    def _refer(self, seg: pydicom.Dataset, number: int, label: str) -> None:
        item = _seg_segment(seg, number, label)
        self.reference = hd.sr.ReferencedSegment(
            sop_class_uid=str(seg.SOPClassUID),
            sop_instance_uid=str(seg.SOPInstanceUID),
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(self.series_uid),
        )
        if "SegmentedPropertyTypeCodeSequence" in item:
            self.finding = CodedConcept.from_dataset(item.SegmentedPropertyTypeCodeSequence[0])
        if "SegmentedPropertyCategoryCodeSequence" in item:
            category = item.SegmentedPropertyCategoryCodeSequence[0]
            self.category = CodedConcept.from_dataset(category)

    def _numbers(self, stats: SegmentStats | ComponentStats) -> list[hd.sr.Measurement]:
        found = [
            _measurement(codes.SCT.Volume, stats.volume_ml, "ml", self.short_algorithm),
            _measurement(
                codes.SCT.Diameter, stats.longest_diameter_mm, "mm", self.short_algorithm,
                codes.SCT.Maximum,
            ),
        ]
        if stats.mean_value is not None:
            name, derivation, unit = _mean_concept(self.units)
            found.append(
                _measurement(name, stats.mean_value, unit, self.short_algorithm, derivation)
            )
        return found

    def _common(self, tracking: str, stats: SegmentStats | ComponentStats) -> dict[str, Any]:
        return {
            "tracking_identifier": _tracking(tracking),
            "finding_category": self.category,
            "finding_type": self.finding,
            "algorithm_id": self.algorithm,
            "measurements": self._numbers(stats),
        }

    def segment_group(self, stats: SegmentStats) -> _Group:
        """The group of the whole segment, referencing the SEG segment when there is one."""
        common = self._common(self.name, stats)
        if self.reference is None:
            return hd.sr.MeasurementsAndQualitativeEvaluations(**common)
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=self.reference, **common
        )

    def component_groups(self, stats: SegmentStats) -> Iterator[_Group]:
        """The largest components of a segment that has several, each at its centroid."""
        if stats.component_count < 2:
            return
        for component in stats.components[:MAX_COMPONENTS]:
            common = self._common(f"{self.name} component {component.index}", component)
            if self.frame_uid is None:
                yield hd.sr.MeasurementsAndQualitativeEvaluations(**common)
                continue
            surface = hd.sr.VolumeSurface(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.array([component.centroid_lps], dtype=np.float64),
                frame_of_reference_uid=self.frame_uid,
                source_series=hd.sr.SourceSeriesForSegmentation(self.series_uid),
            )
            yield hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                referenced_volume_surface=surface,
                geometric_purpose=codes.cid219.CenterOfMass,
                **common,
            )


def _seg_segment(seg: pydicom.Dataset, number: int, name: str) -> pydicom.Dataset:
    """The Segment Sequence item `number` of a SEG, checked against the segment's name."""
    for item in seg.get("SegmentSequence", []):
        if int(item.SegmentNumber) == number:
            label = str(item.get("SegmentLabel", name))
            if label != name:
                raise ValueError(f"SEG segment {number} is {label!r}, expected {name!r}")
            return item
    raise ValueError(f"the SEG has no segment {number} ({name!r})")


# --------------------------------------------------------------------------- user measurements


def _user_groups(
    measurements: Sequence[MeasurementLine], frame_uid: str | None
) -> list[_Group]:
    groups: list[_Group] = []
    for index, line in enumerate(measurements, start=1):
        number = _user_number(line)
        if number is None:
            continue
        tracking = f"{line.kind} {index}" + (f" ({line.label})" if line.label else "")
        region = _region(line, frame_uid)
        if region is None:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(tracking), measurements=[number]
            ))
        else:
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(tracking), referenced_region=region,
                measurements=[number],
            ))
    return groups


def _user_number(line: MeasurementLine) -> hd.sr.Measurement | None:
    if line.value is None:
        return None
    if line.kind == "distance":
        return _measurement(codes.SCT.Length, line.value, line.unit or "mm")
    if line.kind == "angle":
        return _measurement(codes.SCT.Angle, line.value, line.unit or "deg")
    if line.kind in ("ellipse", "rectangle"):
        return _measurement(codes.SCT.Area, line.value, line.unit or "mm2")
    if line.kind == "probe":
        name = (
            codes.DCM.AttenuationCoefficient if line.unit == "[hnsf'U]"
            else _local("IMAGE-VALUE", "Image value")
        )
        return _measurement(name, line.value, line.unit)
    return None


def _region(line: MeasurementLine, frame_uid: str | None) -> hd.sr.ImageRegion3D | None:
    """The measurement's region in the frame of reference, None when unpositioned."""
    points = np.asarray(line.points, dtype=np.float64).reshape(-1, 3)
    if frame_uid is None or len(points) == 0:
        return None
    if line.outline:  # an ROI's ellipse or rectangle, computed on its drawing plane
        return hd.sr.ImageRegion3D(line.outline_type, np.asarray(line.outline), frame_uid)
    if line.kind == "probe" or len(points) == 1:
        return hd.sr.ImageRegion3D("POINT", points[:1], frame_uid)
    return hd.sr.ImageRegion3D("POLYLINE", points, frame_uid)
