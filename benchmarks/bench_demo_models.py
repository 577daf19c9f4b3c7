"""Demo-model benchmark: a shipped model card run end to end on a demo-sized CT, beside the
time its networks spend in their forward passes.

For each model (``--models``: ids from the registry or model folders; default the CT
segmentation cascade and, for comparison, any folder given with ``--also``), one phantom chest
(``--seed``, default 90014, the demo's) is rendered at 512 x 512 x ``--slices`` (default 300)
and run by ``Runner(card, DEVICE, cpu_threads=T)`` + ``run_to_end`` as ``medviewer infer`` runs
it (T = all cores) and as the GUI runs it (T = None: one core left free); DEVICE is ``--device``
(``cpu``, the default, or ``cuda``: then each forward is timed to its end with a synchronise,
and the peak GPU memory is reported). Reported per run:
end-to-end seconds, seconds inside the networks' ``forward`` (forward hooks on every network
the run loads, the cascade's upstream included) and the share of the run they are, and the
phases from the Runner's progress messages. One warm-up run on a small volume first, so
loading the weights is not timed. Peak RSS at the end.

Usage: ``python benchmarks/bench_demo_models.py [--models ID|DIR ...] [--slices N]
[--seed S] [--gui] [--device cpu|cuda]`` (``--gui`` adds the one-thread run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info

from medviewer.ai.model_card import ModelCard, load_card
from medviewer.ai.registry import ModelRegistry
from medviewer.core.volume import Volume, VolumeMetadata
from medviewer.synthetic import phantom
from medviewer.synthetic.demo import DEMO_SEED
from medviewer.training.data import axial_volume


class ForwardClock:
    """Seconds spent inside the forward of every network loaded while it is installed."""

    def __init__(self, synchronise: Any = None) -> None:
        self.seconds = 0.0
        self._synchronise = synchronise or (lambda: None)
        self._started: dict[int, float] = {}
        self._hooked: set[int] = set()

    def install(self) -> None:
        """Wrap :func:`medviewer.ai.weights.load_network` so each network gets timing hooks."""
        from medviewer.ai import weights

        original = weights.load_network

        def load(card: ModelCard, device: Any):
            network = original(card, device)
            if id(network) not in self._hooked:
                self._hooked.add(id(network))
                network.module.register_forward_pre_hook(self._pre)
                network.module.register_forward_hook(self._post)
            return network

        weights.load_network = load
        from medviewer.ai import inference, runner

        for module in (inference, runner):  # they imported the name
            module.load_network = load  # type: ignore[attr-defined]

    def _pre(self, module: Any, args: Any) -> None:
        self._synchronise()
        self._started[id(module)] = time.perf_counter()

    def _post(self, module: Any, args: Any, output: Any) -> None:
        self._synchronise()
        self.seconds += time.perf_counter() - self._started.pop(id(module))


def ct_volume(seed: int, slices: int) -> Volume:
    """Case `seed` rendered at 512 x 512 x `slices`, spacing chosen to cover its chest."""
    case = phantom.chest_case(seed)
    extent = case.slice_spacing_mm * (case.slice_count - 1)
    case = replace(case, slice_count=slices, slice_spacing_mm=extent / (slices - 1))
    grid = phantom.ct_grid(case)
    hu, _ = phantom.render_ct(case, grid)
    return replace(axial_volume(hu, grid), metadata=VolumeMetadata(modality="CT"))


def card_of(name: str) -> ModelCard:
    """A model id from the registry, or a model folder."""
    return load_card(name) if Path(name).is_dir() else ModelRegistry().get(name).card


def timed_run(card: ModelCard, volume: Volume, threads: int | None,
              clock: ForwardClock, device: str = "cpu") -> dict[str, Any]:
    """One end-to-end run: seconds, forward seconds, when each phase (the first word of
    the progress messages) first appears."""
    from medviewer.ai.cascade import UPSTREAM_RESULTS
    from medviewer.ai.runner import Runner

    UPSTREAM_RESULTS.clear()  # a cascade runs its upstream model every time, as on a new series
    runner = Runner(card, device, cpu_threads=threads)
    phases: dict[str, float] = {}
    clock.seconds = 0.0
    started = time.perf_counter()
    steps = runner.run(volume)
    try:
        while True:
            progress = next(steps)
            word = str(progress.message).split(" ")[0]
            phases.setdefault(word, round(time.perf_counter() - started, 2))
    except StopIteration as stop:
        prediction = stop.value
    seconds = time.perf_counter() - started
    return {"device": device, "threads": threads or "GUI default", "seconds": round(seconds, 2),
            "forward_seconds": round(clock.seconds, 2),
            "forward_share": round(clock.seconds / seconds, 3),
            "segments": sorted(seg.name for seg in (prediction.segments or {}).values()),
            "phases_start_s": phases}


def _cuda_synchronise() -> Any:
    import torch

    return torch.cuda.synchronize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["demo-ct-lung-nodule-seg"])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--gui", action="store_true", help="also run with the GUI's threads")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args(argv)
    clock = ForwardClock(_cuda_synchronise() if args.device == "cuda" else None)
    clock.install()
    log = lambda m: print(f"[bench_demo_models] {m}", file=sys.stderr, flush=True)  # noqa: E731
    small = ct_volume(args.seed, 40)
    log(f"rendering seed {args.seed} at 512 x 512 x {args.slices}")
    volume = ct_volume(args.seed, args.slices)
    report: dict[str, Any] = {"volume": list(volume.shape),
                              "spacing_mm": [round(float(s), 3) for s in volume.spacing],
                              "seed": args.seed, "runs": {}}
    for name in args.models:
        card = card_of(name)
        timed_run(card, small, os.cpu_count(), clock, args.device)  # warm-up: not timed
        runs = [timed_run(card, volume, os.cpu_count(), clock, args.device)]
        log(f"{name}: {runs[-1]['seconds']} s")
        if args.gui:
            runs.append(timed_run(card, volume, None, clock, args.device))
            log(f"{name} (GUI threads): {runs[-1]['seconds']} s")
        report["runs"][name] = runs
    if args.device == "cuda":
        import torch

        report["cuda"] = {"device": torch.cuda.get_device_name(0),
                          "peak_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["machine"] = machine_info()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
