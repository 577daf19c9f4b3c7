"""De-identification on export: nothing identifying survives, references between objects resolve.

Everything is synthetic (made-up names and UIDs under the test UID root); no patient data.
"""

from __future__ import annotations

import copy
import re

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from medviewer.report.content import ReportHeader
from medviewer.report.deidentify import (
    DEIDENTIFICATION_METHOD,
    Deidentifier,
    burned_in_text_warning,
    profile_table,
    resolve_action,
)
from medviewer.synthetic.dicom_writer import SeriesSpec, uid, write_series
from tests.dciodvfy import dciodvfy_report

SEED = 7
NAME, PID, BIRTH = "TESTPERSON^ALICE", "PID-4711", "19650313"
ACCESSION, INSTITUTION = "ACC-13579", "Synthetic General Hospital"
REFERRING, OTHER_ID, PRIVATE = "REFDOC^BOB", "OTHER-0815", "PRIVATE-SECRET"
STUDY_DATE, SERIAL = "20250314", "SN-998877"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
SCHEME_UID = "2.16.840.1.113883.6.96"  # SNOMED CT's OID: names a code resource, not an instance
TALAIRACH = "1.2.840.10008.1.4.1.1"  # a registered, well-known frame of reference
PDF_BYTES = b"%PDF-1.4 synthetic report\n"
IDENTIFYING = (NAME, "TESTPERSON", PID, BIRTH, ACCESSION, INSTITUTION, REFERRING, OTHER_ID,
               PRIVATE, STUDY_DATE, SERIAL)


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _identifying(ds: Dataset) -> Dataset:
    """`ds` with more identifying attributes and a private tag (in memory only)."""
    ds.PatientBirthDate = BIRTH
    ds.AccessionNumber = ACCESSION
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = REFERRING
    ds.OtherPatientIDs = OTHER_ID
    ds.StudyDate = ds.ContentDate = STUDY_DATE
    ds.DeviceSerialNumber = SERIAL
    ds.StudyDescription = "TESTPERSON follow-up"
    ds.private_block(0x0009, "MEDVIEWER TEST", create=True).add_new(0x01, "LO", PRIVATE)
    return ds


@pytest.fixture
def cts(tmp_path) -> list[Dataset]:
    """Three CT slices as read from disk, with identifying attributes added."""
    spec = SeriesSpec(shape=(3, 8, 6), patient_name=NAME, patient_id=PID, shuffle=False,
                      seed=SEED)
    written = write_series(tmp_path / "ct", spec)
    return [_identifying(pydicom.dcmread(path)) for path in written.paths]


def _sr_content(cts: list[Dataset]) -> list[Dataset]:
    """An SR-like content tree: UIDREF, NUM, IMAGE, PNAME, TEXT and DATETIME items."""
    mm = _item(CodeValue="mm", CodingSchemeDesignator="UCUM", CodeMeaning="mm")
    concept = _item(CodeValue="112002", CodingSchemeDesignator="DCM", CodeMeaning="Series")
    image = _item(ReferencedSOPClassUID=CT_CLASS, ReferencedSOPInstanceUID=cts[0].SOPInstanceUID)
    items = [
        _item(ValueType="UIDREF", ConceptNameCodeSequence=[concept],
              UID=cts[0].SeriesInstanceUID),
        _item(ValueType="NUM", MeasuredValueSequence=[
            _item(NumericValue="27.4", MeasurementUnitsCodeSequence=[mm])]),
        _item(ValueType="IMAGE", ReferencedSOPSequence=[image]),
        _item(ValueType="PNAME", PersonName=REFERRING),
        _item(ValueType="TEXT", TextValue="solitary nodule"),
        _item(ValueType="DATETIME", DateTime=STUDY_DATE + "101500"),
    ]
    return [_item(ValueType="CONTAINER", ContentSequence=items)]


