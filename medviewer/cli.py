"""Command line: the viewer (``medviewer [PATH...] [--demo]``) and the sub-commands
``index``, ``info``, ``screenshot``, ``infer``, ``models``, ``demo-data``, ``demo``,
``about``, ``desktop`` and ``pacs``.

Bad arguments and missing paths give one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import numpy as np

from medviewer import __version__, cli_pacs, cli_segment
from medviewer.core import formatting as fmt
from medviewer.core.errors import (
    CancelledError,
    DatabaseError,
    InferenceError,
    LoadError,
    ModelCardError,
    NetworkError,
)
from medviewer.core.slab import Slab
from medviewer.io.decode_worker import serve
from medviewer.io.decoder_pool import WORKER_FLAG
from medviewer.report.prediction_files import write_prediction

if TYPE_CHECKING:
    from medviewer.ai.model_card import ModelCard
    from medviewer.ai.prediction import Prediction, Progress
    from medviewer.ai.registry import ModelEntry
    from medviewer.core.findings import AIResult
    from medviewer.core.volume import Volume
    from medviewer.report.content import KeyImage
    from medviewer.report.deidentify import Deidentifier
    from medviewer.report.export import ExportSummary

_T = TypeVar("_T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_SERIES_ID = 2**63 - 1  # database ids are SQLite integers


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
    info.add_argument("--regular-grid", action="store_true",
                      help="resample a gantry-tilted or unevenly spaced stack onto a regular "
                           "grid from its slices' true positions")  # fmt: skip
    info.add_argument("--json", action="store_true", help="print one JSON object")
    demo_data = sub.add_parser(
        "demo-data", help="write synthetic demo studies (CT and radiograph) with their truth"
    )
    demo_data.add_argument("out", help="output folder (new, or empty)")
    demo_data.add_argument(
        "--seed", type=int, help="phantom seed of the first patient (default: the demo's)"
    )
    demo_data.add_argument("--cases", type=int, default=1, help="number of patients (default 1)")
    sub.add_parser("demo", help="open the viewer on the demo study (same as --demo)")
    shot = sub.add_parser("screenshot", help="render what the viewer shows for a source to PNG")
    shot.add_argument("source", help="folder, file, NIfTI/NRRD/MHA image, or database series id")
    shot.add_argument("--out", required=True, help="PNG file to write")
    shot.add_argument("--layout", choices=["1x1", "1x3"], default="1x1")
    shot.add_argument(
        "--slice",
        type=int,
        help="slice index of --plane, 0 = most inferior/posterior/right (the viewer shows it as "
        "Im N+1); default middle",
    )
    shot.add_argument("--plane", choices=["axial", "coronal", "sagittal"], default="axial",
                      help="plane of the 1x1 layout (default axial)")
    shot.add_argument("--slab", type=float, metavar="MM",
                      help="thick-slab projection this many mm thick (see --slab-mode)")
    shot.add_argument("--slab-mode", choices=["mip", "minip", "avg"], default="mip",
                      help="projection of --slab (default mip)")
    shot.add_argument("--rotate", metavar="DEG_AROUND_LR,DEG_AROUND_AP",
                      help="true oblique MPR: turn the planes this many degrees about the "
                      "left-right then the anterior-posterior axis (0,0: patient axes, resampled)")
    shot.add_argument("--fuse", metavar="PET_SOURCE",
                      help="a PET/NM series on the same frame of reference, drawn over SOURCE")
    shot.add_argument("--window", help="window as WIDTH/LEVEL, e.g. 1500/-600")
    shot.add_argument("--size", default="768x768", help="image size WxH in pixels")
    shot.add_argument("--db", help="database for a series id")
    shot.add_argument("--model", help="run this model (id or folder) and draw its result")
    shot.add_argument("--device", default="auto", help="device for --model: auto, cpu, cuda, mps")
    shot.add_argument("--json", action="store_true",
                      help='print {"png", "seconds", "max_event_loop_stall_ms"} as JSON')
    _add_ai_parsers(sub)
    return parser


def _add_ai_parsers(sub: argparse._SubParsersAction[_Parser]) -> None:
    infer = sub.add_parser("infer", help="run a model on a series and write its results")
    infer.add_argument("source", help="folder, file, NIfTI/NRRD/MHA image, or database series id")
    infer.add_argument("--model", required=True, help="model id, or a model folder / model.json")
    infer.add_argument("--out", required=True, help="folder for result.json and NIfTI outputs")
    infer.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    infer.add_argument("--batch-size", type=int, help="slices or windows per batch")
    infer.add_argument("--target-class", help="class the heatmap explains (classifiers)")
    infer.add_argument("--probabilities", action="store_true",
                       help="also write per-voxel probabilities (segmentation; large)")
    infer.add_argument("--stack", type=int, default=0, help="stack number when there are several")
    infer.add_argument("--db", help="database for a series id")
    infer.add_argument("--json", action="store_true", help="print result.json on stdout")
    infer.add_argument("--pdf", help="also write the annotated PDF report to this file")
    infer.add_argument("--seg", help="also write a DICOM SEG of the label map to this file")
    infer.add_argument("--sr", help="also write a DICOM SR measurement report to this file")
    infer.add_argument("--impression", default="", help="impression text for the PDF report")
    infer.add_argument("--deidentify", action="store_true",
                       help="de-identify every output: result.json (remapped series UID) and "
                       "the PDF/SEG/SR (DICOM PS3.15 basic profile, scrubbed impression)")
    infer.add_argument("--overwrite", action="store_true",
                       help="replace existing --pdf/--seg/--sr files")
    infer.add_argument("--send", metavar="NODE",
                       help="C-STORE (or STOW-RS) the --seg and --sr files to this PACS node "
                       "(a configured name, AET@HOST:PORT or an http(s):// URL)")
    batch = sub.add_parser(
        "batch", help="run models over many series, resumably ('batch status DIR' reports)")
    batch.add_argument("sources", nargs="+", metavar="SOURCE",
                       help="folders or files to run on (or: status DIR)")
    batch.add_argument("--model", action="append", default=[], metavar="ID",
                       help="model id or folder (repeat for several)")
    batch.add_argument("--out", help="the batch folder: job table, index, one folder per "
                       "series and model, summary.csv/json")
    batch.add_argument("--modality", help="only series of this modality (e.g. CT)")
    batch.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    batch.add_argument("--retry", action="store_true", help="run the failed jobs again")
    batch.add_argument("--dry-run", action="store_true", help="queue and list, run nothing")
    batch.add_argument("--json", action="store_true", help="JSON lines per job, JSON summary")
    models = sub.add_parser("models", help="list, show or add AI models")
    actions = models.add_subparsers(dest="action", parser_class=_Parser)
    listing = actions.add_parser("list", help="bundled and user models (the default)")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    show = actions.add_parser("show", help="print a model's card")
    show.add_argument("model", help="model id, or a model folder / model.json")
    add = actions.add_parser("add", help="install a model folder or MONAI bundle (validated)")
    add.add_argument("path", help="folder with model.json and weights, or a MONAI bundle")
    add.add_argument("--replace", action="store_true", help="replace an installed model")
    models.set_defaults(action="list", json=False)
    about = sub.add_parser("about", help="versions, models, devices and DICOM decoders here")
    about.add_argument("--json", action="store_true", help="print one JSON object")
    desktop = sub.add_parser(
        "desktop", help="Linux: add medviewer (entry + icons) to the user's application menu"
    )
    desktop.add_argument("action", choices=["install", "uninstall"])
    desktop.add_argument("--data-home", help="default: $XDG_DATA_HOME or ~/.local/share")
    cli_pacs.add_parser(sub)
    cli_segment.add_parser(sub)


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
    # JSON file written at the main window's first paint, then exit (start-up benchmarks)
    parser.add_argument("--startup-probe", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == [WORKER_FLAG]:  # the desktop bundle's decoder processes (io.decode_worker)
        serve(sys.stdin.buffer, sys.stdout.buffer)
        return EXIT_OK
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        return _viewer(argv)
    args = build_parser().parse_args(argv)
    _tolerant_output()
    # pydicom warns about every odd value it tolerates; the skipped-file report is ours.
    warnings.filterwarnings("ignore", module="pydicom")
    try:
        return int(COMMANDS[args.command](args))
    except UsageError as exc:
        print(f"medviewer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LoadError, DatabaseError, ModelCardError, InferenceError, NetworkError) as exc:
        print(f"medviewer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, OSError) as exc:  # e.g. an export that cannot be made or written
        print(f"medviewer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, CancelledError):
        return 130


def _tolerant_output() -> None:
    """Print any path: a file name that is not valid in the locale's encoding (on Linux,
    names are bytes) is written with backslash escapes instead of ending the command."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _viewer(argv: list[str]) -> int:
    args = viewer_parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="pydicom")
    try:
        _require_paths(args.paths)
    except UsageError as exc:
        print(f"medviewer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _open_viewer(
        args.paths,
        demo=args.demo,
        db_path=args.db,
        settings_path=args.settings,
        exit_after_ms=args.exit_after,
        startup_probe=args.startup_probe,
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

    volume = load_series(_series_source(args.source), stack=args.stack, db=args.db)
    if args.regular_grid:
        from medviewer.core.regular_grid import needs_regular_grid, resample_regular

        volume = resample_regular(volume) if needs_regular_grid(volume) else volume
    description = describe_volume(volume)
    if args.json:
        print(json.dumps(description))
    else:
        for key, value in description.items():
            print(f"{key}: {value}")
    return EXIT_OK


def describe_volume(volume: Volume) -> dict[str, Any]:
    """A JSON-ready summary of a volume: shape, spacing, affine, modality, range, voxel hash,
    warnings; for a PET series its SUVbw factor or why there is none (``suv``)."""
    from medviewer.core.geometry import orientation_letters
    from medviewer.core.viewstate import voi_lut_names

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
        # the voxels themselves: two loads are equal exactly when these are (dtype + C order)
        "array_sha256": hashlib.sha256(
            str(array.dtype).encode() + np.ascontiguousarray(array).tobytes()
        ).hexdigest(),
        "series_uid": meta.series_uid,
        "description": meta.series_description,
        "window_presets": [[p.name, p.center, p.width] for p in meta.window_presets],
        "voi_luts": list(voi_lut_names(meta)),
        "files": len(meta.source_paths),
        "warnings": list(meta.warnings),
        **({"suv": meta.suv.to_dict()} if meta.suv is not None else {}),
    }


