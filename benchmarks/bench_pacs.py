"""PACS retrieve benchmark: a CT series from a local Orthanc by medviewer's C-GET, C-MOVE and
WADO-RS, against dcmtk's ``getscu`` and a plain WADO-RS loop (urllib, one request per
instance) in the same run.

Each medviewer run starts from an empty study database and folder, resolves the UID, lists
the instances and indexes as it receives (batches of 32, as ``medviewer pacs get``); reported:
seconds end to end, seconds to the first indexed instance (the earliest a series could be
opened), and the ratio to the peer of the same protocol (C-GET and C-MOVE against getscu,
WADO-RS against the plain loop); and the transfer alone (instances listed beforehand, nothing
indexed), which is what the peers do. Then the Query/Retrieve window retrieves the study once
(offscreen, C-GET) while a 5 ms timer measures the GUI thread's longest stall. Orthanc runs
on free loopback ports with its own storage (tests/net/orthanc.py).

Usage: ``python benchmarks/bench_pacs.py [--slices N] [--size PIXELS] [--repeats R]``
(defaults 300, 512, 2: the best of R runs is kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine_info

from medviewer.io.database import StudyDatabase
from medviewer.net import web
from medviewer.net.nodes import dicomweb_node, dimse_node
from medviewer.net.retrieve import retrieve
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.net import orthanc


def timed_retrieve(root: Path, node: Any, uid: str, move_port: int | None) -> dict[str, float]:
    """One medviewer retrieve into a fresh database: total and first-instance seconds."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    db = StudyDatabase(root / "studies.sqlite")
    started = time.perf_counter()
    first = None
    steps = retrieve(db, node, uid, dest=root / "store", move_port=move_port)
    try:
        while True:
            progress = next(steps)
            if first is None and progress.received:
                first = time.perf_counter() - started
    except StopIteration as stop:
        report = stop.value
    seconds = time.perf_counter() - started
    assert report.complete, report.failed
    return {"seconds": seconds, "first_instance_s": first or seconds,
            "instances": report.received}


def timed_transfer(root: Path, node: Any, rows: list[dict[str, str]], how: str,
                   move_port: int) -> float:
    """The transfer alone (instances listed beforehand, nothing indexed): seconds."""
    from medviewer.net import dimse, scp

    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    if how == "c_get":
        steps = dimse.get(node, rows, root)
    elif how == "c_move":
        steps = scp.move(node, rows, root, port=move_port)
    else:
        steps = web.retrieve(node, rows, root)
    for _ in steps:
        pass
    return time.perf_counter() - started


def timed_getscu(root: Path, server: orthanc.Orthanc, study: str, series: str) -> float:
    """dcmtk's getscu of the series into a folder (it converts to uncompressed, as asked)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(["getscu", "-S", "-aec", server.ae_title, "-od", str(root), "-k",
                    "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}", "-k",
                    f"SeriesInstanceUID={series}", "127.0.0.1", str(server.dicom_port)],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def timed_plain_wado(root: Path, node: Any, rows: list[dict[str, str]]) -> float:
    """One urllib WADO-RS request per instance, each answer written as it is."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    for row in rows:
        url = (f"{node.url}/studies/{row['StudyInstanceUID']}/series/"
               f"{row['SeriesInstanceUID']}/instances/{row['SOPInstanceUID']}")
        request = urllib.request.Request(url, headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=120) as answer:
            (root / f"{row['SOPInstanceUID']}.part").write_bytes(answer.read())
    return time.perf_counter() - started


