"""The Query/Retrieve window against the test Orthanc: search fills the tree as results
arrive, a study expands to its series, Retrieve indexes a series and tells the browser."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_the_export_dialog_sends_its_dicom_files_to_the_pacs(qtbot, pacs, node, tmp_path):
    """Export with "send" ticked: the SEG, SR, PDF and key images reach the source's study;
    a de-identified export is not sent."""
    from pathlib import Path

    from PySide6.QtCore import Qt

    from medviewer.io.series import load_series
    from medviewer.net import dimse
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
    from medviewer.ui.open_series import OpenSeries
    from medviewer.ui.report_dialog import ReportDialog, ReportDraft
    from tests.report.conftest import make_seg_result

    written = write_series(tmp_path / "ct", SeriesSpec(shape=(12, 32, 28), seed=206,
                                                       pixel_spacing=(0.8, 0.9)))
    pacs.server.upload(list(written.paths))
    volume = load_series(tmp_path / "ct")
    dialog = ReportDialog(OpenSeries(Path("ct"), volume), [make_seg_result(volume)], [],
                          ReportDraft("Synthetic."), folder=tmp_path / "out")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.rendering, timeout=WAIT_MS)
    dialog.send_check.setChecked(True)
    dialog.send_node.setEditText(f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}")
    with qtbot.waitSignal(dialog.exported, timeout=WAIT_MS) as done:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    sent = [p for p in done.args[0].files if p.path.suffix == ".dcm"]
    qtbot.waitUntil(lambda: "Sent " in dialog.status.text(), timeout=WAIT_MS)
    assert f"Sent {len(sent)} of {len(sent)} files to" in dialog.status.text()
    series = list(dimse.find(node, dimse.Query("SERIES", study_uid=written.study_uid)))
    assert sorted(r["Modality"] for r in series) == ["CT", "DOC", "OT", "SEG", "SR"]
    qtbot.waitUntil(lambda: dialog.send_job.done, timeout=WAIT_MS)
    # the same export de-identified is not sent back
    qtbot.waitUntil(lambda: dialog.job.done and dialog.export_button.isEnabled(),
                    timeout=WAIT_MS)
    dialog.deidentify.setChecked(True)
    with qtbot.waitSignal(dialog.exported, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert "Not sent: a de-identified export does not go back" in dialog.status.text()
    after = list(dimse.find(node, dimse.Query("SERIES", study_uid=written.study_uid)))
    assert len(after) == len(series)


def test_a_node_saved_under_a_name_is_offered_and_used(qtbot, pacs, tmp_path):
    from medviewer.net.nodes import load_nodes

    dialog = QueryRetrieveDialog(StudyDatabase(tmp_path / "studies.sqlite"))
    qtbot.addWidget(dialog)
    dialog.node_box.setEditText(f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}")
    assert dialog.save_node("reading room PACS")
    saved = load_nodes()["reading room PACS"]
    assert (saved.ae_title, saved.port) == (pacs.server.ae_title, pacs.server.dicom_port)
    assert dialog.node_box.currentText() == "reading room PACS"
    assert dialog.node() == saved
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "answered in" in dialog.status.text(), timeout=WAIT_MS)
    dialog.node_box.setEditText("nonsense")
    assert not dialog.save_node("bad") and "not a PACS node" in dialog.status.text()


def test_a_series_opens_on_its_first_batch_and_is_read_again_when_complete(qtbot, tmp_path):
    """The first indexed batch opens the series (8 of 12 images); when the retrieve ends
    with more of it, it is opened again so the viewer reads all 12."""
    from medviewer.net.dimse import GetProgress
    from medviewer.net.retrieve import RetrieveReport
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    series = write_series(tmp_path / "ct", SeriesSpec(shape=(12, 8, 6), seed=131,
                                                      shuffle=False))
    db = StudyDatabase(tmp_path / "studies.sqlite")
    opened: list[tuple[int, int]] = []
    dialog = QueryRetrieveDialog(db, open_series=lambda i: opened.append(
        (i, len(db.series_records(i)))))
    qtbot.addWidget(dialog)
    assert dialog.open_check.isChecked()
    paths = sorted(series.paths)
    db.import_paths(paths[:8])
    dialog._progressed(GetProgress(8, 12, paths[:8], indexed_series=(series.series_uid,)))
    series_id = db.series_id_of(series.series_uid)
    assert opened == [(series_id, 8)]
    assert dialog.status.text() == "Showing the first 8 images; the rest are coming"
    dialog._progressed(GetProgress(9, 12, paths[8:9]))  # not indexed yet: nothing opens
    db.import_paths(paths[8:])
    dialog._retrieve_done(RetrieveReport(received=12, skipped=0, failed=[],
                                         series=[series_id], seconds=1.0))
    assert opened == [(series_id, 8), (series_id, 12)]
    dialog.open_check.setChecked(False)
    dialog._shown = None
    dialog._progressed(GetProgress(8, 12, paths[:8], indexed_series=(series.series_uid,)))
    assert len(opened) == 2


def test_the_window_shows_a_retrieved_series_whole(qtbot, pacs, tmp_path):
    """File > Query/Retrieve from the main window: retrieving a series opens it in the active
    viewport as it arrives, and what the viewer ends with is the whole series."""
    from medviewer.io.series import load_series
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    window = MainWindow(StudyDatabase(tmp_path / "db.sqlite"), Settings(tmp_path / "s.ini"))
    qtbot.addWidget(window)
    window.show()
    window.imports.open_pacs()
    dialog = window.imports._pacs
    dialog.node_box.setEditText(f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}")
    dialog.filters["patient_name"].setText("PACS^ONE")
    dialog.search_button.click()
    qtbot.waitUntil(lambda: dialog.status.text() == "1 studies", timeout=WAIT_MS)
    dialog.tree.setCurrentItem(dialog.tree.topLevelItem(0))
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: "received" in dialog.status.text(), timeout=WAIT_MS)

    def whole() -> bool:
        view = window.grid.active
        return (view is not None and view.series is not None
                and view.series.volume.array.shape[0] == 12 and view.series.complete)

    qtbot.waitUntil(whole, timeout=WAIT_MS)
    expected = load_series(window.db.series_id_of(pacs.ct.series_uid), db=window.db)
    np.testing.assert_array_equal(window.grid.active.series.volume.array, expected.array)
    qtbot.waitUntil(lambda: not dialog.busy() and not window.loader.jobs, timeout=WAIT_MS)
    window.close()


def test_send_a_database_series_to_the_pacs(qtbot, pacs, tmp_path):
    """The browser's series sent through "Send series to PACS…": every file is stored on
    Orthanc as it is on disk; a file that vanished is counted as not sent."""
    import pydicom

    from medviewer.net import dimse
    from medviewer.net.nodes import dimse_node
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
    from medviewer.ui.pacs_send_dialog import SendSeriesDialog
    from tests.net.test_send import stored_copy

    series = write_series(tmp_path / "ct", SeriesSpec(shape=(5, 8, 6), seed=141,
                                                      patient_name="SEND^ONE"))
    db = StudyDatabase(tmp_path / "studies.sqlite")
    db.import_paths(list(series.paths))
    gone = sorted(series.paths)[-1]
    gone.unlink()
    dialog = SendSeriesDialog(db, db.series_id_of(series.series_uid))
    qtbot.addWidget(dialog)
    assert dialog.summary.text() == "4 files (1 instances inside archives or missing are not sent)"
    dialog.node_box.setEditText(f"{pacs.server.ae_title}@127.0.0.1:{pacs.server.dicom_port}")
    dialog.send_button.click()
    qtbot.waitUntil(lambda: not dialog.busy() and "stored" in dialog.status.text(),
                    timeout=WAIT_MS)
    assert dialog.status.text() == "4 stored"
    node = dimse_node(pacs.server.ae_title, "127.0.0.1", pacs.server.dicom_port)
    assert len(dimse.instances(node, series.study_uid)) == 4
    for path in dialog.files:
        mine = pydicom.dcmread(path)
        assert stored_copy(pacs, mine.SOPInstanceUID).PixelData == mine.PixelData


def test_send_without_a_selected_series_says_so(qtbot, tmp_path):
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    window = MainWindow(StudyDatabase(tmp_path / "db.sqlite"), Settings(tmp_path / "s.ini"))
    qtbot.addWidget(window)
    told: list[str] = []
    window.imports.statusMessage.connect(lambda text, _ms: told.append(text))
    window.actions_by_name["send_series"].trigger()
    assert told == ["Select a series in the study browser first"]
    window.close()


def test_the_viewer_receives_a_pushed_study_and_shows_it_in_the_browser(qtbot, pacs, tmp_path):
    """File > Receive studies: medviewer's storage SCP in the viewer; Orthanc pushes a series
    (C-STORE to the registered 'medviewer' on its port) and the browser lists it, whole; Stop
    shuts the server (the port is free again) and the settings keep the port."""
    import socket

    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    settings = Settings(tmp_path / "s.ini")
    settings.set_listener("MEDVIEWER", pacs.move_port)
    window = MainWindow(StudyDatabase(tmp_path / "db.sqlite"), settings)
    qtbot.addWidget(window)
    window.actions_by_name["listen"].trigger()
    dialog = window.imports._listener
    assert dialog.port_box.value() == pacs.move_port
    dialog._dest = tmp_path / "pushed"
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Listening as MEDVIEWER"),
                    timeout=WAIT_MS)
    pacs.server.push(pacs.ct.series_uid)

    def listed() -> bool:
        series = window.db.series_id_of(pacs.ct.series_uid)
        return (series is not None and window.browser.series_item(series) is not None
                and len(window.db.series_records(series)) == 12)

    qtbot.waitUntil(listed, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: dialog.count == 12, timeout=WAIT_MS)
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: not dialog.listening(), timeout=WAIT_MS)
    assert dialog.status.text() == "Stopped; 12 instances received"
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", pacs.move_port), timeout=10).close()
    window.close()


def test_the_listener_says_why_it_cannot_start(qtbot, tmp_path):
    from medviewer.ui.pacs_listen_dialog import ListenDialog
    from medviewer.ui.settings import Settings

    dialog = ListenDialog(StudyDatabase(tmp_path / "db.sqlite"), Settings(tmp_path / "s.ini"))
    qtbot.addWidget(dialog)
    dialog.aet_edit.setText("BAD\\TITLE")
    dialog.start_button.click()
    assert "is not a DICOM AE title" in dialog.status.text()
    dialog.aet_edit.setText("MEDVIEWER")
    dialog.cert_edit.setText("/etc/hostname")
    dialog.start_button.click()
    assert dialog.status.text().startswith("TLS needs a certificate and its key")
    assert not dialog.listening()
