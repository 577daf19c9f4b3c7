"""What a report holds: header, AI results, key images, user measurements and the impression.

Built by the GUI (or the CLI) from what the user sees; consumed by the PDF writer, the DICOM
writers and the tabular exports. numpy only, immutable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medviewer import __version__
from medviewer.core import formatting as fmt
from medviewer.core import measurements as mm
from medviewer.core.findings import AIResult, ResultKey, now_iso
from medviewer.core.volume import VolumeMetadata

#: Shown on every report whatever the models say: medviewer itself is not a medical device.
SOFTWARE_DISCLAIMER = (
    "Generated with medviewer, research software that is not a medical device. AI results "
    "must be reviewed by a qualified reader."
)


@dataclass(frozen=True)
class ReportHeader:
    """Who and what the report is about (DICOM values: dates ``YYYYMMDD``, names ``A^B``).

    Attributes
    ----------
    units : str
        Units of the image values (``"HU"`` for CT), used for mean values.
    generated : str
        ISO 8601 time the report was made.
    app_version : str
        medviewer's version.
    """

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    series_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    modality: str = ""
    institution: str = ""
    units: str = ""
    generated: str = field(default_factory=now_iso)
    app_version: str = __version__

    @classmethod
    def of(cls, metadata: VolumeMetadata, institution: str = "") -> ReportHeader:
        """The header of a loaded series (`institution` comes from the files when known)."""
        return cls(
            patient_name=metadata.patient_name,
            patient_id=metadata.patient_id,
            patient_birth_date=metadata.patient_birth_date,
            patient_sex=metadata.patient_sex,
            study_uid=metadata.study_uid,
            study_date=metadata.study_date,
            study_description=metadata.study_description,
            accession_number=metadata.accession_number,
            series_uid=metadata.series_uid,
            series_number=metadata.series_number,
            series_description=metadata.series_description,
            modality=metadata.modality,
            institution=institution,
            units=metadata.units,
        )


@dataclass(frozen=True, eq=False)
class KeyImage:
    """One rendered slice, pixels exactly as the viewer drew them.

    Attributes
    ----------
    rgb : numpy.ndarray
        ``(rows, cols, 3)`` uint8. Overlay or heatmap, scale bar, orientation letters and
        window/level are burned in; patient identifiers are not.
    caption : str
        What it shows, e.g. ``"nodule 1: 27.4 mm, 10.4 mL"``.
    plane : str
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    slice_text : str
        Where, as the viewer says it (``"Im 123/300, Pos -41.5 mm"``).
    window : (float, float)
        ``(center, width)`` it was shown with (while `voi_lut` is set, only that LUT's
        approximate equivalent).
    mm_per_pixel : float
        Size of one pixel of `rgb` on the patient, in mm.
    legend : tuple of (str, str)
        ``(name, "#rrggbb")`` of the labels or colour map drawn over the image.
    origin : str
        ``"finding"`` (made for a finding) or ``"user"`` (added from the viewer).
    result_key : tuple or None
        The AI result it illustrates, when any.
    source_slice : int or None
        The volume slice (first array axis) shown, when the plane is the acquisition plane;
        None when the plane cuts across source images. The exporter resolves it to
        `source_sop_uid`.
    source_sop_uid : str
        SOP Instance UID of the source image shown, empty when unknown.
    source_frame : int or None
        0-based frame of that source image when it is multi-frame.
    voi_lut : str
        Name of the VOI LUT of the files it was shown through (``"VOI LUT: ..."``), empty
        for a linear window.
    """

    rgb: np.ndarray
    caption: str
    plane: str
    slice_text: str
    window: tuple[float, float]
    mm_per_pixel: float
    legend: tuple[tuple[str, str], ...] = ()
    origin: str = "finding"
    result_key: ResultKey | None = None
    source_slice: int | None = None
    source_sop_uid: str = ""
    source_frame: int | None = None
    voi_lut: str = ""

    @property
    def display_text(self) -> str:
        """How its values were shown: ``"W 400 L 40"`` or the VOI LUT's name."""
        return self.voi_lut or fmt.window(*self.window)

    def __post_init__(self) -> None:
        rgb = self.rgb
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
            raise ValueError(f"key image must be (rows, cols, 3) uint8: {rgb.shape} {rgb.dtype}")


