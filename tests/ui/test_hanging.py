"""Hanging protocols in the main window, on the demo study: the chest CT hangs lung and
mediastinal windows side by side, with its PET it hangs fused in three planes, with a prior
it hangs beside it; the arrangement on screen saves as a protocol that matches next time."""

from __future__ import annotations

import json

import pydicom

from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.waits import WAIT_MS


def _import(qtbot, window, folder) -> None:
    window.import_paths([str(folder)])
    qtbot.waitUntil(lambda: window.imports.job is not None and window.imports.job.done,
                    timeout=WAIT_MS)  # fmt: skip


def _windows(window) -> list[tuple[float, float]]:
    return [(v.state.center, v.state.width) for v in window.grid.views]


def test_a_chest_ct_hangs_lung_and_mediastinum(qtbot, ct_window) -> None:
    window = ct_window
    assert window.hanging.matching().name == "Chest CT"
    window.actions_by_name["hang"].trigger()
    assert window.grid.layout_name == "1x2"
    ct = window.grid.slots["A"]
    assert [v.series for v in window.grid.views] == [ct, ct]
    assert _windows(window) == [(-600.0, 1500.0), (50.0, 350.0)]
    assert "W 1500 L -600" in window.grid.views[0].annotations.corners["bottom_right"][0]
    assert "W 350 L 50" in window.grid.views[1].annotations.corners["bottom_right"][0]


def test_with_its_pet_it_hangs_fused(qtbot, ct_window, demo_study) -> None:
    window = ct_window
    _import(qtbot, window, demo_study.dicom / "DEMO0001" / "PT")
    assert window.hanging.matching().name == "PET/CT"
    window.hanging.apply()
    assert window.grid.layout_name == "1x3"
    qtbot.waitUntil(lambda: all(v.fusion is not None for v in window.grid.views),
                    timeout=WAIT_MS)  # fmt: skip
    assert [v.state.plane for v in window.grid.views] == ["axial", "coronal", "sagittal"]
    assert _windows(window) == [(50.0, 350.0)] * 3


def test_with_a_prior_it_hangs_beside_it(qtbot, ct_window, tmp_path) -> None:
    window = ct_window
    folder = tmp_path / "prior"
    written = write_series(folder, SeriesSpec(
        patient_name="DEMO^PATIENT1", patient_id="DEMO0001", series_description="old chest",
        study_uid="1.2.826.0.1.3680043.8.498.4242.1",
        series_uid="1.2.826.0.1.3680043.8.498.4242.2"))  # fmt: skip
    birth = window.grid.active.volume.metadata.patient_birth_date  # the same patient
    for path in folder.iterdir():  # a study of last year, of the chest
        ds = pydicom.dcmread(path)
        ds.StudyDate, ds.BodyPartExamined, ds.PatientBirthDate = "20240115", "CHEST", birth
        ds.save_as(path)
    _import(qtbot, window, folder)
    messages: list[str] = []
    window.hanging.statusMessage.connect(lambda text, _ms: messages.append(text))
    window.hanging.series_shown(window.grid.active)  # as when the series opens: offered
    assert messages[-1].startswith("1 earlier study of this patient (20240115): Ctrl+H")
    assert window.hanging.matching().name == "Chest CT with prior"
    window.hanging.apply()
    right = window.grid.views[1]
    qtbot.waitUntil(lambda: right.volume is not None
                    and right.volume.metadata.series_uid == written.series_uid
                    and right.state.width == 1500.0, timeout=WAIT_MS)  # fmt: skip
    assert window.grid.views[0].volume.metadata.study_date > "20250101"
    assert _windows(window) == [(-600.0, 1500.0), (-600.0, 1500.0)]


def test_the_arrangement_saves_as_a_protocol_that_matches_next(qtbot, ct_window) -> None:
    window = ct_window
    window.set_layout("1x3")
    axial = window.grid.views[0]
    axial.set_window(40, 400)
    from medviewer.core.slab import Slab

    axial.set_slab(Slab("mip", 15.0))
    saved = window.hanging.save_current("My chest MIP")
    stored = json.loads(window.settings.protocols_path.read_text())
    assert stored[0]["name"] == "My chest MIP" and stored[0]["layout"] == "1x3"
    assert stored[0]["views"][0] == {"window": [40.0, 400.0], "slab": {"mode": "mip", "mm": 15.0},
                                     "invert": False}  # fmt: skip
    assert window.hanging.matching() == saved  # the user's come first
    window.set_layout("1x1")
    window.grid.views[0].set_window(0, 100)
    window.hanging.apply()
    assert window.grid.layout_name == "1x3"
    assert window.grid.views[0].state.slab == Slab("mip", 15.0)
    assert _windows(window)[0] == (40.0, 400.0)
    window.settings.protocols_path.write_text("[{")  # a broken file: reported, ignored
    messages = []
    window.hanging.statusMessage.connect(lambda text, _ms: messages.append(text))
    assert window.hanging.matching().name == "Chest CT"
    assert "ignored: not valid JSON" in messages[0]


def test_applied_whenever_a_series_opens_when_asked(qtbot, ct_window) -> None:
    window = ct_window
    window.actions_by_name["hang_on_open"].setChecked(True)
    assert window.settings.hanging_on_open and window.hanging.apply_on_open
    (series_id,) = window.db.series_under([str(window.grid.active.volume.metadata.source_paths[0])])
    window.set_layout("1x1")
    window.open_series(series_id)
    qtbot.waitUntil(lambda: window.grid.layout_name == "1x2", timeout=WAIT_MS)
    assert _windows(window) == [(-600.0, 1500.0), (50.0, 350.0)]
    window.actions_by_name["hang_on_open"].setChecked(False)
    assert not window.settings.hanging_on_open


def test_an_oversized_protocols_file_is_refused_unread(qtbot, ct_window) -> None:
    window = ct_window
    window.settings.protocols_path.write_bytes(b" " * (1 << 20) + b"[]")
    messages: list[str] = []
    window.hanging.statusMessage.connect(lambda text, _ms: messages.append(text))
    assert window.hanging.user_protocols() == []
    assert "ignored: larger than 1024 KB" in messages[0]
