"""Batch benchmark: ``medviewer batch`` against a shell loop of ``medviewer infer`` processes.

N synthetic demo CTs (``medviewer demo-data --cases N``, seeds from 7000: no model trained or
tested on them) and one model (default the demo segmentation cascade). The loop starts one
``python -m medviewer infer`` process per series (each imports torch and loads the model
again); the batch runs them all in one process with the model loaded once. Both on the CPU
with every core. Prints JSON: seconds, series per minute, the ratio (target >= 1.5) and the
batch process's peak memory.

Usage: ``python benchmarks/bench_batch.py [--cases N] [--model ID] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info

REPO = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[bench_batch] {message}", file=sys.stderr, flush=True)


def medviewer(*args: str) -> float:
    """Run ``python -m medviewer ARGS`` and return its wall time (s)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medviewer", *args], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Write the cases, time the loop and the batch, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--model", default="demo-ct-lung-nodule-seg")
    parser.add_argument("--keep", help="write into this folder and keep it")
    args = parser.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench_batch-"))
    data = root / "data"
    if not data.exists():
        log(f"writing {args.cases} demo CTs")
        medviewer("demo-data", str(data), "--seed", "7000", "--cases", str(args.cases))
    cts = sorted(data.glob("dicom/*/CT"))
    log(f"loop: {len(cts)} infer processes")
    loop = sum(medviewer("infer", "--model", args.model, str(ct), "--out",
                         str(root / "loop" / ct.parent.name), "--device", "cpu")
               for ct in cts)  # fmt: skip
    log("batch: one process")
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", "import resource, sys; from medviewer.cli import main; "
         "code = main(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
         "sys.exit(code)", "batch", "--model", args.model, *map(str, cts), "--out",
         str(root / "batch"), "--device", "cpu", "--modality", "CT"],
        check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    batch = time.perf_counter() - started
    peak_kb = int(child.stderr.strip().splitlines()[-1])
    report = {
        "machine": machine_info(),
        "cases": len(cts),
        "model": args.model,
        "loop_s": round(loop, 1),
        "batch_s": round(batch, 1),
        "loop_series_per_min": round(60 * len(cts) / loop, 2),
        "batch_series_per_min": round(60 * len(cts) / batch, 2),
        "batch_vs_loop": round(loop / batch, 3),
        "target_batch_vs_loop": 1.5,
        "batch_peak_rss_mb": round(peak_kb / 1024, 1),
        "this_process_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
