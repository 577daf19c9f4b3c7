"""Hostile-input benchmark: how long ``medviewer index`` takes to skip what it cannot use.

Each case is a folder holding a small valid CT series beside hostile files; the command is run
in a fresh process (start-up included) and its JSON report checked: the CT's instances are
indexed and every hostile file is skipped with a reason. Peer, in the same run: the same
command on the CT alone, so the figure that matters is the extra time the hostile files cost.

Cases (the issue-17 findings, which took 49 s and 42 s before, and hung for the special files):

- ``zeros_200mb``: a sparse 200 MB file of zeros;
- ``zip_4000_members``: a zip of 4,000 members (one DICOM, the rest junk);
- ``special_files``: a named pipe and a link to /dev/zero;
- ``nested_600``: 600 files with sequences nested 600 deep.

Prints one JSON object: the machine, and per case the seconds, the extra seconds over the
peer, instances and skips.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_info
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

CT_SLICES = 4


def index(folder: Path, db: Path) -> tuple[float, dict]:
    """Seconds and JSON report of ``medviewer index FOLDER --json`` in a fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "medviewer", "index", str(folder), "--db", str(db), "--json"],
        capture_output=True, text=True, timeout=1800, check=True,
    )
    return time.perf_counter() - start, json.loads(done.stdout)


def zeros(folder: Path) -> int:
    with open(folder / "zeros.dcm", "wb") as stream:
        stream.truncate(200 * 1024 * 1024)
    return 1


def many_members(folder: Path) -> int:
    ct = next((folder / "ct").iterdir()).read_bytes()
    with zipfile.ZipFile(folder / "many.zip", "w") as archive:
        for i in range(4000):
            archive.writestr(f"m{i:05d}.dcm", ct if i == 0 else b"junk %d" % i)
    return 3999


def special(folder: Path) -> int:
    os.mkfifo(folder / "pipe.dcm")
    os.symlink("/dev/zero", folder / "zero.dcm")
    return 2


def nested(folder: Path) -> int:
    """600 copies of a CT slice whose Referenced Image Sequence nests 600 levels (bytes
    written directly: building such a dataset in pydicom itself exhausts memory)."""
    data = bytearray(next((folder / "ct").iterdir()).read_bytes())
    at = data.index(b"\x08\x00\x3e\x10")  # (0008,103E) Series Description
    opening = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    opening += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data[at:at] = opening * 600 + closing * 600
    (folder / "nested").mkdir()
    for i in range(600):
        (folder / "nested" / f"n{i:03d}.dcm").write_bytes(bytes(data))
    return 600


CASES: dict[str, Callable[[Path], int]] = {
    "zeros_200mb": zeros, "zip_4000_members": many_members, "special_files": special,
    "nested_600": nested,
}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    peer_folder = root / "peer"
    write_series(peer_folder / "ct", SeriesSpec(shape=(CT_SLICES, 64, 64), seed=1))
    peer, _ = index(peer_folder, root / "peer.sqlite")
    results: dict[str, dict] = {}
    for name, make in CASES.items():
        folder = root / name
        write_series(folder / "ct", SeriesSpec(shape=(CT_SLICES, 64, 64), seed=1))
        hostile = make(folder)
        seconds, report = index(folder, root / f"{name}.sqlite")
        ct_instances = CT_SLICES + (1 if name == "zip_4000_members" else 0)
        assert report["instances"] == ct_instances, report["instances"]
        assert len(report["skipped"]) == hostile, len(report["skipped"])
        results[name] = {
            "seconds": round(seconds, 3), "extra_seconds_over_peer": round(seconds - peer, 3),
            "instances": report["instances"], "skipped": len(report["skipped"]),
            "reasons": sorted({s["reason"] for s in report["skipped"]})[:3],
        }
        print(f"{name}: {seconds:.2f} s", file=sys.stderr)
    print(json.dumps({"machine": machine_info(), "peer_ct_alone_seconds": round(peer, 3),
                      "cases": results}, indent=2))


if __name__ == "__main__":
    main()
