"""De-identification on export: DICOM PS3.15 Annex E, Basic Application Confidentiality Profile.

One :class:`Deidentifier` per export session. Every DICOM object the export writes (SEG, SR,
Secondary Capture, Encapsulated PDF, copies of source images) goes through
:meth:`Deidentifier.dataset`, and the PDF report's header through :meth:`Deidentifier.header`,
so that all of them carry the same pseudonym and the same remapped UIDs: references between
the exported objects still resolve.

The action of each attribute comes from PS3.15 Table E.1-1 as shipped by ``dicom-anonymizer``
(:func:`profile_table`); the actions are applied here, with a UID map owned by the instance
(no state shared between exports, nothing printed).

Rules
-----
* ``X`` deletes, ``Z`` empties (zero length; an empty sequence for SQ), ``D`` puts a dummy value
  valid for the VR (:data:`DUMMY_TEXT` for text and names, ``20000101`` / ``000000`` /
  ``20000101000000`` for DA / TM / DT, ``0`` for numbers, zero length for binary VRs) and ``U``
  remaps the UID.
* Sequences under ``D`` (Content Sequence, Verifying Observer Sequence, Graphic Annotation
  Sequence...) and under ``X/Z/U*`` (Referenced Image, Source Image Sequence) are kept and
  de-identified item by item: their dummy is their own content with every attribute inside
  handled by these rules. So an SR keeps its tree, its numbers and its text, with its UIDREF
  values remapped, names replaced and dates dummied.
* Combined actions take the least destructive action that keeps the object valid whatever the
  attribute's type in the IOD, decided per VR since the type is not known here:

  - dates and times (DA, DT, TM) take ``D`` whenever it is allowed (``Z/D``, ``X/D``,
    ``X/Z/D``): Content Date/Time are Type 1 in SEG and SR, and date-times are Type 1C in
    SR content items and frame content;
  - otherwise ``Z`` when allowed (``Z/D``, ``X/Z``, ``X/Z/D``: an empty value is valid for
    Type 2 and 3), except Device Serial Number, which takes ``D`` (Type 1 in the Enhanced
    General Equipment module of SEG);
  - otherwise ``X`` (``X/D`` on text: Protocol Name, Detector ID... are Type 3);
  - sequences: kept and recursed under ``D`` and ``X/Z/U*``, emptied under ``Z``, ``Z/D``,
    ``X/Z`` and ``X/Z/D``, deleted under ``X`` and ``X/D``;
  - UIDs: remapped under any action with ``U`` or ``D``.

* Patient's Name becomes the session's name, Patient ID the session's pseudonym and Patient's
  Birth Date is emptied; Patient Identity Removed, De-identification Method and its code
  sequence (DCM 113100) are added.
* UIDs not in the table (a UI attribute the table does not list) are remapped too, except
  class UIDs (keyword ending in ``ClassUID``), transfer syntaxes and coding scheme /
  context / mapping resource UIDs. Registered DICOM UIDs (:data:`pydicom.uid.UID_dictionary`:
  SOP classes, transfer syntaxes, well-known frames of reference...) are never changed.
* Private attributes, group lengths, curves (50xx) and overlays (60xx; the profile deletes
  Overlay Data, and an overlay without its data is invalid, so the group goes whole) are
  deleted; in the file meta information, the AE titles, presentation addresses and private
  information are deleted, the SOP instance UID remapped; the preamble is zeroed.
* Free text is scrubbed of the patient's identifiers: every text value the profile keeps (LO,
  SH, ST, LT, UT, UC, PN), the report's impression, measurement labels and captions, and the
  free-text strings of the JSON documents (not their keys nor the fields the program and the
  model card wrote: :data:`MACHINE_FIELDS`). The identifiers are learned from every object
  de-identified (Patient's Name and its other names, Patient ID and the other IDs, Accession
  Number, birth date) and from the report's header; see :meth:`Deidentifier.text`. Values of
  unknown VR (UN: they cannot be read, so not checked) are deleted.
* Kept on purpose though the table lists them: Encapsulated Document (the caller builds the
  PDF from a de-identified header) and Context Group (Local) Version (versions of a code
  resource, not about the patient). Pixel data, geometry, segment labels and the SR's numeric
  content are not in the table and are kept.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary, generate_uid
from pydicom.valuerep import BYTES_VR, FLOAT_VR, INT_VR, MAX_VALUE_LEN, STR_VR

from medviewer.core.findings import AIResult
from medviewer.report.content import KeyImage, MeasurementLine, ReportContent, ReportHeader

#: The PS3.15 edition of dicom-anonymizer's table used here.
PROFILE_DATABASE = "dicomfields_2026c"
#: Replacement for text and person names under ``D``.
DUMMY_TEXT = "ANONYMOUS"
#: De-identification Method (0012,0063), at most 64 characters (LO).
DEIDENTIFICATION_METHOD = "PS3.15 E.1 Basic Application Confidentiality Profile, medviewer"
#: What other identifiers (other IDs, accession numbers, birth dates) become in free text.
REMOVED = "[removed]"
#: Shorter name parts and IDs are not searched for in free text: an initial or a one- or
#: two-digit ID would hit ordinary words and numbers.
MIN_NAME_PART, MIN_ID = 2, 3
#: IDs made of digits only (punctuation aside) need this many digits to be searched for: a
#: short number (``123``) is also a size, a count or a slice in free text (``123 mm``).
MIN_DIGIT_ID = 6
#: Fields of ``result.json`` and ``findings.json`` that medviewer or the model card wrote:
#: model (id, name, version, sha256), task, device, timestamps, units and kinds, class names
#: (``decision``, ``heatmap_class``), the models' disclaimers and the export's file names.
#: Not patient data: kept as they are, everything under them included, even where a word
#: coincides with a part of the patient's name. Every other string is free text and scrubbed.
MACHINE_FIELDS = frozenset({
    "model", "task", "device", "created", "generated", "app_version", "modality", "units",
    "kind", "unit", "plane", "origin", "axis", "decision", "heatmap_class", "disclaimers",
    "files",
})
#: DCM code of the profile, for De-identification Method Code Sequence (0012,0064).
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

_CATEGORIES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
_DATE_VRS = frozenset({"DA", "DT", "TM"})
_NUMBER_VRS = frozenset(str(vr) for vr in (INT_VR | FLOAT_VR) - STR_VR)  # not IS, DS
"""VRs of numbers stored in binary (US, SL, FD, AT...): pydicom's, less the decimal strings."""
_BINARY_VRS = frozenset(str(vr) for vr in BYTES_VR)
"""VRs of bytes (OB, OW, UN...)."""
_DUMMIES = {
    "DA": "20000101",
    "TM": "000000",
    "DT": "20000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
}
_ENCAPSULATED_DOCUMENT = 0x00420011
_KEEP_TAGS = frozenset({_ENCAPSULATED_DOCUMENT, 0x00080106, 0x00080107})
_DUMMY_TEXT_TAGS = frozenset({0x00181000})  # Device Serial Number: Type 1 in SEG's equipment
_PATIENT_NAME, _PATIENT_ID, _BIRTH_DATE = 0x00100010, 0x00100020, 0x00100030
_KEPT_UID_KEYWORDS = frozenset(
    {
        "TransferSyntaxUID",
        "ReferencedTransferSyntaxUIDInFile",
        "EncryptedContentTransferSyntaxUID",
        "CodingSchemeUID",
        "ContextUID",
        "MappingResourceUID",
        "ContextGroupExtensionCreatorUID",
        "SOPClassesInStudy",
    }
)
#: File meta attributes that name sites rather than the object: deleted.
_META_DELETED = frozenset(
    {
        0x00020016,  # Source Application Entity Title
        0x00020017,  # Sending Application Entity Title
        0x00020018,  # Receiving Application Entity Title
        0x00020026,  # Source Presentation Address
        0x00020027,  # Sending Presentation Address
        0x00020028,  # Receiving Presentation Address
        0x00020100,  # Private Information Creator UID
        0x00020102,  # Private Information
    }
)
_SEQUENCE_RULES = {
    "D": "recurse",
    "U": "recurse",
    "X/Z/U*": "recurse",
    "Z": "empty",
    "Z/D": "empty",
    "X/Z": "empty",
    "X/Z/D": "empty",
    "X": "delete",
    "X/D": "delete",
}
_BURNED_IN_MODALITIES = frozenset({"US", "XC", "OT", "ES", "SC"})
#: Value representations of free text, scrubbed of the patient's identifiers when kept.
_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
# an identifier is a whole word: no letter or digit right before or after it
_BEFORE, _AFTER = r"(?<![^\W_])", r"(?![^\W_])"


