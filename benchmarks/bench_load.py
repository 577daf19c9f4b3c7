"""Load benchmark: medviewer against SimpleITK and a raw-read floor, on synthetic CT series.

What it measures, in one run (a JSON object on stdout, progress on stderr):

1. A 512x512xN CT series (uint16, 12 bits stored, intercept -1024, so an int16 volume) is
   written once as explicit VR little endian, RLE lossless and JPEG 2000 lossless copies,
   plus ``signed_ct``: the common scanner export of the same kind of data, signed with Bits
   Stored 16 (values spanning 12 bits) and intercept -1024, uncompressed. Each is cached under
   ``.bench-cache/<name>-<N>/`` (a marker file is written last; a cache without it is
   regenerated).
2. Per series, the median of R runs, alternating the contenders within each repeat:
   ``load_series(folder)`` (header scan, sorting and decoding included); SimpleITK
   ``GetGDCMSeriesFileNames`` + ``ImageSeriesReader`` with int16 output (the reader alone
   is reported too); and, for the uncompressed copies, the raw-read floor: every file's bytes
   read sequentially into one preallocated buffer, no parsing. A warm-up pass (not timed)
   checks that medviewer's array equals SimpleITK's. Ratios are of the medians; the
   ``paired_`` ratios are medians of the per-repeat ratios (steadier on a busy machine).
3. Time to the first slice in progressive mode (``find_stacks`` + ``StackLoader`` up to the
   first index out of ``slices()``) and the scan part alone; median of R in this process
   (decoder pool warm) and once in a fresh process (everything cold but the page cache).
4. Peak memory above import in a fresh process (VmHWM before and after ``load_series``),
   as a multiple of the volume's bytes and of an int16 volume's (the target's measure).
   JPEG 2000 decoding runs in decoder processes whose memory is not in that figure; their
   own VmHWM is reported beside it.
5. Header scan rate: files/s of ``scan([folder])`` on the uncompressed copy, and of
   ``pydicom.dcmread(stop_before_pixels=True)`` over the same files in one thread.

Every read is from a warm page cache (the files were just written or read).

Targets: uncompressed loads (signed CT included) <= 0.3x SimpleITK and <= 3x the raw floor;
compressed loads never slower than SimpleITK; first slice < 0.1 s; peak memory <= 1.2x an
int16 volume; header scan >= 4000 files/s.

Usage: ``python benchmarks/bench_load.py [--slices N] [--repeats R]
[--only uncompressed|rle|j2k|signed_ct]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine_info as shared_machine_info

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".bench-cache"
MARKER = "complete.json"
ROWS = COLS = 512
SYNTAXES = {
    "uncompressed": "1.2.840.10008.1.2.1",
    "rle": "1.2.840.10008.1.2.5",
    "j2k": "1.2.840.10008.1.2.4.90",
}
SERIES: dict[str, dict[str, Any]] = {
    **{name: {"transfer_syntax": syntax} for name, syntax in SYNTAXES.items()},
    "signed_ct": {"transfer_syntax": SYNTAXES["uncompressed"], "signed": True,
                  "bits_stored": 16, "pattern_bits": 12},
}
"""SeriesSpec fields of each benchmarked series (the rest are the defaults: intercept -1024)."""
UNCOMPRESSED = ("uncompressed", "signed_ct")
PROGRESSIVE_SERIES = ("uncompressed", "j2k", "signed_ct")
TARGETS = {
    "uncompressed_ratio_vs_sitk_max": 0.3,
    "uncompressed_ratio_vs_raw_max": 3.0,
    "compressed_ratio_vs_sitk_max": 1.0,
    "first_slice_max_s": 0.1,
    "peak_memory_max_x_volume": 1.2,
    "header_scan_min_files_per_s": 4000,
}

FIRST_SLICE_CHILD = """
import json, sys, time
from medviewer.io.series import StackLoader, find_stacks
t0 = time.perf_counter()
stacks, _ = find_stacks(sys.argv[1])
t1 = time.perf_counter()
slices = StackLoader(stacks[0]).slices()
next(slices)
t2 = time.perf_counter()
for _ in slices:
    pass
print(json.dumps({"scan_s": t1 - t0, "first_slice_s": t2 - t0}))
"""

PEAK_MEMORY_CHILD = """
import json, sys
import numpy as np
import medviewer.io.series as series
from medviewer.io import decoder_pool

