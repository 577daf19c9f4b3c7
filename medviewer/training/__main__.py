"""``python -m medviewer.training train|evaluate|calibrate|evaluate-clicks|evaluate-fill``:
the demo models' training, evaluation and calibration, and the click-to-segment and
fill-between-slices evaluations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medviewer.training.specs import RECIPES

CLASSIFIERS = ("demo-ct-nodule-cls", "demo-cxr-nodule-cls")  # what calibrate fits


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m medviewer.training")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a demo model from phantom seeds")
    train.add_argument("model_id", choices=sorted(RECIPES))
    train.add_argument("--out", required=True, help="output folder (model.json + weights)")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    evaluate = sub.add_parser("evaluate", help="evaluate on held-out phantom seeds")
    evaluate.add_argument("model_id", choices=sorted(RECIPES))
    evaluate.add_argument("--seeds", help="A-B (inclusive); default: the card's test seeds")
    evaluate.add_argument("--model", help="model folder (default: the installed model)")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--record", action="store_true",
                          help="write the metrics into the model folder's card")
    evaluate.add_argument("--figures", metavar="DIR",
                          help="write the FROC curve or reliability diagram (SVG) into DIR")
    calibrate = sub.add_parser("calibrate",
                               help="fit a classifier's Platt scaling (temperature and "
                                    "bias) on its validation seeds")
    calibrate.add_argument("model_id", choices=sorted(CLASSIFIERS))
    calibrate.add_argument("--seeds", help="A-B (inclusive) within the validation seeds; "
                                           "default: all of them")
    calibrate.add_argument("--model", help="model folder whose model.json is rewritten "
                                           "(default: the installed model)")
    calibrate.add_argument("--device", default="cpu")
    calibrate.add_argument("--dry-run", action="store_true", help="fit, but write nothing")
    clicks = sub.add_parser("evaluate-clicks",
                            help="click-to-segment accuracy with simulated clicks")
    clicks.add_argument("--seeds", default="5000-5029", help="A-B (inclusive)")
    clicks.add_argument("--clicks", type=int, default=3)
    clicks.add_argument("--engine", default="classical")
    clicks.add_argument("--kinds", default="nodule,lung",
                        help="comma-separated: nodule, lung, heart, aorta")
    clicks.add_argument("--record", action="store_true",
                        help="write the figures into the card of --engine (a model folder) "
                             "as metrics.test")
    fill = sub.add_parser("evaluate-fill",
                          help="fill between slices: which method is closer to the truth")
    fill.add_argument("--seeds", default="5000-5019", help="A-B (inclusive)")
    fill.add_argument("--nodule-gap", type=float, default=5.0, help="mm between drawn slices")
    fill.add_argument("--lung-gap", type=float, default=20.0, help="mm between drawn slices")
    args = parser.parse_args(argv)
    if args.command == "evaluate-fill":
        from medviewer.training.fill_eval import evaluate_fill

        report = evaluate_fill(_seed_range(args.seeds),
                               {"nodule": args.nodule_gap, "lung": args.lung_gap}, log=_log)
        print(json.dumps(report, indent=2))
        return 0
    if args.command == "evaluate-clicks":
        from medviewer.training.click_eval import evaluate_clicks

        report = evaluate_clicks(_seed_range(args.seeds), args.clicks, args.engine, log=_log,
                                 kinds=tuple(args.kinds.split(",")))
        if args.record:
            _record_clicks(Path(args.engine), report, args)
        print(json.dumps(report, indent=2))
        return 0
    if args.command == "train":
        from medviewer.training.train import train as run_training

        card = run_training(args.model_id, Path(args.out), args.device,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
        print(card)
        return 0
    try:
        seeds = _seed_range(args.seeds) if args.seeds else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "calibrate":
        return _calibrate(args, seeds, parser)
    from medviewer.training.evaluate import evaluate as run_evaluation

    metrics = run_evaluation(args.model_id, seeds or RECIPES[args.model_id].test_seeds,
                             args.model, args.device, record=args.record, figures=args.figures,
                             log=_log)
    print(json.dumps(metrics, indent=2) if args.json else _text(metrics))
    return 0


def _calibrate(args: argparse.Namespace, seeds: range | None,
               parser: argparse.ArgumentParser) -> int:
    from medviewer.training.calibration import calibrate

    try:
        summary = calibrate(args.model_id, seeds, args.model, args.device,
                            write=not args.dry_run, log=_log)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(summary, indent=2))
    return 0


def _record_clicks(folder: Path, report: dict, args: argparse.Namespace) -> None:
    """The click evaluation as the card's ``metrics.test`` (validated before it is written)."""
    from medviewer.ai.model_card import CARD_FILE, ModelCard

    path = folder / CARD_FILE
    card = json.loads(path.read_text())
    card.setdefault("metrics", {})["test"] = {
        **report, "command": f"python -m medviewer.training evaluate-clicks --seeds {args.seeds} "
                             f"--clicks {args.clicks} --kinds {args.kinds} --engine MODEL"}
    ModelCard.from_dict(card, str(path))
    path.write_text(json.dumps(card, indent=2) + "\n")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _seed_range(text: str) -> range:
    """``"A-B"`` (inclusive) or a single seed."""
    first, _, last = text.partition("-")
    try:
        a, b = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"--seeds: expected A-B, got {text!r}") from None
    if b < a:
        raise ValueError(f"--seeds: {text!r} ends before it starts")
    return range(a, b + 1)


def _text(metrics: dict) -> str:
    return "\n".join(f"{key}: {value}" for key, value in metrics.items())


if __name__ == "__main__":
    raise SystemExit(main())
