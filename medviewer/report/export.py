"""Export a report: plan the files, then write them all or none, optionally de-identified.

The GUI's export dialog and ``medviewer infer --pdf/--seg/--sr`` both come here. :func:`plan_export`
names the files of an export into a folder; :func:`run_export` is a generator (run it in a
worker) that yields :class:`ExportProgress` and returns an :class:`ExportSummary`. Files are
written through one :class:`~medviewer.report.files.FileBatch`: a failure or a cancel leaves no
file behind, and existing files are only replaced when asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydicom.dataset import Dataset

from medviewer.core.errors import LoadError
from medviewer.core.findings import AIResult, ResultKey
from medviewer.core.volume import VolumeMetadata
from medviewer.report import tabular
from medviewer.report.content import KeyImage, ReportContent
from medviewer.report.deidentify import Deidentifier, burned_in_text_warning
from medviewer.report.files import FileBatch
from medviewer.report.sources import SourceImages, read_source_images

#: What an export can hold.
KINDS = (
    "pdf", "pdf_dicom", "seg", "sr", "key_images_dicom", "key_images_png", "label_maps",
    "heatmaps", "csv", "json", "source_copies",
)
#: The default selection of the export dialog.
DEFAULT_KINDS = frozenset({"pdf", "pdf_dicom", "seg", "sr", "key_images_dicom", "csv", "json"})
_DICOM_KINDS = frozenset({"pdf_dicom", "seg", "sr", "key_images_dicom", "source_copies"})
SERIES_NUMBERS = {"seg": 901, "sr": 902, "key_images_dicom": 903, "pdf_dicom": 904}


@dataclass(frozen=True)
class PlannedFile:
    """One file of an export.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    path : pathlib.Path
    result_key : tuple or None
        The AI result it comes from (SEG, label map, heatmap).
    index : int or None
        The key image (key images) or source file (source copies) it comes from.
    """

    kind: str
    path: Path
    result_key: ResultKey | None = None
    index: int | None = None


@dataclass(frozen=True)
class ExportProgress:
    """One step of an export: what is being written, and how far along."""

    step: str
    done: int
    total: int


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote.

    Attributes
    ----------
    files : tuple of PlannedFile
    warnings : tuple of str
        E.g. that the source may carry burned-in identifying text.
    deidentified : bool
    uid_map : dict
        Original -> new UID when de-identified (for the caller's records; never written).
    """

    files: tuple[PlannedFile, ...]
    warnings: tuple[str, ...] = ()
    deidentified: bool = False
    uid_map: dict[str, str] = field(default_factory=dict)


def safe_name(text: str) -> str:
    """`text` as a portable file-name fragment."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:60] or "result"


def plan_export(
    content: ReportContent,
    folder: str | Path,
    kinds: frozenset[str] | set[str] = DEFAULT_KINDS,
    *,
    volume_format: str = "nifti",
    source_files: int = 0,
) -> list[PlannedFile]:
    """Name the files of an export into `folder` (nothing is written).

    Layout: ``report.pdf``, ``findings.csv``, ``findings.json`` at the top; DICOM objects in
    ``dicom/``; PNG key images in ``images/``; label maps and heatmaps in ``volumes/``;
    de-identified copies of the source images in ``source/``. Kinds with nothing to export
    (a SEG without segmentation results, an SR without a single number) are left out.

    Parameters
    ----------
    source_files : int
        Number of source files, for ``"source_copies"``.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown export kinds: {sorted(unknown)}")
    folder = Path(folder)
    suffix = tabular.VOLUME_SUFFIXES[volume_format]
    plan: list[PlannedFile] = []
    add = plan.append
    if "pdf" in kinds:
        add(PlannedFile("pdf", folder / "report.pdf"))
    for kind, name in (("csv", "findings.csv"), ("json", "findings.json")):
        if kind in kinds:
            add(PlannedFile(kind, folder / name))
    dicom = folder / "dicom"
    if "sr" in kinds and content.has_numbers():  # an SR without a number is not written
        add(PlannedFile("sr", dicom / "SR_measurements.dcm"))
    if "pdf_dicom" in kinds:
        add(PlannedFile("pdf_dicom", dicom / "DOC_report_pdf.dcm"))
    for result in content.results:
        model = result.prediction.model
        tag = safe_name(f"{model.id}-{model.version}")  # one file per result key
        if result.label_map is not None:
            if "seg" in kinds:
                add(PlannedFile("seg", dicom / f"SEG_{tag}.dcm", result.key))
            if "label_maps" in kinds:
                add(PlannedFile("label_maps", folder / "volumes" / f"{tag}_labels{suffix}",
                                result.key))
        if result.heatmap is not None and "heatmaps" in kinds:
            add(PlannedFile("heatmaps", folder / "volumes" / f"{tag}_heatmap{suffix}",
                            result.key))
    for i, _key in enumerate(content.key_images):
        if "key_images_dicom" in kinds:
            add(PlannedFile("key_images_dicom", dicom / f"KEY_{i + 1:03d}.dcm", index=i))
        if "key_images_png" in kinds:
            add(PlannedFile("key_images_png", folder / "images" / f"key_{i + 1:03d}.png",
                            index=i))
    if "source_copies" in kinds:
        for i in range(source_files):
            add(PlannedFile("source_copies", folder / "source" / f"IM_{i + 1:05d}.dcm", index=i))
    return plan


