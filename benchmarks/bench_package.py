"""Package benchmark: the desktop bundle's size and its start-up time, beside the unfrozen app.

1. ``size``: the bundle folder (``dist/medviewer`` from ``make package``) in bytes, by
   component (what dominates: torch, SimpleITK, Qt, ...), and its largest files; the archive
   ``dist/medviewer-<version>-linux-x86_64.tar.gz`` when present.
2. ``startup``: process launch -> main window painted (the ``--startup-probe`` file, written
   from a zero-delay timer after the window's first paint), R fresh processes of the bundle's
   executable, interleaved with R of the peer, the same code unfrozen (``python -m medviewer``
   from this venv). Both run with an empty database and settings, Qt offscreen.
3. ``version_s``: ``medviewer --version`` (the frozen bootloader + interpreter floor).

Target: start to main window <= 2 s (median).

Usage: ``python benchmarks/bench_package.py [--bundle dist/medviewer] [--runs 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine_info

REPO = Path(__file__).resolve().parent.parent
TARGET_STARTUP_S = 2.0
# Top-level entries of the bundle's _internal folder, grouped by what they belong to.
GROUPS = {
    "torch": ("torch", "functorch", "torchgen"),
    "SimpleITK": ("SimpleITK",),
    "Qt (PySide6, shiboken6)": ("PySide6", "shiboken6"),
    "python (libpython, stdlib)": ("libpython", "python3", "base_library.zip", "lib-dynload"),
    "numpy": ("numpy",),
    "DICOM codecs (gdcm, libjpeg, openjpeg, CharLS, rle)": (
        "_gdcm", "python_gdcm", "_libjpeg", "_openjpeg", "_CharLS", "rle", "libjpeg",
        "openjpeg", "jpeg_ls", "pylibjpeg",
    ),
    "medviewer (incl. 3 models)": ("medviewer",),
    "MONAI": ("monai",),
}


def group_of(name: str) -> str:
    """Which :data:`GROUPS` entry a top-level name belongs to ("other" if none)."""
    for group, prefixes in GROUPS.items():
        if name.startswith(prefixes):
            return group
    return "other"


def size_report(bundle: Path) -> dict[str, Any]:
    """Total bytes, bytes per group, the 10 largest files."""
    internal = bundle / "_internal"
    files = [p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()]
    by_group: dict[str, int] = {}
    for path in files:
        if path.is_relative_to(internal):
            group = group_of(path.relative_to(internal).parts[0])
        else:  # the executable: bootloader + the archive of every pure-Python module
            group = "executable (bootloader + Python modules archive)"
        by_group[group] = by_group.get(group, 0) + path.stat().st_size
    total = sum(by_group.values())
    largest = sorted(files, key=lambda p: p.stat().st_size, reverse=True)[:10]
    archives = sorted(bundle.parent.glob("medviewer-*-linux-*.tar.gz"))
    return {
        "bundle_bytes": total,
        "bundle_mib": round(total / 2**20, 1),
        "files": len(files),
        "by_group_mib": {
            g: round(b / 2**20, 1) for g, b in sorted(by_group.items(), key=lambda kv: -kv[1])
        },
        "largest_files_mib": {
            str(p.relative_to(bundle)): round(p.stat().st_size / 2**20, 1) for p in largest
        },
        "archive_mib": round(archives[-1].stat().st_size / 2**20, 1) if archives else None,
    }


def startup_once(command: list[str], tmp: Path, run: int) -> float:
    """Seconds from launch to the main window painted (one fresh process)."""
    probe = tmp / f"probe-{run}.json"
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    launched = time.monotonic()
    done = subprocess.run(
        [*command, "--startup-probe", str(probe), "--db", str(tmp / f"db{run}.sqlite"),
         "--settings", str(tmp / f"s{run}.ini")],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp,
    )
    if done.returncode != 0 or not probe.is_file():
        raise RuntimeError(f"{command[0]} did not start: {done.stderr[-2000:]}")
    record = json.loads(probe.read_text())
    if record["heavy_modules"]:
        raise RuntimeError(f"start-up imported {record['heavy_modules']}")
    return record["shown"] - launched


def timed(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return time.monotonic() - started


def startup_report(bundle: Path, runs: int) -> dict[str, Any]:
    """Bundle and unfrozen peer, interleaved, `runs` each; plus --version floors."""
    frozen = [str(bundle / "medviewer")]
    peer = [sys.executable, "-m", "medviewer"]
    times: dict[str, list[float]] = {"bundle": [], "peer": []}
    with tempfile.TemporaryDirectory(prefix="bench_package-") as tmp:
        startup_once(frozen, Path(tmp), -1)  # first launch: page cache, font cache
        for run in range(runs):
            times["bundle"].append(startup_once(frozen, Path(tmp), 2 * run))
            times["peer"].append(startup_once(peer, Path(tmp), 2 * run + 1))
            print(f"run {run + 1}/{runs}: bundle {times['bundle'][-1]:.3f} s, "
                  f"python -m medviewer {times['peer'][-1]:.3f} s", file=sys.stderr)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "bundle_startup_s": round(median["bundle"], 3),
        "bundle_runs_s": [round(t, 3) for t in times["bundle"]],
        "peer_unfrozen_startup_s": round(median["peer"], 3),
        "peer_runs_s": [round(t, 3) for t in times["peer"]],
        "ratio_bundle_to_unfrozen": round(median["bundle"] / median["peer"], 3),
        "bundle_version_s": round(statistics.median(timed([*frozen, "--version"])
                                                    for _ in range(runs)), 3),
        "peer_version_s": round(statistics.median(timed([*peer, "--version"])
                                                  for _ in range(runs)), 3),
        "target_startup_s": TARGET_STARTUP_S,
        "met": median["bundle"] <= TARGET_STARTUP_S,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "dist" / "medviewer")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if not (args.bundle / "medviewer").is_file():
        print(f"bench_package: no bundle in {args.bundle} (make package)", file=sys.stderr)
        return 2
    report = {
        "machine": machine_info(qt_qpa_platform=os.environ.get("QT_QPA_PLATFORM", "offscreen")),
        "size": size_report(args.bundle),
        "startup": startup_report(args.bundle, args.runs),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