@dataclass(frozen=True)
class ActionTable:
    """PS3.15 Table E.1-1 as tag -> action (``"D"``, ``"Z"``, ``"X"``, ``"U"``, ``"X/Z"``...).

    Attributes
    ----------
    exact : dict of int to str
        Actions of single tags.
    masked : tuple of (int, int, int, int, str)
        ``(group, element, group mask, element mask, action)`` of repeating groups.
    """

    exact: dict[int, str]
    masked: tuple[tuple[int, int, int, int, str], ...]

    def action(self, tag: int) -> str | None:
        """The profile's action for `tag`, None when the table does not list it."""
        found = self.exact.get(int(tag))
        if found is not None:
            return found
        group, element = int(tag) >> 16, int(tag) & 0xFFFF
        for g, e, g_mask, e_mask, act in self.masked:
            if group & g_mask == g & g_mask and element & e_mask == e & e_mask:
                return act
        return None


@cache
def profile_table(database: str = PROFILE_DATABASE) -> ActionTable:
    """The profile's action table from dicom-anonymizer (imported on first use).

    Parameters
    ----------
    database : str
        Name of one of dicom-anonymizer's table modules.

    Returns
    -------
    ActionTable
    """
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    tables = dicom_anonymization_database_selector(database)
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for category, action in _CATEGORIES.items():
        for entry in tables[category]:
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = action
            else:
                masked.append((*entry, action))
    return ActionTable(exact, tuple(masked))


