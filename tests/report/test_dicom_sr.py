"""The TID 1500 measurement report: dciodvfy-valid, numbers equal to the findings, SEG refs."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import Code, codes

from medviewer.core.findings import AIResult
from medviewer.core.measurements import Measurement
from medviewer.report.content import MeasurementLine, ReportContent, ReportHeader
from medviewer.report.dicom_sr import LOCAL_SCHEME, measurement_report
from medviewer.report.sources import SourceImages, read_source_images
from tests.dciodvfy import dciodvfy_report
from tests.report.conftest import make_cls_result
from tests.sr_reading import sr_numbers

SEG_TYPES = {
    "left lung": (codes.SCT.AnatomicalStructure, Code("44029006", "SCT", "Left lung")),
    "right lung": (codes.SCT.AnatomicalStructure, Code("3341006", "SCT", "Right lung")),
    "nodule": (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Nodule),
}


def make_seg(result: AIResult, sources: SourceImages) -> pydicom.Dataset:
    """A binary SEG of `result` made by highdicom directly (segment k = k-th sorted label)."""
    labels = sorted(result.segments)
    lookup = np.zeros(max(labels) + 1, np.uint8)
    lookup[labels] = np.arange(1, len(labels) + 1)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=result.prediction.model.name, version=result.prediction.model.version,
        family=codes.cid7162.ArtificialIntelligence,
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=result.segments[label].name,
            segmented_property_category=SEG_TYPES[result.segments[label].name][0],
            segmented_property_type=SEG_TYPES[result.segments[label].name][1],
            algorithm_type="AUTOMATIC", algorithm_identification=algorithm,
        )
        for number, label in enumerate(labels, start=1)
    ]
    return hd.seg.Segmentation(
        source_images=[sources.slice_dataset(i)[0] for i in range(len(sources.slices))],
        pixel_array=lookup[result.label_map], segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="1", device_serial_number="1",
    )


def written(ds: pydicom.Dataset, path: Path) -> pydicom.Dataset:
    """Save `ds`, check dciodvfy reports no error, and read it back."""
    ds.save_as(path, enforce_file_format=True)
    report = dciodvfy_report(path)
    assert report.iod == "Comprehensive3DSR", report.output
    assert report.errors == (), report.output
    return pydicom.dcmread(path)


def numbers_by_key(sr: pydicom.Dataset) -> dict[tuple[str, str], tuple[float, str]]:
    found = sr_numbers(sr)
    keyed = {(n["tracking"], n["name"]): (n["value"], n["unit"]) for n in found}
    assert len(keyed) == len(found), "two numbers share a tracking id and name"
    return keyed


def expected_numbers(content: ReportContent) -> dict[tuple[str, str], tuple[float, str]]:
    """What the report holds, straight from the findings (the test's own truth)."""
    seg, cls = content.results
    expected = {}
    for stats in seg.statistics.values():
        if stats.voxels == 0:
            continue
        rows = [(stats.name, stats)]
        if stats.component_count > 1:
            rows += [(f"{stats.name} component {c.index}", c) for c in stats.components]
        for tracking, row in rows:
            expected[tracking, "Volume"] = (row.volume_ml, "ml")
            expected[tracking, "Maximum Diameter"] = (row.longest_diameter_mm, "mm")
            expected[tracking, "Mean Attenuation Coefficient"] = (row.mean_value, "[hnsf'U]")
    for name, p in cls.prediction.classes.items():
        expected["Test nodule classifier", f"Probability of {name}"] = (p, "1")
    expected["distance 1", "Length"] = (12.5, "mm")
    expected["angle 2 (carina)", "Angle"] = (90.0, "deg")
    return expected


def content_items(items, value_type: str, code_value: str) -> list[pydicom.Dataset]:
    """Every content item of a type and concept code, anywhere below `items`."""
    found = []
    for item in items:
        name = item.ConceptNameCodeSequence[0].get("CodeValue")
        if item.ValueType == value_type and name == code_value:
            found.append(item)
        found += content_items(item.get("ContentSequence", []), value_type, code_value)
    return found


@pytest.fixture
def sources(ct_volume) -> SourceImages:
    return read_source_images(ct_volume.metadata)


def test_sr_with_seg_validates_and_holds_the_findings(report_content, sources, tmp_path):
    seg_result = report_content.results[0]
    seg = make_seg(seg_result, sources)
    before = copy.deepcopy(sources.first)
    sr = written(measurement_report(report_content, sources, {seg_result.key: seg}),
                 tmp_path / "sr.dcm")

    assert numbers_by_key(sr) == expected_numbers(report_content)
    assert ("right lung", "Volume") not in numbers_by_key(sr)  # empty segment: not reported
    assert sr.PatientID == sources.first.PatientID == "PID-4711"
    assert sr.StudyInstanceUID == sources.first.StudyInstanceUID
    assert sr.SeriesDescription == "AI measurement report"
    assert sr.Manufacturer == "medviewer developers"
    assert sr.SeriesNumber == 902
    assert sources.first == before  # the source header is not touched


def test_sr_references_the_seg_segments(report_content, sources, tmp_path):
    seg_result = report_content.results[0]
    seg = make_seg(seg_result, sources)
    sr = written(measurement_report(report_content, sources, {seg_result.key: seg}),
                 tmp_path / "sr.dcm")

    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    refs = content_items(sr.ContentSequence, "IMAGE", "121191")
    assert len(refs) == 2  # left lung and nodule (right lung is empty)
    for ref in refs:
        sop = ref.ReferencedSOPSequence[0]
        assert sop.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert sop.ReferencedSOPClassUID == seg.SOPClassUID
    numbers = sorted(int(r.ReferencedSOPSequence[0].ReferencedSegmentNumber) for r in refs)
    assert [segments[n].SegmentLabel for n in numbers] == ["left lung", "nodule"]

    document = hd.sr.Comprehensive3DSR.from_dataset(sr)
    groups = document.content.get_volumetric_roi_measurement_groups(
        referenced_sop_instance_uid=seg.SOPInstanceUID
    )
    assert sorted(g.tracking_identifier for g in groups) == ["left lung", "nodule"]
    nodule = next(g for g in groups if g.tracking_identifier == "nodule")
    assert nodule.finding_type == codes.SCT.Nodule
    assert nodule.referenced_segment.referenced_segment_numbers == [3]

    evidence = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert evidence == {seg.SOPInstanceUID, *(d.SOPInstanceUID for d in sources.datasets)}


def test_sr_components_are_points_at_their_centroids(report_content, sources, tmp_path):
    sr = written(measurement_report(report_content, sources), tmp_path / "sr.dcm")
    nodule = report_content.results[0].statistics[3]
    points = content_items(sr.ContentSequence, "SCOORD3D", "121231")
    assert len(points) == len(nodule.components) == 2
    for point, component in zip(points, nodule.components, strict=True):
        assert point.GraphicType == "POINT"
        assert point.ReferencedFrameOfReferenceUID == sources.first.FrameOfReferenceUID
        np.testing.assert_allclose(point.GraphicData, component.centroid_lps, atol=1e-4)


def test_sr_without_seg_still_validates_with_the_same_numbers(report_content, sources, tmp_path):
    sr = written(measurement_report(report_content, sources, {}), tmp_path / "sr.dcm")

    assert numbers_by_key(sr) == expected_numbers(report_content)
    assert content_items(sr.ContentSequence, "IMAGE", "121191") == []
    # without a SEG the findings are coded as the SEG would code them (one lookup)
    finding_types = {item.ConceptCodeSequence[0].CodeValue
                     for item in content_items(sr.ContentSequence, "CODE", "121071")}
    assert {"44029006", codes.SCT.Nodule.value} <= finding_types
    assert "CurrentRequestedProcedureEvidenceSequence" in sr  # the source images


def test_sr_classification_decision_and_local_codes(report_content, sources, tmp_path):
    sr = written(measurement_report(report_content, sources), tmp_path / "sr.dcm")
    evaluations = {
        item.ConceptNameCodeSequence[0].CodeMeaning: item.ConceptCodeSequence[0].CodeMeaning
        for item in content_items(sr.ContentSequence, "CODE", codes.SCT.Nodule.value)
        + content_items(sr.ContentSequence, "CODE", codes.SCT.Normal.value)
    }
    assert evaluations == {"Nodule": "Present", "Normal": "Absent"}
    schemes = [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence]
    assert LOCAL_SCHEME in schemes
    algorithms = {i.TextValue for i in content_items(sr.ContentSequence, "TEXT", "111001")}
    assert algorithms == {"Test lungs and nodules", "Test nodule classifier"}
    assert report_content.impression
    assert report_content.impression.encode() not in Path(tmp_path / "sr.dcm").read_bytes()


def test_sr_user_regions(report_content, sources, tmp_path):
    axial = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 60], [0, 0, 0, 1]])
    corners = ((0.0, 0.0, 60.0), (10.0, 5.0, 60.0))
    lines = (
        MeasurementLine.of(Measurement("ellipse", corners, "axial", "uid"), "HU", axial),
        MeasurementLine.of(Measurement("rectangle", corners, "axial", "uid"), "HU", axial),
        MeasurementLine("Probe -3 HU", "probe", -3.0, "[hnsf'U]", ((1.0, 2.0, 60.0),), "axial"),
    )
    content = replace(report_content, results=(), measurements=lines)
    sr = written(measurement_report(content, sources), tmp_path / "sr.dcm")

    regions = content_items(sr.ContentSequence, "SCOORD3D", "111030")
    shapes = [(r.GraphicType, np.reshape(r.GraphicData, (-1, 3))) for r in regions]
    assert [s[0] for s in shapes] == ["ELLIPSE", "POLYGON", "POINT"]
    np.testing.assert_allclose(
        shapes[0][1], [[0, 2.5, 60], [10, 2.5, 60], [5, 0, 60], [5, 5, 60]], atol=1e-5
    )
    np.testing.assert_allclose(
        shapes[1][1], [[0, 0, 60], [10, 0, 60], [10, 5, 60], [0, 5, 60], [0, 0, 60]], atol=1e-5
    )
    assert numbers_by_key(sr) == {
        ("ellipse 1", "Area"): (pytest.approx(np.pi * 10 * 5 / 4), "mm2"),
        ("rectangle 2", "Area"): (50.0, "mm2"),
        ("probe 3", "Attenuation Coefficient"): (-3.0, "[hnsf'U]"),
    }


