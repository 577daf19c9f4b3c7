"""Phantom benchmark: how long one synthetic demo case takes to make.

Prints one JSON object: median seconds over R repeats (``--repeats``, default 3) of
``render_ct`` on a 512 x 512 x 200 axial grid (0.7 mm pixels, 1.5 mm slices; target: a few
seconds on 2 cores), ``render_radiograph`` (431 x 341 detector at 1 mm), the whole
``write_demo_data`` of one patient (render + DICOM + truth), and a peer in the same run: numpy
filling the same int16 array with Gaussian noise (the floor of touching every voxel once).

Usage: ``python benchmarks/bench_phantom.py [--repeats R] [--seed S]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info

from medviewer.synthetic import phantom
from medviewer.synthetic.demo import write_demo_data


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5000)
    args = parser.parse_args()
    case = phantom.chest_case(args.seed)
    grid = phantom.ct_grid(case)
    zs = grid.z_positions[0] + 1.5 * np.arange(200)
    grid = replace(grid, pixel_spacing=0.7, z_positions=tuple(float(z) for z in zs),
                   origin_xy=(-0.7 * 255.5, -0.7 * 255.5))
    rng = np.random.default_rng(0)
    result = {
        "benchmark": "phantom",
        "machine": machine_info(),
        "seed": args.seed,
        "ct_shape": list(grid.shape),
        "render_ct_s": _median_seconds(lambda: phantom.render_ct(case, grid), args.repeats),
        "render_radiograph_s": _median_seconds(
            lambda: phantom.render_radiograph(case), args.repeats
        ),
        "numpy_noise_floor_s": _median_seconds(
            lambda: rng.standard_normal(grid.shape, dtype=np.float32).astype(np.int16),
            args.repeats,
        ),
    }

    def one_patient() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            write_demo_data(Path(tmp) / "demo", seed=args.seed, cases=1)

    result["write_demo_data_one_patient_s"] = _median_seconds(one_patient, 1)
    result["write_demo_slices"] = phantom.chest_case(args.seed).slice_count
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
