"""Click-to-segment latency in the viewer: the Smart tool on the demo CT (offscreen).

For each nodule of at least 6 mm of the demo patient, a click at its centre goes
through the main window's :class:`~medviewer.ui.smart_controller.SmartController` (worker,
engine, label map, overlays of every view); measured: the seconds from the click to the mask
drawn (the controller's ``objectChanged``, emitted after the views were redrawn), the engine
alone on the same click (``InteractiveSession.add_prompt`` in this thread), and the GUI
thread's longest stall (a 5 ms timer) while each prompt ran, from each object's acceptance
until it is measured and saved, and over the whole run. Each object is clicked ``--repeats`` times
(a new object each time).

Usage: ``python benchmarks/bench_click.py [--repeats 5] [--engine classical|auto|MODEL]``;
prints JSON (``--engine``: as ``medviewer segment-click``'s, on the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--engine", default="classical",
                        help="classical, auto, or a promptable model's id or folder")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-click-"))
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        os.environ[name] = str(root / name.lower())
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from medviewer.ai.interactive import InteractiveSession, Point
    from medviewer.ai.interactive_engines import engine_named
    from medviewer.io.database import StudyDatabase
    from medviewer.synthetic.demo import DEMO_SEED, write_demo_data
    from medviewer.ui import workers
    from medviewer.ui.app import freeze_startup_heap
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    app = QApplication.instance() or QApplication([])
    demo = write_demo_data(root / "demo", DEMO_SEED, cases=1)
    truth = json.loads(demo.truth_json.read_text())
    ct = next(v for v in truth.values() if v["modality"] == "CT")
    window = MainWindow(StudyDatabase(root / "db.sqlite"), Settings(root / "settings.ini"))
    window.resize(1400, 900)
    window.show()
    freeze_startup_heap()
    folder = next((demo.dicom).glob("*/CT"))
    window.import_paths([str(folder)])
    wait(app, lambda: window.imports.job is not None and window.imports.job.done)
    (series_id,) = window.db.series_under([str(folder)])
    window.open_series(series_id)
    view = window.grid.active
    wait(app, lambda: view.series is not None and view.series.complete)
    wait(app, lambda: getattr(window.ai, "_warm_up", None) is not None
         and window.ai._warm_up.done and not workers.active_jobs())
    volume = view.series.volume
    modality = volume.metadata.modality

    def make_engine(_volume: Any = None) -> Any:
        return engine_named(args.engine, "cpu", modality=modality)

    window.smart._engine = make_engine
    warm = InteractiveSession(volume, make_engine())  # the network loaded once, as in use
    warm.add_prompt("warm", Point(tuple(ct["nodules"][0]["centroid_lps"])))
    targets = [("nodule", n["diameter_mm"], n["centroid_lps"]) for n in ct["nodules"]
               if n["diameter_mm"] >= 6]
    gaps: list[tuple[float, float]] = []  # (end time, gap)
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now, now - last[0]))
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    clicks: list[dict[str, Any]] = []
    for kind, size, centre in targets:
        for _ in range(args.repeats):
            changed: list[float] = []
            window.smart.objectChanged.connect(
                lambda _r, seen=changed: seen.append(time.perf_counter()))
            started = time.perf_counter()
            window.smart.prompt(view, Point(tuple(centre)))
            wait(app, lambda seen=changed: bool(seen))
            window.smart.objectChanged.disconnect()
            seconds = changed[0] - started
            while not any(t > changed[0] for t, _ in gaps):  # the tick after the mask
                app.processEvents()
            prompt_stall = max((g for t, g in gaps if started < t <= changed[0] + 0.05),
                               default=0.0)
            accepted = time.perf_counter()
            window.smart.command(view, "accept")
            wait(app, lambda: not window.ai.measuring(volume.metadata.series_uid)
                 and not workers.active_jobs())
            measured = time.perf_counter()
            while not any(t > measured for t, _ in gaps):
                app.processEvents()
            accept_stall = max((g for t, g in gaps if accepted < t <= measured + 0.05),
                               default=0.0)
            engine = InteractiveSession(volume, make_engine())
            t = time.perf_counter()
            engine.add_prompt("x", Point(tuple(centre)))
            clicks.append({"kind": kind, "size_mm": size, "gui_s": round(seconds, 3),
                           "engine_s": round(time.perf_counter() - t, 3),
                           "engine": getattr(engine.engine, "last", "") or engine.engine.name,
                           "stall_during_prompt_ms": round(1000 * prompt_stall, 1),
                           "stall_accept_to_measured_ms": round(1000 * accept_stall, 1),
                           "accept_to_measured_s": round(measured - accepted, 3)})
    timer.stop()
    window.close()
    gui = [c["gui_s"] for c in clicks]
    report = {
        "series": {"shape": list(volume.shape),
                   "spacing_mm": [round(float(v), 3) for v in volume.spacing]},
        "clicks": clicks,
        "median_click_to_screen_ms": round(1000 * statistics.median(gui), 1),
        "median_engine_ms": round(1000 * statistics.median(c["engine_s"] for c in clicks), 1),
        "engine": args.engine,
        "max_stall_during_prompts_ms": max(c["stall_during_prompt_ms"] for c in clicks),
        "max_stall_accept_to_measured_ms": max(c["stall_accept_to_measured_ms"]
                                               for c in clicks),
        "max_stall_ms": round(1000 * max(g for _, g in gaps), 1),
        "targets": {"classical_click_to_screen_ms": 150, "network_click_to_screen_ms": 300,
                    "stall_ms": 50},
        "machine": machine_info(),
    }
    print(json.dumps(report, indent=2))
    return 0


def wait(app: Any, condition: Any, limit_s: float = 600.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("not done within 10 minutes")
        app.processEvents()
        time.sleep(0.002)


if __name__ == "__main__":
    raise SystemExit(main())
