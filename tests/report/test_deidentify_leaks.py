"""A de-identified export leaks nothing: identifiers planted everywhere never reach an output.

The source series carries distinctive made-up identifiers (``ZZLEAK...``, a unique UID root,
a birth date) in its tags, private tags, nested sequences, comments, file meta, preamble and
folder names, and the impression, measurement labels and key image captions name the patient
in several spellings. Every byte of every file written (plus a PDF's extracted text and a
.nii.gz's inflated bytes) and every output path is searched for each planted value.
Everything is synthetic; no patient data.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from medviewer.ai.registry import ModelRegistry
from medviewer.ai.weights import clear_network_cache
from medviewer.cli import main
from medviewer.core.findings import AIResult, ModelInfo
from medviewer.io.series import load_series
from medviewer.report import export as ex
from medviewer.report.content import MeasurementLine, ReportContent, ReportHeader
from medviewer.report.deidentify import Deidentifier
from medviewer.synthetic.dicom_writer import UID_ROOT, SeriesSpec, uid, write_series
from tests.ai.tiny_models import ThresholdSegmenter, make_card
from tests.dciodvfy import dciodvfy_report
from tests.report.conftest import gradient_key_image, make_cls_result, make_seg_result
from tests.report.test_export import files_under, readable_bytes

SEED = 424242  # the planted UID root: every original UID starts with it
LEAK_ROOT = f"{UID_ROOT}{SEED}."
FAMILY, GIVEN, MIDDLE = "ZZLEAKNAME", "ZZLEAKGIVEN", "ZZLEAKMIDDLE"
PATIENT_NAME = f"{FAMILY}^{GIVEN}^{MIDDLE}"
PATIENT_ID, OTHER_ID, OTHER_ID_2 = "ZZLEAKID123", "ZZLEAKOTHER77", "ZZLEAKOTHER88"
BIRTH = "19650313"
BIRTH_SPELLINGS = ("19650313", "1965-03-13", "13.03.1965", "13/03/1965", "03/13/1965",
                   "13 March 1965", "March 13, 1965", "13 Mar 1965", "1965/03/13")
IMPRESSION = (
    f"{GIVEN} {FAMILY} (ID {PATIENT_ID}, born 13.03.1965) has a nodule. "
    f"zzleakname^zzleakgiven, {FAMILY.title()}, {GIVEN.title()} {MIDDLE[0]}. "
    "Also written 1965-03-13, 03/13/1965, 13 March 1965, March 13, 1965 and 19650313; "
    f"other ids {OTHER_ID.lower()} and {OTHER_ID_2}; reach Mr. {FAMILY.upper()} at home."
)
#: Case-insensitive marker of every planted text value.
MARKER = b"zzleak"
CT_SHAPE = (12, 32, 28)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_network_cache()


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _plant(ds: Dataset) -> None:
    """Identifying values in every kind of place a DICOM file has (in place)."""
    ds.PatientBirthDate = BIRTH
    ds.OtherPatientIDs = OTHER_ID
    ds.OtherPatientIDsSequence = [_item(PatientID=OTHER_ID_2, IssuerOfPatientID="ZZLEAKISS")]
    ds.AccessionNumber = "ZZLEAKACC55"
    ds.InstitutionName = "ZZLEAKHOSPITAL"
    ds.ReferringPhysicianName = "ZZLEAKDOC^BOB"
    ds.StudyDescription = f"{FAMILY} follow-up"
    ds.ImageComments = f"patient {FAMILY}, {GIVEN}; id {PATIENT_ID}; born {BIRTH}"
    ds.PatientComments = f"{GIVEN} {FAMILY}"
    ds.ConvolutionKernel = FAMILY  # kept by the profile: only the scrubbing catches it
    ds.BodyPartExamined = "CHEST"
    ds.RequestAttributesSequence = [_item(RequestedProcedureID=PATIENT_ID,
                                          ScheduledProcedureStepID="ZZLEAKSTEP")]
    ds.AnatomicRegionSequence = [_item(CodeValue="51185008", CodingSchemeDesignator="SCT",
                                       CodeMeaning=f"thorax of {FAMILY}")]
    block = ds.private_block(0x0009, "ZZLEAK CREATOR", create=True)
    block.add_new(0x01, "LO", f"{FAMILY} {PATIENT_ID}")
    nested = _item(CodeValue="CTCHEST", CodingSchemeDesignator="99ZZ", CodeMeaning="chest")
    nested.private_block(0x0011, "ZZLEAK NESTED", create=True).add_new(0x02, "LO", PATIENT_ID)
    ds.ProcedureCodeSequence = [nested]
    ds.file_meta.SourceApplicationEntityTitle = "ZZLEAKAE"
    ds.preamble = b"ZZLEAKNAME".ljust(128, b"\0")


@pytest.fixture
def leaky_series(tmp_path: Path):
    """The synthetic CT with identifiers planted, in folders named after the patient."""
    folder = tmp_path / f"{FAMILY}_{PATIENT_ID}" / f"{GIVEN} {BIRTH}" / "ct"
    spec = SeriesSpec(shape=CT_SHAPE, pixel_spacing=(0.8, 0.9), slice_spacing=2.0,
                      patient_name=PATIENT_NAME, patient_id=PATIENT_ID, seed=SEED,
                      series_description=f"chest ct {FAMILY}")
    written = write_series(folder, spec)
    for path in written.paths:
        ds = pydicom.dcmread(path)
        _plant(ds)
        ds.save_as(path, enforce_file_format=True)
    return folder, written


def _secrets(source_folder: Path) -> list[bytes]:
    originals = set()
    for path in source_folder.iterdir():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        originals |= {ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID,
                      ds.FrameOfReferenceUID}
    assert all(u.startswith(LEAK_ROOT) for u in originals)
    return [LEAK_ROOT.encode(), *(s.encode() for s in BIRTH_SPELLINGS)]


def _assert_nothing_planted(paths: list[Path], root: Path, secrets: list[bytes]) -> None:
    assert paths, "nothing was written"
    found = []
    for path in paths:
        data = readable_bytes(path)
        found += [(path.name, MARKER)] if MARKER in data.lower() else []
        found += [(path.name, s) for s in secrets if s in data]
    assert found == [], f"planted values found: {found}"
    names = [str(p.relative_to(root)).lower() for p in root.rglob("*")]
    assert [n for n in names if "zzleak" in n or BIRTH in n] == []


def _the_check_can_fail(source_folder: Path, secrets: list[bytes]) -> None:
    """The planted values are in the source's bytes, so a leak would be seen."""
    data = b"".join(readable_bytes(p) for p in source_folder.iterdir())
    assert MARKER in data.lower() and secrets[0] in data and BIRTH.encode() in data
    assert "zzleak" in str(source_folder).lower()


