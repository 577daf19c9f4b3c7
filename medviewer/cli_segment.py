"""``medviewer segment-click``: segment what the prompts point at, as the viewer's Smart tool
does (:class:`medviewer.ai.interactive.InteractiveSession`, the same code path), and write
the object's mask on the series grid.

Prompts are in LPS millimetres: ``--point X,Y,Z`` inside the object, ``--negative X,Y,Z``
outside it, ``--box X1,Y1,Z1,X2,Y2,Z2`` around it (``--point=-12.5,30,100`` when the first
number is negative, as for any option value that starts with a minus). They are applied in
that order (points, boxes, then negatives), as a user would refine an object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Add ``segment-click`` to the sub-command parsers `sub`."""
    parser = sub.add_parser("segment-click", help="segment what LPS points or a box point at "
                            "(the viewer's Smart tool), into a label image")
    parser.add_argument("source", help="folder, file, NIfTI/NRRD/MHA image, or database "
                        "series id")
    parser.add_argument("--point", action="append", type=_lps, default=[],
                        metavar="X,Y,Z", help="a click inside the object (LPS mm; repeat; "
                        "--point=-1,2,3 when X is negative)")
    parser.add_argument("--negative", action="append", type=_lps, default=[],
                        metavar="X,Y,Z", help="a click outside it (LPS mm; repeat)")
    parser.add_argument("--box", action="append", type=_box, default=[],
                        metavar="X1,Y1,Z1,X2,Y2,Z2", help="opposite corners around it (LPS mm)")
    parser.add_argument("--engine", default="classical",
                        help="classical (no weights, any structure), a promptable model's id "
                        "or folder (e.g. demo-ct-interactive), or auto (the promptable model "
                        "installed for the series' modality, else classical)")
    parser.add_argument("--device", default="auto", help="for a promptable model: auto, cpu, "
                        "cuda:0...")
    parser.add_argument("--out", required=True, help="the mask: NIfTI/NRRD/MHA (1 = object)")
    parser.add_argument("--db", help="database for a series id")
    parser.add_argument("--stack", type=int, default=0, help="stack number when there are several")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_segment_click(args: argparse.Namespace) -> int:
    """Run ``segment-click``; errors reach the caller (medviewer's one-line messages)."""
    from medviewer.ai.interactive import Box, InteractiveSession, Point, Prompt
    from medviewer.ai.interactive_engines import engine_named
    from medviewer.core.errors import InferenceError
    from medviewer.io.series import load_series

    if not args.point and not args.box:
        raise InferenceError("give a --point inside the object or a --box around it")
    volume = load_series(_source(args.source), stack=args.stack, db=args.db)
    engine = engine_named(args.engine, args.device, modality=volume.metadata.modality)
    session = InteractiveSession(volume, engine)
    prompts: list[Prompt] = [*(Point(p) for p in args.point),
                             *(Box(b[:3], b[3:]) for b in args.box),
                             *(Point(p, positive=False) for p in args.negative)]
    started = time.perf_counter()
    mask = None
    for prompt in prompts:
        mask = session.add_prompt("object", prompt)
    seconds = time.perf_counter() - started
    assert mask is not None
    _write_mask(volume, mask, Path(args.out))
    stats = session.summary("object")
    used = getattr(engine, "last", "") or engine.name  # auto: the engine that answered
    report = {"engine": used, "seconds": round(seconds, 3),
              "volume_ml": round(stats.volume_ml, 3), "voxels": stats.voxels,
              "longest_diameter_mm": round(stats.longest_diameter_mm, 1),
              "centroid_lps": [round(v, 2) for v in stats.centroid_lps or ()],
              "out": str(args.out)}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{stats.voxels} voxels, {stats.volume_ml:.2f} mL, longest diameter "
              f"{stats.longest_diameter_mm:.1f} mm ({used}, {seconds:.2f} s) -> {args.out}")
    return 0


def _write_mask(volume: Any, mask: Any, out: Path) -> None:
    """The mask as uint8 with the series' geometry, complete or not at all."""
    import numpy as np

    from medviewer.core.staging import staged_file
    from medviewer.io.formats import write_image

    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(out) as part:
        write_image(volume.with_array(mask.astype(np.uint8)), part)


def _source(text: str) -> int | str:
    if text.isdigit() and not os.path.exists(text):
        return int(text)
    if not os.path.exists(text):
        from medviewer.core.errors import LoadError

        raise LoadError(f"no such file, folder or series id: {text}")
    return text


def _numbers(text: str, count: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(abs(v) < 1e6 for v in values):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return values


def _lps(text: str) -> tuple[float, float, float]:
    x, y, z = _numbers(text, 3, "X,Y,Z in mm")
    return (x, y, z)


def _box(text: str) -> tuple[float, ...]:
    return _numbers(text, 6, "X1,Y1,Z1,X2,Y2,Z2 in mm")
