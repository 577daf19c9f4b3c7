"""What both header readers share: the fields a record is built from and how values convert.

:mod:`medviewer.io.header` (pydicom's reading, the reference) and
:mod:`medviewer.io.fastheader` (the fast path) must give the same record, so the tags they
read, the value conversion, the transfer syntaxes they tell apart and the error that skips a
file live here, below both.

The transfer syntax UIDs are pydicom's (:mod:`pydicom.uid`), as plain strings, set on first
use (:func:`__getattr__`): importing pydicom takes a quarter of a second, which opening the
window does not pay (the first scan or load imports it anyway). The modules imported at
start-up (``header``, ``decode``) read them where they are used, as
``header_fields.NATIVE_SYNTAXES``, not with a ``from`` import at their top.
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # set by __getattr__ on first use
    IMPLICIT_VR_LE: str
    EXPLICIT_VR_LE: str
    EXPLICIT_VR_BE: str
    DEFLATED_LE: str
    NATIVE_SYNTAXES: frozenset[str]  # uncompressed pixels (deflate packs the dataset)

UNDEFINED_LENGTH = 0xFFFFFFFF
_SYNTAX_NAMES = frozenset(
    {"IMPLICIT_VR_LE", "EXPLICIT_VR_LE", "EXPLICIT_VR_BE", "DEFLATED_LE", "NATIVE_SYNTAXES"}
)


def __getattr__(name: str) -> Any:
    """The transfer syntax constants, all set from pydicom's on the first access to one."""
    if name not in _SYNTAX_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pydicom import uid

    globals().update(
        IMPLICIT_VR_LE=str(uid.ImplicitVRLittleEndian),
        EXPLICIT_VR_LE=str(uid.ExplicitVRLittleEndian),
        EXPLICIT_VR_BE=str(uid.ExplicitVRBigEndian),
        DEFLATED_LE=str(uid.DeflatedExplicitVRLittleEndian),
        NATIVE_SYNTAXES=frozenset(str(u) for u in uid.UncompressedTransferSyntaxes),
    )
    return globals()[name]


class SkipFile(Exception):
    """The file cannot be used; ``str(exc)`` is the reason shown to the user."""


# Tags the record is built from: (tag, keyword, kind). Kinds: text, uid, int (IS), us, ds
# (one float), dsn (several floats), strs (several strings).
FIELDS: tuple[tuple[int, str, str], ...] = (
    (0x00080008, "image_type", "strs"),
    (0x00080016, "sop_class_uid", "uid"),
    (0x00080018, "sop_instance_uid", "uid"),
    (0x00080020, "study_date", "text"),
    (0x00080022, "acquisition_date", "text"),
    (0x00080030, "study_time", "text"),
    (0x00080032, "acquisition_time", "text"),
    (0x00080050, "accession_number", "text"),
    (0x00080060, "modality", "text"),
    (0x00081030, "study_description", "text"),
    (0x0008103E, "series_description", "text"),
    (0x00100010, "patient_name", "text"),
    (0x00100020, "patient_id", "text"),
    (0x00100030, "patient_birth_date", "text"),
    (0x00100040, "patient_sex", "text"),
    (0x00180015, "body_part", "text"),
    (0x00180050, "slice_thickness", "ds"),
    (0x00181114, "magnification", "ds"),  # Estimated Radiographic Magnification Factor
    (0x00181164, "imager_pixel_spacing", "dsn"),
    (0x00200020, "patient_orientation", "strs"),
    (0x0020000D, "study_uid", "uid"),
    (0x0020000E, "series_uid", "uid"),
    (0x00200010, "study_id", "text"),
    (0x00200011, "series_number", "int"),
    (0x00200012, "acquisition_number", "int"),
    (0x00200013, "instance_number", "int"),
    (0x00200032, "position", "dsn"),
    (0x00200037, "orientation", "dsn"),
    (0x00200052, "frame_of_reference_uid", "uid"),
    (0x00280002, "samples_per_pixel", "us"),
    (0x00280004, "photometric", "text"),
    (0x00280006, "planar_configuration", "us"),
    (0x00280008, "frames", "int"),
    (0x00280010, "rows", "us"),
    (0x00280011, "columns", "us"),
    (0x00280030, "pixel_spacing", "dsn"),
    (0x00280100, "bits_allocated", "us"),
    (0x00280101, "bits_stored", "us"),
    (0x00280103, "pixel_representation", "us"),
    (0x00281050, "window_center", "dsn"),
    (0x00281051, "window_width", "dsn"),
    (0x00281052, "rescale_intercept", "ds"),
    (0x00281053, "rescale_slope", "ds"),
    (0x00281054, "rescale_type", "text"),
    (0x00281055, "window_explanation", "strs"),
    (0x30020011, "image_plane_pixel_spacing", "dsn"),  # RT Image
    (0x30020022, "radiation_machine_sad", "ds"),
    (0x30020026, "rt_image_sid", "ds"),
    (0x30040002, "dose_units", "text"),
    (0x3004000E, "dose_grid_scaling", "ds"),
)
FIELD_BY_TAG = {tag: (name, kind) for tag, name, kind in FIELDS}
# Elements whose presence means the loader must go through pydicom (LUTs, palettes,
# per-frame geometry, float pixel data): the fast pixel path cannot honour them.
PYDICOM_ONLY_TAGS = frozenset(
    {
        0x00283000,  # Modality LUT Sequence
        0x00283010,  # VOI LUT Sequence
        0x00281201,  # Red Palette Color LUT Data
        0x00281221,  # Segmented Red Palette Color LUT Data
        0x00289145,  # Pixel Value Transformation Sequence
        0x52009229,  # Shared Functional Groups Sequence
        0x52009230,  # Per-frame Functional Groups Sequence
    }
)
PIXEL_TAGS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}
# Default values of the record where the file says nothing.
DEFAULTS = {"frames": 1, "samples_per_pixel": 1}


def convert_value(value: Any, kind: str) -> Any:
    """Normalise a pydicom value (or decoded text from the fast parser) to the record type.

    Parameters
    ----------
    value : Any
        The element's value: pydicom's (one value or a MultiValue) or the fast parser's text.
    kind : str
        The field's kind in :data:`FIELDS`: text, uid, us, int, ds, dsn or strs.

    Returns
    -------
    Any
        A str, int, float or tuple as :class:`~medviewer.io.header.InstanceRecord` holds it;
        None for an empty value.
    """
    if value is None or value == "" or value == b"":
        return None
    if kind == "text":
        if _is_multi(value):
            return "\\".join(str(v).strip() for v in value).strip() or None
        return str(value).strip() or None
    if kind == "uid":
        return str(value).strip("\x00 ")
    if kind == "us":
        return int(value[0] if isinstance(value, list | tuple) else value)
    if kind == "int":
        return int(value[0] if _is_multi(value) else value)
    if kind == "ds":
        return float(value[0] if _is_multi(value) else value)
    values = list(value) if _is_multi(value) else [value]
    if kind == "dsn":
        return tuple(float(v) for v in values)
    return tuple(str(v).strip() for v in values)  # strs


def _is_multi(value: Any) -> bool:
    if type(value) in (str, int, float):
        return False  # the common case, without the abstract-class check
    return isinstance(value, MutableSequence | tuple)