def _content(volume) -> ReportContent:
    seg, cls = make_seg_result(volume), make_cls_result(volume)
    return ReportContent(
        header=ReportHeader.of(volume.metadata),
        results=(seg.snapshot(), cls.snapshot()),
        key_images=(gradient_key_image(f"nodule of {GIVEN} {FAMILY}"),
                    gradient_key_image(f"view for {PATIENT_ID}", "user")),
        measurements=(
            MeasurementLine(f"Distance 12.5 mm ({FAMILY})", "distance", 12.5, "mm",
                            ((0.0, 0.0, 60.0), (12.5, 0.0, 60.0)), "axial", f"{GIVEN}"),
        ),
        impression=IMPRESSION,
    )


@pytest.mark.parametrize("volume_format", ["nifti", "nrrd"])
def test_run_export_deidentified_leaks_nothing(tmp_path, leaky_series, volume_format):
    folder, _ = leaky_series
    volume = load_series(folder)
    assert volume.metadata.patient_name == PATIENT_NAME  # the loader saw the planted values
    content = _content(volume)
    out = tmp_path / "export"
    plan = ex.plan_export(content, out, set(ex.KINDS), volume_format=volume_format,
                          source_files=ex.source_file_count(volume.metadata))
    summary = ex.run_export(content, volume.metadata, plan, deidentify=True)
    result = _drain(summary)
    secrets = _secrets(folder)
    _the_check_can_fail(folder, secrets)
    written = files_under(out)
    assert written == sorted(p.path for p in plan)
    _assert_nothing_planted(written, out, secrets)
    # the tabular files carry the DICOM files' remapped UIDs and the pseudonym
    document = json.loads((out / "findings.json").read_text())
    new_series = result.uid_map[volume.metadata.series_uid]
    assert {r["series_uid"] for r in document["results"]} == {new_series}
    assert document["header"]["series_uid"] == new_series
    assert document["header"]["patient_id"].startswith("ANON-")
    assert document["header"]["patient_birth_date"] == ""
    copy = pydicom.dcmread(next((out / "source").iterdir()), stop_before_pixels=True)
    assert copy.SeriesInstanceUID == new_series
    assert copy.PatientID == document["header"]["patient_id"]
    assert f"{new_series}," in (out / "findings.csv").read_text()
    # the impression is kept, with the identifiers replaced
    impression = document["impression"]
    assert impression.startswith(f"ANONYMOUS (ID {copy.PatientID}, born [removed]) has a nodule")
    assert "Also written [removed], [removed], [removed], [removed] and [removed];" in impression
    assert "other ids [removed] and [removed]; reach Mr. ANONYMOUS at home." in impression
    for path in (out / "dicom").iterdir():
        report = dciodvfy_report(path)
        assert report.errors == (), f"{path.name}:\n{report.output}"


