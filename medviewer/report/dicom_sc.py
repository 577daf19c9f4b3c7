"""DICOM Secondary Capture key images and the Encapsulated PDF copy of the report.

Both join the source's study (patient and study attributes copied from the source headers) in
series of their own:

- :func:`key_image_dataset`: one RGB Secondary Capture per key image, pixels exactly as the
  viewer drew them. They show no patient identifiers (only scale bar, orientation letters and
  window/level), hence Burned In Annotation ``NO``.
- :func:`encapsulated_pdf_dataset`: the PDF report as Encapsulated PDF Storage. The PDF shows
  the patient's name, hence Burned In Annotation ``YES``.
"""

from __future__ import annotations

import datetime

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medviewer import __version__
from medviewer.report.content import KeyImage
from medviewer.report.sources import SourceImages

__all__ = [
    "ENCAPSULATED_PDF_STORAGE",
    "MANUFACTURER",
    "encapsulated_pdf_dataset",
    "key_image_dataset",
]

MANUFACTURER = "medviewer developers"
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
KEY_IMAGE_SERIES_DESCRIPTION = "AI key images"
PDF_SERIES_DESCRIPTION = "AI report (PDF)"

_CHARSET = "ISO_IR 192"
#: Screen directions of the viewer's planes (radiological convention): (right, down).
_PLANE_ORIENTATION = {"axial": ("L", "P"), "coronal": ("L", "F"), "sagittal": ("P", "F")}
_PATIENT = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
_STUDY = (
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber",
)
_OPTIONAL = ("IssuerOfPatientID", "StudyDescription")


def key_image_dataset(
    key: KeyImage,
    sources: SourceImages,
    *,
    series_uid: str,
    series_number: int = 903,
    instance_number: int,
) -> hd.sc.SCImage:
    """An RGB Secondary Capture of one key image, in the source's study.

    Parameters
    ----------
    key : KeyImage
        The rendered image (its pixels are stored unchanged, Explicit VR Little Endian).
    sources : SourceImages
        Headers of the source series (patient, study, the referenced source image).
    series_uid : str
        Series Instance UID shared by all key images of one export.
    series_number, instance_number : int

    Returns
    -------
    highdicom.sc.SCImage
        Image Type ``DERIVED\\SECONDARY``, Conversion Type ``WSD``, the caption in Derivation
        Description and (with the slice) in Image Comments, and a Source Image Sequence
        pointing at ``key.source_sop_uid`` when set. No pixel spacing: it is a screen capture.

    Raises
    ------
    ValueError
        When ``key.source_sop_uid`` is not one of the source images.
    """
    positioned = "ImageOrientationPatient" in sources.first or (
        "SharedFunctionalGroupsSequence" in sources.first
    )
    orientation = _PLANE_ORIENTATION.get(key.plane, ("L", "P"))
    image = hd.sc.SCImage.from_ref_dataset(
        sources.first,
        pixel_array=np.ascontiguousarray(key.rgb),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=orientation,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=KEY_IMAGE_SERIES_DESCRIPTION,
        manufacturer_model_name="medviewer",
        software_versions=__version__,
        specific_character_set=_CHARSET,
    )
    if not positioned:
        image.PatientOrientation = None  # type 2: unknown for an unpositioned source
    if "Laterality" not in image:
        image.Laterality = sources.first.get("Laterality")  # type 2C, empty when unknown
    _describe_key_image(image, key)
    if key.source_sop_uid:
        image.SourceImageSequence = DicomSequence([_source_item(key, sources)])
    return image


def _describe_key_image(image: Dataset, key: KeyImage) -> None:
    image.ImageType = ["DERIVED", "SECONDARY"]
    image.ConversionType = "WSD"
    image.BurnedInAnnotation = "NO"
    center, width = key.window
    image.DerivationDescription = (
        f"Key image rendered by medviewer ({key.plane}, window {center:g}/{width:g}): "
        f"{key.caption}"
    )[:1024]
    image.ImageComments = f"{key.caption}; {key.slice_text}" if key.slice_text else key.caption


def _source_item(key: KeyImage, sources: SourceImages) -> Dataset:
    for ds in sources.datasets:
        if str(ds.SOPInstanceUID) == key.source_sop_uid:
            item = Dataset()
            item.ReferencedSOPClassUID = ds.SOPClassUID
            item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
            if key.source_frame is not None and int(ds.get("NumberOfFrames", 1) or 1) > 1:
                item.ReferencedFrameNumber = key.source_frame + 1
            return item
    raise ValueError(f"key image source {key.source_sop_uid} is not one of the source images")


def encapsulated_pdf_dataset(
    pdf: bytes,
    sources: SourceImages,
    *,
    title: str,
    series_uid: str | None = None,
    series_number: int = 904,
    instance_number: int = 1,
) -> pydicom.Dataset:
    """The PDF report as an Encapsulated PDF Storage instance in the source's study.

    Parameters
    ----------
    pdf : bytes
        The PDF file's bytes (stored padded to even length with one NUL byte).
    sources : SourceImages
        Headers of the source series: patient and study are copied, and every source image is
        listed in the Source Instance Sequence (the report is derived from them).
    title : str
        Document Title.
    series_uid : str, optional
        Series Instance UID (a new one by default).
    series_number, instance_number : int

    Returns
    -------
    pydicom.Dataset
        With file meta information (Explicit VR Little Endian), ready for ``save_as``.

    Raises
    ------
    ValueError
        When `pdf` does not look like a PDF file.
    """
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("not a PDF document (no %PDF- header)")
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(sop_uid)
    ds.SpecificCharacterSet = _CHARSET
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_uid
    _copy_patient_study(ds, sources.first)
    _pdf_series(ds, series_uid or generate_uid(), series_number)
    _pdf_document(ds, pdf, title, instance_number)
    ds.SourceInstanceSequence = DicomSequence([_reference(s) for s in sources.datasets])
    return ds


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"MEDVIEWER_{__version__}"[:16]
    return meta


def _copy_patient_study(ds: Dataset, source: Dataset) -> None:
    for keyword in (*_PATIENT, *_STUDY):
        setattr(ds, keyword, source.get(keyword))
    for keyword in _OPTIONAL:
        if source.get(keyword):
            setattr(ds, keyword, source.get(keyword))


def _pdf_series(ds: Dataset, series_uid: str, series_number: int) -> None:
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = PDF_SERIES_DESCRIPTION
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "medviewer"
    ds.SoftwareVersions = __version__
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    ds.SecondaryCaptureDeviceManufacturerModelName = "medviewer"
    ds.SecondaryCaptureDeviceSoftwareVersions = __version__


def _pdf_document(ds: Dataset, pdf: bytes, title: str, instance_number: int) -> None:
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.InstanceNumber = instance_number
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = date + time
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "18748-4", "LN"
    code.CodeMeaning = "Diagnostic Imaging Report"
    ds.ConceptNameCodeSequence = DicomSequence([code])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + b"\x00" if len(pdf) % 2 else pdf
    ds.EncapsulatedDocumentLength = len(pdf)


def _reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item
