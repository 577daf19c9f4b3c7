"""``python -m medviewer.training train|evaluate``: the demo models' training and evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medviewer.training.specs import RECIPES


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
    args = parser.parse_args(argv)
    if args.command == "train":
        from medviewer.training.train import train as run_training

        card = run_training(args.model_id, Path(args.out), args.device,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
        print(card)
        return 0
    from medviewer.training.evaluate import evaluate as run_evaluation

    try:
        seeds = _seed_range(args.seeds) if args.seeds else RECIPES[args.model_id].test_seeds
    except ValueError as exc:
        parser.error(str(exc))
    metrics = run_evaluation(args.model_id, seeds, args.model, args.device, record=args.record,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(metrics, indent=2) if args.json else _text(metrics))
    return 0


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