def _referencing(cts: list[Dataset]) -> Dataset:
    """A derived object pointing at the CT every way the exported objects do."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SR_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = uid(SEED, 9, 1)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PID, BIRTH
    ds.StudyInstanceUID, ds.SeriesInstanceUID = cts[0].StudyInstanceUID, uid(SEED, 9)
    ds.FrameOfReferenceUID = cts[0].FrameOfReferenceUID
    ds.Modality, ds.ContentDate, ds.ContentTime = "SR", STUDY_DATE, "101500"
    instances = [_item(ReferencedSOPClassUID=CT_CLASS, ReferencedSOPInstanceUID=c.SOPInstanceUID)
                 for c in cts]
    ds.ReferencedSeriesSequence = [
        _item(SeriesInstanceUID=cts[0].SeriesInstanceUID, ReferencedInstanceSequence=instances)
    ]
    ds.SourceImageSequence = [copy.deepcopy(instances[1])]
    ds.StructureSetROISequence = [
        _item(ROINumber=1, ReferencedFrameOfReferenceUID=cts[0].FrameOfReferenceUID),
        _item(ROINumber=2, ReferencedFrameOfReferenceUID=TALAIRACH),
    ]
    ds.SegmentSequence = [_item(SegmentNumber=1, SegmentLabel="nodule")]
    ds.ConceptNameCodeSequence = [_item(CodeValue="27925004", CodingSchemeDesignator="SCT",
                                        CodeMeaning="Nodule", CodingSchemeUID=SCHEME_UID)]
    ds.ContentSequence = _sr_content(cts)
    ds.EncapsulatedDocument = PDF_BYTES
    ds.private_block(0x0011, "MEDVIEWER TEST", create=True).add_new(0x02, "LO", PRIVATE)
    return ds


def _original_uids(cts: list[Dataset], ref: Dataset) -> set[str]:
    uids = {ref.SOPInstanceUID, ref.SeriesInstanceUID}
    for ct in cts:
        uids |= {ct.SOPInstanceUID, ct.SeriesInstanceUID, ct.StudyInstanceUID,
                 ct.FrameOfReferenceUID}
    return uids


def _sr_items(ds: Dataset) -> dict[str, Dataset]:
    return {item.ValueType: item for item in ds.ContentSequence[0].ContentSequence}


def test_nothing_identifying_in_written_files(cts, tmp_path):
    ref = _referencing(cts)
    deid = Deidentifier()
    paths = {}
    for name, ds in (("ct", cts[0]), ("ref", ref)):
        paths[name] = tmp_path / f"{name}.dcm"
        paths["orig-" + name] = tmp_path / f"orig-{name}.dcm"
        deid.dataset(ds).save_as(paths[name], enforce_file_format=True)
        ds.save_as(paths["orig-" + name], enforce_file_format=True)
    originals = b"".join(paths[k].read_bytes() for k in ("orig-ct", "orig-ref"))
    written = b"".join(paths[k].read_bytes() for k in ("ct", "ref"))
    forbidden = [*IDENTIFYING, *_original_uids(cts, ref)]
    assert all(value.encode() in originals for value in forbidden)  # the check can fail
    assert [value for value in forbidden if value.encode() in written] == []
    assert PDF_BYTES in written


def test_patient_pseudonym_is_the_same_in_every_object(cts):
    deid = Deidentifier()
    out = [deid.dataset(ds) for ds in (*cts, _referencing(cts))]
    assert {str(ds.PatientName) for ds in out} == {"ANONYMOUS"}
    assert {ds.PatientID for ds in out} == {deid.patient_id}
    assert re.fullmatch(r"ANON-[0-9a-f]{8}", deid.patient_id)
    assert all(ds.PatientBirthDate == "" for ds in out)
    named = Deidentifier(patient_name="CASE^0042", patient_id="STUDY-0042").dataset(cts[0])
    assert (str(named.PatientName), named.PatientID) == ("CASE^0042", "STUDY-0042")


def test_references_resolve_across_objects(cts):
    deid = Deidentifier()
    new_cts = [deid.dataset(ct) for ct in cts]
    ref = deid.dataset(_referencing(cts))
    series = ref.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == new_cts[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence] == [
        ct.SOPInstanceUID for ct in new_cts
    ]
    assert ref.SourceImageSequence[0].ReferencedSOPInstanceUID == new_cts[1].SOPInstanceUID
    items = _sr_items(ref)
    assert items["UIDREF"][0x0040A124].value == new_cts[0].SeriesInstanceUID  # UID
    image = items["IMAGE"].ReferencedSOPSequence[0]
    assert image.ReferencedSOPInstanceUID == new_cts[0].SOPInstanceUID
    frames = {ct.FrameOfReferenceUID for ct in new_cts} | {ref.FrameOfReferenceUID}
    frames.add(ref.StructureSetROISequence[0].ReferencedFrameOfReferenceUID)
    assert len(frames) == 1
    assert len({ct.StudyInstanceUID for ct in new_cts} | {ref.StudyInstanceUID}) == 1
    for ds in (*new_cts, ref):
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_well_known_uids_are_kept(cts):
    deid = Deidentifier()
    ct, ref = deid.dataset(cts[0]), deid.dataset(_referencing(cts))
    assert ct.SOPClassUID == ct.file_meta.MediaStorageSOPClassUID == CT_CLASS
    assert ref.SOPClassUID == SR_CLASS
    assert ref.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPClassUID \
        == CT_CLASS
    assert ct.file_meta.TransferSyntaxUID == cts[0].file_meta.TransferSyntaxUID
    assert ct.file_meta.ImplementationClassUID == cts[0].file_meta.ImplementationClassUID
    assert ref.ConceptNameCodeSequence[0].CodingSchemeUID == SCHEME_UID
    assert ref.StructureSetROISequence[1].ReferencedFrameOfReferenceUID == TALAIRACH
    assert deid.uid(CT_CLASS) == CT_CLASS
    assert deid.uid("") == ""


def test_uid_map_is_per_instance_and_stable(cts):
    first, second = Deidentifier(), Deidentifier()
    original = cts[0].SOPInstanceUID
    assert first.uid(original) == first.uid(original) != original
    assert second.uid(original) != first.uid(original)
    assert first.dataset(cts[0]).SOPInstanceUID == first.uid(original)
    assert second.patient_id != first.patient_id
    mapping = first.uid_map()
    assert mapping[original] == first.uid(original)
    mapping[original] = "1.2.3"
    assert first.uid(original) != "1.2.3"
    assert first.uid(first.uid(original)) == first.uid(original)  # its own UIDs map to themselves


def test_input_dataset_and_file_unchanged(cts, tmp_path):
    ref = _referencing(cts)
    path = tmp_path / "in.dcm"
    cts[0].save_as(path, enforce_file_format=True)
    before_bytes = path.read_bytes()
    read = pydicom.dcmread(path)
    before = [copy.deepcopy(ds) for ds in (read, ref)]
    deid = Deidentifier()
    out = [deid.dataset(ds) for ds in (read, ref)]
    assert out[0] is not read and out[0].file_meta is not read.file_meta
    for ds, kept in zip((read, ref), before, strict=True):
        assert ds == kept
        assert ds.file_meta == kept.file_meta
    assert str(read.PatientName) == NAME and ref.PatientID == PID
    assert path.read_bytes() == before_bytes


def test_pixels_geometry_and_content_kept(cts):
    deid = Deidentifier()
    ct = deid.dataset(cts[0])
    keywords = ("PixelData", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                "SliceThickness", "Rows", "Columns", "RescaleSlope", "RescaleIntercept",
                "WindowCenter", "WindowWidth", "PhotometricInterpretation", "Modality",
                "BitsStored", "SOPClassUID")
    for keyword in keywords:
        assert ct[keyword].value == cts[0][keyword].value, keyword
    assert np.array_equal(ct.pixel_array, cts[0].pixel_array)
    ref = deid.dataset(_referencing(cts))
    items = _sr_items(ref)
    assert items["NUM"].MeasuredValueSequence[0].NumericValue == 27.4
    assert items["TEXT"].TextValue == "solitary nodule"
    assert str(items["PNAME"].PersonName) == "ANONYMOUS"
    assert items["DATETIME"].DateTime == "20000101000000"
    assert ref.SegmentSequence[0].SegmentLabel == "nodule"
    assert ref.EncapsulatedDocument == PDF_BYTES


def test_profile_actions_applied(cts):
    ct = Deidentifier().dataset(cts[0])
    assert not any(elem.tag.is_private for elem in ct)
    assert "OtherPatientIDs" not in ct  # X
    assert "StudyDescription" not in ct  # X
    assert ct.ReferringPhysicianName == ""  # Z
    assert ct.AccessionNumber == "" and ct.StudyDate == "" and ct.StudyTime == ""  # Z
    assert ct.PatientSex == ""  # Z
    assert ct.InstitutionName == ""  # X/Z/D on text: Z
    assert ct.DeviceSerialNumber == "ANONYMOUS"  # X/Z/D, Type 1 in SEG: D
    assert ct.ContentDate == "20000101"  # Z/D on a date: D


def test_combined_action_rules():
    assert resolve_action("Z/D", 0x00080023, "DA") == "dummy"  # Content Date
    assert resolve_action("Z/D", 0x00700084, "PN") == "empty"  # Content Creator's Name
    assert resolve_action("X/D", 0x00181030, "LO") == "delete"  # Protocol Name
    assert resolve_action("X/D", 0x00080021, "DA") == "dummy"  # Series Date
    assert resolve_action("X/Z", 0x00081110, "SQ") == "empty"  # Referenced Study Sequence
    assert resolve_action("X/Z/U*", 0x00082112, "SQ") == "recurse"  # Source Image Sequence
    assert resolve_action("D", 0x0040A730, "SQ") == "recurse"  # Content Sequence
    assert resolve_action("D", 0x00420011, "OB") == "keep"  # Encapsulated Document
    table = profile_table()
    assert table.action(0x00100010) == "Z" and table.action(0x00080018) == "U"
    assert table.action(0x60024000) == "X"  # Overlay Comments, a repeating group
    assert table.action(0x00280010) is None  # Rows: not in the profile


def test_overlays_group_lengths_and_site_names_removed(cts):
    ds = cts[0]
    ds.file_meta.SourceApplicationEntityTitle = "TESTPERSON_PACS"
    ds.preamble = b"TESTPERSON".ljust(128, b"\0")
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 6)
    ds.add_new(0x60003000, "OW", bytes(6))
    ds.add_new(0x00080000, "UL", 123)
    out = Deidentifier().dataset(ds)
    assert not any(elem.tag.group == 0x6000 for elem in out)
    assert 0x00080000 not in out
    assert "PixelData" in out
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert out.preamble == bytes(128)


def test_deidentification_markers(cts):
    ct = Deidentifier().dataset(cts[0])
    assert ct.PatientIdentityRemoved == "YES"
    assert ct.DeidentificationMethod == DEIDENTIFICATION_METHOD
    assert len(DEIDENTIFICATION_METHOD) <= 64  # LO
    (code,) = ct.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert code.CodeMeaning == "Basic Application Confidentiality Profile"
    again = Deidentifier().dataset(ct)
    assert len(again.DeidentificationMethodCodeSequence) == 1


def test_no_printing(cts, capsys):
    Deidentifier().dataset(_referencing(cts))
    assert capsys.readouterr().out == ""


def test_ct_gets_no_new_dciodvfy_errors(cts, tmp_path):
    original, deidentified = tmp_path / "orig.dcm", tmp_path / "deid.dcm"
    cts[0].save_as(original, enforce_file_format=True)
    Deidentifier().dataset(cts[0]).save_as(deidentified, enforce_file_format=True)
    before, after = dciodvfy_report(original), dciodvfy_report(deidentified)
    assert "CTImage" in after.output.splitlines()  # the IOD line (warnings may come first)
    assert "CTImage" in before.output.splitlines()
    assert set(after.errors) - set(before.errors) == set()


def _segmentation(cts: list[Dataset]) -> hd.seg.Segmentation:
    mask = np.zeros((len(cts), 8, 6), bool)
    mask[:, 2:5, 1:4] = True
    description = hd.seg.SegmentDescription(
        1, "nodule", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Nodule,
        hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    return hd.seg.Segmentation(
        source_images=cts, pixel_array=mask, segmentation_type="BINARY",
        segment_descriptions=[description], series_instance_uid=uid(SEED, 8),
        series_number=901, sop_instance_uid=uid(SEED, 8, 1), instance_number=1,
        manufacturer="medviewer developers", manufacturer_model_name="medviewer",
        software_versions="0", device_serial_number="0",
    )


def test_segmentation_stays_valid_and_referenced(cts, tmp_path):
    seg = _segmentation(cts)
    deid = Deidentifier()
    new_cts = [deid.dataset(ct) for ct in cts]
    new_seg = deid.dataset(seg)
    original, deidentified = tmp_path / "seg.dcm", tmp_path / "seg-deid.dcm"
    seg.save_as(original, enforce_file_format=True)
    new_seg.save_as(deidentified, enforce_file_format=True)
    before, after = dciodvfy_report(original), dciodvfy_report(deidentified)
    assert "Segmentation" in after.output.splitlines()
    assert set(after.errors) - set(before.errors) == set()
    sources = {ct.SOPInstanceUID for ct in new_cts}
    referenced = new_seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert {item.ReferencedSOPInstanceUID for item in referenced} == sources
    frames = new_seg.PerFrameFunctionalGroupsSequence
    derived = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
               for f in frames}
    assert derived <= sources
    assert new_seg.FrameOfReferenceUID == new_cts[0].FrameOfReferenceUID
    assert new_seg.SegmentSequence[0].SegmentLabel == "nodule"
    assert np.array_equal(new_seg.pixel_array, seg.pixel_array)


def test_header_replaces_identifiers():
    header = ReportHeader(
        patient_name=NAME, patient_id=PID, patient_birth_date=BIRTH, patient_sex="F",
        study_uid=uid(SEED, 1), study_date=STUDY_DATE, study_description="chest",
        accession_number=ACCESSION, series_uid=uid(SEED, 2, 1), series_number=3,
        series_description="chest ct", modality="CT", institution=INSTITUTION, units="HU",
    )
    deid = Deidentifier(patient_id="STUDY-0042")
    new = deid.header(header)
    assert (new.patient_name, new.patient_id) == ("ANONYMOUS", "STUDY-0042")
    assert new.patient_birth_date == new.patient_sex == new.study_date == ""
    assert new.accession_number == new.institution == ""
    assert new.study_description == new.series_description == ""
    assert new.study_uid == deid.uid(header.study_uid) != header.study_uid
    assert new.series_uid == deid.uid(header.series_uid) != header.series_uid
    assert (new.modality, new.units, new.series_number) == ("CT", "HU", 3)
    assert (new.generated, new.app_version) == (header.generated, header.app_version)
    assert header.patient_name == NAME


def test_burned_in_text_warning():
    assert burned_in_text_warning("US")
    assert burned_in_text_warning("OT")
    assert burned_in_text_warning("CT", "1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture
    assert burned_in_text_warning("CT", "1.2.840.10008.5.1.4.1.1.7.4")  # multi-frame SC
    assert burned_in_text_warning("CT", CT_CLASS, "YES")
    assert burned_in_text_warning("CT", CT_CLASS) is None
    assert burned_in_text_warning("CT", CT_CLASS, "NO") is None
    assert burned_in_text_warning("MR", "1.2.840.10008.5.1.4.1.1.77.1.1") is None  # not SC
