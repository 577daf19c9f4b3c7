"""Render the main window on the demo study for the README, into docs/images/.

- ``demo.png``: the CT in 1x3 MPR, crosshair on the largest nodule;
- ``ai-segment.png``: after clicking Segment and the largest nodule's row in the findings table;
- ``ai-classify.png``: the radiograph after clicking Classify (probabilities and Grad-CAM).

The models run on the CPU through the GUI's own worker (a few minutes on 2 cores).
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

from medviewer.io.database import StudyDatabase
from medviewer.synthetic.demo import demo_folder
from medviewer.ui import workers
from medviewer.ui.application import application
from medviewer.ui.main_window import MainWindow
from medviewer.ui.settings import Settings

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
OUT = IMAGES / "demo.png"


def wait(condition, timeout_s: float = 900.0) -> None:
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
    application()
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
    save(window, OUT)
    segment(window, point)
    classify(window)
    window.close()
    return 0


def save(window: MainWindow, path: Path) -> None:
    for _ in range(20):
        QApplication.processEvents()
    path.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(path), "PNG")
    print(path)


def segment(window: MainWindow, nodule: np.ndarray) -> None:
    """Segment the CT, then click the findings row nearest the largest truth nodule."""
    panel = window.ai.panel
    wait(lambda: panel.device_combo.itemText(0).startswith("Auto:"))
    panel.segment_button.click()
    wait(lambda: panel.idle and panel.current_result() is not None)
    rows = panel.table.components()
    row = min(rows, key=lambda r: np.linalg.norm(np.subtract(r.component.centroid_lps, nodule)))
    index = next(i for i in range(panel.table.rowCount()) if panel.table.component(i) == row)
    panel.table.selectRow(index)
    window.ai.focus_component(row)
    save(window, IMAGES / "ai-segment.png")


def classify(window: MainWindow) -> None:
    """Open the radiograph in 1x1 and classify it."""
    window.set_layout("1x1")
    (series_id,) = window.db.series_under([str(demo_folder() / "DEMO0001" / "DX")])
    window.open_series(series_id)
    view = window.grid.views[0]
    wait(lambda: view.series is not None and view.series.complete and view.volume.shape[0] == 1)
    panel = window.ai.panel
    wait(lambda: panel.volume is view.volume)
    panel.classify_button.click()
    wait(lambda: panel.idle and panel.current_result() is not None)
    save(window, IMAGES / "ai-classify.png")


if __name__ == "__main__":
    sys.exit(main())
