"""The real main window, offscreen: import, browse, open, read, measure, persist, never freeze."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from medviewer.core.geometry import patient_to_voxel
from medviewer.io.database import ImportReport, StudyDatabase
from medviewer.io.series import iter_load
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from medviewer.ui import series_loader, workers
from medviewer.ui.app import freeze_startup_heap
from medviewer.ui.browser import StudyBrowser
from medviewer.ui.import_controller import TREE_REFRESH_MS
from medviewer.ui.main_window import MainWindow
from medviewer.ui.series_loader import LoadRequest, _RunningLoad
from medviewer.ui.settings import Settings
from tests.ui.heartbeat import Heartbeat, WorkRecorder
from tests.ui.helpers import DISK, SHAPE, SPACING, click, drag, grab_rgb, voxel_widget_pos
from tests.waits import WAIT_MS

SERIES_UID = "1.2.826.0.1.3680043.8.498.77.1"


def phantom_spec(**changes) -> SeriesSpec:
    """The tests' phantom as DICOM: 0 HU, a 100 HU block, a 1000 HU 'spine' disk."""
    s, r, c = SHAPE
    hu = np.zeros(SHAPE, np.int64)
    hu[:, 5:25, 50:75] = 100
    _, yy, xx = np.ogrid[:s, :r, :c]
    disk = (yy - DISK[1]) ** 2 + (xx - DISK[2]) ** 2 <= DISK[3] ** 2
    hu[8:16][np.broadcast_to(disk, (8, r, c))] = 1000
    spec = SeriesSpec(
        shape=SHAPE,
        pixel_spacing=SPACING[:2],
        slice_spacing=SPACING[2],
        origin=(-30.0, -20.0, 10.0),
        values=hu + 1024,
        window=(500.0, 1000.0),
        series_uid=SERIES_UID,
        series_description="phantom CT",
        patient_name="PHANTOM^ONE",
    )
    return SeriesSpec(**{**spec.__dict__, **changes})


@pytest.fixture
def ct_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ct"
    write_series(folder, phantom_spec())
    return folder


@pytest.fixture(scope="module")
def long_series(tmp_path_factory) -> Path:
    """300 slices of 256x256: the responsiveness test's series."""
    folder = tmp_path_factory.mktemp("long") / "ct"
    rng = np.random.default_rng(3)
    values = rng.integers(900, 1200, size=(300, 256, 256))
    spec = SeriesSpec(
        shape=(300, 256, 256),
        pixel_spacing=(0.7, 0.7),
        slice_spacing=1.0,
        values=values,
        series_uid="1.2.826.0.1.3680043.8.498.77.300",
        series_description="long series",
        shuffle=False,
    )
    write_series(folder, spec)
    return folder


