"""SeriesLoader without a window: the cache, superseded loads, typed results and failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.core.cache import VolumeCache
from medviewer.io.database import StudyDatabase
from medviewer.io.series import load_series
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from medviewer.ui.series_loader import LoadFailed, LoadRequest, SeriesLoader, SeriesReady
from tests.waits import WAIT_MS


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    write_series(first, SeriesSpec(shape=(6, 16, 12), series_uid="1.2.3.1"))
    write_series(second, SeriesSpec(shape=(4, 16, 12), series_uid="1.2.3.2", seed=1))
    return first, second


@pytest.fixture
def loader(qtbot, tmp_path: Path) -> SeriesLoader:
    return SeriesLoader(StudyDatabase(tmp_path / "db.sqlite"), VolumeCache(1 << 30))


@pytest.fixture
def ready(loader) -> list[SeriesReady]:
    """What the loader emitted as seriesReady."""
    emitted: list[SeriesReady] = []
    loader.seriesReady.connect(emitted.append)
    return emitted


def test_a_cached_volume_is_ready_at_once_without_a_load(loader, ready, folders) -> None:
    volume = load_series(folders[0])
    loader.cache.put("first", volume)
    request = LoadRequest("first", folders[0], "A")
    assert loader.load(request) is None
    (shown,) = ready
    assert shown.request == request and shown.replaces is None
    assert shown.series.volume is volume and shown.series.complete
    assert loader.jobs == {}


def test_a_load_fills_in_and_goes_to_the_cache(qtbot, loader, ready, folders) -> None:
    request = LoadRequest("first", folders[0], "A")
    job = loader.load(request)
    assert loader.jobs == {"A": job}
    qtbot.waitUntil(lambda: not loader.jobs, timeout=WAIT_MS)
    (shown,) = ready
    assert shown.request is request and shown.series.complete
    assert loader.cache.get("first") is shown.series.volume
    assert np.array_equal(shown.series.volume.array, load_series(folders[0]).array)


def test_a_newer_request_for_the_slot_cancels_the_older(qtbot, loader, ready, folders) -> None:
    older = loader.load(LoadRequest("first", folders[0], "A"))
    other_slot = loader.load(LoadRequest("other", folders[0], "B"))
    newer_request = LoadRequest("second", folders[1], "A")
    newer = loader.load(newer_request)
    assert older.is_cancelled() and not newer.is_cancelled()
    assert not other_slot.is_cancelled()
    assert loader.jobs == {"A": newer, "B": other_slot}
    qtbot.waitUntil(lambda: not loader.jobs, timeout=WAIT_MS)
    assert {shown.request.key for shown in ready} == {"second", "other"}
    assert "first" not in loader.cache and "second" in loader.cache


def test_a_failed_load_is_a_typed_result_after_its_message(qtbot, loader, ready, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    heard: list[object] = []
    loader.statusMessage.connect(lambda text, ms: heard.append((text, ms)))
    loader.loadFailed.connect(heard.append)
    request = LoadRequest("empty", empty, "A")
    loader.load(request)
    qtbot.waitUntil(lambda: not loader.jobs, timeout=WAIT_MS)
    (text, ms), failed = heard
    assert text.startswith("Could not open the series: ") and ms == 15000
    assert failed == LoadFailed(request, None, text)
    assert ready == []