def gui_retrieve(root: Path, node_text: str, study_uid: str, slices: int) -> dict[str, Any]:
    """The main window's Query/Retrieve retrieving the study (offscreen, C-GET, "Open as it
    arrives"): seconds to the first images in the active viewport, to the retrieve's end and
    to the whole series in the viewport, and the longest gap between 5 ms timer ticks of the
    GUI thread meanwhile (its worst stall)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["XDG_DATA_HOME"] = str(root / "data")  # the window stores under the user's data
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.pacs_dialog import UID_ROLE
    from medviewer.ui.settings import Settings

    app = QApplication.instance() or QApplication([])
    window = MainWindow(StudyDatabase(root / "gui.sqlite"), Settings(root / "settings.ini"))
    window.resize(1300, 800)
    window.show()
    from medviewer.ui.app import freeze_startup_heap

    freeze_startup_heap()  # as run_viewer does once the window is up
    window.imports.open_pacs()
    dialog = window.imports._pacs
    assert dialog is not None
    dialog.node_box.setEditText(node_text)
    dialog.search()
    wait_for(app, lambda: dialog.tree.topLevelItemCount() > 0)
    items = [dialog.tree.topLevelItem(i) for i in range(dialog.tree.topLevelItemCount())]
    dialog.tree.setCurrentItem(next(i for i in items if i.data(0, UID_ROLE) == study_uid))
    from medviewer.ui import workers

    def warmed_up() -> bool:  # the AI engine's start-up warm-up (imports torch) has ended
        job = getattr(window.ai, "_warm_up", None)
        return job is not None and job.done and not workers.active_jobs()

    wait_for(app, warmed_up)
    gaps: list[float] = []
    last = [time.perf_counter()]

    stalls: list[tuple[float, float]] = []  # (seconds after Retrieve, gap) over 50 ms

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        if gaps[-1] > 0.05:
            stalls.append((round(now - started, 3), round(gaps[-1] * 1000, 1)))
        last[0] = now

    def shown() -> Any:
        view = window.grid.active
        return view.series if view is not None else None

    marks: dict[str, float] = {}

    def note() -> bool:
        now = time.perf_counter() - started
        series = shown()
        if "first_images_on_screen_s" not in marks and series is not None \
                and series.loaded.any():
            marks["first_images_on_screen_s"] = now
        if "retrieve_s" not in marks and "received" in dialog.status.text():
            marks["retrieve_s"] = now
        if series is not None and series.volume.array.shape[0] == slices and series.complete:
            marks["whole_series_on_screen_s"] = now
            return True
        return "Failed" in dialog.status.text()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    started = time.perf_counter()
    dialog.retrieve_selected()
    wait_for(app, note)
    timer.stop()
    wait_for(app, lambda: not dialog.busy() and not window.loader.jobs)
    status = dialog.status.text()
    window.close()
    return {**{k: round(v, 3) for k, v in marks.items()},
            "max_stall_ms": round(max(gaps) * 1000, 1), "stalls_over_50_ms": stalls,
            "status": status}


def wait_for(app: Any, condition: Any, limit_s: float = 600.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not finish within 10 minutes")
        app.processEvents()
        time.sleep(0.002)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    log = lambda m: print(f"[bench_pacs] {m}", file=sys.stderr, flush=True)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="bench-pacs-"))
    move_port = orthanc.free_port()
    server = orthanc.start(work / "orthanc", {"medviewer": ("MEDVIEWER", "127.0.0.1",
                                                            move_port)})
    try:
        log(f"writing and uploading {args.slices} x {args.size} x {args.size}")
        series = write_series(work / "ct", SeriesSpec(
            shape=(args.slices, args.size, args.size), seed=500, shuffle=False))
        server.upload(list(series.paths))
        dimse_peer = dimse_node(server.ae_title, "127.0.0.1", server.dicom_port)
        web_peer = dicomweb_node(server.url + "/dicom-web")
        rows = web.instances(web_peer, series.study_uid, series.series_uid)
        runs: dict[str, list[dict[str, float]]] = {"c_get": [], "c_move": [], "wado_rs": []}
        transfers: dict[str, list[float]] = {"c_get": [], "c_move": [], "wado_rs": []}
        peers: dict[str, list[float]] = {"getscu": [], "plain_wado_loop": []}
        for repeat in range(args.repeats):
            log(f"round {repeat + 1}")
            runs["c_get"].append(timed_retrieve(work / "get", dimse_peer, series.series_uid,
                                                None))
            peers["getscu"].append(timed_getscu(work / "getscu", server, series.study_uid,
                                                series.series_uid))
            runs["c_move"].append(timed_retrieve(work / "move", dimse_peer, series.series_uid,
                                                 move_port))
            runs["wado_rs"].append(timed_retrieve(work / "wado", web_peer, series.series_uid,
                                                  None))
            peers["plain_wado_loop"].append(timed_plain_wado(work / "plain", web_peer, rows))
            for how in transfers:
                transfers[how].append(timed_transfer(
                    work / f"t-{how}", web_peer if how == "wado_rs" else dimse_peer, rows, how,
                    move_port))
        log("the Query/Retrieve window")
        gui = gui_retrieve(work / "gui", f"{server.ae_title}@127.0.0.1:{server.dicom_port}",
                           series.study_uid, args.slices)
        best = {name: min(r, key=lambda x: x["seconds"]) for name, r in runs.items()}
        peer_best = {name: min(v) for name, v in peers.items()}
        report = {
            "series": {"slices": args.slices, "rows": args.size, "cols": args.size,
                       "mb": round(sum(p.stat().st_size for p in series.paths) / 1e6, 1)},
            "repeats": args.repeats,
            "medviewer": {name: {k: round(v, 3) for k, v in r.items()}
                          for name, r in best.items()},
            "peers_s": {k: round(v, 3) for k, v in peer_best.items()},
            "transfer_only_s": {k: round(min(v), 3) for k, v in transfers.items()},
            "ratios": {
                "c_get_over_getscu": round(best["c_get"]["seconds"] / peer_best["getscu"], 3),
                "c_move_over_getscu": round(best["c_move"]["seconds"] / peer_best["getscu"], 3),
                "wado_over_plain_loop": round(best["wado_rs"]["seconds"]
                                              / peer_best["plain_wado_loop"], 3),
                "wado_transfer_over_plain_loop": round(min(transfers["wado_rs"])
                                                       / peer_best["plain_wado_loop"], 3),
            },
            "gui_window_c_get": gui,
            "targets": {"ratio_max": 1.2, "first_images_on_screen_max_s": 1.0,
                        "gui_stall_max_ms": 100},
            "machine": machine_info(),
        }
        print(json.dumps(report, indent=2))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