def make_window(qtbot, tmp_path: Path, db_name: str = "db.sqlite") -> MainWindow:
    window = MainWindow(StudyDatabase(tmp_path / db_name), Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(window)
    window.resize(1300, 800)
    window.show()
    qtbot.waitExposed(window)
    freeze_startup_heap()  # as run_viewer does once the window is up
    return window


@pytest.fixture
def window(qtbot, tmp_path: Path):
    win = make_window(qtbot, tmp_path)
    yield win
    win.close()


def import_and_wait(qtbot, window: MainWindow, paths) -> None:
    window.import_paths([str(p) for p in paths])
    qtbot.waitUntil(
        lambda: window.imports.job is not None and window.imports.job.done, timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: not window.imports.progress.isVisible(), timeout=WAIT_MS)


def open_and_wait(qtbot, window: MainWindow, series_id: int) -> None:
    window.open_series(series_id)
    view = window.grid.active
    qtbot.waitUntil(lambda: view.series is not None and view.series.complete, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.loader.jobs, timeout=WAIT_MS)  # finished loads go


def only_series_id(window: MainWindow) -> int:
    (series_id,) = window.browser.series_ids_in_view()
    return series_id


def test_import_tree_open_by_double_click_and_exact_pixels(qtbot, window, ct_folder) -> None:
    import_and_wait(qtbot, window, [ct_folder])
    series_id = only_series_id(window)
    browser = window.browser
    index = browser.proxy_index(series_id)
    browser.view.scrollTo(index)
    centre = browser.view.visualRect(index).center()
    qtbot.mouseClick(browser.view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseDClick(browser.view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    view = window.grid.active
    qtbot.waitUntil(lambda: view.series is not None and view.series.complete, timeout=WAIT_MS)
    truth = phantom_spec().values - 1024
    assert np.array_equal(view.volume.array, truth)
    assert view.volume.metadata.series_uid == SERIES_UID
    # What is on screen: the disk bright (window 500/1000), the background black.
    view.set_index(DISK[0])
    pixels = grab_rgb(view.graphics.viewport())
    disk = voxel_widget_pos(view, view.volume, (DISK[2], DISK[1], DISK[0]))
    empty = voxel_widget_pos(view, view.volume, (10, 55, DISK[0]))
    assert pixels[disk.y(), disk.x()].min() > 240
    assert pixels[empty.y(), empty.x()].max() < 15
    corners = view.annotations.corners
    assert corners["top_left"][:2] == ["PHANTOM ONE", "SYN0001"]
    assert "phantom CT" in corners["top_right"][2]
    wait_for_jobs(qtbot)


def wait_for_jobs(qtbot) -> None:
    from medviewer.ui import workers

    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=WAIT_MS)


def test_import_progress_refreshes_the_tree_at_most_once_per_interval(
    qtbot, tmp_path, monkeypatch
) -> None:
    """A burst of progress refreshes the tree at once and once more, an interval later."""
    refreshes: list[float] = []
    original = StudyBrowser.refresh

    def counted(browser) -> None:
        refreshes.append(time.monotonic())
        original(browser)

    monkeypatch.setattr(StudyBrowser, "refresh", counted)
    window = make_window(qtbot, tmp_path)
    release = threading.Event()

    def import_paths(paths, progress, cancel) -> ImportReport:
        for done in range(200):
            progress(done, 200)
        release.wait(WAIT_MS / 1000)
        return ImportReport()

    monkeypatch.setattr(window.db, "import_paths", import_paths)
    before = len(refreshes)
    window.import_paths([str(tmp_path)])
    qtbot.waitUntil(lambda: len(refreshes) >= before + 2, timeout=WAIT_MS)
    during = refreshes[before:]
    release.set()
    qtbot.waitUntil(lambda: not window.imports.progress.isVisible(), timeout=WAIT_MS)
    window.close()
    gaps = np.diff(during)
    assert (gaps >= 0.9 * TREE_REFRESH_MS / 1000).all(), gaps
    assert len(refreshes) > before + len(during)  # and once when the import is done


def test_mpr_layout_and_linked_click(qtbot, window, ct_folder) -> None:
    import_and_wait(qtbot, window, [ct_folder])
    window.set_layout("1x3")
    open_and_wait(qtbot, window, only_series_id(window))
    axial, coronal, sagittal = window.grid.views
    assert all(v.series is axial.series for v in (coronal, sagittal))
    axial.set_index(DISK[0])
    click(axial, voxel_widget_pos(axial, axial.volume, (DISK[2], DISK[1], DISK[0])))
    assert coronal.state.index == DISK[1]
    assert sagittal.state.index == DISK[2]
    wait_for_jobs(qtbot)


def test_right_drag_window_level_in_the_window(qtbot, window, ct_folder) -> None:
    import_and_wait(qtbot, window, [ct_folder])
    open_and_wait(qtbot, window, only_series_id(window))
    view = window.grid.active
    assert (view.state.center, view.state.width) == (500, 1000)  # the files' window
    start = voxel_widget_pos(view, view.volume, (40, 30, view.state.index))
    drag(view, start, start + type(start)(-40, 20), Qt.MouseButton.RightButton)
    assert view.state.width == 1000 - 40 * 8
    assert view.state.center == 500 + 20 * 8
    wait_for_jobs(qtbot)


def test_measurements_persist_across_windows(qtbot, tmp_path, ct_folder) -> None:
    first = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, first, [ct_folder])
    series_id = only_series_id(first)
    open_and_wait(qtbot, first, series_id)
    view = first.grid.active
    view.set_tool("distance")
    a = voxel_widget_pos(view, view.volume, (10, 10, view.state.index))
    b = voxel_widget_pos(view, view.volume, (70, 10, view.state.index))
    drag(view, a, b)
    (measured,) = first.store.for_series(SERIES_UID)
    assert first.measurements.texts() == [view.measurement_text(measured)]
    first.close()
    second = make_window(qtbot, tmp_path)
    open_and_wait(qtbot, second, series_id)
    (again,) = second.store.for_series(SERIES_UID)
    assert again == measured
    assert second.grid.active.visible_measurements() == [measured]
    assert second.measurements.texts()[0].startswith("Distance ")
    second.store.remove(again.id)
    assert StudyDatabase(tmp_path / "db.sqlite").measurements(SERIES_UID) == []
    second.close()


def test_settings_persist_layout_and_recent_folders(qtbot, tmp_path, ct_folder) -> None:
    first = make_window(qtbot, tmp_path)
    first.set_layout("2x2")
    import_and_wait(qtbot, first, [ct_folder])
    first.close()
    second = make_window(qtbot, tmp_path)
    assert second.grid.layout_name == "2x2"
    assert len(second.grid.views) == 4
    assert second.settings.recent_folders()[0] == str(ct_folder.resolve())
    second.close()


def test_skipped_files_are_reported_with_reason(qtbot, window, ct_folder) -> None:
    junk = ct_folder / "notes.txt"
    junk.write_text("not an image")
    import_and_wait(qtbot, window, [ct_folder])
    assert [(Path(s.path).name, s.reason) for s in window.imports.skipped] == [
        ("notes.txt", "not a DICOM file")
    ]
    assert "1 skipped" in window.statusBar().currentMessage()


def test_failed_load_shows_a_message_and_keeps_running(qtbot, window, ct_folder) -> None:
    import_and_wait(qtbot, window, [ct_folder])
    series_id = only_series_id(window)
    victim = sorted(ct_folder.glob("*.dcm"))[3]
    victim.write_bytes(victim.read_bytes()[:400])  # truncated after indexing
    window.open_series(series_id)
    qtbot.waitUntil(
        lambda: "Could not open" in window.statusBar().currentMessage(), timeout=WAIT_MS
    )
    assert victim.name in window.statusBar().currentMessage()
    wait_for_jobs(qtbot)
    assert window.isVisible()


def test_reopening_comes_from_the_cache(qtbot, window, ct_folder) -> None:
    import_and_wait(qtbot, window, [ct_folder])
    series_id = only_series_id(window)
    open_and_wait(qtbot, window, series_id)
    first_array = window.grid.active.volume.array
    window.open_series(series_id)
    assert window.loader.jobs == {}  # no background load started
    assert window.grid.active.volume.array is first_array


def test_switching_series_cancels_the_unfinished_load(
    qtbot, window, ct_folder, long_series
) -> None:
    import_and_wait(qtbot, window, [ct_folder, long_series])
    ids = {
        window.db.series_records(i)[0].series_uid: i for i in window.browser.series_ids_in_view()
    }
    open_and_wait(qtbot, window, ids[SERIES_UID])  # now in the cache
    window.open_series(ids["1.2.826.0.1.3680043.8.498.77.300"])
    long_job = window.loader.jobs["A"]
    window.open_series(ids[SERIES_UID])  # from the cache, before the long load reports back
    assert long_job.is_cancelled()
    view = window.grid.active
    assert view.volume.metadata.series_uid == SERIES_UID
    wait_for_jobs(qtbot)
    # A worker's queued events reach the GUI thread in order, before its finished signal,
    # which wait_for_jobs has seen: what the cancelled load had queued was delivered.
    QApplication.processEvents()
    assert view.volume.metadata.series_uid == SERIES_UID


def widening_spec() -> SeriesSpec:
    """The phantom as a signed 16-bit CT whose slice 2 holds a padding value (-32768
    stored, -33792 HU): loading starts in int16 and widens to int32 on the way."""
    stored = phantom_spec().values.copy()
    stored[2, 0, 0] = -32768
    return phantom_spec(values=stored, signed=True, bits_stored=16)


def test_a_volume_widened_mid_load_is_shown_exact_and_complete(qtbot, window, tmp_path) -> None:
    folder = tmp_path / "signed"
    write_series(folder, widening_spec())
    import_and_wait(qtbot, window, [folder])
    series_id = only_series_id(window)
    open_and_wait(qtbot, window, series_id)
    volume = window.grid.active.volume
    truth = widening_spec().values - 1024
    assert volume.array.dtype == np.int32 and volume.array[2, 0, 0] == -33792
    assert np.array_equal(volume.array, truth)
    assert window.cache.get(("db", series_id)) is volume


def test_a_widened_volume_replaces_the_first_where_it_is_shown(qtbot, window, tmp_path) -> None:
    """The second LoadStarted goes to the slot showing the first, even after the user made
    another viewport active."""
    folder = tmp_path / "signed"
    write_series(folder, widening_spec())
    window.set_layout("1x2")
    (a,), (b,) = window.grid.views_of("A"), window.grid.views_of("B")
    events = iter_load(folder, interval_s=0.0)
    load = _RunningLoad(LoadRequest("key", folder, "A"), workers.Job("load"))  # never started
    window.loader._on_event(load, next(events))  # int16, in the active view A
    click(b, b.rect().center())
    assert window.grid.active is b and a.series is not None
    for event in events:
        window.loader._on_event(load, event)
    assert b.series is None
    assert a.series is load.series and a.series.complete
    assert a.volume.array.dtype == np.int32
    assert np.array_equal(a.volume.array, widening_spec().values - 1024)


def test_event_loop_never_stalls_while_a_300_slice_series_loads(
    qtbot, window, long_series, monkeypatch
) -> None:
    """Importing and loading run in workers, and the event loop ticks while they run (the
    gaps in milliseconds are benchmarks/bench_responsiveness.py's figures)."""
    importer, loader = WorkRecorder("the import"), WorkRecorder("the load")
    monkeypatch.setattr(window.db, "import_paths", importer.wrap(window.db.import_paths))
    monkeypatch.setattr(series_loader, "iter_load", loader.wrap_generator(series_loader.iter_load))
    with Heartbeat() as importing:
        import_and_wait(qtbot, window, [long_series])
    view = window.grid.active
    with Heartbeat() as loading:
        window.open_series(only_series_id(window))
        qtbot.waitUntil(lambda: view.series is not None and view.series.complete, timeout=WAIT_MS)
        wait_for_jobs(qtbot)
    assert view.volume.array.shape == (300, 256, 256)
    importer.assert_off_the_gui_thread()
    loader.assert_off_the_gui_thread()
    # Both last 0.1-0.4 s, as short as one scheduling delay of a busy machine: a gap's share
    # of them would flake, so only the ticks during the work are checked here.
    importing.assert_ticked_during(importer)
    loading.assert_ticked_during(loader)


def test_screenshot_command_renders_the_viewer(tmp_path, ct_folder, qapp) -> None:
    from medviewer.cli import main
    from medviewer.ui.screenshot import render_grid

    out = tmp_path / "shot.png"
    assert main(["screenshot", str(ct_folder), "--out", str(out), "--slice", str(DISK[0]),
                 "--window", "1000/500", "--size", "640x480"]) == 0  # fmt: skip
    from PySide6.QtGui import QImage

    image = QImage(str(out))
    assert (image.width(), image.height()) == (640, 480)
    # The same widgets: locate the disk through a grid rendered identically.
    from medviewer.io.series import load_series

    volume = load_series(ct_folder)
    grid = render_grid(volume, index=DISK[0], window=(500, 1000), size=(640, 480))
    view = grid.views[0]
    pos = view.graphics.mapTo(grid, voxel_widget_pos(view, volume, (DISK[2], DISK[1], DISK[0])))
    empty = view.graphics.mapTo(grid, voxel_widget_pos(view, volume, (10, 55, DISK[0])))
    assert QImage(image).pixelColor(pos).lightness() > 240
    assert QImage(image).pixelColor(empty).lightness() < 15
    grid.close()


def test_screenshot_command_draws_a_slab_and_another_plane(tmp_path, ct_folder, qapp) -> None:
    """--slab: slice 6 misses the disk (slices 8-15), its 10 mm MIP (slices 4-8) holds it;
    --plane coronal: the disk's row shows it on slices 8-15 only."""
    from PySide6.QtGui import QImage

    from medviewer.cli import main
    from medviewer.io.series import load_series
    from medviewer.ui.screenshot import render_grid

    volume = load_series(ct_folder)

    def lightness(args: list[str], plane: str, voxel: tuple[int, int, int]) -> int:
        out = tmp_path / "shot.png"
        assert main(["screenshot", str(ct_folder), "--out", str(out), "--window", "1000/500",
                     "--size", "480x400", "--plane", plane, *args]) == 0  # fmt: skip
        index = int(args[args.index("--slice") + 1])
        grid = render_grid(volume, index=index, window=(500, 1000), size=(480, 400),
                           plane=plane)  # fmt: skip
        view = grid.views[0]
        assert view.state.plane == plane and view.state.index == index
        pos = view.graphics.mapTo(grid, voxel_widget_pos(view, volume, voxel))
        grid.close()
        return QImage(str(out)).pixelColor(pos).lightness()

    disk_centre = (DISK[2], DISK[1], 6)
    assert lightness(["--slice", "6"], "axial", disk_centre) < 15
    assert lightness(["--slice", "6", "--slab", "10"], "axial", disk_centre) > 240
    assert lightness(["--slice", "6", "--slab", "10", "--slab-mode", "minip"], "axial",
                     disk_centre) < 15  # fmt: skip
    assert lightness(["--slice", str(DISK[1])], "coronal", (DISK[2], DISK[1], 12)) > 240
    assert lightness(["--slice", str(DISK[1])], "coronal", (DISK[2], DISK[1], 4)) < 15


def test_screenshot_command_refuses_a_bad_slab(tmp_path, ct_folder, capsys) -> None:
    from medviewer.cli import main

    out = tmp_path / "x.png"
    assert main(["screenshot", str(ct_folder), "--out", str(out), "--slab", "500"]) == 2
    assert "--slab: slab thickness must be in (0, 100] mm" in capsys.readouterr().err
    assert not out.exists()


def test_screenshot_command_rejects_bad_options(tmp_path, ct_folder, capsys) -> None:
    from medviewer.cli import main

    code = main(
        ["screenshot", str(ct_folder), "--out", str(tmp_path / "x.png"), "--window", "wide"]
    )
    assert code == 2
    assert "--window expects two numbers" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_medviewer_paths_imports_and_opens(tmp_path, ct_folder) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    db = tmp_path / "cli.sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "medviewer", str(ct_folder), "--db", str(db),
         "--settings", str(tmp_path / "cli.ini"), "--exit-after", "4000"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert StudyDatabase(db).counts().series == 1


def test_cache_size_setting_bounds_the_cache(qtbot, tmp_path, ct_folder) -> None:
    first = make_window(qtbot, tmp_path)
    import_and_wait(qtbot, first, [ct_folder])
    open_and_wait(qtbot, first, only_series_id(first))
    assert len(first.cache) == 1
    first.set_cache_gb(0.0001)  # 100 kB: smaller than the 192 kB phantom
    assert len(first.cache) == 0
    first.close()
    second = make_window(qtbot, tmp_path)
    assert second.cache.max_bytes == int(0.0001 * (1 << 30))
    second.close()


def test_opening_paths_opens_their_series_even_when_already_indexed(
    qtbot, window, tmp_path, ct_folder
) -> None:
    other = tmp_path / "other"
    write_series(other, phantom_spec(series_uid="1.2.826.0.1.3680043.8.498.77.2", seed=5))
    import_and_wait(qtbot, window, [other, ct_folder])  # both indexed, nothing opened
    assert window.grid.active.series is None
    window.import_paths([ct_folder], then_open=True)  # unchanged files: nothing new to index
    view = window.grid.active
    qtbot.waitUntil(lambda: view.series is not None and view.series.complete, timeout=WAIT_MS)
    wait_for_jobs(qtbot)
    assert view.volume.metadata.series_uid == SERIES_UID


def test_scrolling_does_not_recompute_the_measurement_list(
    qtbot, window, ct_folder, monkeypatch
) -> None:
    import medviewer.ui.measurement_panel as panel

    import_and_wait(qtbot, window, [ct_folder])
    open_and_wait(qtbot, window, only_series_id(window))
    view = window.grid.active
    view.set_tool("ellipse")
    drag(view, voxel_widget_pos(view, view.volume, (53, 8, view.state.index)),
         voxel_widget_pos(view, view.volume, (72, 22, view.state.index)))  # fmt: skip
    assert window.measurements.texts()[0].startswith("Ellipse mean 100.0 HU")
    calls: list[str] = []
    original = panel.measurement_text
    monkeypatch.setattr(
        panel, "measurement_text", lambda m, v: calls.append(m.id) or original(m, v)
    )
    for _ in range(10):
        view.scroll(1)
    view.set_window(0, 500)
    assert calls == []
    assert window.measurements.texts()[0].startswith("Ellipse mean 100.0 HU")


TILTED_UID = "1.2.826.0.1.3680043.8.498.77.2"


def test_regular_grid_action_resamples_only_tilted_series(qtbot, window, tmp_path) -> None:
    """View > Resample onto a regular grid: offered for the tilted series only; the result is
    shown in every view of the slot on an orthogonal grid, the disk where the files put it."""
    tilt = (0.0, SPACING[0], SPACING[2])  # each slice one row further back: a tilted gantry
    write_series(tmp_path / "tilted", phantom_spec(slice_step=tilt, series_uid=TILTED_UID))
    write_series(tmp_path / "regular", phantom_spec())
    import_and_wait(qtbot, window, [tmp_path / "tilted", tmp_path / "regular"])
    action = window.actions_by_name["regular_grid"]
    window.set_layout("1x3")
    open_and_wait(qtbot, window, window.db.series_id_of(SERIES_UID))
    assert not action.isEnabled()
    tilted_id = window.db.series_id_of(TILTED_UID)
    open_and_wait(qtbot, window, tilted_id)
    assert action.isEnabled()
    acquired = window.grid.active.series
    action.trigger()
    views = window.grid.views
    qtbot.waitUntil(lambda: views[0].series is not acquired, timeout=WAIT_MS)
    volume = views[0].volume
    assert all(view.series is views[0].series for view in views)  # the MPR views show it too
    assert window.ai.panel.volume is volume  # and models run on it
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(volume.spacing, (SPACING[1], SPACING[0], SPACING[2]))
    assert volume.metadata.warnings[0].startswith("resampled onto a regular grid from 20")
    assert volume.metadata.series_uid != TILTED_UID
    assert not action.isEnabled()
    origin = np.array(phantom_spec().origin)
    for k in range(8, 16):  # the disk centre pixel of acquired slice k, at its true position
        point = np.add(origin, (DISK[2] * SPACING[1], DISK[1] * SPACING[0] + k * tilt[1], k * 2.0))
        col, row, index = np.rint(patient_to_voxel(volume.affine, point)).astype(int)
        assert (row, index) == (DISK[1] + k, k)
        assert volume.array[index, row, col] == 1000
        assert acquired.volume.array[k, DISK[1], DISK[2]] == 1000  # the same pixel as loaded
    assert volume.array[15, DISK[1], DISK[2]] == 0  # ...which the loaded grid puts 9 mm off
    window.open_series(tilted_id)  # the acquired series is a reopen away
    assert window.grid.active.series.volume is acquired.volume
    assert action.isEnabled()
    wait_for_jobs(qtbot)