def source_file_count(metadata: VolumeMetadata) -> int:
    """How many distinct files a volume was loaded from."""
    return len({path for path, _frame in metadata.source_frames})


def run_export(
    content: ReportContent,
    metadata: VolumeMetadata,
    plan: list[PlannedFile],
    *,
    deidentify: bool = False,
    overwrite: bool = False,
    patient_name: str = "ANONYMOUS",
    patient_id: str | None = None,
    deidentifier: Deidentifier | None = None,
) -> Iterator[ExportProgress]:
    """Write `plan` (a generator: run it in a worker; returns an :class:`ExportSummary`).

    Parameters
    ----------
    content : ReportContent
        What to export (its key images already rendered).
    metadata : VolumeMetadata
        The series' metadata; its source files give the DICOM objects their patient, study
        and references (and are never modified).
    plan : list of PlannedFile
        From :func:`plan_export` or built by the caller.
    deidentify : bool
        Apply the DICOM PS3.15 basic profile to everything written, with one UID mapping for
        the whole export (references keep resolving) and `patient_name` / `patient_id`
        (default: a random pseudonym) in place of the patient's. The PDF, CSV and JSON carry
        the same pseudonym and remapped UIDs, and their free text (impression, labels,
        captions) is scrubbed of the patient's name, IDs and birth date.
    deidentifier : Deidentifier, optional
        The de-identifier to use (implies `deidentify`), for a caller that writes other files
        with the same pseudonym and UID mapping (``medviewer infer``'s result.json).
    overwrite : bool
        Replace existing files (otherwise :class:`~medviewer.report.files.ExportExistsError`
        before anything is written).

    Raises
    ------
    ExportExistsError, LoadError, ValueError, OSError
        Nothing is left written when any is raised.
    """
    kinds = {p.kind for p in plan}
    if deidentify and deidentifier is None:
        deidentifier = Deidentifier(patient_name=patient_name, patient_id=patient_id)
    if "source_copies" in kinds and deidentifier is None:
        raise ValueError("copies of the source images are only exported de-identified")
    batch = FileBatch([p.path for p in plan], overwrite=overwrite)
    writer = _Writer(content, metadata, batch, deidentifier)
    try:
        yield from writer.write(plan)
        batch.commit()
    except BaseException:
        batch.abort()
        raise
    return writer.summary(plan)