def cmd_demo_data(args: argparse.Namespace) -> int:
    """``medviewer demo-data OUT [--seed N] [--cases K]``: synthetic studies and their truth."""
    from medviewer.synthetic.demo import DEMO_SEED, write_demo_data

    seed = DEMO_SEED if args.seed is None else args.seed
    if seed < 0 or args.cases < 1:
        raise UsageError("--seed must be at least 0 and --cases at least 1")
    try:
        data = write_demo_data(Path(args.out), seed=seed, cases=args.cases)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    for series in data.series:
        print(f"{series.modality}  {series.series_uid}  {series.folder}")
    print(f"truth: {data.truth_json}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """``medviewer demo``: the viewer on the demo study."""
    return _open_viewer(demo=True)


def _open_viewer(
    paths: Sequence[str] = (),
    *,
    demo: bool = False,
    db_path: str | None = None,
    settings_path: str | None = None,
    exit_after_ms: int | None = None,
    startup_probe: str | None = None,
) -> int:
    """The viewer, once this machine can show it; else one message that says what to install."""
    from medviewer.ui.display_check import display_problem, import_error_problem

    problem = display_problem()
    if problem is None:
        try:
            from medviewer.ui.app import run_viewer
        except ImportError as exc:
            problem = import_error_problem(exc)
            if problem is None:
                raise
    if problem is not None:
        print(f"medviewer: {problem}", file=sys.stderr)
        return EXIT_FAILED
    return run_viewer(
        paths,
        demo=demo,
        db_path=db_path,
        settings_path=settings_path,
        exit_after_ms=exit_after_ms,
        startup_probe=startup_probe,
    )


def cmd_screenshot(args: argparse.Namespace) -> int:
    """``medviewer screenshot SOURCE --out FILE.png``: the viewer's rendering, offscreen."""
    size = _pair(args.size, "x", "--size", int)
    window = _pair(args.window, "/", "--window", float) if args.window else None
    slab = _slab(args.slab, args.slab_mode)
    rotation = _rotation(args.rotate) if args.rotate else None
    source = _series_source(args.source)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from medviewer.io.series import load_series
    from medviewer.ui.screenshot import render_grid, save_screenshot

    card = _card(args.model) if args.model else None
    volume = load_series(source, db=args.db)
    fused = _fused(args.fuse, volume, args.db) if args.fuse else None
    grid = render_grid(
        volume,
        layout=args.layout,
        index=args.slice,
        window=None if window is None else (window[1], window[0]),
        size=(size[0], size[1]),
        plane=args.plane,
        slab=slab,
        fused=fused,
        rotation=rotation,
    )
    run = None
    if card is not None:
        from medviewer.ui.screenshot import run_model, show_result

        run = run_model(volume, card, args.device)
        show_result(grid, run.result, args.slice)
    png = save_screenshot(grid, args.out)
    if args.json:
        report: dict[str, float | str | None] = {
            "png": str(png), "seconds": None, "max_event_loop_stall_ms": None
        }
        if run is not None:
            report.update(seconds=round(run.seconds, 3),
                          max_event_loop_stall_ms=round(run.max_stall_ms, 1))  # fmt: skip
        print(json.dumps(report))
    else:
        print(png)
    return EXIT_OK


def _rotation(text: str) -> np.ndarray:
    """``--rotate A,B``: A degrees about LR (x), then B about AP (y)."""
    from medviewer.core.oblique import rotation_about

    about_lr, about_ap = _pair(text, ",", "--rotate", float)
    x, y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    return np.asarray(rotation_about(y, about_ap) @ rotation_about(x, about_lr))


def _fused(source: str, volume: Volume, db: str | None) -> Volume:
    """The ``--fuse`` volume, refused unless it shares `volume`'s frame of reference."""
    from medviewer.core.fusion import fusable
    from medviewer.io.series import load_series

    fused = load_series(_series_source(source), db=db)
    if not fusable(fused, volume):
        raise UsageError(f"--fuse: {source} is not on the frame of reference of the series "
                         "shown (FrameOfReferenceUID differs or is missing; registration is "
                         "not available yet)")  # fmt: skip
    return fused


def _slab(thickness: float | None, mode: str) -> Slab | None:
    """The Slab of ``--slab``/``--slab-mode`` (None without ``--slab``)."""
    if thickness is None:
        return None
    try:
        return Slab(mode, thickness)  # type: ignore[arg-type]
    except ValueError as error:
        raise UsageError(f"--slab: {error}") from None


def cmd_batch(args: argparse.Namespace) -> int:
    """``medviewer batch --model ID SOURCE... --out DIR`` and ``medviewer batch status DIR``."""
    from medviewer.batch.jobs import TABLE_NAME, JobTable
    from medviewer.batch.run import plan, select_series, work, write_summary

    if args.sources[0] == "status":
        folder = Path(args.sources[1] if len(args.sources) > 1 else args.out or "")
        if not (folder / TABLE_NAME).is_file():
            raise UsageError(f"{folder} holds no batch (no {TABLE_NAME})")
        table = JobTable(folder)
        status: dict[str, Any] = {"counts": table.counts(), "jobs": table.rows()}
        print(json.dumps(status) if args.json else _batch_counts(status["counts"]))
        return EXIT_OK
    if not args.out or not args.model:
        raise UsageError("batch needs --out DIR and at least one --model")
    cards = [_card(model) for model in args.model]
    out = Path(args.out)
    missing = [s for s in args.sources if not os.path.exists(s)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    series = select_series(args.sources, out, args.modality)
    table = JobTable(out)
    planned = plan(table, series, cards, retry=args.retry)
    if args.dry_run:
        print(json.dumps({"series": len(series), **planned, "counts": table.counts()}))
        return EXIT_OK

    def log(event: dict[str, Any]) -> None:
        print(json.dumps(event) if args.json else
              f"{event['state']:9} {event['model']} {event['series_uid']} "
              f"{event['seconds']:.1f} s {event.get('error', '')}".rstrip(), file=sys.stderr)

    try:
        work(table, cards, out, args.device, log=log)
    except KeyboardInterrupt:
        write_summary(table, out)
        print("stopped: the running job is marked cancelled; run the same command again to "
              "go on", file=sys.stderr)
        return 130
    report = write_summary(table, out)
    print(json.dumps(report["counts"]) if args.json else _batch_counts(report["counts"]))
    return EXIT_FAILED if report["counts"]["failed"] else EXIT_OK


def _batch_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def _card(model: str) -> ModelCard:
    from medviewer.ai.registry import ModelRegistry

    return ModelRegistry().get(model).card


def cmd_infer(args: argparse.Namespace) -> int:
    """``medviewer infer --model ID SOURCE --out DIR``: one model on one series."""
    from medviewer.ai.registry import ModelRegistry
    from medviewer.ai.runner import Runner, run_to_end
    from medviewer.io.series import load_series

    source = _series_source(args.source)
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    entry = ModelRegistry().get(args.model)
    if args.seg and entry.card.task != "segmentation":
        raise UsageError("--seg needs a segmentation model")
    existing = [p for p in (args.pdf, args.seg, args.sr) if p and os.path.exists(p)]
    if existing and not args.overwrite:
        raise UsageError(f"{existing[0]} exists (use --overwrite to replace it)")
    node = _send_node(args)
    volume = load_series(source, stack=args.stack, db=args.db)
    # No GUI to keep responsive: the command line uses every core.
    runner = Runner(entry.card, args.device, args.batch_size, cpu_threads=os.cpu_count())
    steps = runner.run(volume, target_class=args.target_class,
                       keep_probabilities=args.probabilities)
    prediction = run_to_end(steps, _ProgressPrinter(sys.stderr))
    deid = _deidentifier(volume) if args.deidentify else None
    result = write_prediction(prediction, Path(args.out), deid)
    exported = export_reports(args, volume, prediction, deid)
    if exported:
        result = {**result, "exported": exported}
    if node is not None:
        result = {**result, "sent": _send_results(node, exported)}
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result, Path(args.out))
    return EXIT_OK


def _send_node(args: argparse.Namespace) -> Any:
    """The ``--send`` node, checked before the model runs (None without ``--send``)."""
    if not args.send:
        return None
    if not (args.seg or args.sr):
        raise UsageError("--send sends the DICOM outputs: give --seg and/or --sr")
    if args.deidentify:
        raise UsageError("--send writes results back beside the patient's study; it cannot "
                         "be combined with --deidentify")
    from medviewer.net.nodes import load_nodes, parse_node

    return parse_node(args.send, load_nodes())


def _send_results(node: Any, exported: list[str]) -> list[str]:
    """Send the SEG/SR files of `exported` to `node`; the paths stored."""
    from medviewer.net.send import send_all

    paths = [Path(p) for p in exported if _is_dicom(Path(p))]  # not the PDF
    report = send_all(node, paths)
    for path, why in report.failed:
        print(f"warning: {path} was not stored on {node.describe()}: {why}", file=sys.stderr)
    return [str(p) for p in report.stored]


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:132] == b"DICM"