def resolve_action(action: str, tag: int, vr: str) -> str:
    """The one operation a profile action comes to for one attribute (see the module's rules).

    Parameters
    ----------
    action : str
        The profile's action (``"D"``, ``"X/Z/D"``...).
    tag : int
        The attribute's tag.
    vr : str
        Its value representation.

    Returns
    -------
    str
        ``"keep"``, ``"delete"``, ``"empty"``, ``"dummy"``, ``"uid"`` or ``"recurse"``.
    """
    if int(tag) in _KEEP_TAGS:
        return "keep"
    if vr == "SQ":
        return _SEQUENCE_RULES.get(action, "delete")
    options = set(action.rstrip("*").split("/"))
    if vr == "UI" and options & {"U", "D"}:
        return "uid"
    if "D" in options and (action == "D" or vr in _DATE_VRS or int(tag) in _DUMMY_TEXT_TAGS):
        return "dummy"
    if "Z" in options:
        return "empty"
    return "delete"


def dummy_value(vr: str) -> object:
    """A value valid for `vr` that says nothing about anyone (``D``)."""
    if vr in _NUMBER_VRS:
        return 0
    if vr in _BINARY_VRS:
        return b""
    return _DUMMIES.get(vr, DUMMY_TEXT)


def _is_kept_uid(tag: int) -> bool:
    """True for UI attributes that name a class, syntax or resource, not an instance."""
    keyword = keyword_for_tag(tag)
    return keyword.endswith("ClassUID") or keyword in _KEPT_UID_KEYWORDS


def _random_pseudonym() -> str:
    return "ANON-" + secrets.token_hex(4)


class _Identifiers:
    """The patient's identifiers seen so far, and one expression that finds them in text.

    Kinds: ``names`` (words of person names), ``ids`` (Patient ID), ``others`` (other IDs,
    accession numbers) and ``dates`` (birth dates, ``YYYYMMDD``). Values in `ignore` (the
    pseudonyms, met again when an object is de-identified twice) are not identifiers.
    """

    def __init__(self, ignore: Iterable[str] = ()) -> None:
        self.found: dict[str, set[str]] = {"dates": set(), "ids": set(), "others": set(),
                                           "names": set()}
        self.ignore = {v.casefold() for v in ignore}
        self._pattern: re.Pattern[str] | None = None

    def add(self, kind: str, values: Iterable[object]) -> None:
        """Remember the identifiers in `values` (None, empty and multi-values allowed)."""
        known = self.found[kind]
        before = len(known)
        for value in values:
            for single in _values(value):
                known.update(p for p in _PARTS[kind](str(single))
                             if p.casefold() not in self.ignore)
        if len(known) != before:
            self._pattern = None

    def pattern(self) -> re.Pattern[str] | None:
        """One case-insensitive expression with a named group per kind; None when empty."""
        if self._pattern is None:
            groups = [f"(?P<{kind}>{_REGEX[kind](sorted(values, key=len, reverse=True))})"
                      for kind, values in self.found.items() if values]
            self._pattern = re.compile("|".join(groups), re.IGNORECASE) if groups else None
        return self._pattern