@dataclass(frozen=True)
class MeasurementLine:
    """One user measurement as the report lists it.

    Attributes
    ----------
    text : str
        The viewer's one-line summary (``"Distance 42.3 mm"``).
    kind : str
        ``"distance"``, ``"angle"``, ``"ellipse"``, ``"rectangle"`` or ``"probe"``.
    value : float or None
        The main number: length in mm, angle in degrees, area in mm², probe value.
    unit : str
        UCUM unit of `value` (``"mm"``, ``"deg"``, ``"mm2"``, ``"[hnsf'U]"``...).
    points : tuple of (float, float, float)
        The measurement's LPS points in mm.
    plane : str
    label : str
    """

    text: str
    kind: str
    value: float | None
    unit: str
    points: tuple[tuple[float, float, float], ...]
    plane: str
    label: str = ""
    outline_type: str = ""
    outline: tuple[tuple[float, float, float], ...] = ()

    @classmethod
    def of(
        cls,
        measurement: mm.Measurement,
        units: str = "",
        plane_affine: np.ndarray | None = None,
        image: np.ndarray | None = None,
        suv_factor: float | None = None,
    ) -> MeasurementLine:
        """A viewer measurement as a report line.

        With the affine of the plane it was drawn on, an ROI gets its area and its outline
        (``outline_type`` ``"ELLIPSE"`` or ``"POLYGON"``, LPS points); with that plane's
        `image` too, the text has the ROI's statistics or the probe's value, as the viewer
        lists them (with a PET's `suv_factor`: SUVmax and SUVmean, or the probe's SUV).
        """
        points = measurement.points
        value, unit, outline_type, outline = None, "", "", ()
        if measurement.kind == "distance":
            value, unit = mm.distance_mm(points[0], points[1]), "mm"
        elif measurement.kind == "angle":
            value, unit = mm.angle_deg(points[0], points[1], points[2]), "deg"
        elif measurement.kind in mm.ROI_KINDS and plane_affine is not None:
            value, unit = mm.roi_area(plane_affine, measurement), "mm2"
            outline_type, drawn = mm.roi_outline(plane_affine, measurement)
            outline = tuple(tuple(float(v) for v in p) for p in drawn)
        elif measurement.kind == "probe" and image is not None and plane_affine is not None:
            probed = mm.probe_value(image, plane_affine, points[0])
            if isinstance(probed, float | int):
                value, unit = float(probed), "[hnsf'U]" if units == "HU" else ""
        return cls(
            text=mm.summary(measurement, image, plane_affine, units, suv_factor),
            kind=measurement.kind, value=value, unit=unit,
            points=tuple(tuple(float(v) for v in p) for p in points),
            plane=measurement.plane, label=measurement.label,
            outline_type=outline_type, outline=outline,
        )


@dataclass(frozen=True)
class ReportContent:
    """Everything one report and its DICOM objects are made from (one series).

    Attributes
    ----------
    header : ReportHeader
    results : tuple of AIResult
        Snapshots of the AI results to report, in the order they are listed.
    key_images : tuple of KeyImage
        Finding key images first, then those the user added.
    measurements : tuple of MeasurementLine
    impression : str
        Free text the user wrote.
    """

    header: ReportHeader
    results: tuple[AIResult, ...] = ()
    key_images: tuple[KeyImage, ...] = ()
    measurements: tuple[MeasurementLine, ...] = ()
    impression: str = ""

    def has_numbers(self) -> bool:
        """True when an SR would hold at least one number: a class probability, a segment
        with voxels, or a measurement with a value."""
        for result in self.results:
            stats = result.statistics.values()
            if result.prediction.classes or any(s.voxels for s in stats):
                return True
        return any(m.value is not None for m in self.measurements)

    def disclaimers(self) -> list[str]:
        """Each model's intended use (once each), then medviewer's own disclaimer."""
        seen: list[str] = []
        for result in self.results:
            text = result.prediction.model.intended_use.strip()
            if text and text not in seen:
                seen.append(text)
        return [*seen, SOFTWARE_DISCLAIMER]

    def to_json(self) -> dict[str, Any]:
        """Header, impression and measurements as JSON-ready values (results go separately)."""
        header = {k: v for k, v in self.header.__dict__.items()}
        return {
            "header": header,
            "impression": self.impression,
            "measurements": [
                {"text": m.text, "kind": m.kind, "value": m.value, "unit": m.unit,
                 "plane": m.plane, "label": m.label, "points_lps_mm": [list(p) for p in m.points]}
                for m in self.measurements
            ],
            "key_images": [
                {"caption": k.caption, "plane": k.plane, "slice": k.slice_text,
                 "window": list(k.window), "voi_lut": k.voi_lut, "origin": k.origin}
                for k in self.key_images
            ],
        }