def _drain(steps) -> ex.ExportSummary:
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def test_infer_deidentify_leaks_nothing(tmp_path, leaky_series, capsys):
    folder, truth = leaky_series
    threshold = float(np.median(truth.values)) + 0.5
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    out = tmp_path / "out"
    reports = tmp_path / "reports"
    pdf, seg, sr = reports / "r.pdf", reports / "seg.dcm", reports / "sr.dcm"
    assert main(["infer", "--model", str(model.folder), str(folder), "--out", str(out),
                 "--device", "cpu", "--pdf", str(pdf), "--seg", str(seg), "--sr", str(sr),
                 "--impression", IMPRESSION, "--deidentify", "--json"]) == 0
    printed = capsys.readouterr().out
    secrets = _secrets(folder)
    _the_check_can_fail(folder, secrets)
    assert sorted(p.name for p in out.iterdir()) == ["labels.nii.gz", "result.json"]
    assert sorted(p.name for p in reports.iterdir()) == ["r.pdf", "seg.dcm", "sr.dcm"]
    _assert_nothing_planted(files_under(out), out, secrets)
    _assert_nothing_planted(files_under(reports), reports, secrets)
    assert MARKER not in printed.lower().encode() and LEAK_ROOT not in printed
    # result.json's series is the one the SEG references: one UID mapping for every file
    result = json.loads((out / "result.json").read_text())
    assert json.loads(printed) == {**result, "exported": [str(pdf), str(seg), str(sr)]}
    referenced = pydicom.dcmread(seg, stop_before_pixels=True).ReferencedSeriesSequence[0]
    assert result["series_uid"] == referenced.SeriesInstanceUID
    assert not result["series_uid"].startswith(LEAK_ROOT)
    for path in (seg, sr):
        assert dciodvfy_report(path).errors == (), dciodvfy_report(path).output
    header = gzip.decompress((out / "labels.nii.gz").read_bytes())[:348]  # NIfTI-1
    assert int.from_bytes(header[:4], "little") == 348
    descrip, aux_file, intent_name = header[148:228], header[228:252], header[328:344]
    assert descrip.strip(b"\0") == aux_file.strip(b"\0") == intent_name.strip(b"\0") == b""