def _name_parts(name: str) -> set[str]:
    """Family, given and middle names of a DICOM person name (or plain text), word by word,
    hyphenated names also part by part; prefixes and suffixes (titles) are left out."""
    parts: set[str] = set()
    for group in name.split("="):  # alphabetic, ideographic, phonetic
        for component in group.split("^")[:3]:
            for word in re.split(r"[\s,]+", component):
                word = word.strip(".")
                parts.update({word, *word.split("-")})
    return {p for p in parts if len(p) >= MIN_NAME_PART and not p.isdigit()}


def _id_parts(value: str) -> set[str]:
    """`value` when it is long enough to be searched for in free text (:data:`MIN_ID`
    characters, :data:`MIN_DIGIT_ID` digits for an ID without letters), else nothing."""
    value = value.strip()
    characters = re.findall(r"[^\W_]", value)
    if not characters:
        return set()
    if all(c.isdigit() for c in characters):
        return {value} if len(characters) >= MIN_DIGIT_ID else set()
    return {value} if len(value) >= MIN_ID else set()


def _date_parts(value: str) -> set[str]:
    value = value.strip()
    valid = re.fullmatch(r"\d{8}", value) and 1 <= int(value[4:6]) <= 12 \
        and 1 <= int(value[6:8]) <= 31
    return {value} if valid else set()


def _names_regex(names: list[str]) -> str:
    """A run of name words, in any order, joined by spaces, commas, ``^`` or hyphens."""
    word = rf"{_BEFORE}(?:{'|'.join(map(re.escape, names))}){_AFTER}"
    return rf"{word}(?:[\s,^-]+{word})*"


def _ids_regex(ids: list[str]) -> str:
    """Each ID with its punctuation optional (``P-0042/7`` also finds ``p 0042 7``)."""
    forms = [r"[\W_]?".join(map(re.escape, re.findall(r"[^\W_]+", i))) for i in ids]
    return rf"{_BEFORE}(?:{'|'.join(forms)}){_AFTER}"


def _dates_regex(dates: list[str]) -> str:
    return rf"{_BEFORE}(?:{'|'.join(_date_forms(d) for d in dates)}){_AFTER}"


def _date_forms(date: str) -> str:
    """`date` (``YYYYMMDD``) written the common ways: 19650313, 1965-03-13, 13.3.1965,
    13/03/65, 03/13/1965, 13 March 1965, 13th of Mar. 1965, March 13, 1965, 13-Mar-1965."""
    y, m, d = date[:4], int(date[4:6]), int(date[6:8])
    month, day = f"0?{m}" if m < 10 else str(m), f"0?{d}" if d < 10 else str(d)
    year, sep, nth = f"(?:{y}|{y[2:]})", r"\s?[./-]\s?", r"(?:st|nd|rd|th)?"
    full = _MONTHS[m - 1]
    name = rf"(?:{full}|{'Sept|Sep' if m == 9 else full[:3]})\.?"
    return "|".join((
        date, f"{y}{sep}{month}{sep}{day}", f"{day}{sep}{month}{sep}{year}",
        f"{month}{sep}{day}{sep}{year}", rf"{day}{nth}\.?[\s-]+(?:of\s+)?{name}[\s,-]+{y}",
        rf"{name}[\s-]+{day}{nth},?[\s-]+{y}",
    ))


_PARTS = {"names": _name_parts, "ids": _id_parts, "others": _id_parts, "dates": _date_parts}
_REGEX = {"names": _names_regex, "ids": _ids_regex, "others": _ids_regex,
          "dates": _dates_regex}


def _fit(text: str, vr: str) -> str:
    """`text` cut to the longest value `vr` allows (a replacement may be longer)."""
    limit = MAX_VALUE_LEN.get(vr)
    return text[:limit] if limit else text


