"""The study browser: tree contents, filtering, refresh in place, activation, drag, thumbnails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QModelIndex, Qt

from medviewer.io.database import StudyDatabase
from medviewer.io.thumbnails import ThumbnailCache
from medviewer.synthetic.dicom_writer import SeriesSpec, uid, write_series
from medviewer.ui import workers
from medviewer.ui.browser import (
    FILTER_PLACEHOLDER,
    INSTANCES_ROLE,
    SERIES_MIME,
    SERIES_UID_ROLE,
    THUMBNAIL_COUNT_ROLE,
    StudyBrowser,
    series_id_from_mime,
)
from tests.waits import WAIT_MS

CHEST = SeriesSpec(
    shape=(4, 16, 12),
    seed=1,
    patient_name="ALPHA^ANN",
    patient_id="P1",
    series_description="Chest CT",
    modality="CT",
)
BRAIN = SeriesSpec(
    shape=(3, 10, 20),
    seed=2,
    patient_name="BETA^BOB",
    patient_id="P2",
    series_description="Brain MR",
    modality="MR",
    window=None,
)
# A second series in ALPHA's study (same study UID, its own series UID).
ABDOMEN = SeriesSpec(
    shape=(5, 8, 8),
    seed=3,
    patient_name="ALPHA^ANN",
    patient_id="P1",
    series_description="Abdomen CT",
    study_uid=uid(1, 1),
    acquisition_number=2,
)


def _texts(model, index: QModelIndex) -> list[str]:
    return [model.index(index.row(), c, index.parent()).data() for c in range(4)]


def _series_id(db: StudyDatabase, description: str) -> int:
    for patient in db.patients():
        for study in db.studies(patient["id"]):
            for series in db.series(study["id"]):
                if series["description"] == description:
                    return int(series["id"])
    raise KeyError(description)


@pytest.fixture
def db(tmp_path: Path) -> StudyDatabase:
    write_series(tmp_path / "in" / "chest", CHEST)
    write_series(tmp_path / "in" / "brain", BRAIN)
    database = StudyDatabase(tmp_path / "db.sqlite")
    database.import_paths([tmp_path / "in"])
    return database


@pytest.fixture
def browser(qtbot, db: StudyDatabase, tmp_path: Path):
    widget = StudyBrowser(db, ThumbnailCache(tmp_path / "thumbs"))
    qtbot.addWidget(widget)
    widget.resize(500, 400)
    widget.show()
    yield widget
    widget.shutdown()
    qtbot.waitUntil(lambda: not widget.busy and not workers.active_jobs(), timeout=WAIT_MS)


def test_tree_shows_patients_studies_series(browser: StudyBrowser, db: StudyDatabase) -> None:
    model = browser.proxy
    assert browser.filter_edit.placeholderText() == FILTER_PLACEHOLDER
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(4)] == [
        "Name / description",
        "Modality",
        "Date",
        "Images",
    ]
    assert model.rowCount() == 2
    alpha, beta = model.index(0, 0), model.index(1, 0)
    assert alpha.data() == "ALPHA, ANN (P1)" and beta.data() == "BETA, BOB (P2)"
    study = model.index(0, 0, alpha)
    assert _texts(model, study) == ["synthetic study", "", "2026-01-01", "4"]
    chest, brain = model.index(0, 0, study), model.index(0, 0, model.index(0, 0, beta))
    assert _texts(model, chest) == ["#1 Chest CT", "CT", "", "4"]
    assert _texts(model, brain) == ["#1 Brain MR", "MR", "", "3"]
    assert chest.data(SERIES_UID_ROLE) == uid(1, 2, 1)
    assert browser.series_ids_in_view() == [
        _series_id(db, "Chest CT"),
        _series_id(db, "Brain MR"),
    ]
    assert browser.view.isExpanded(alpha) and browser.view.isExpanded(study)


@pytest.mark.parametrize("text", ["brain mr", "BETA", "p2"])
def test_filter_keeps_matches_and_their_parents(
    browser: StudyBrowser, db: StudyDatabase, text: str
) -> None:
    browser.filter_edit.setText(text)
    assert browser.series_ids_in_view() == [_series_id(db, "Brain MR")]
    assert browser.proxy.rowCount() == 1
    assert browser.proxy.index(0, 0).data() == "BETA, BOB (P2)"
    browser.filter_edit.setText("no such thing")
    assert browser.series_ids_in_view() == []
    browser.filter_edit.clear()
    assert len(browser.series_ids_in_view()) == 2


def test_filter_by_modality_column(browser: StudyBrowser, db: StudyDatabase) -> None:
    browser.filter_edit.setText("mr")
    assert browser.series_ids_in_view() == [_series_id(db, "Brain MR")]


def test_refresh_keeps_expansion_and_selection_and_adds_series(
    browser: StudyBrowser, db: StudyDatabase, tmp_path: Path
) -> None:
    view, model = browser.view, browser.proxy
    beta = model.index(1, 0)
    view.collapse(beta)
    chest = browser.proxy_index(_series_id(db, "Chest CT"))
    view.setCurrentIndex(chest)
    write_series(tmp_path / "more", ABDOMEN)
    db.import_paths([tmp_path / "more"])
    browser.refresh()
    browser.refresh()  # a second refresh with nothing new changes nothing
    abdomen = _series_id(db, "Abdomen CT")
    assert browser.series_ids_in_view() == [
        _series_id(db, "Chest CT"),
        abdomen,
        _series_id(db, "Brain MR"),
    ]
    assert _texts(model, browser.proxy_index(abdomen)) == ["#2 Abdomen CT", "CT", "", "5"]
    assert _texts(model, model.index(0, 0, model.index(0, 0)))[3] == "9"  # study image sum
    assert not view.isExpanded(model.index(1, 0))
    assert view.isExpanded(model.index(0, 0))
    assert browser.current_series_id() == _series_id(db, "Chest CT")


def test_refresh_expands_a_new_patient_and_restores_after_filter(
    browser: StudyBrowser, db: StudyDatabase, tmp_path: Path
) -> None:
    view, model = browser.view, browser.proxy
    view.collapse(model.index(0, 0))
    browser.filter_edit.setText("alpha")
    assert view.isExpanded(model.index(0, 0))  # filtering shows the matches' children
    browser.filter_edit.clear()
    assert not view.isExpanded(model.index(0, 0))  # the user's collapse comes back
    spec = SeriesSpec(shape=(2, 8, 8), seed=4, patient_name="GAMMA^GIL", patient_id="P3")
    write_series(tmp_path / "gamma", spec)
    db.import_paths([tmp_path / "gamma"])
    browser.refresh()
    gamma = model.index(2, 0)
    assert gamma.data() == "GAMMA, GIL (P3)"
    assert view.isExpanded(gamma) and view.isExpanded(model.index(0, 0, gamma))
    assert view.isExpanded(model.index(1, 0))


def test_double_click_and_enter_activate_a_series(
    qtbot, browser: StudyBrowser, db: StudyDatabase
) -> None:
    brain_id = _series_id(db, "Brain MR")
    index = browser.proxy_index(brain_id)
    browser.view.scrollTo(index)
    centre = browser.view.visualRect(index).center()
    viewport = browser.view.viewport()
    with qtbot.waitSignal(browser.seriesActivated, timeout=WAIT_MS) as blocker:
        # what a real double-click sends: QTest's DClick alone lacks the first press
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert blocker.args == [brain_id]
    chest_id = _series_id(db, "Chest CT")
    with qtbot.waitSignal(browser.seriesSelected, timeout=WAIT_MS) as selected:
        browser.view.setCurrentIndex(browser.proxy_index(chest_id))
    assert selected.args == [chest_id]
    browser.view.setFocus()
    with qtbot.waitSignal(browser.seriesActivated, timeout=WAIT_MS) as blocker:
        qtbot.keyClick(browser.view, Qt.Key.Key_Return)
    assert blocker.args == [chest_id]


def test_enter_on_a_patient_does_not_activate(qtbot, browser: StudyBrowser) -> None:
    browser.view.setCurrentIndex(browser.proxy.index(0, 0))
    with qtbot.assertNotEmitted(browser.seriesActivated):
        qtbot.keyClick(browser.view, Qt.Key.Key_Return)


def test_series_rows_drag_their_id(browser: StudyBrowser, db: StudyDatabase) -> None:
    brain_id = _series_id(db, "Brain MR")
    index = browser.proxy_index(brain_id)
    assert index.flags() & Qt.ItemFlag.ItemIsDragEnabled
    assert not browser.proxy.index(0, 0).flags() & Qt.ItemFlag.ItemIsDragEnabled
    mime = browser.proxy.mimeData([index])
    assert SERIES_MIME in browser.proxy.mimeTypes()
    assert bytes(mime.data(SERIES_MIME).data()) == str(brain_id).encode("ascii")
    assert series_id_from_mime(mime) == brain_id
    source = browser.model.mimeData([browser.series_item(brain_id).index()])
    assert series_id_from_mime(source) == brain_id


def test_thumbnails_appear_and_are_cached(
    qtbot, browser: StudyBrowser, db: StudyDatabase, tmp_path: Path
) -> None:
    ids = browser.series_ids_in_view()
    qtbot.waitUntil(lambda: all(browser.has_thumbnail(i) for i in ids), timeout=WAIT_MS)
    brain = browser.series_item(_series_id(db, "Brain MR"))
    sizes = brain.icon().availableSizes()
    # 20 columns x 0.9 mm wide, 10 rows x 0.7 mm high: 96 x round(96 * 7 / 18)
    assert sizes and (sizes[0].width(), sizes[0].height()) == (96, 37)
    cache = ThumbnailCache(tmp_path / "thumbs")
    cached = cache.get(uid(2, 2, 1), 3)
    assert cached is not None and cached.dtype == np.uint8 and cached.shape[1] == 96
    qtbot.waitUntil(lambda: not browser.busy, timeout=WAIT_MS)


def test_a_grown_series_gets_a_new_thumbnail(
    qtbot, browser: StudyBrowser, db: StudyDatabase, tmp_path: Path
) -> None:
    chest_id = _series_id(db, "Chest CT")
    qtbot.waitUntil(lambda: browser.has_thumbnail(chest_id), timeout=WAIT_MS)
    bigger = SeriesSpec(
        shape=(6, 16, 12),
        seed=1,
        patient_name="ALPHA^ANN",
        patient_id="P1",
        series_description="Chest CT",
    )
    write_series(tmp_path / "grown", bigger)  # same series UID: 6 more files
    db.import_paths([tmp_path / "grown"])
    browser.refresh()
    item = browser.series_item(chest_id)
    assert item.data(INSTANCES_ROLE) == 10
    qtbot.waitUntil(lambda: item.data(THUMBNAIL_COUNT_ROLE) == 10, timeout=WAIT_MS)
    cache = ThumbnailCache(tmp_path / "thumbs")
    assert cache.get(uid(1, 2, 1), 10) is not None
    assert cache.get(uid(1, 2, 1), 4) is None  # the stale file is gone


def test_shutdown_cancels_thumbnail_work(qtbot, db: StudyDatabase, tmp_path: Path) -> None:
    widget = StudyBrowser(db, ThumbnailCache(tmp_path / "thumbs"))
    qtbot.addWidget(widget)
    widget.close()  # closing shuts the thumbnail queue down
    qtbot.waitUntil(lambda: not widget.busy, timeout=WAIT_MS)
    widget.refresh()  # no new work after shutdown
    assert not widget.busy


def test_an_unreadable_series_fails_once_without_retry(
    qtbot, db: StudyDatabase, tmp_path: Path
) -> None:
    for path in (tmp_path / "in" / "brain").iterdir():
        path.write_bytes(b"")  # the files vanish into nothing after the import
    widget = StudyBrowser(db, ThumbnailCache(tmp_path / "thumbs"))
    qtbot.addWidget(widget)
    brain_id, chest_id = _series_id(db, "Brain MR"), _series_id(db, "Chest CT")
    qtbot.waitUntil(lambda: widget.has_thumbnail(chest_id) and not widget.busy, timeout=WAIT_MS)
    assert not widget.has_thumbnail(brain_id)
    widget.refresh()
    assert not widget.busy  # a failed series is not tried again until it changes
    widget.shutdown()
