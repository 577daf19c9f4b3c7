"""What every DICOM object medviewer writes shares: equipment, character set, and the coded
concepts (SNOMED CT) of segment and finding names.

The SEG codes each segment with :func:`segment_codes`, and the SR codes its findings with the
same function (or copies the SEG's codes), so both objects of one export always agree.
"""

from __future__ import annotations

import re
from typing import Any

from highdicom.spatial import get_image_coordinate_system
from pydicom.dataset import Dataset
from pydicom.sr.codedict import Code, codes

from medviewer import __version__

MANUFACTURER = "medviewer developers"
MODEL_NAME = "medviewer"
#: UTF-8: names and captions may hold any character.
CHARSET = "ISO_IR 192"

_ANATOMY = codes.SCT.AnatomicalStructure
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure
_TISSUE = codes.SCT.Tissue
#: Whole names (lower case, single spaces) -> (category, type), tried first.
_NAMES: dict[str, tuple[Code, Code]] = {
    "left lung": (_ANATOMY, Code("44029006", "SCT", "Left lung")),
    "right lung": (_ANATOMY, Code("3341006", "SCT", "Right lung")),
}
#: Words of a name -> (category, type), the last known word of the name wins.
_WORDS: dict[str, tuple[Code, Code]] = {
    "nodule": (_ABNORMAL, codes.SCT.Nodule),
    "nodules": (_ABNORMAL, codes.SCT.Nodule),
    "mass": (_ABNORMAL, codes.SCT.Mass),
    "lesion": (_ABNORMAL, codes.SCT.Lesion),
    "tumor": (_ABNORMAL, codes.SCT.Tumor),
    "tumour": (_ABNORMAL, codes.SCT.Tumor),
    "lung": (_ANATOMY, codes.SCT.Lung),
    "lungs": (_ANATOMY, codes.SCT.Lung),
    "liver": (_ANATOMY, codes.SCT.Liver),
    "kidney": (_ANATOMY, codes.SCT.Kidney),
    "spleen": (_ANATOMY, codes.SCT.Spleen),
    "pancreas": (_ANATOMY, codes.SCT.Pancreas),
    "heart": (_ANATOMY, codes.SCT.Heart),
    "aorta": (_ANATOMY, codes.SCT.Aorta),
    "brain": (_ANATOMY, codes.SCT.Brain),
    "bone": (_ANATOMY, codes.SCT.Bone),
}


def is_positioned(ds: Dataset) -> bool:
    """True when an image header places its pixels in patient space (Image Position and
    Orientation, or their multi-frame functional groups), as highdicom decides it."""
    return get_image_coordinate_system(ds) is not None


def equipment() -> dict[str, Any]:
    """highdicom keyword arguments naming medviewer as the equipment that made an object."""
    return {
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": MODEL_NAME,
        "software_versions": __version__,
    }


def segment_codes(name: str, lung_model: bool = False) -> tuple[Code, Code, list[Code] | None]:
    """SNOMED CT category, type and anatomic region of a segment or finding name.

    Parameters
    ----------
    name : str
        E.g. ``"left lung"``, ``"Nodule"``, ``"liver_tumour"`` (case, ``_`` and repeated
        blanks ignored).
    lung_model : bool
        True when the model segments lungs: a nodule then lies in the lung.

    Returns
    -------
    tuple
        ``(category, type, anatomic regions or None)``; Tissue/Tissue for unknown names.
    """
    key = " ".join(name.replace("_", " ").lower().split())
    category, kind = _NAMES.get(key) or _by_words(key) or (_TISSUE, _TISSUE)
    regions = [codes.SCT.Lung] if kind == codes.SCT.Nodule and lung_model else None
    return category, kind, regions


def is_known(name: str) -> bool:
    """True when :func:`segment_codes` has a specific code for `name` (not Tissue)."""
    return segment_codes(name)[1] != _TISSUE


def _by_words(key: str) -> tuple[Code, Code] | None:
    for word in reversed(re.findall(r"[a-z]+", key)):
        if word in _WORDS:
            return _WORDS[word]
    return None