class Deidentifier:
    """De-identifies the objects of one export consistently (one instance per export).

    Parameters
    ----------
    patient_name : str
        Patient's Name put into every object.
    patient_id : str, optional
        Patient ID put into every object; ``"ANON-"`` and 8 random hex digits when None.

    Attributes
    ----------
    patient_name : str
    patient_id : str
    """

    def __init__(self, *, patient_name: str = DUMMY_TEXT, patient_id: str | None = None) -> None:
        self.patient_name = patient_name
        self.patient_id = patient_id if patient_id is not None else _random_pseudonym()
        self._uids: dict[str, str] = {}
        self._issued: set[str] = set()
        self._table = profile_table()
        self._known = _Identifiers(
            {*_name_parts(self.patient_name), self.patient_id, DUMMY_TEXT})

    def learn(self, ds: Dataset) -> None:
        """Remember the patient's identifiers in `ds`, to scrub them from free text.

        Patient's Name, Other Patient Names, Patient's Birth Name, Patient ID, Other Patient
        IDs (and their sequence), Accession Number and Patient's Birth Date.
        :meth:`dataset` learns from every object it is given.
        """
        get = ds.get
        self._known.add("names", [get("PatientName"), get("OtherPatientNames"),
                                  get("PatientBirthName")])
        self._known.add("ids", [get("PatientID")])
        others = [get("OtherPatientIDs"), get("AccessionNumber")]
        others += [item.get("PatientID") for item in get("OtherPatientIDsSequence") or ()]
        self._known.add("others", others)
        self._known.add("dates", [get("PatientBirthDate")])

    def learn_header(self, header: ReportHeader) -> None:
        """Remember the identifiers of a report's header (name, ID, accession, birth date)."""
        self._known.add("names", [header.patient_name])
        self._known.add("ids", [header.patient_id])
        self._known.add("others", [header.accession_number])
        self._known.add("dates", [header.patient_birth_date])

    def text(self, value: str) -> str:
        """`value` with the patient's identifiers learned so far replaced.

        The patient's name, in any order and case, words joined by spaces, commas, ``^`` or
        hyphens (``Zoë Müller``, ``MÜLLER^ZOË``, ``Müller, Zoë``, a given or family name
        alone) becomes :attr:`patient_name`; the Patient ID (its punctuation optional)
        becomes :attr:`patient_id`; other IDs, accession numbers and the birth date in common
        spellings (``19650313``, ``1965-03-13``, ``13.3.1965``, ``03/13/1965``,
        ``13 March 1965``, ``Mar 13th, 1965``...) become :data:`REMOVED`. Whole words only;
        name parts shorter than :data:`MIN_NAME_PART` characters, IDs shorter than
        :data:`MIN_ID` characters and IDs of digits only shorter than :data:`MIN_DIGIT_ID`
        digits are not searched for.
        """
        pattern = self._known.pattern()
        if pattern is None or not value:
            return value
        return pattern.sub(self._replacement, value)

    def _replacement(self, match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind == "names":
            return self.patient_name
        return self.patient_id if kind == "ids" else REMOVED

    def document(self, value: Any, key: str = "") -> Any:
        """A de-identified copy of a JSON-ready value (``result.json``, ``findings.json``).

        Dictionary keys (field, class and segment names) are kept; so is everything under a
        key of :data:`MACHINE_FIELDS` (model id, name and version, task, device, timestamps,
        class names, file names...), which medviewer or the model card wrote. Strings under
        keys ending in ``uid`` are remapped with :meth:`uid`; every other string is free text
        (impression, warnings, captions, measurement texts and labels, descriptions) and is
        scrubbed with :meth:`text`. `value` is not modified.

        Parameters
        ----------
        value : Any
            A dict, list, tuple, str, number, bool or None, nested.
        key : str
            The dictionary key `value` is found under (for a list, the list's key).

        Returns
        -------
        Any
            The same structure (tuples become lists).
        """
        if isinstance(value, dict):
            return {k: self.document(v, str(k) if key not in MACHINE_FIELDS else key)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.document(v, key) for v in value]
        if isinstance(value, str) and key not in MACHINE_FIELDS:
            return self.uid(value) if key.lower().endswith("uid") else self.text(value)
        return value

    def content(self, content: ReportContent) -> ReportContent:
        """A report's content as a de-identified export shows it.

        The header as :meth:`header` makes it; the impression, measurement texts and labels,
        key image captions and the models' warnings scrubbed with :meth:`text`; the results'
        and key images' UIDs remapped. Pixels, numbers and findings are kept.
        """
        return replace(
            content, header=self.header(content.header),
            results=tuple(self._result(r) for r in content.results),
            key_images=tuple(self._key_image(k) for k in content.key_images),
            measurements=tuple(self._measurement(m) for m in content.measurements),
            impression=self.text(content.impression),
        )

    def _result(self, result: AIResult) -> AIResult:
        p = result.prediction
        return replace(result, prediction=replace(
            p, series_uid=self.uid(p.series_uid), warnings=tuple(map(self.text, p.warnings))))

    def _key_image(self, key: KeyImage) -> KeyImage:
        result_key = key.result_key
        if result_key is not None:
            result_key = (self.uid(result_key[0]), *result_key[1:])
        return replace(key, caption=self.text(key.caption), slice_text=self.text(key.slice_text),
                       source_sop_uid=self.uid(key.source_sop_uid), result_key=result_key)

    def _measurement(self, line: MeasurementLine) -> MeasurementLine:
        return replace(line, text=self.text(line.text), label=self.text(line.label))

    def uid(self, original: str) -> str:
        """The replacement of `original`, the same every time within this instance.

        ``""`` stays ``""``, registered DICOM UIDs stay as they are, and a UID this instance
        issued maps to itself (de-identifying twice changes nothing).
        """
        key = str(original).strip().rstrip("\0").strip()
        if not key or key in UID_dictionary or key in self._issued:
            return key
        new = self._uids.get(key)
        if new is None:
            new = str(generate_uid())
            self._uids[key] = new
            self._issued.add(new)
        return new

    def uid_map(self) -> dict[str, str]:
        """A copy of the original -> replacement UID mapping made so far."""
        return dict(self._uids)

    def dataset(self, ds: Dataset) -> Dataset:
        """A de-identified deep copy of `ds` (file meta included); `ds` is left untouched.

        Parameters
        ----------
        ds : pydicom.dataset.Dataset
            Any DICOM object, as built for export or as read from a file.

        Returns
        -------
        pydicom.dataset.Dataset
            Same type as `ds`.
        """
        self.learn(ds)
        out = copy.deepcopy(ds)
        self._clean(out)
        meta = getattr(out, "file_meta", None)
        if meta is not None:
            self._clean_meta(meta)
        if getattr(out, "preamble", None) is not None:
            out.preamble = b"\0" * 128
        self._mark(out)
        return out

    def header(self, header: ReportHeader) -> ReportHeader:
        """The report header with the same replacements as the DICOM objects.

        Name and ID become the session's, birth date, sex, dates, descriptions, accession
        number and institution are emptied, study and series UIDs remapped with the same map;
        modality, series number, units, generation time and app version are kept. Its
        identifiers are learned (:meth:`learn_header`).
        """
        self.learn_header(header)
        return replace(
            header,
            patient_name=self.patient_name,
            patient_id=self.patient_id,
            patient_birth_date="",
            patient_sex="",
            study_uid=self.uid(header.study_uid),
            study_date="",
            study_description="",
            accession_number="",
            series_uid=self.uid(header.series_uid),
            series_description="",
            institution="",
        )

    def _clean(self, ds: Dataset) -> None:
        """De-identify `ds` in place, recursing into the sequences it keeps."""
        _drop_overlays(ds)
        for tag in list(ds.keys()):
            if tag.is_private or tag.element == 0 or ds[tag].VR == "UN":
                del ds[tag]
                continue
            elem = ds[tag]
            if not self._patient(elem):
                self._apply(ds, elem, self._operation(elem))

    def _patient(self, elem: DataElement) -> bool:
        """Set the patient's name / ID / birth date; False when `elem` is none of them."""
        if elem.tag == _PATIENT_NAME:
            elem.value = self.patient_name
        elif elem.tag == _PATIENT_ID:
            elem.value = self.patient_id
        elif elem.tag == _BIRTH_DATE:
            elem.value = empty_value_for_VR(elem.VR)
        else:
            return False
        return True

    def _operation(self, elem: DataElement) -> str:
        action = self._table.action(elem.tag)
        if action is not None:
            return resolve_action(action, elem.tag, elem.VR)
        if elem.VR == "SQ":
            return "recurse"
        if elem.VR == "UI" and not _is_kept_uid(elem.tag):
            return "uid"
        return "keep"

    def _apply(self, ds: Dataset, elem: DataElement, operation: str) -> None:
        if operation == "delete":
            del ds[elem.tag]
        elif operation == "empty":
            elem.value = Sequence() if elem.VR == "SQ" else empty_value_for_VR(elem.VR)
        elif operation == "dummy":
            elem.value = dummy_value(elem.VR)
        elif operation == "uid":
            self._remap(elem)
        elif operation == "recurse":
            for item in elem.value:
                self._clean(item)
        elif elem.VR in _TEXT_VRS:  # kept: scrubbed
            self._scrub(elem)

    def _scrub(self, elem: DataElement) -> None:
        """Replace the patient's identifiers in a text value (cut to what its VR allows)."""
        values = [str(v) for v in _values(elem.value)]
        scrubbed = [_fit(self.text(v), elem.VR) for v in values]
        if scrubbed != values:
            elem.value = scrubbed if len(scrubbed) > 1 else scrubbed[0]

    def _remap(self, elem: DataElement) -> None:
        if isinstance(elem.value, MultiValue | list | tuple):
            elem.value = [self.uid(v) for v in elem.value]
        elif elem.value:
            elem.value = self.uid(elem.value)

    def _clean_meta(self, meta: Dataset) -> None:
        for tag in list(meta.keys()):
            if tag in _META_DELETED or tag.is_private:
                del meta[tag]
            elif meta[tag].VR == "UI" and not _is_kept_uid(tag):
                self._remap(meta[tag])
            elif meta[tag].VR in _TEXT_VRS:
                self._scrub(meta[tag])

    def _mark(self, ds: Dataset) -> None:
        """Add the patient's pseudonym and the de-identification attributes at the top."""
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.PatientIdentityRemoved = "YES"
        methods = [str(m) for m in _values(ds.get("DeidentificationMethod"))]
        if DEIDENTIFICATION_METHOD not in methods:
            methods.append(DEIDENTIFICATION_METHOD)
        ds.DeidentificationMethod = methods if len(methods) > 1 else methods[0]
        ds.DeidentificationMethodCodeSequence = _with_profile_code(
            ds.get("DeidentificationMethodCodeSequence") or Sequence()
        )


def _with_profile_code(codes: Sequence) -> Sequence:
    """`codes` with the Basic Profile's code appended when it is not there yet."""
    value, scheme, meaning = BASIC_PROFILE_CODE
    if not any(
        c.get("CodeValue") == value and c.get("CodingSchemeDesignator") == scheme for c in codes
    ):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
        codes.append(code)
    return codes


def _values(value: object) -> list[object]:
    """The values of a possibly multi-valued, possibly empty attribute value."""
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _drop_overlays(ds: Dataset) -> None:
    """Delete whole overlay groups (60xx) that carry Overlay Data, which the profile removes."""
    tags = list(ds.keys())
    groups = {
        tag.group
        for tag in tags
        if 0x6000 <= tag.group <= 0x601E and tag.group % 2 == 0 and tag.element == 0x3000
    }
    for tag in tags:
        if tag.group in groups:
            del ds[tag]


def burned_in_text_warning(
    modality: str, sop_class_uid: str = "", burned_in_annotation: str = ""
) -> str | None:
    """A warning when the source's pixels may carry identifying text, else None.

    De-identification changes attributes, never pixels: text burned into the image (common in
    ultrasound, photographs, screen captures) survives it.

    Parameters
    ----------
    modality : str
        Modality (0008,0060) of the source.
    sop_class_uid : str
        Its SOP Class UID; Secondary Capture classes warn.
    burned_in_annotation : str
        Burned In Annotation (0028,0301); ``"YES"`` warns.

    Returns
    -------
    str or None
    """
    reason = None
    class_name = UID_dictionary.get(str(sop_class_uid).strip(), ("",))[0]
    if str(burned_in_annotation).strip().upper() == "YES":
        reason = "the source images declare burned-in annotation"
    elif str(modality).strip().upper() in _BURNED_IN_MODALITIES:
        reason = f"{modality.strip().upper()} images often carry burned-in text"
    elif "Secondary Capture" in class_name:
        reason = "secondary captures often carry burned-in text"
    if reason is None:
        return None
    return (
        f"The pixels may show identifying text ({reason}); de-identification does not remove "
        "it: check the images before sharing."
    )