class _Writer:
    """One export's state: sources, the de-identifier, the objects made so far."""

    def __init__(self, content, metadata, batch, deid: Deidentifier | None):
        self.content = content
        self.metadata = metadata
        self.batch = batch
        self.deid = deid
        if deid is not None:  # known before any text is scrubbed
            deid.learn_header(content.header)
        self.sources: SourceImages | None = None
        self.segs: dict[ResultKey, Dataset] = {}
        self.pdf: bytes | None = None
        self.warnings: list[str] = []
        self.key_series_uid = ""
        self._keys: list[KeyImage] | None = None

    # -- the steps -----------------------------------------------------------------------

    def write(self, plan: list[PlannedFile]) -> Iterator[ExportProgress]:
        kinds = {p.kind for p in plan}
        order = sorted(plan, key=lambda p: _ORDER.index(p.kind))
        if kinds & _DICOM_KINDS or self.metadata.source_frames:
            yield ExportProgress("reading the source images", 0, len(order))
            self._read_sources(required=bool(kinds & _DICOM_KINDS))
        for done, planned in enumerate(order):
            yield ExportProgress(f"writing {planned.path.name}", done, len(order))
            _WRITERS[planned.kind](self, planned)
        yield ExportProgress("done", len(order), len(order))

    def summary(self, plan: list[PlannedFile]) -> ExportSummary:
        return ExportSummary(
            tuple(plan), tuple(self.warnings), self.deid is not None,
            self.deid.uid_map() if self.deid is not None else {},
        )

    def _read_sources(self, required: bool) -> None:
        """Read the source headers (DICOM exports need them; the PDF takes the institution)."""
        try:
            self.sources = read_source_images(self.metadata)
        except LoadError:
            if required:
                raise
            return
        if self.deid is not None:
            for dataset in self.sources.datasets:
                self.deid.learn(dataset)
        institution = str(self.sources.first.get("InstitutionName", "") or "")
        if institution and not self.content.header.institution:
            header = replace(self.content.header, institution=institution)
            self.content = replace(self.content, header=header)
        self._check_burned_in()

    def _check_burned_in(self) -> None:
        if self.deid is None or self.sources is None:
            return
        first = self.sources.first
        warning = burned_in_text_warning(
            str(first.get("Modality", "")), str(first.get("SOPClassUID", "")),
            str(first.get("BurnedInAnnotation", "")),
        )
        if warning:
            self.warnings.append(warning)

    # -- what is written -----------------------------------------------------------------

    def shown_content(self) -> ReportContent:
        """The content, de-identified when asked (:meth:`Deidentifier.content`)."""
        if self.deid is None:
            return self.content
        return self.deid.content(self.content)

    def pdf_bytes(self) -> bytes:
        if self.pdf is None:
            from medviewer.report.pdf import report_pdf

            self.pdf = report_pdf(self.shown_content())
        return self.pdf

    def save_dataset(self, ds: Dataset, path: Path) -> None:
        if self.sources is not None:
            _keep_deidentification_method(ds, self.sources.first)
        if self.deid is not None:
            ds = self.deid.dataset(ds)
        ds.save_as(self.batch.temporary(path), enforce_file_format=True)

    def result(self, key: ResultKey | None) -> AIResult:
        for result in self.content.results:
            if result.key == key:
                return result
        raise ValueError(f"no result {key} in the report")

    def key_images(self) -> list[KeyImage]:
        """The key images with their source SOP Instance UIDs filled in (made once)."""
        if self._keys is None:
            self._keys = [self._with_source(key) for key in self.content.key_images]
        return self._keys

    def _with_source(self, key: KeyImage) -> KeyImage:
        if key.source_slice is None or self.sources is None or key.source_sop_uid:
            return key
        dataset, frame = self.sources.slice_dataset(key.source_slice)
        return replace(key, source_sop_uid=str(dataset.SOPInstanceUID),
                       source_frame=frame)


def _keep_deidentification_method(ds: Dataset, source: Dataset) -> None:
    """A derived object that copied PatientIdentityRemoved YES also needs the method (1C)."""
    if ds.get("PatientIdentityRemoved") != "YES" or "DeidentificationMethod" in ds:
        return
    if "DeidentificationMethodCodeSequence" in ds:
        return
    ds.DeidentificationMethod = source.get("DeidentificationMethod") or "as the source images"


def _write_pdf(w: _Writer, p: PlannedFile) -> None:
    w.batch.write_bytes(p.path, w.pdf_bytes())


def _write_csv(w: _Writer, p: PlannedFile) -> None:
    w.batch.write_bytes(p.path, tabular.findings_csv(w.shown_content()))


