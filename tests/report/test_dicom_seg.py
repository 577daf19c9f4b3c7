"""DICOM SEG export of AI label maps, validated by dciodvfy and read back onto the source grid."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from medviewer.core.errors import LoadError
from medviewer.core.findings import DEFAULT_COLORS, AIResult, Prediction, Segment
from medviewer.io.seg import (
    SegOnGrid,
    is_segmentation,
    label_map_from_seg,
    referenced_series_uid,
)
from medviewer.io.series import load_series
from medviewer.report.dicom_common import segment_codes
from medviewer.report.dicom_seg import cielab_of, segmentation_dataset
from medviewer.report.sources import SourceImages, read_source_images
from medviewer.synthetic.dicom_writer import write_series
from tests.dciodvfy import dciodvfy_report
from tests.report.conftest import CT_SPEC, SEG_MODEL, SEGMENTS, make_seg_result, truth_label_map

LEFT_LUNG, NODULE, LUNG = "44029006", "27925004", "39607008"


def write_seg(result: AIResult, volume, path: Path, **kwargs) -> Path:
    """Export `result` on `volume` to `path` and check that dciodvfy finds no error."""
    seg = segmentation_dataset(result, read_source_images(volume.metadata), **kwargs)
    seg.save_as(path, enforce_file_format=True)
    report = dciodvfy_report(path)
    assert report.iod == "Segmentation", report.output
    assert report.errors == (), report.output
    return path


def slice_uids(volume) -> list[str]:
    """SOP Instance UID of the source image of each slice, in slice order."""
    sources = read_source_images(volume.metadata)
    return [sources.sop_uid_of_slice(i) for i in range(len(sources.slices))]


def result_on(volume, labels: np.ndarray, segments: dict[int, Segment]) -> AIResult:
    """A segmentation result with the given label map and card segments."""
    prediction = Prediction(
        model=SEG_MODEL, task="segmentation", device="CPU", seconds=1.0,
        created="2026-11-21T10:00:00+00:00", series_uid=volume.metadata.series_uid,
        affine=volume.affine, shape=labels.shape, label_map=labels, segments=segments,
    )  # fmt: skip
    return AIResult.of(prediction)


def rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])


@pytest.fixture
def seg_path(ct_volume, seg_result, tmp_path) -> Path:
    return write_seg(seg_result, ct_volume, tmp_path / "seg.dcm")


# -- the writer ----------------------------------------------------------------------------


def test_seg_describes_segments_and_model(seg_path):
    seg = hd.seg.segread(seg_path)
    assert seg.SegmentationType == "BINARY"
    assert seg.segment_numbers == [1, 2, 3]
    labels = [seg.get_segment_description(n).segment_label for n in (1, 2, 3)]
    assert labels == ["left lung", "right lung", "nodule"]
    for number in (1, 2, 3):
        description = seg.get_segment_description(number)
        algorithm = description.algorithm_identification[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("Test lungs and nodules",
                                                                         "1.2.0")
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"
        assert "model_id=test-seg" in algorithm.AlgorithmParameters
        assert f"sha256={'ab' * 32}" in algorithm.AlgorithmParameters
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    assert seg.SeriesDescription == "Test lungs and nodules 1.2.0"
    assert seg.ContentLabel == "AI_SEG"
    assert "Test lungs and nodules" in seg.ContentDescription
    assert (seg.Manufacturer, seg.ManufacturerModelName) == ("medviewer developers", "medviewer")


def test_seg_codes_anatomy_and_colours(seg_path):
    seg = hd.seg.segread(seg_path)
    left, right, nodule = (seg.get_segment_description(n) for n in (1, 2, 3))
    assert left.segmented_property_category.value == codes.SCT.AnatomicalStructure.value
    assert left.segmented_property_type.value == LEFT_LUNG
    assert right.segmented_property_type.value == "3341006"
    assert nodule.segmented_property_category.value == "49755003"
    assert nodule.segmented_property_type.value == NODULE
    assert [region.value for region in nodule.anatomic_regions] == [LUNG]
    assert left.anatomic_regions == []
    for number, segment in SEGMENTS.items():
        lab = seg.get_segment_description(number).RecommendedDisplayCIELabValue
        back = hd.color.CIELabColor.from_dicom_value(lab).to_rgb()
        assert np.abs(np.array(back) - rgb(segment.color)).max() <= 2


def test_seg_keeps_patient_and_study_and_is_new(seg_path, ct_volume):
    seg = pydicom.dcmread(seg_path)
    sources = read_source_images(ct_volume.metadata)
    source_uids = {str(ds.SOPInstanceUID) for ds in sources.datasets}
    first = sources.first
    assert seg.StudyInstanceUID == first.StudyInstanceUID
    assert (seg.PatientID, str(seg.PatientName)) == (first.PatientID, str(first.PatientName))
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID
    assert seg.SOPInstanceUID not in source_uids
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    listed = [
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    ]
    per_frame = [
        str(source.ReferencedSOPInstanceUID)
        for frame in seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.DerivationImageSequence
        for source in derivation.SourceImageSequence
    ]
    assert listed and per_frame
    assert set(listed) <= source_uids and set(per_frame) <= source_uids
    assert referenced_series_uid(seg) == ct_volume.metadata.series_uid


def test_seg_omits_empty_frames_and_describes_empty_segment(seg_path, seg_result):
    seg = pydicom.dcmread(seg_path)
    labels = seg_result.label_map
    non_empty = sum(int((labels[i] == v).any()) for i in range(len(labels)) for v in (1, 2, 3))
    assert int(seg.NumberOfFrames) == non_empty < 3 * len(labels)
    numbers = [
        int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for frame in seg.PerFrameFunctionalGroupsSequence
    ]
    assert 2 not in numbers and {1, 3} <= set(numbers)
    assert len(seg.SegmentSequence) == 3


def test_seg_series_options(ct_volume, seg_result, tmp_path):
    uid = hd.UID()
    write_seg(seg_result, ct_volume, tmp_path / "seg.dcm", series_uid=uid, series_number=42,
              instance_number=3, series_description="my lungs")  # fmt: skip
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert (seg.SeriesInstanceUID, seg.SeriesNumber, seg.InstanceNumber) == (uid, 42, 3)
    assert seg.SeriesDescription == "my lungs"


def test_edited_result_is_semiautomatic(ct_volume, seg_result, tmp_path):
    seg_result.mark_edited()
    path = write_seg(seg_result, ct_volume, tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    assert seg.SeriesDescription == "Test lungs and nodules 1.2.0 (edited)"
    for item in seg.SegmentSequence:
        assert item.SegmentAlgorithmType == "SEMIAUTOMATIC"
        assert "edited" in item.SegmentDescription
        assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName
    back = label_map_from_seg(path, slice_uids(ct_volume))
    assert back.edited
    assert np.array_equal(back.labels, seg_result.label_map)


def test_segment_codes_lookup():
    assert segment_codes("Left  Lung")[1].value == LEFT_LUNG
    assert segment_codes("RIGHT_LUNG")[1].value == "3341006"
    assert segment_codes("lungs")[1].value == LUNG
    category, kind, regions = segment_codes("Nodule", lung_model=False)
    assert (category.value, kind.value, regions) == ("49755003", NODULE, None)
    assert [r.value for r in segment_codes("nodule", lung_model=True)[2]] == [LUNG]
    category, kind, regions = segment_codes("liver tumour")  # the last known word wins
    assert (category.value, kind.value) == ("49755003", codes.SCT.Tumor.value)
    category, kind, regions = segment_codes("vessel tree")
    assert (category.value, kind.value, regions) == ("85756007", "85756007", None)


def test_cielab_of_round_trips():
    for color in ("#000000", "#ffffff", "#4aa3df", "#e0a030", "#ff3030", "#00ff00"):
        back = cielab_of(color).to_rgb()
        assert np.abs(np.array(back) - rgb(color)).max() <= 1, color


# -- reading back --------------------------------------------------------------------------


def test_round_trip_on_shuffled_files(seg_path, ct_volume, seg_result):
    uids = slice_uids(ct_volume)
    on_disk = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
               for p in sorted(Path(ct_volume.metadata.source_paths[0]).parent.glob("*.dcm"))]
    assert uids != on_disk and uids != sorted(uids)  # the slice order is not the file order
    back = label_map_from_seg(seg_path, uids)
    assert isinstance(back, SegOnGrid)
    assert back.labels.dtype == np.uint8
    assert np.array_equal(back.labels, seg_result.label_map)
    assert np.array_equal(back.labels, truth_label_map(ct_volume.shape))
    assert (back.model_name, back.model_version, back.edited) == ("Test lungs and nodules",
                                                                  "1.2.0", False)
    assert back.referenced_series_uid == ct_volume.metadata.series_uid
    assert back.series_uid == pydicom.dcmread(seg_path).SeriesInstanceUID


def test_round_trip_follows_the_given_order(seg_path, ct_volume, seg_result):
    uids = slice_uids(ct_volume)
    back = label_map_from_seg(seg_path, uids[::-1])
    assert np.array_equal(back.labels, seg_result.label_map[::-1])
    frames = [frame for _, frame in ct_volume.metadata.source_frames]
    assert np.array_equal(label_map_from_seg(seg_path, uids, frames).labels,
                          seg_result.label_map)  # fmt: skip


def test_names_and_colours_round_trip(seg_path, ct_volume):
    back = label_map_from_seg(seg_path, slice_uids(ct_volume))
    assert sorted(back.segments) == [1, 2, 3]
    for label, segment in SEGMENTS.items():
        name, color = back.segments[label]
        assert name == segment.name
        assert np.abs(rgb(color) - rgb(segment.color)).max() <= 2


def test_empty_segment_round_trips_as_no_voxels(seg_path, ct_volume):
    back = label_map_from_seg(seg_path, slice_uids(ct_volume))
    assert not (back.labels == 2).any()
    assert back.segments[2][0] == "right lung"
    assert (back.labels == 1).sum() > 0 and (back.labels == 3).sum() > 0


def test_unlisted_and_unknown_images(seg_path, ct_volume, seg_result):
    uids = slice_uids(ct_volume)
    wanted = [uids[6], "1.2.3.4.5.6", uids[2]]
    back = label_map_from_seg(seg_path, wanted)
    labels = seg_result.label_map
    assert back.labels.shape == (3, *labels.shape[1:])
    assert np.array_equal(back.labels[0], labels[6]) and labels[6].any()
    assert not back.labels[1].any()
    assert np.array_equal(back.labels[2], labels[2])
    with pytest.raises(LoadError, match="references none"):
        label_map_from_seg(seg_path, ["1.2.3.4.5.6"])


def test_reads_a_dataset_without_changing_it(seg_path, ct_volume, seg_result):
    ds = pydicom.dcmread(seg_path)
    before = copy.deepcopy(ds)
    assert is_segmentation(ds)
    back = label_map_from_seg(ds, slice_uids(ct_volume))
    assert np.array_equal(back.labels, seg_result.label_map)
    assert type(ds) is pydicom.FileDataset
    assert ds == before


def test_non_contiguous_labels_round_trip(ct_volume, tmp_path):
    labels = truth_label_map(ct_volume.shape)
    labels = np.choose(labels, [0, 5, 2, 9]).astype(np.uint8)
    segments = {2: Segment(2, "lung", "#00ff00"), 5: Segment(5, "heart", "#ff0000"),
                9: Segment(9, "nodule", "#0000ff")}  # fmt: skip
    path = write_seg(result_on(ct_volume, labels, segments), ct_volume, tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    assert seg.segment_numbers == [1, 2, 3]
    assert [seg.get_segment_description(n).segment_label for n in (1, 2, 3)] == [
        "lung", "heart", "nodule"]  # fmt: skip
    back = label_map_from_seg(path, slice_uids(ct_volume))
    assert np.array_equal(back.labels, labels)
    assert {k: v[0] for k, v in back.segments.items()} == {2: "lung", 5: "heart", 9: "nodule"}


def test_multiframe_source(tmp_path):
    write_series(tmp_path / "ct", replace(CT_SPEC, multiframe=True))
    volume = load_series(tmp_path / "ct")
    frames = [frame for _, frame in volume.metadata.source_frames]
    assert len({path for path, _ in volume.metadata.source_frames}) == 1
    assert frames != sorted(frames)  # frames are stored out of slice order
    result = make_seg_result(volume)
    path = write_seg(result, volume, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(path)
    source_uid = read_source_images(volume.metadata).first.SOPInstanceUID
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == source_uid
        assert 1 <= int(source.ReferencedFrameNumber) <= len(frames)
    uids = slice_uids(volume)
    back = label_map_from_seg(path, uids, frames)
    assert np.array_equal(back.labels, result.label_map)
    with pytest.raises(ValueError, match="frames"):
        label_map_from_seg(path, uids)


def test_radiograph(dx_volume, tmp_path):
    assert not dx_volume.metadata.positioned and dx_volume.shape[0] == 1
    labels = np.zeros(dx_volume.shape, np.uint8)
    labels[0, 10:30, 5:20] = 1
    labels[0, 40:50, 30:40] = 3
    result = result_on(dx_volume, labels, dict(SEGMENTS))
    path = write_seg(result, dx_volume, tmp_path / "seg.dcm")
    assert "PlanePositionSequence" not in pydicom.dcmread(path).PerFrameFunctionalGroupsSequence[0]
    back = label_map_from_seg(path, slice_uids(dx_volume))
    assert np.array_equal(back.labels, labels)


def test_several_unpositioned_images_are_refused(ct_volume, seg_result):
    sources = read_source_images(ct_volume.metadata)
    bare = []
    for ds in sources.datasets:
        ds = copy.deepcopy(ds)
        del ds.ImagePositionPatient
        bare.append(ds)
    with pytest.raises(ValueError, match="no patient position"):
        segmentation_dataset(seg_result, SourceImages(tuple(bare), sources.slices))


# -- errors --------------------------------------------------------------------------------


def test_no_label_map_is_refused(ct_volume, cls_result):
    with pytest.raises(ValueError, match="no label map"):
        segmentation_dataset(cls_result, read_source_images(ct_volume.metadata))


def test_shape_mismatch_is_refused(ct_volume, seg_result):
    sources = read_source_images(ct_volume.metadata)
    short = result_on(ct_volume, seg_result.label_map[:-1], dict(SEGMENTS))
    with pytest.raises(ValueError, match="shape"):
        segmentation_dataset(short, sources)
    narrow = result_on(ct_volume, seg_result.label_map[:, :, :-1], dict(SEGMENTS))
    with pytest.raises(ValueError, match="shape"):
        segmentation_dataset(narrow, sources)


def test_undescribed_label_is_refused(ct_volume, seg_result):
    labels = seg_result.label_map.copy()
    labels[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"does not describe: \[7\]"):
        segmentation_dataset(result_on(ct_volume, labels, dict(SEGMENTS)),
                             read_source_images(ct_volume.metadata))  # fmt: skip


def test_non_seg_files_are_refused(ct_volume, tmp_path):
    uids = slice_uids(ct_volume)
    image = ct_volume.metadata.source_paths[0]
    assert not is_segmentation(pydicom.dcmread(image, stop_before_pixels=True))
    with pytest.raises(LoadError, match="not a DICOM Segmentation") as caught:
        label_map_from_seg(image, uids)
    assert str(image) in str(caught.value)
    text = tmp_path / "notes.dcm"
    text.write_text("not DICOM at all")
    with pytest.raises(LoadError, match="cannot read"):
        label_map_from_seg(text, uids)
    with pytest.raises(LoadError):
        label_map_from_seg(tmp_path / "missing.dcm", uids)


# -- SEGs not written by medviewer ----------------------------------------------------------


def foreign_seg(volume, pixels: np.ndarray, kind: str, path: Path) -> Path:
    """A MANUAL SEG of stacked segments, without colours or medviewer label descriptions."""
    sources = read_source_images(volume.metadata)
    tissue = codes.SCT.Tissue
    descriptions = [
        hd.seg.SegmentDescription(n, f"region {n}", tissue, tissue, "MANUAL")
        for n in range(1, pixels.shape[-1] + 1)
    ]
    seg = hd.seg.Segmentation(
        source_images=[sources.slice_dataset(i)[0] for i in range(len(sources.slices))],
        pixel_array=pixels, segmentation_type=kind, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=5, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="someone else", manufacturer_model_name="tool",
        software_versions="1", device_serial_number="1",
    )  # fmt: skip
    seg.save_as(path, enforce_file_format=True)
    return path


def test_overlapping_segments_later_wins(ct_volume, tmp_path):
    stacked = np.zeros((*ct_volume.shape, 2), np.uint8)
    stacked[3:6, 5:15, 5:15, 0] = 1
    stacked[4:8, 10:20, 10:20, 1] = 1
    path = foreign_seg(ct_volume, stacked, "BINARY", tmp_path / "seg.dcm")
    assert pydicom.dcmread(path).SegmentsOverlap == "YES"
    back = label_map_from_seg(path, slice_uids(ct_volume))
    expected = np.where(stacked[..., 1] > 0, 2, stacked[..., 0]).astype(np.uint8)
    assert np.array_equal(back.labels, expected)
    assert (back.labels[4:6, 10:15, 10:15] == 2).all()
    assert back.segments == {1: ("region 1", DEFAULT_COLORS[0]), 2: ("region 2", DEFAULT_COLORS[1])}
    assert back.edited and (back.model_name, back.model_version) == ("", "")


def test_fractional_is_thresholded(ct_volume, tmp_path):
    fractional = np.zeros((*ct_volume.shape, 1), np.float32)
    fractional[2:5, 4:12, 4:12, 0] = 0.3
    fractional[3:4, 6:10, 6:10, 0] = 0.7
    path = foreign_seg(ct_volume, fractional, "FRACTIONAL", tmp_path / "seg.dcm")
    back = label_map_from_seg(path, slice_uids(ct_volume))
    assert np.array_equal(back.labels, (fractional[..., 0] >= 0.5).astype(np.uint8))
    assert back.labels.sum() == 16


def test_all_empty_label_map(ct_volume, tmp_path):
    labels = np.zeros(ct_volume.shape, np.uint8)
    path = write_seg(result_on(ct_volume, labels, dict(SEGMENTS)), ct_volume, tmp_path / "s.dcm")
    assert len(pydicom.dcmread(path).SegmentSequence) == 3
    back = label_map_from_seg(path, slice_uids(ct_volume))
    assert back.labels.shape == ct_volume.shape and not back.labels.any()
    assert sorted(back.segments) == [1, 2, 3]


def test_labels_above_255_round_trip_as_uint16(ct_volume, tmp_path):
    labels = truth_label_map(ct_volume.shape).astype(np.uint16)
    labels[labels == 3] = 300
    segments = {1: SEGMENTS[1], 2: SEGMENTS[2], 300: Segment(300, "nodule", "#ff3030")}
    path = write_seg(result_on(ct_volume, labels, segments), ct_volume, tmp_path / "seg.dcm")
    assert hd.seg.segread(path).segment_numbers == [1, 2, 3]
    back = label_map_from_seg(path, slice_uids(ct_volume))
    assert back.labels.dtype == np.uint16
    assert np.array_equal(back.labels, labels)
