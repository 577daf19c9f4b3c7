"""Render the main window on the demo study (1x3 MPR, crosshair on) to docs/images/demo.png.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/readme_screenshot.py``. Uses a
throw-away database and settings file, so the user's own are untouched.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QApplication

from medviewer.demo import demo_folder
from medviewer.io.database import StudyDatabase
from medviewer.ui import workers
from medviewer.ui.app import application
from medviewer.ui.main_window import MainWindow
from medviewer.ui.settings import Settings

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "demo.png"


def wait(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo did not finish loading")
        QApplication.processEvents()
        time.sleep(0.01)


def largest_ct_nodule(truth_json: Path) -> list[float]:
    """The LPS centre of the demo CT's largest nodule, from the demo's truth file."""
    truth = json.loads(truth_json.read_text())
    nodules = [n for entry in truth.values() if entry["modality"] == "CT" for n in entry["nodules"]]
    return max(nodules, key=lambda n: n["diameter_mm"])["centroid_lps"]


def main() -> int:
    app = application()
    tmp = Path(tempfile.mkdtemp(prefix="medviewer-shot-"))
    window = MainWindow(StudyDatabase(tmp / "db.sqlite"), Settings(tmp / "settings.ini"))
    window.resize(1600, 900)
    window.show()
    window.set_layout("1x3")
    window.import_paths([str(demo_folder())], then_open=True)
    wait(lambda: window.grid.views[0].series is not None and window.grid.views[0].series.complete)
    wait(lambda: not workers.active_jobs())
    axial = window.grid.views[0]
    point = np.array(largest_ct_nodule(demo_folder().parent / "truth" / "truth.json"))
    axial.set_crosshair(point, move=True)
    window.grid.link_cursor(axial, point)
    for _ in range(20):
        app.processEvents()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(OUT), "PNG")
    print(OUT)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
