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
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian

from medviewer import __version__
from medviewer.report.content import KeyImage
from medviewer.report.dicom_common import (
    CHARSET,
    MANUFACTURER,
    MODEL_NAME,
    equipment,
    is_positioned,
)
from medviewer.report.sources import SourceImages

__all__ = [
    "ENCAPSULATED_PDF_STORAGE",
    "encapsulated_pdf_dataset",
    "key_image_dataset",
]

ENCAPSULATED_PDF_STORAGE = EncapsulatedPDFStorage
KEY_IMAGE_SERIES_DESCRIPTION = "AI key images"
PDF_SERIES_DESCRIPTION = "AI report (PDF)"

#: Screen directions of the viewer's planes (radiological convention): (right, down).
_PLANE_ORIENTATION = {"axial": ("L", "P"), "coronal": ("L", "F"), "sagittal": ("P", "F")}


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
    positioned = is_positioned(sources.first)
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
        **equipment(),
        patient_orientation=orientation,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=KEY_IMAGE_SERIES_DESCRIPTION,
        specific_character_set=CHARSET,
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
    image.DerivationDescription = (
        f"Key image rendered by medviewer ({key.plane}, {key.display_text}): "
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
    source = sources.first
    ds = hd.SOPClass(
        study_instance_uid=str(source.StudyInstanceUID),
        series_instance_uid=series_uid or hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        sop_class_uid=ENCAPSULATED_PDF_STORAGE,
        instance_number=instance_number,
        modality="DOC",
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=PDF_SERIES_DESCRIPTION,
        specific_character_set=CHARSET,
        **equipment(),
    )
    ds.copy_patient_and_study_information(source)
    _pdf_document(ds, pdf, title)
    ds.SourceInstanceSequence = DicomSequence([_reference(s) for s in sources.datasets])
    return ds


def _pdf_document(ds: Dataset, pdf: bytes, title: str) -> None:
    """SC Equipment and Encapsulated Document modules."""
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    ds.SecondaryCaptureDeviceManufacturerModelName = MODEL_NAME
    ds.SecondaryCaptureDeviceSoftwareVersions = __version__
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
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
