"""Command line: the viewer (``medviewer [PATH...] [--demo]``) and the sub-commands
``index``, ``info``, ``screenshot``, ``demo-data`` and ``demo``.

Bad arguments and missing paths give one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from medviewer import __version__
from medviewer.core.errors import DatabaseError, LoadError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """Bad arguments discovered after parsing (a missing path, say)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = _Parser(prog="medviewer", description="DICOM viewer with AI assist.")
    parser.add_argument("--version", action="version", version=f"medviewer {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    index = sub.add_parser("index", help="index DICOM files into the study database")
    index.add_argument("paths", nargs="+", help="files, folders, DICOMDIRs or zip archives")
    index.add_argument("--db", help="database file (default: the user's study database)")
    index.add_argument("--json", action="store_true", help="print one JSON object")
    info = sub.add_parser("info", help="load a series and describe its volume")
    info.add_argument("source", help="folder, file, NIfTI/NRRD/MHA image, or database series id")
    info.add_argument("--db", help="database for a series id")
    info.add_argument("--stack", type=int, default=0, help="stack number when there are several")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    demo_data = sub.add_parser("demo-data", help="write a synthetic demo series")
    demo_data.add_argument("out", help="output folder")
    demo_data.add_argument("--seed", type=int, default=0)
    sub.add_parser("demo", help="open the viewer on the demo study (same as --demo)")
    shot = sub.add_parser("screenshot", help="render what the viewer shows for a source to PNG")
    shot.add_argument("source", help="folder, file, NIfTI/NRRD/MHA image, or database series id")
    shot.add_argument("--out", required=True, help="PNG file to write")
    shot.add_argument("--layout", choices=["1x1", "1x3"], default="1x1")
    shot.add_argument(
        "--slice",
        type=int,
        help="axial slice index, 0 = most inferior (the viewer shows it as Im N+1); default middle",
    )
    shot.add_argument("--window", help="window as WIDTH/LEVEL, e.g. 1500/-600")
    shot.add_argument("--size", default="768x768", help="image size WxH in pixels")
    shot.add_argument("--db", help="database for a series id")
    return parser


def viewer_parser() -> argparse.ArgumentParser:
    """Arguments of the viewer itself (no sub-command)."""
    parser = _Parser(
        prog="medviewer",
        description="DICOM viewer with AI assist. Sub-commands: "
        + ", ".join(COMMANDS)
        + " (medviewer COMMAND --help).",
    )
    parser.add_argument("--version", action="version", version=f"medviewer {__version__}")
    parser.add_argument("paths", nargs="*", help="folders or files to import and open")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo study")
    parser.add_argument("--db", help="study database file (default: the user's)")
    parser.add_argument("--settings", help="settings file (default: the user's)")
    parser.add_argument("--exit-after", type=int, help=argparse.SUPPRESS)  # ms, smoke tests
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        return _viewer(argv)
    args = build_parser().parse_args(argv)
    # pydicom warns about every odd value it tolerates; the skipped-file report is ours.
    warnings.filterwarnings("ignore", module="pydicom")
    try:
        return int(COMMANDS[args.command](args))
    except UsageError as exc:
        print(f"medviewer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LoadError, DatabaseError) as exc:
        print(f"medviewer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _viewer(argv: list[str]) -> int:
    args = viewer_parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="pydicom")
    try:
        _require_paths(args.paths)
    except UsageError as exc:
        print(f"medviewer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from medviewer.ui.app import run_viewer

    return run_viewer(
        args.paths,
        demo=args.demo,
        db_path=args.db,
        settings_path=args.settings,
        exit_after_ms=args.exit_after,
    )


def _require_paths(paths: Sequence[str]) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")


def cmd_index(args: argparse.Namespace) -> int:
    """``medviewer index PATH... [--db FILE] [--json]``."""
    from medviewer.io.database import StudyDatabase

    _require_paths(args.paths)
    db = StudyDatabase(args.db)
    report = db.import_paths(args.paths)
    counts = db.counts()
    if args.json:
        print(
            json.dumps(
                {
                    "patients": counts.patients,
                    "studies": counts.studies,
                    "series": counts.series,
                    "instances": counts.instances,
                    "skipped": [{"path": s.path, "reason": s.reason} for s in report.skipped],
                }
            )
        )
        return EXIT_OK
    print(f"database: {db.path}")
    print(
        f"patients: {counts.patients}  studies: {counts.studies}  series: {counts.series}  "
        f"instances: {counts.instances}"
    )
    print(
        f"files read: {report.read}  unchanged: {report.unchanged}  skipped: {len(report.skipped)}"
    )
    for skipped in report.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    """``medviewer info SOURCE [--json]``."""
    from medviewer.io.series import load_series

    source: Any = args.source
    if source.isdigit() and not os.path.exists(source):
        source = int(source)
    else:
        _require_paths([source])
    volume = load_series(source, stack=args.stack, db=args.db)
    description = describe_volume(volume)
    if args.json:
        print(json.dumps(description))
    else:
        for key, value in description.items():
            print(f"{key}: {value}")
    return EXIT_OK


def describe_volume(volume: Any) -> dict[str, Any]:
    """A JSON-ready summary of a volume: shape, spacing, affine, modality, range, warnings."""
    from medviewer.core.geometry import orientation_letters

    array = volume.array
    meta = volume.metadata
    return {
        "shape": list(volume.shape),
        "color": volume.is_color,
        "dtype": str(array.dtype),
        "spacing_mm": [round(float(v), 6) for v in volume.spacing],
        "origin_mm": [round(float(v), 6) for v in volume.origin],
        "axes": [orientation_letters(volume.direction[:, k]) for k in range(3)],
        "affine": np.round(volume.affine, 6).tolist(),
        "modality": meta.modality,
        "units": meta.units,
        "value_range": [float(array.min()), float(array.max())] if array.size else [],
        "series_uid": meta.series_uid,
        "description": meta.series_description,
        "window_presets": [[p.name, p.center, p.width] for p in meta.window_presets],
        "files": len(meta.source_paths),
        "warnings": list(meta.warnings),
    }


def cmd_demo_data(args: argparse.Namespace) -> int:
    """``medviewer demo-data OUT``: a synthetic CT series (placeholder for the demo study)."""
    from medviewer.demo import write_demo

    out = write_demo(Path(args.out), seed=args.seed)
    print(out)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """``medviewer demo``: the viewer on the demo study."""
    from medviewer.ui.app import run_viewer

    return run_viewer(demo=True)


def cmd_screenshot(args: argparse.Namespace) -> int:
    """``medviewer screenshot SOURCE --out FILE.png``: the viewer's rendering, offscreen."""
    size = _pair(args.size, "x", "--size", int)
    window = _pair(args.window, "/", "--window", float) if args.window else None
    source: Any = (
        int(args.source)
        if args.source.isdigit() and not os.path.exists(args.source)
        else args.source
    )
    if not isinstance(source, int):
        _require_paths([source])
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from medviewer.io.series import load_series
    from medviewer.ui.screenshot import render_grid, save_screenshot

    volume = load_series(source, db=args.db)
    grid = render_grid(
        volume,
        layout=args.layout,
        index=args.slice,
        window=None if window is None else (window[1], window[0]),
        size=(size[0], size[1]),
    )
    print(save_screenshot(grid, args.out))
    return EXIT_OK


def _pair(text: str, sep: str, option: str, kind: type) -> tuple:
    parts = text.lower().split(sep)
    try:
        if len(parts) != 2:
            raise ValueError
        return kind(parts[0]), kind(parts[1])
    except ValueError:
        raise UsageError(
            f"{option} expects two numbers separated by '{sep}', got {text!r}"
        ) from None


COMMANDS = {
    "index": cmd_index,
    "info": cmd_info,
    "demo-data": cmd_demo_data,
    "demo": cmd_demo,
    "screenshot": cmd_screenshot,
}


if __name__ == "__main__":
    sys.exit(main())