def test_infer_deidentify_without_reports_still_deidentifies_result_json(
    tmp_path, leaky_series
):
    folder, truth = leaky_series
    model = make_card(tmp_path / "model", ThresholdSegmenter(float(truth.values.mean())), dims=3)
    out = tmp_path / "out"
    assert main(["infer", "--model", str(model.folder), str(folder), "--out", str(out),
                 "--device", "cpu", "--deidentify"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["series_uid"] and not result["series_uid"].startswith(LEAK_ROOT)
    _assert_nothing_planted(files_under(out), out, _secrets(folder))


# -- the scrubbing of free text itself --------------------------------------------------


def _scrubber(**kw) -> Deidentifier:
    deid = Deidentifier(patient_id="ANON-0001", **kw)
    deid.learn_header(ReportHeader(patient_name="Müller-Lüdenscheidt^Zoë Anne^^Dr.",
                                   patient_id="P-0042/7", patient_birth_date="19800704",
                                   accession_number="A998877"))
    return deid


@pytest.mark.parametrize(("text", "expected"), [
    ("Zoë Müller-Lüdenscheidt, 44", "ANONYMOUS, 44"),
    ("MÜLLER-LÜDENSCHEIDT^ZOË^ANNE", "ANONYMOUS"),
    ("müller-lüdenscheidt, zoë anne was seen", "ANONYMOUS was seen"),
    ("Dr. Anne asked", "Dr. ANONYMOUS asked"),  # a title alone is not a name
    ("ID P-0042/7 and p 0042 7", "ID ANON-0001 and ANON-0001"),
    ("acc A998877.", "acc [removed]."),
    ("born 4.7.1980, 07/04/1980, 1980-07-04, 4 July 1980, Jul 4th, 1980, 04-Jul-1980",
     "born [removed], [removed], [removed], [removed], [removed], [removed]"),
    ("nodule 4 mm, 1980 HU, 7 slices", "nodule 4 mm, 1980 HU, 7 slices"),  # no false hits
    ("Annexed: Zoology", "Annexed: Zoology"),  # whole words only
])
def test_free_text_is_scrubbed(text, expected):
    assert _scrubber().text(text) == expected


def test_scrubbing_uses_the_given_pseudonym_and_keeps_short_parts():
    deid = Deidentifier(patient_name="CASE^0042", patient_id="STUDY-0042")
    deid.learn_header(ReportHeader(patient_name="Li^A", patient_id="12"))
    assert deid.text("Li, A: 12 mm") == "CASE^0042, A: 12 mm"  # 1-2 character IDs are kept


def test_dataset_text_is_scrubbed_within_its_value_length():
    deid = _scrubber()
    ds = Dataset()
    ds.PatientName = "Müller-Lüdenscheidt^Zoë"
    ds.ConvolutionKernel = "ZOË"  # SH, 16 characters at most
    ds.ContentSequence = [_item(TextValue="Zoë Müller-Lüdenscheidt is fine", ValueType="TEXT")]
    out = deid.dataset(ds)
    assert out.ConvolutionKernel == "ANONYMOUS"
    assert out.ContentSequence[0].TextValue == "ANONYMOUS is fine"
    long_id = Deidentifier(patient_id="PSEUDONYM-0000000042")
    long_id.learn_header(ReportHeader(patient_id="K1234"))
    ds.ConvolutionKernel = "K1234 x K1234"
    assert long_id.dataset(ds).ConvolutionKernel == "PSEUDONYM-000000"  # cut to SH's 16


def test_learning_from_a_dataset_takes_every_identifier():
    ds = Dataset()
    ds.PatientName = "ZZLEAKNAME^ZZLEAKGIVEN"
    ds.PatientID = "ZZLEAKID123"
    ds.OtherPatientIDsSequence = [_item(PatientID="ZZLEAKOTHER88")]
    ds.OtherPatientNames = "ZZLEAKALIAS"
    ds.PatientBirthDate = BIRTH
    deid = Deidentifier(patient_id="ANON-1")
    deid.learn(ds)
    assert deid.text("zzleakgiven zzleakname zzleakother88 zzleakalias 13.03.1965") == (
        "ANONYMOUS [removed] ANONYMOUS [removed]")


def test_result_json_document_is_deidentified():
    deid = _scrubber()
    original = uid(SEED, 2, 1)
    document = {"series_uid": original, "warnings": ["Zoë was moved"], "seconds": 1.5,
                "segments": {"nodule": {"volume_ml": 2.0}}}
    out = deid.document(document)
    assert out == {"series_uid": deid.uid(original), "warnings": ["ANONYMOUS was moved"],
                   "seconds": 1.5, "segments": {"nodule": {"volume_ml": 2.0}}}
    assert document["series_uid"] == original  # the input is not modified


def test_pseudonyms_met_again_are_not_identifiers():
    deid = Deidentifier(patient_name="CASE^0042", patient_id="STUDY-0042")
    ds = Dataset()
    ds.PatientName, ds.PatientID = "CASE^0042", "STUDY-0042"  # de-identified once already
    ds.ContentSequence = [_item(ValueType="TEXT", TextValue="case STUDY-0042, ANONYMOUS")]
    again = deid.dataset(ds)
    assert again.ContentSequence[0].TextValue == "case STUDY-0042, ANONYMOUS"
    assert deid.text("a case of ANONYMOUS") == "a case of ANONYMOUS"


# -- what is not the patient's: machine fields and ordinary numbers -----------------------


def test_document_keeps_keys_and_machine_fields_and_scrubs_free_text():
    deid = Deidentifier(patient_id="ANON-0001")
    deid.learn_header(ReportHeader(patient_name="LUNG^DEMO", patient_id="DEMO0001"))
    model = {"id": "demo-ct-lung-nodule-seg", "name": "Demo lung nodule", "version": "1.0.0",
             "sha256": "ab" * 32}
    document = {
        "model": model, "task": "segmentation", "device": "CPU (2 threads)",
        "created": "2026-11-21T10:00:00+00:00", "decision": ["lung"], "heatmap_class": "lung",
        "classes": {"lung": 0.75, "demo": 0.25},
        "segments": {"left lung": {"label": 1, "volume_ml": 2.0}},
        "files": ["dicom/SEG_demo-ct-lung-nodule-seg-1.0.0.dcm"],
        "disclaimers": ["Demo lung model, not for clinical use."],
        "warnings": ["Demo Lung was moved"], "impression": "Lung, Demo: a lung nodule",
        "measurements": [{"text": "Distance 4 mm", "kind": "distance", "unit": "mm",
                          "plane": "axial", "label": "lung demo"}],
    }
    out = deid.document(document)
    scrubbed = {"warnings": ["ANONYMOUS was moved"],
                "impression": "ANONYMOUS: a ANONYMOUS nodule",  # free text: the name goes
                "measurements": [{**document["measurements"][0], "label": "ANONYMOUS"}]}
    assert out == {**document, **scrubbed}


def test_short_numeric_ids_are_not_searched_for_in_free_text():
    deid = Deidentifier(patient_id="ANON-0001")
    deid.learn_header(ReportHeader(patient_id="123", accession_number="45-67"))
    text = "nodule 123 mm, 4567 voxels, 45-67 HU, slice 123/300"
    assert deid.text(text) == text
    assert deid.document({"impression": "123 mm"}) == {"impression": "123 mm"}
    deid.learn_header(ReportHeader(patient_id="1234567", accession_number="0098-7654"))
    assert deid.text("ID 1234567, acc 00987654 / 0098 7654, 123 mm") == (
        "ID ANON-0001, acc [removed] / [removed], 123 mm")


DEMO_SEG, DEMO_CLS = "demo-ct-lung-nodule-seg", "demo-ct-nodule-cls"


def _with_model(result: AIResult, model_id: str):
    """`result` as if the bundled model `model_id` had made it; and that model's card."""
    card = ModelRegistry().get(model_id).card
    return AIResult.of(replace(result.prediction, model=ModelInfo.of(card))), card


@pytest.mark.parametrize(("name", "patient_id", "impression"), [
    ("DEMO^PATIENT1", "DEMO0001", "ANONYMOUS lung nodule, 123 mm"),
    ("LUNG^ANNA", "123", "Demo ANONYMOUS nodule, 123 mm"),  # a name that is also a word
])
def test_a_deidentified_findings_json_keeps_the_model_fields(
    tmp_path, ct_volume, name, patient_id, impression
):
    seg, seg_card = _with_model(make_seg_result(ct_volume), DEMO_SEG)
    cls, cls_card = _with_model(make_cls_result(ct_volume), DEMO_CLS)
    header = replace(ReportHeader.of(ct_volume.metadata), patient_name=name,
                     patient_id=patient_id)
    content = ReportContent(header=header, results=(seg, cls),
                            impression="Demo lung nodule, 123 mm")
    plan = ex.plan_export(content, tmp_path, {"json", "seg"})
    _drain(ex.run_export(content, ct_volume.metadata, plan, deidentify=True))
    document = json.loads((tmp_path / "findings.json").read_text())
    seg_json, cls_json = document["results"]
    for result, card in ((seg_json, seg_card), (cls_json, cls_card)):
        assert result["model"] == {"id": card.id, "version": card.version,
                                   "sha256": card.weights.sha256, "name": card.name}
    assert list(seg_json["segments"]) == ["left lung", "right lung", "nodule"]
    assert (cls_json["classes"], cls_json["decision"]) == ({"normal": 0.125, "nodule": 0.875},
                                                           ["nodule"])
    assert document["disclaimers"] == content.disclaimers()
    assert f"dicom/SEG_{DEMO_SEG}-{seg_card.version}.dcm" in document["files"]
    assert document["impression"] == impression
    assert document["header"]["patient_name"] == "ANONYMOUS"


def test_a_file_the_user_named_after_the_patient_is_listed_scrubbed(tmp_path, ct_volume):
    content = ReportContent(header=ReportHeader.of(ct_volume.metadata))
    assert content.header.patient_name == "TESTPERSON^ALICE"
    plan = [ex.PlannedFile("json", tmp_path / "json" / "findings.json"),
            ex.PlannedFile("pdf", tmp_path / "TESTPERSON_report.pdf")]
    _drain(ex.run_export(content, ct_volume.metadata, plan, deidentify=True))
    document = json.loads((tmp_path / "json" / "findings.json").read_text())
    assert document["files"] == ["findings.json", "ANONYMOUS_report.pdf"]