def test_dx_classification_only_sr_validates(dx_volume, tmp_path):
    sources = read_source_images(dx_volume.metadata)
    result = make_cls_result(dx_volume)
    content = ReportContent(header=ReportHeader.of(dx_volume.metadata), results=(result,))
    sr = written(measurement_report(content, sources), tmp_path / "sr.dcm")

    assert numbers_by_key(sr) == {
        ("Test nodule classifier", "Probability of normal"): (0.125, "1"),
        ("Test nodule classifier", "Probability of nodule"): (0.875, "1"),
    }
    procedure = content_items(sr.ContentSequence, "CODE", "121058")[0]
    assert procedure.ConceptCodeSequence[0].CodeValue == "43468-8"  # XR, unspecified region


def test_seg_that_does_not_match_the_result_is_refused(report_content, sources):
    seg_result = report_content.results[0]
    seg = make_seg(seg_result, sources)
    seg.SegmentSequence[2].SegmentLabel = "liver"
    with pytest.raises(ValueError, match="segment 3 is 'liver'"):
        measurement_report(report_content, sources, {seg_result.key: seg})


def test_nothing_to_report_is_an_error(report_content, sources):
    with pytest.raises(ValueError, match="nothing to report"):
        measurement_report(replace(report_content, results=(), measurements=()), sources)


def test_sr_numbers_are_the_measured_values_not_the_display_text(report_content, sources):
    seg, cls = report_content.results
    nodule = replace(seg.statistics[3], volume_ml=123.456, components=())
    edited = AIResult.of(replace(seg.prediction, statistics={**seg.statistics, 3: nodule}))
    sr = measurement_report(replace(report_content, results=(edited, cls)), sources)
    volumes = [item.MeasuredValueSequence[0]
               for item in content_items(sr.ContentSequence, "NUM", codes.SCT.Volume.value)]
    nodule_volume = next(v for v in volumes if v.FloatingPointValue == 123.456)
    assert str(nodule_volume.NumericValue) == "123.456"  # not the "123.5" the PDF shows
    for value in volumes:  # the exact doubles of the statistics
        assert value.FloatingPointValue in {s.volume_ml for s in edited.statistics.values()}