def _deidentifier(volume: Volume) -> Deidentifier:
    """One de-identifier for every output of ``infer --deidentify`` (one pseudonym, one UID
    mapping), knowing the patient's identifiers before anything is written."""
    from medviewer.report.content import ReportHeader
    from medviewer.report.deidentify import Deidentifier

    deid = Deidentifier()
    deid.learn_header(ReportHeader.of(volume.metadata))
    return deid


def export_reports(
    args: argparse.Namespace,
    volume: Volume,
    prediction: Prediction,
    deid: Deidentifier | None = None,
) -> list[str]:
    """Write ``--pdf``, ``--seg`` and ``--sr`` (all or none); returns the paths written.

    `deid`: the :class:`~medviewer.report.deidentify.Deidentifier` of ``--deidentify``."""
    from medviewer.ai.runner import run_to_end
    from medviewer.core.findings import AIResult
    from medviewer.report.content import ReportContent, ReportHeader
    from medviewer.report.export import PlannedFile, run_export

    result = AIResult.of(prediction)
    targets = {"pdf": args.pdf, "seg": args.seg, "sr": args.sr}
    content = ReportContent(
        header=ReportHeader.of(volume.metadata), results=(result,),
        key_images=tuple(_finding_key_images(volume, result)) if args.pdf else (),
        impression=args.impression,
    )
    if args.sr and not content.has_numbers():
        print("warning: no SR written: the result has no number to report", file=sys.stderr)
        targets["sr"] = None
    plan = [PlannedFile(kind, Path(path), result.key if kind == "seg" else None)
            for kind, path in targets.items() if path]
    if not plan:
        return []
    steps = run_export(content, volume.metadata, plan, deidentifier=deid,
                       overwrite=args.overwrite)
    # run_to_end is typed for model runs and run_export as returning nothing (both there)
    summary: ExportSummary = run_to_end(steps)  # type: ignore[arg-type, assignment]
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return [str(p.path) for p in summary.files]


