"""Export benchmark: what each kind of export file costs on a chest-CT-sized series.

A synthetic 300 x 512 x 512 CT (0.7 x 0.7 x 1.0 mm, single-frame files) with a label map of
two lungs (boxes) and five nodules (balls), measured with medviewer's statistics; five key
images of 1024 x 1024. Each kind is exported alone into a fresh folder (``run_export``, the
code the dialog and ``infer --pdf/--seg/--sr`` use), wall time per kind, then everything at
once, and everything de-identified (with de-identified copies of the 300 source files).

Peer in the same run: highdicom's ``Segmentation`` built directly from the same sources and
label map, and ``pydicom.dcmread`` of the 300 headers (what every DICOM export reads first).
Prints one JSON object. Usage: ``python benchmarks/bench_export.py [--slices N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine_info


def _volume(folder: Path, slices: int):
    from medviewer.io.series import load_series
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    spec = SeriesSpec(shape=(slices, 512, 512), pixel_spacing=(0.7, 0.7), slice_spacing=1.0,
                      shuffle=False, seed=11)
    write_series(folder, spec)
    return load_series(folder)


def _content(volume):
    from medviewer.ai.statistics import segment_statistics
    from medviewer.core.findings import AIResult, ModelInfo, Prediction, Segment
    from medviewer.report.content import KeyImage, ReportContent, ReportHeader

    n = volume.shape[0]
    labels = np.zeros(volume.shape, np.uint8)
    labels[n // 10: 9 * n // 10, 100:400, 60:240] = 1
    labels[n // 10: 9 * n // 10, 100:400, 280:460] = 2
    s, r, c = np.ogrid[:n, :512, :512]
    for k in range(5):
        z, y, x, radius = n // 6 * (k + 1) % n, 150 + 40 * k, 120 + 60 * k, 6 + 3 * k
        labels[(s - z) ** 2 + (r - y) ** 2 + (c - x) ** 2 <= radius**2] = 3
    segments = {1: Segment(1, "left lung", "#4aa3df"), 2: Segment(2, "right lung", "#e0a030"),
                3: Segment(3, "nodule", "#ff3030")}
    stats = segment_statistics(labels, volume.affine, {k: v.name for k, v in segments.items()},
                               volume.array)
    model = ModelInfo("bench-seg", "Bench segmenter", "1.0", "0" * 64, "segmentation",
                      "Benchmark only.")
    prediction = Prediction(model, "segmentation", "CPU", 1.0, "2026-11-21T00:00:00+00:00",
                            volume.metadata.series_uid, volume.affine, volume.shape,
                            label_map=labels, segments=segments, statistics=stats)
    rng = np.random.default_rng(0)
    keys = tuple(KeyImage(rng.integers(0, 255, (1024, 1024, 3), dtype=np.uint8), f"key {i}",
                          "axial", f"Im {i}", (40.0, 400.0), 0.3, source_slice=i * 10)
                 for i in range(5))
    return ReportContent(ReportHeader.of(volume.metadata), (AIResult.of(prediction),), keys,
                         impression="Benchmark.")


def _export(content, volume, kinds, folder: Path, **kw) -> float:
    from medviewer.report import export as ex

    plan = ex.plan_export(content, folder, kinds,
                          source_files=ex.source_file_count(volume.metadata))
    started = time.perf_counter()
    for _ in ex.run_export(content, volume.metadata, plan, **kw):
        pass
    return time.perf_counter() - started


def _peers(content, volume) -> dict:
    import highdicom as hd
    import pydicom

    paths = [p for p, _f in volume.metadata.source_frames]
    started = time.perf_counter()
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    read_s = time.perf_counter() - started
    result = content.results[0]
    descriptions = [
        hd.seg.SegmentDescription(
            k, s.name, hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
            hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
            hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            hd.AlgorithmIdentificationSequence("x", hd.sr.CodedConcept("123110", "DCM", "AI"), "1"),
        ) for k, s in sorted(result.segments.items())
    ]
    started = time.perf_counter()
    seg = hd.seg.Segmentation(
        headers, result.label_map, hd.seg.SegmentationTypeValues.BINARY, descriptions,
        hd.UID(), 901, hd.UID(), 1, "bench", "bench", "1", "0",
    )
    with tempfile.TemporaryDirectory() as tmp:
        seg.save_as(Path(tmp) / "seg.dcm", enforce_file_format=True)
    return {"read_headers_s": round(read_s, 3),
            "highdicom_segmentation_s": round(time.perf_counter() - started, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    import highdicom
    import reportlab

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("writing the series", file=sys.stderr)
        volume = _volume(root / "ct", args.slices)
        content = _content(volume)
        kinds = ("pdf", "seg", "sr", "key_images_dicom", "pdf_dicom", "csv", "json",
                 "label_maps")
        seconds = {}
        for kind in kinds:
            print(f"exporting {kind}", file=sys.stderr)
            seconds[kind] = round(_export(content, volume, {kind}, root / kind), 3)
        everything = set(kinds)
        seconds["all"] = round(_export(content, volume, everything, root / "all"), 3)
        seconds["all_deidentified_with_sources"] = round(_export(
            content, volume, everything | {"source_copies"}, root / "deid", deidentify=True), 3)
        peers = _peers(content, volume)
    print(json.dumps({
        "machine": machine_info(highdicom=highdicom.__version__, reportlab=reportlab.Version),
        "series": f"{args.slices}x512x512 single-frame CT, 5 key images 1024x1024",
        "export_seconds": seconds,
        "peers": peers,
        "seg_ratio_to_highdicom": round(seconds["seg"] / peers["highdicom_segmentation_s"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
