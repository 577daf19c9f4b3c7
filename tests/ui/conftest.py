"""Fixtures for the Qt tests: offscreen, isolated settings and database, no leftover threads."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("PySide6")


@pytest.fixture(autouse=True)
def _no_thread_left_running(qapp):
    """Every test must leave no worker running (cancel or wait for them)."""
    yield
    import time

    from PySide6.QtCore import QThreadPool

    from medviewer.ui import workers

    drained = QThreadPool.globalInstance().waitForDone(10_000)
    assert drained, "a worker thread was still running 10 s after the test"
    deadline = time.monotonic() + 5.0  # the jobs' queued 'finished' signals still to deliver
    while workers.active_jobs() and time.monotonic() < deadline:
        qapp.processEvents()
    left = [job.name for job in workers.active_jobs()]
    assert not left, f"jobs whose thread ended but never reported back: {left}"


@pytest.fixture(scope="session", autouse=True)
def _ai_engine_imported():
    """Import torch and MONAI once, as the viewer does in a worker just after its window appears.

    That first import holds the GIL for a few hundred ms (torch's C extension); done here, it
    never lands inside a test's event-loop stall measurement by the order tests happen to run.
    """
    from medviewer.ai.runner import warm_up

    warm_up()


@pytest.fixture
def ct_window(qtbot, tmp_path, demo_study):
    """The main window with the demo CT open (shipped models only), closed afterwards."""
    from tests.ui.test_ai_workflow import _open, _window

    window = _window(qtbot, tmp_path)
    _open(qtbot, window, demo_study.dicom / "DEMO0001" / "CT")
    yield window
    window.close()