def _finding_key_images(volume: Volume, result: AIResult) -> list[KeyImage]:
    """The finding key images, rendered offscreen by the viewer's code."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from medviewer.ui.key_images import KeyImageRenderer, finding_key_images
    from medviewer.ui.open_series import OpenSeries

    renderer = KeyImageRenderer()
    try:
        series = OpenSeries(Path(volume.metadata.series_uid or "volume"), volume)
        return finding_key_images(renderer, series, [result])
    finally:
        renderer.close()


class _ProgressPrinter:
    """Progress on stderr: a bar on a terminal, else a line every 10 %."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.next_line = 0.0

    def __call__(self, progress: Progress) -> None:
        percent = int(progress.fraction * 100)
        if self.tty:
            bar = "#" * (percent // 5)
            self.stream.write(f"\r[{bar:<20}] {percent:3d}% {progress.message[:50]:<50}")
            if progress.fraction >= 1.0:
                self.stream.write("\n")
        elif progress.fraction >= self.next_line:
            self.stream.write(f"{percent:3d}% {progress.message}\n")
            self.next_line = math.floor(progress.fraction * 10 + 1) / 10
        self.stream.flush()


def _print_summary(result: dict[str, Any], out: Path) -> None:
    model = result["model"]
    print(f"model: {model['id']} {model['version']} on {result['device']} "
          f"in {fmt.seconds(result['seconds'])}")
    for name, probability in result["classes"].items():
        print(f"  {name}: {fmt.probability(probability)}")
    for name, segment in result["segments"].items():
        print(f"  {name}: {fmt.volume_ml(segment['volume_ml'])} mL "
              f"in {segment['components']} component(s)")
    for warning in result["warnings"]:
        print(f"  warning: {warning}")
    print(f"written: {out}")
    for path in result.get("exported", []):
        print(f"written: {path}")


def cmd_models(args: argparse.Namespace) -> int:
    """``medviewer models [list|show ID|add PATH]``."""
    from medviewer.ai.registry import ModelRegistry

    registry = ModelRegistry()
    if args.action == "add":
        _require_paths([args.path])
        entry, notes = registry.add(args.path, replace=args.replace)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"installed {entry.card.id} {entry.card.version} in {entry.folder}")
        return EXIT_OK
    if args.action == "show":
        print(json.dumps(registry.get(args.model).card.to_dict(), indent=2))
        return EXIT_OK
    rows = [_model_row(e) for e in registry.entries()]
    for folder, problem in registry.problems():
        print(f"medviewer: invalid model in {folder}: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print("no models installed (medviewer models add PATH)")
    for row in [] if args.json else rows:
        print(f"{row['id']:<28} {row['task']:<15} {'/'.join(row['modalities']):<8} "
              f"{row['version']:<9} {row['source']:<8} {row['folder']}")
    return EXIT_OK


def cmd_about(args: argparse.Namespace) -> int:
    """``medviewer about [--json]``: exit status 1 when a model or a DICOM decoder is missing."""
    from medviewer.about import about

    report = about()
    try:  # Qt needs the system's GL and xcb libraries: say so rather than fail with a trace
        from medviewer.ui.app import qt_versions

        report["libraries"].update(qt_versions())
        report["qt_problem"] = None
    except ImportError as exc:
        report["qt_problem"] = f"Qt cannot load: {exc}"
    if args.json:
        print(json.dumps(report))
    else:
        for key in ("medviewer", "python", "platform", "frozen", "executable", "models_dir"):
            print(f"{key}: {report[key]}")
        print("libraries: " + ", ".join(f"{k} {v}" for k, v in report["libraries"].items()))
        print("devices: " + ", ".join(description for _, description in report["devices"]))
        print("bundled models: " + (", ".join(report["bundled_models"]) or "none"))
        for entry in report["pixel_decoders"].values():
            print(f"  {entry['name']}: {', '.join(entry['plugins']) or 'no decoder'}")
    problems = [*report["missing_decoders"], *report["model_problems"]]
    problems += [report["qt_problem"]] if report["qt_problem"] else []
    for problem in problems:
        print(f"medviewer: missing: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def cmd_desktop(args: argparse.Namespace) -> int:
    """``medviewer desktop install|uninstall [--data-home DIR]``."""
    from medviewer import desktop_entry

    home = Path(args.data_home) if args.data_home else None
    if args.action == "install":
        written = desktop_entry.install(home)
        print(f"installed the menu entry {written[0]} and {len(written) - 1} icons")
        print(f"it starts: {' '.join(desktop_entry.launcher_command())}")
        return EXIT_OK
    removed = desktop_entry.uninstall(home)
    print(f"removed {len(removed)} files" if removed else "nothing was installed")
    return EXIT_OK


def _model_row(entry: ModelEntry) -> dict[str, Any]:
    card = entry.card
    return {"id": card.id, "name": card.name, "task": card.task, "dims": card.input.dims,
            "modalities": list(card.modalities), "version": card.version,
            "source": entry.source, "folder": str(entry.folder)}


def _series_source(text: str) -> int | str:
    """A database series id (digits that are not a path) or an existing path."""
    if text.isdigit() and not os.path.exists(text):
        if int(text) > MAX_SERIES_ID:
            raise UsageError(f"no such file, folder or series id: {text}")
        return int(text)
    _require_paths([text])
    return text


def _pair(text: str, sep: str, option: str, kind: Callable[[str], _T]) -> tuple[_T, _T]:
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
    "batch": cmd_batch,
    "infer": cmd_infer,
    "models": cmd_models,
    "about": cmd_about,
    "desktop": cmd_desktop,
    "pacs": cli_pacs.cmd_pacs,
    "segment-click": cli_segment.cmd_segment_click,
}


if __name__ == "__main__":
    sys.exit(main())
