"""What changes when medviewer runs frozen (the desktop bundle), checked without building it.

In the bundle ``sys.executable`` is medviewer itself, so the decoder worker processes are
started as ``medviewer --medviewer-decode-worker``; the venv's ``medviewer`` script stands in
for the frozen executable here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.io import decoder_pool
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

SCRIPT = Path(sys.executable).parent / "medviewer"


def test_the_worker_command_is_python_m_here_and_the_flag_when_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert decoder_pool.worker_command() == [sys.executable, "-m", "medviewer.io.decode_worker"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/mv/medviewer")
    assert decoder_pool.worker_command() == ["/opt/mv/medviewer", "--medviewer-decode-worker"]


@pytest.mark.skipif(not SCRIPT.is_file(), reason="needs the installed medviewer script")
def test_a_frozen_style_worker_decodes_jpeg_2000(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    written = write_series(
        tmp_path, SeriesSpec(shape=(2, 32, 32), seed=61, transfer_syntax="1.2.840.10008.1.2.4.90")
    )
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(SCRIPT))
    pool = decoder_pool.DecoderPool(1)
    try:
        path = str(written.paths[0])
        frames = pool.decode(path, "", [0])
        assert pool.workers[0].proc.args == [str(SCRIPT), "--medviewer-decode-worker"]
    finally:
        pool.close()
    expected = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(np.asarray(frames).reshape(expected.shape), expected)


def test_the_startup_probe_reports_the_first_paint(tmp_path: Path) -> None:
    probe = tmp_path / "probe.json"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    launched = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "medviewer", "--startup-probe", str(probe),
         "--db", str(tmp_path / "db.sqlite"), "--settings", str(tmp_path / "s.ini")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    ended = time.monotonic()
    assert done.returncode == 0, done.stderr
    record = json.loads(probe.read_text())
    assert launched < record["painted"] <= record["shown"] < ended
    assert record["heavy_modules"] == []  # torch, MONAI, SimpleITK load when first needed
    assert record["modules"] > 100