def _write_json(w: _Writer, p: PlannedFile) -> None:
    root = p.path.parent
    files = [f.relative_to(root).as_posix() if f.is_relative_to(root)
             else _outside_name(w, f) for f in w.batch.targets]
    document = tabular.findings_document(w.shown_content(), files)
    if w.deid is not None:
        document = w.deid.document(document)
    w.batch.write_bytes(p.path, tabular.json_bytes(document))


def _outside_name(w: _Writer, path: Path) -> str:
    """How findings.json lists a file outside its folder: the whole path, or when
    de-identified its name alone, scrubbed (the user named it; the names inside the export's
    folder are the export's own and stay as they are)."""
    return str(path) if w.deid is None else w.deid.text(path.name)


def _write_seg(w: _Writer, p: PlannedFile) -> None:
    from medviewer.report.dicom_seg import segmentation_dataset

    assert w.sources is not None
    seg = segmentation_dataset(w.result(p.result_key), w.sources,
                               series_number=SERIES_NUMBERS["seg"] + len(w.segs))
    w.segs[p.result_key] = seg
    w.save_dataset(seg, p.path)


def _write_sr(w: _Writer, p: PlannedFile) -> None:
    from medviewer.report.dicom_sr import measurement_report

    assert w.sources is not None
    sr = measurement_report(w.content, w.sources, w.segs, series_number=SERIES_NUMBERS["sr"])
    w.save_dataset(sr, p.path)


def _write_key_dicom(w: _Writer, p: PlannedFile) -> None:
    from highdicom import UID

    from medviewer.report.dicom_sc import key_image_dataset

    assert w.sources is not None and p.index is not None
    w.key_series_uid = w.key_series_uid or str(UID())
    key = w.key_images()[p.index]
    ds = key_image_dataset(key, w.sources, series_uid=w.key_series_uid,
                           series_number=SERIES_NUMBERS["key_images_dicom"],
                           instance_number=p.index + 1)
    w.save_dataset(ds, p.path)


def _write_key_png(w: _Writer, p: PlannedFile) -> None:
    assert p.index is not None
    w.batch.write_bytes(p.path, tabular.key_image_png(w.content.key_images[p.index]))


def _write_pdf_dicom(w: _Writer, p: PlannedFile) -> None:
    from medviewer.report.dicom_sc import encapsulated_pdf_dataset

    assert w.sources is not None
    ds = encapsulated_pdf_dataset(w.pdf_bytes(), w.sources, title="AI-assisted imaging report",
                                  series_number=SERIES_NUMBERS["pdf_dicom"])
    w.save_dataset(ds, p.path)


def _write_labels(w: _Writer, p: PlannedFile) -> None:
    result = w.result(p.result_key)
    assert result.label_map is not None
    tabular.write_volume(result.label_map, result.prediction.affine, w.batch.temporary(p.path))


def _write_heatmap(w: _Writer, p: PlannedFile) -> None:
    result = w.result(p.result_key)
    assert result.heatmap is not None
    tabular.write_volume(result.heatmap, result.prediction.affine, w.batch.temporary(p.path))


def _write_source_copy(w: _Writer, p: PlannedFile) -> None:
    from medviewer.io.header import read_location

    assert p.index is not None and w.sources is not None
    w.save_dataset(read_location(w.sources.locations[p.index]), p.path)


_WRITERS: dict[str, Callable[[_Writer, PlannedFile], None]] = {
    "seg": _write_seg, "sr": _write_sr, "key_images_dicom": _write_key_dicom,
    "pdf_dicom": _write_pdf_dicom, "pdf": _write_pdf, "key_images_png": _write_key_png,
    "label_maps": _write_labels, "heatmaps": _write_heatmap, "csv": _write_csv,
    "json": _write_json, "source_copies": _write_source_copy,
}
# SEGs before the SR that references them; the JSON last (it lists the files).
_ORDER = ("source_copies", "seg", "sr", "key_images_dicom", "pdf", "pdf_dicom",
          "key_images_png", "label_maps", "heatmaps", "csv", "json")
