"""Shared fixtures of the report tests: a small synthetic CT series with known AI results.

Everything is synthetic (made-up names and UIDs under the test UID root); no patient data.
"""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.statistics import segment_statistics
from medviewer.core.findings import AIResult, ModelInfo, Prediction, Segment
from medviewer.io.series import load_series
from medviewer.report.content import KeyImage, MeasurementLine, ReportContent, ReportHeader
from medviewer.synthetic.dicom_writer import SeriesSpec, write_radiograph, write_series

INTENDED_USE = "Demonstration only, on synthetic data. Not for clinical use."
SEG_MODEL = ModelInfo(
    "test-seg", "Test lungs and nodules", "1.2.0", "ab" * 32, "segmentation", INTENDED_USE
)
CLS_MODEL = ModelInfo(
    "test-cls", "Test nodule classifier", "0.3.1", "cd" * 32, "classification", INTENDED_USE
)
SEGMENTS = {
    1: Segment(1, "left lung", "#4aa3df"),
    2: Segment(2, "right lung", "#e0a030"),
    3: Segment(3, "nodule", "#ff3030"),
}
CT_SPEC = SeriesSpec(
    shape=(12, 32, 28),
    pixel_spacing=(0.8, 0.9),
    slice_spacing=2.0,
    patient_name="TESTPERSON^ALICE",
    patient_id="PID-4711",
    series_description="chest ct",
    seed=7,
)


@pytest.fixture(scope="session")
def ct_volume(tmp_path_factory):
    """The synthetic CT, loaded as the viewer loads it (files shuffled on disk)."""
    folder = tmp_path_factory.mktemp("report-ct")
    write_series(folder, CT_SPEC)
    return load_series(folder)


def truth_label_map(shape: tuple[int, int, int]) -> np.ndarray:
    """Label 1: a box; label 3: a ball and a single voxel (two components); label 2 empty."""
    labels = np.zeros(shape, np.uint8)
    labels[2:10, 4:14, 3:12] = 1
    s, r, c = np.mgrid[: shape[0], : shape[1], : shape[2]]
    ball = (((s - 6) * 2.0) ** 2 + ((r - 20) * 0.8) ** 2 + ((c - 18) * 0.9) ** 2) <= 4.5**2
    labels[ball] = 3
    labels[1, 28, 25] = 3
    return labels


def make_seg_result(volume) -> AIResult:
    """A segmentation result on `volume` with statistics measured on its label map."""
    labels = truth_label_map(volume.array.shape[:3])
    names = {k: s.name for k, s in SEGMENTS.items()}
    stats = segment_statistics(labels, volume.affine, names, volume.array)
    prediction = Prediction(
        model=SEG_MODEL,
        task="segmentation",
        device="CPU (1 threads)",
        seconds=1.25,
        created="2026-11-21T10:00:00+00:00",
        series_uid=volume.metadata.series_uid,
        affine=volume.affine,
        shape=labels.shape,
        label_map=labels,
        segments=dict(SEGMENTS),
        statistics=stats,
    )
    return AIResult.of(prediction)


def make_cls_result(volume) -> AIResult:
    """A classification result with a heatmap peaking at the ball's centre."""
    shape = volume.array.shape[:3]
    s, r, c = np.mgrid[: shape[0], : shape[1], : shape[2]]
    heat = np.exp(-(((s - 6) * 2.0) ** 2 + ((r - 20) * 0.8) ** 2 + ((c - 18) * 0.9) ** 2) / 50.0)
    prediction = Prediction(
        model=CLS_MODEL,
        task="classification",
        device="CPU (1 threads)",
        seconds=0.5,
        created="2026-11-21T10:01:00+00:00",
        series_uid=volume.metadata.series_uid,
        affine=volume.affine,
        shape=shape,
        classes={"normal": 0.125, "nodule": 0.875},
        decision=("nodule",),
        threshold=0.5,
        heatmap=heat.astype(np.float32),
        heatmap_class="nodule",
    )
    return AIResult.of(prediction)


@pytest.fixture
def seg_result(ct_volume) -> AIResult:
    """A fresh segmentation result (tests may edit it)."""
    return make_seg_result(ct_volume)


@pytest.fixture
def cls_result(ct_volume) -> AIResult:
    """A fresh classification result."""
    return make_cls_result(ct_volume)


def gradient_key_image(caption: str = "nodule 1", origin: str = "finding", **kw) -> KeyImage:
    """A 96 x 128 key image with a known colour gradient (not blank)."""
    rows, cols = 96, 128
    rgb = np.zeros((rows, cols, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, cols, dtype=np.uint8)[None, :]
    rgb[..., 1] = np.linspace(0, 255, rows, dtype=np.uint8)[:, None]
    rgb[20:40, 30:60] = (255, 48, 48)
    return KeyImage(
        rgb=rgb, caption=caption, plane="axial", slice_text="Im 7/12, Pos 60.0 mm",
        window=(40.0, 400.0), mm_per_pixel=0.5, legend=(("nodule", "#ff3030"),),
        origin=origin, **kw,
    )


@pytest.fixture
def report_content(ct_volume, seg_result, cls_result) -> ReportContent:
    """A full report: both results, two key images, two measurements, an impression."""
    return ReportContent(
        header=ReportHeader.of(ct_volume.metadata, institution="Synthetic General Hospital"),
        results=(seg_result.snapshot(), cls_result.snapshot()),
        key_images=(gradient_key_image("nodule 1"), gradient_key_image("user view", "user")),
        measurements=(
            MeasurementLine("Distance 12.5 mm", "distance", 12.5, "mm",
                            ((0.0, 0.0, 60.0), (12.5, 0.0, 60.0)), "axial", ""),
            MeasurementLine("Angle 90.0°", "angle", 90.0, "deg",
                            ((10.0, 0.0, 60.0), (0.0, 0.0, 60.0), (0.0, 10.0, 60.0)), "axial",
                            "carina"),
        ),
        impression="Solitary nodule in the right upper field. Follow-up CT in 3 months.",
    )


@pytest.fixture(scope="session")
def dx_volume(tmp_path_factory):
    """A single-frame DX radiograph without patient position."""
    folder = tmp_path_factory.mktemp("report-dx")
    path, _ = write_radiograph(folder, seed=3)
    return load_series(path)
