"""The Query/Retrieve window against the test Orthanc: search fills the tree as results
arrive, a study expands to its series, Retrieve indexes a series and tells the browser."""

from __future__ import annotations

from medviewer.io.database import StudyDatabase
from medviewer.ui.pacs_dialog import LEVEL_ROLE, UID_ROLE, QueryRetrieveDialog

WAIT_MS = 60_000


def test_search_expand_and_retrieve(qtbot, pacs, tmp_path):
    db = StudyDatabase(tmp_path / "studies.sqlite")
    told: list[list[int]] = []
    dialog = QueryRetrieveDialog(db, retrieved=told.append)
    qtbot.addWidget(dialog)
    dialog.node_box.setEditText(f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "answered in" in dialog.status.text(), timeout=WAIT_MS)
    dialog.filters["patient_name"].setText("PACS^*")
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.status.text() == "3 studies", timeout=WAIT_MS)
    studies = {dialog.tree.topLevelItem(i).data(0, UID_ROLE): dialog.tree.topLevelItem(i)
               for i in range(dialog.tree.topLevelItemCount())}
    assert set(studies) == {pacs.ct.study_uid, pacs.multiframe.study_uid,
                            pacs.compressed.study_uid}
    study = studies[pacs.ct.study_uid]
    assert study.text(0) == "PACS^ONE" and study.text(5) == "1 / 12"
    study.setExpanded(True)
    qtbot.waitUntil(lambda: study.childCount() == 1, timeout=WAIT_MS)
    series = study.child(0)
    assert series.data(0, UID_ROLE) == pacs.ct.series_uid
    assert series.data(0, LEVEL_ROLE) == "SERIES" and series.text(5) == "12"
    dialog.tree.setCurrentItem(series)
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: "received" in dialog.status.text(), timeout=WAIT_MS)
    assert dialog.status.text() == "12 received, 0 already here"
    series_id = db.series_id_of(pacs.ct.series_uid)
    assert series_id is not None and told[-1] == [series_id]
    assert len(db.series_records(series_id)) == 12
    assert dialog.progress.value() == dialog.progress.maximum()
    qtbot.waitUntil(lambda: not dialog.busy(), timeout=WAIT_MS)


def test_a_bad_node_is_said_not_raised(qtbot, tmp_path):
    dialog = QueryRetrieveDialog(StudyDatabase(tmp_path / "studies.sqlite"))
    qtbot.addWidget(dialog)
    dialog.node_box.setEditText("nonsense")
    dialog.search_button.click()
    assert "'nonsense' is not a PACS node" in dialog.status.text()
    assert not dialog.busy()