def hwm(pid="self"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0

before_pydicom = hwm()
import pydicom  # once a session (the first scan imports it; it imports its pixel plugins)
before = hwm()
volume = series.load_series(sys.argv[1])
after = hwm()
pool = decoder_pool._POOL
workers = [hwm(w.proc.pid) for w in (pool.workers if pool else ())]
print(json.dumps({"before": before, "after": after, "nbytes": volume.array.nbytes,
                  "before_pydicom": before_pydicom,
                  "dtype": str(volume.array.dtype), "workers": workers}))
"""


# -- helpers ------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress line on stderr (stdout carries only the JSON)."""
    print(f"[bench_load] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    """Median rounded to microseconds."""
    return round(statistics.median(values), 6)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None when either is missing."""
    return round(a / b, 3) if a is not None and b else None


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median of the per-repeat ratios (robust to load drifting between repeats)."""
    return round(statistics.median(a / b for a, b in zip(ours, theirs, strict=True)), 3)


def dicom_files(folder: Path) -> list[str]:
    """The series' files, sorted by name."""
    return sorted(str(p) for p in folder.iterdir() if p.is_file())


def run_child(code: str, folder: Path) -> dict[str, Any]:
    """Run `code` in a fresh interpreter with `folder` as argv[1]; parse its JSON stdout."""
    done = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=REPO, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- data ---------------------------------------------------------------------------------


def ensure_series(name: str, slices: int) -> Path:
    """The cached folder of the `name` copy, written first if the cache is missing or partial."""
    root = CACHE / f"{name}-{slices}"
    folder = root / "dicom"
    if (root / MARKER).is_file():
        return folder
    if root.exists():
        shutil.rmtree(root)
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    log(f"writing {slices} {name} slices to {folder} (once; cached)")
    start = time.perf_counter()
    spec = SeriesSpec(shape=(slices, ROWS, COLS), seed=0, **SERIES[name])
    written = write_series(folder, spec)
    seconds = time.perf_counter() - start
    (root / MARKER).write_text(json.dumps({"files": len(written.paths), "write_s": seconds}))
    log(f"  written in {seconds:.1f} s")
    return folder


# -- contenders ---------------------------------------------------------------------------


def time_medviewer(folder: Path) -> tuple[float, np.ndarray]:
    """Wall time of ``load_series(folder)`` and its array."""
    from medviewer.io.series import load_series

    start = time.perf_counter()
    volume = load_series(folder)
    return time.perf_counter() - start, volume.array


def time_sitk(folder: Path) -> tuple[float, float, Any]:
    """(file names + read, read only) wall times of SimpleITK, and its image."""
    import SimpleITK

    start = time.perf_counter()
    names = SimpleITK.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    named = time.perf_counter()
    reader = SimpleITK.ImageSeriesReader()
    reader.SetFileNames(names)
    reader.SetOutputPixelType(SimpleITK.sitkInt16)
    image = reader.Execute()
    end = time.perf_counter()
    return end - start, end - named, image


def time_raw_floor(paths: list[str], sizes: list[int]) -> float:
    """Read every file whole, in order, into one buffer allocated (untouched) beforehand."""
    buffer = np.empty(sum(sizes), dtype=np.uint8)
    view = memoryview(buffer)
    start = time.perf_counter()
    offset = 0
    for path, size in zip(paths, sizes, strict=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            got = os.preadv(fd, [view[offset : offset + size]], 0)
        finally:
            os.close(fd)
        if got != size:
            raise OSError(f"{path}: read {got} of {size} bytes")
        offset += size
    return time.perf_counter() - start


# -- sections -----------------------------------------------------------------------------


def compare_once(folder: Path) -> dict[str, Any]:
    """Warm-up load by both contenders; whether the arrays are equal (and dtypes)."""
    import SimpleITK

    _, ours = time_medviewer(folder)
    _, _, image = time_sitk(folder)
    theirs = SimpleITK.GetArrayViewFromImage(image)
    equal = bool(ours.shape == theirs.shape and np.array_equal(ours, theirs))
    result: dict[str, Any] = {"equal_to_sitk": equal, "medviewer_dtype": str(ours.dtype),
                              "sitk_dtype": str(theirs.dtype)}
    if not equal and ours.shape == theirs.shape:
        result["equal_to_sitk_if_slice_order_reversed"] = bool(np.array_equal(ours, theirs[::-1]))
    return result


def bench_syntax(name: str, folder: Path, repeats: int) -> dict[str, Any]:
    """Median load times of medviewer, SimpleITK and (uncompressed) the raw floor."""
    log(f"{name}: warm-up and equality check")
    check = compare_once(folder)
    paths = dicom_files(folder)
    sizes = [os.path.getsize(p) for p in paths]
    runs: dict[str, list[float]] = {"medviewer": [], "sitk": [], "sitk_reader_only": []}
    if name in UNCOMPRESSED:
        runs["raw_floor"] = []
    for repeat in range(repeats):
        seconds, _ = time_medviewer(folder)
        runs["medviewer"].append(seconds)
        total, reader_only, _ = time_sitk(folder)
        runs["sitk"].append(total)
        runs["sitk_reader_only"].append(reader_only)
        if "raw_floor" in runs:
            runs["raw_floor"].append(time_raw_floor(paths, sizes))
        log(f"{name}: repeat {repeat + 1}/{repeats}: medviewer {seconds:.3f} s, "
            f"SimpleITK {total:.3f} s")
    return _syntax_result(runs, check, len(paths), sum(sizes))


def _syntax_result(runs: dict[str, list[float]], check: dict[str, Any], files: int,
                   total_bytes: int) -> dict[str, Any]:
    mv, sitk_s = median(runs["medviewer"]), median(runs["sitk"])
    raw = median(runs["raw_floor"]) if "raw_floor" in runs else None
    result: dict[str, Any] = {
        "files": files,
        "file_bytes": total_bytes,
        "medviewer_s": mv,
        "sitk_s": sitk_s,
        "sitk_reader_only_s": median(runs["sitk_reader_only"]),
        "ratio_vs_sitk": ratio(mv, sitk_s),
        "ratio_vs_sitk_reader_only": ratio(mv, median(runs["sitk_reader_only"])),
    }
    result["paired_ratio_vs_sitk"] = paired_ratio(runs["medviewer"], runs["sitk"])
    if raw is not None:
        result.update(raw_floor_s=raw, ratio_vs_raw=ratio(mv, raw),
                      paired_ratio_vs_raw=paired_ratio(runs["medviewer"], runs["raw_floor"]),
                      raw_floor_gb_per_s=round(total_bytes / raw / 1e9, 3))
    result.update(check)
    result["runs_s"] = {k: [round(v, 4) for v in vs] for k, vs in runs.items()}
    return result


def first_slice_once(folder: Path) -> tuple[float, float]:
    """(scan, first slice) seconds from find_stacks; the rest is then loaded, untimed."""
    from medviewer.io.series import StackLoader, find_stacks

    start = time.perf_counter()
    stacks, _ = find_stacks(folder)
    scanned = time.perf_counter()
    slices = StackLoader(stacks[0]).slices()
    next(slices)
    first = time.perf_counter()
    for _ in slices:
        pass
    return scanned - start, first - start


def bench_first_slice(folder: Path, repeats: int) -> dict[str, Any]:
    """Median (this process) and cold (fresh process) scan and first-slice times."""
    samples = [first_slice_once(folder) for _ in range(repeats)]
    cold = run_child(FIRST_SLICE_CHILD, folder)
    return {
        "first_slice_s": median([f for _, f in samples]),
        "scan_s": median([s for s, _ in samples]),
        "cold_process_first_slice_s": round(cold["first_slice_s"], 6),
        "cold_process_scan_s": round(cold["scan_s"], 6),
    }


def bench_peak_memory(folder: Path) -> dict[str, Any]:
    """Peak memory of a fresh process that loads `folder`, above its imports (pydicom's
    included: a session imports it once, at its first scan; that import is reported too)."""
    child = run_child(PEAK_MEMORY_CHILD, folder)
    above = child["after"] - child["before"]
    int16_bytes = child["nbytes"] // np.dtype(child["dtype"]).itemsize * 2
    return {
        "x_volume": round(above / child["nbytes"], 3),
        "x_int16_volume": round(above / int16_bytes, 3),
        "dtype": child["dtype"],
        "above_import_mib": round(above / 2**20, 1),
        "volume_mib": round(child["nbytes"] / 2**20, 1),
        "vmhwm_after_import_mib": round(child["before"] / 2**20, 1),
        # pydicom's import (with GDCM and openjpeg, which it imports) happens once a session,
        # at the first scan; it is not part of loading a volume, but reported here
        "pydicom_import_mib": round((child["before"] - child["before_pydicom"]) / 2**20, 1),
        "x_volume_with_pydicom_import": round(
            (child["after"] - child["before_pydicom"]) / child["nbytes"], 3
        ),
        "decoder_workers_vmhwm_mib": [round(w / 2**20, 1) for w in child["workers"]],
    }


def bench_header_scan(folder: Path, repeats: int) -> dict[str, Any]:
    """files/s of medviewer's scan and of pydicom's header-only dcmread (listing included)."""
    import pydicom

    from medviewer.io.scan import scan

    files = len(scan([folder]).records)  # warm-up
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_timed(lambda: scan([folder])))
        theirs.append(_timed(lambda: [pydicom.dcmread(p, stop_before_pixels=True)
                                      for p in dicom_files(folder)]))
    return {
        "files": files,
        "medviewer_scan_files_per_s": round(files / statistics.median(ours)),
        "pydicom_dcmread_files_per_s": round(files / statistics.median(theirs)),
        "medviewer_scan_s": median(ours),
        "pydicom_dcmread_s": median(theirs),
    }


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- report -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Processor, cores, Python and library versions, date."""
    import pydicom
    import SimpleITK

    return shared_machine_info(
        pydicom=pydicom.__version__,
        simpleitk=SimpleITK.Version_VersionString(),
        sitk_threads=SimpleITK.ProcessObject.GetGlobalDefaultNumberOfThreads(),
    )


def verdicts(report: dict[str, Any]) -> dict[str, bool]:
    """Which targets the measured figures meet (only those measured)."""
    out: dict[str, bool] = {}
    for name in UNCOMPRESSED:
        plain = report.get(name)
        if plain:
            out[f"{name}_vs_sitk"] = plain["ratio_vs_sitk"] <= TARGETS[
                "uncompressed_ratio_vs_sitk_max"]
            out[f"{name}_vs_raw"] = plain["ratio_vs_raw"] <= TARGETS[
                "uncompressed_ratio_vs_raw_max"]
    for name in ("rle", "j2k"):
        if name in report:
            out[f"{name}_vs_sitk"] = report[name]["ratio_vs_sitk"] <= TARGETS[
                "compressed_ratio_vs_sitk_max"]
    for name, figures in report.get("first_slice", {}).items():
        out[f"first_slice_{name}"] = figures["first_slice_s"] < TARGETS["first_slice_max_s"]
    for name, figures in report.get("peak_memory", {}).items():
        out[f"peak_memory_{name}"] = (figures["x_int16_volume"]
                                      <= TARGETS["peak_memory_max_x_volume"])
    scan_figures = report.get("header_scan")
    if scan_figures:
        out["header_scan"] = (scan_figures["medviewer_scan_files_per_s"]
                              >= TARGETS["header_scan_min_files_per_s"])
    for name in SERIES:
        if name in report:
            out[f"{name}_equal_to_sitk"] = report[name]["equal_to_sitk"]
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """--slices N, --repeats R, --only SYNTAX."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300, help="slices in the series (300)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender (5)")
    parser.add_argument("--only", choices=tuple(SERIES), help="benchmark one series only")
    args = parser.parse_args(argv)
    if args.slices < 2 or args.repeats < 1:
        parser.error("--slices must be >= 2 and --repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every section and print the JSON report."""
    args = parse_args(argv)
    started = time.perf_counter()
    names = [args.only] if args.only else list(SERIES)
    folders = {name: ensure_series(name, args.slices) for name in names}
    report: dict[str, Any] = {"machine": machine_info(), "slices": args.slices,
                              "rows": ROWS, "columns": COLS, "repeats": args.repeats,
                              "volume_bytes": args.slices * ROWS * COLS * 2}
    for name in names:
        report[name] = bench_syntax(name, folders[name], args.repeats)
    progressive = [n for n in names if n in PROGRESSIVE_SERIES]
    log("first slice in progressive mode")
    report["first_slice"] = {n: bench_first_slice(folders[n], args.repeats) for n in progressive}
    log("peak memory")
    report["peak_memory"] = {n: bench_peak_memory(folders[n]) for n in progressive}
    if "uncompressed" in folders:
        log("header scan")
        report["header_scan"] = bench_header_scan(folders["uncompressed"], args.repeats)
    report["targets"] = TARGETS
    report["meets_targets"] = verdicts(report)
    report["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
