"""The export dialog and key images: what the viewer draws is what the report holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import Qt

from medviewer.core.findings import OverlayStyle
from medviewer.io.series import load_series
from medviewer.report.content import MeasurementLine
from medviewer.synthetic.dicom_writer import write_series
from medviewer.ui.key_images import KeyImageRenderer, finding_key_images, key_image_like
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.report_dialog import ReportDialog, ReportDraft
from medviewer.ui.slice_view import SliceView
from tests.report.conftest import CT_SPEC, make_cls_result, make_seg_result
from tests.waits import WAIT_MS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def ct_volume(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dialog-ct")
    write_series(folder, CT_SPEC)
    return load_series(folder)


@pytest.fixture
def series(ct_volume):
    return OpenSeries(Path("ct"), ct_volume)


@pytest.fixture
def renderer(qtbot):
    renderer = KeyImageRenderer(pixels=512)
    yield renderer
    renderer.close()


def test_finding_key_images_show_each_component_with_its_colour(renderer, series, ct_volume):
    seg, cls = make_seg_result(ct_volume), make_cls_result(ct_volume)
    keys = finding_key_images(renderer, series, [seg, cls], window=(40.0, 400.0))
    components = seg.statistics[3].components
    assert [k.caption.split(":")[0] for k in keys[:2]] == ["nodule 1", "nodule 2"]
    assert len(keys) == len(components) + 1  # + the positive classification
    for key, component in zip(keys, components, strict=False):
        # the image shows the component's slice, and its centre pixel is nodule red over grey
        slice_index = round(component.centroid_index[2])
        assert key.source_slice == slice_index
        assert key.slice_text.startswith(f"Im {slice_index + 1}/12,")
        assert key.window == (40.0, 400.0)
        assert key.legend[-1] == ("nodule", "#ff3030")
        assert key.result_key == seg.key
    rgb = keys[0].rgb.astype(int)
    centre = rgb[rgb.shape[0] // 2, rgb.shape[1] // 2]
    assert centre[0] > centre[1] + 60 and centre[0] > centre[2] + 60  # red-tinted nodule
    assert keys[0].mm_per_pixel * rgb.shape[1] == pytest.approx(80.0, rel=0.05)  # 80 mm field
    assert "Grad-CAM" in keys[-1].legend[0][0] and keys[-1].caption.endswith("nodule p = 0.875")


def test_key_images_carry_no_patient_identifiers(renderer, series):
    from medviewer.ui.slice_view import corner_text

    key = renderer.render(series, caption="x", index=5)
    corners = corner_text(renderer.view)
    assert corners["top_left"] == [] and corners["top_right"] == ["CT axial"]
    renderer.view.identifying_text = True
    try:
        with_names = renderer.render(series, caption="x", index=5)
        assert corner_text(renderer.view)["top_left"] == ["TESTPERSON ALICE", "PID-4711"]
    finally:
        renderer.view.identifying_text = False
    # the names are drawn in the top corners, and the key image has none of that text
    changed = np.argwhere((with_names.rgb != key.rgb).any(axis=2))
    assert len(changed) > 50
    assert changed[:, 0].max() < key.rgb.shape[0] // 3


def test_a_user_key_image_keeps_the_view_zoom_window_and_overlay(renderer, series, ct_volume,
                                                                 qtbot):
    seg = make_seg_result(ct_volume)
    view = SliceView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    view.set_series(series)
    view.set_index(6)
    view.set_window(100.0, 1000.0)
    view.zoom_by(2.0)
    view.set_overlay(seg)
    key = key_image_like(renderer, view, "my view", seg, OverlayStyle())
    assert key.origin == "user" and key.window == (100.0, 1000.0)
    assert key.slice_text.startswith("Im 7/12,") and key.plane == "axial"
    shown = view.viewbox.viewRect()
    # the key image covers at least the view's range (the aspect differs: square image)
    assert key.mm_per_pixel * key.rgb.shape[1] >= shown.width() * 0.98


def _dialog(qtbot, series, results, tmp_path, draft=None) -> ReportDialog:
    lines = [MeasurementLine("Distance 12.5 mm", "distance", 12.5, "mm",
                             ((0.0, 0.0, 60.0), (12.5, 0.0, 60.0)), "axial")]
    dialog = ReportDialog(series, results, lines, draft or ReportDraft(), folder=tmp_path / "out",
                          window=(40.0, 400.0))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.rendering, timeout=WAIT_MS)
    return dialog


def test_export_dialog_writes_what_is_ticked(qtbot, series, ct_volume, tmp_path, renderer):
    seg, cls = make_seg_result(ct_volume), make_cls_result(ct_volume)
    user = renderer.render(series, caption="added", index=3, origin="user")
    draft = ReportDraft("Nodule.", [user])
    dialog = _dialog(qtbot, series, [seg, cls], tmp_path, draft)
    assert dialog.image_list.count() == 4  # 2 components + 1 classification + 1 user image
    assert dialog.image_list.item(3).data(Qt.ItemDataRole.UserRole) is user
    dialog.image_list.item(1).setCheckState(Qt.CheckState.Unchecked)
    dialog.impression.setPlainText("Solid nodule, 9 mm.\nFollow-up advised.")
    assert draft.impression.startswith("Solid nodule")
    dialog.kind_checks["key_images_png"].setChecked(True)
    with qtbot.waitSignal(dialog.exported, timeout=WAIT_MS) as done:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    summary = done.args[0]
    out = tmp_path / "out"
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == sorted([
        "report.pdf", "findings.csv", "findings.json", "dicom/SR_measurements.dcm",
        "dicom/DOC_report_pdf.dcm", "dicom/SEG_test-seg-1.2.0.dcm", "dicom/KEY_001.dcm",
        "dicom/KEY_002.dcm", "dicom/KEY_003.dcm", "images/key_001.png", "images/key_002.png",
        "images/key_003.png",
    ])
    assert len(summary.files) == len(names) and "Wrote 12 files" in dialog.status.text()
    keys = [pydicom.dcmread(out / "dicom" / f"KEY_{i:03d}.dcm") for i in (1, 2, 3)]
    chosen = dialog.chosen_images()
    for ds, key in zip(keys, chosen, strict=True):
        assert np.array_equal(ds.pixel_array, key.rgb)
    assert chosen[-1] is user
    # the key image of an axial slice points at the source image it shows
    assert keys[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    import pypdfium2

    pdf = pypdfium2.PdfDocument((out / "report.pdf").read_bytes())
    text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    assert "Follow-up advised." in text and "Distance 12.5 mm" in text
    images = sum(1 for i in range(len(pdf)) for o in pdf[i].get_objects()
                 if o.type == pypdfium2.raw.FPDF_PAGEOBJ_IMAGE)
    assert images == 3
    pdf.close()
    # a second export into the same folder refuses to overwrite, and writes nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    # `exported` comes with the result; the button is enabled again once the job has finished
    # (on a busy machine, later): click it then, as a user would.
    qtbot.waitUntil(lambda: dialog.job.done and dialog.export_button.isEnabled(), timeout=WAIT_MS)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "nothing was written" in dialog.status.text(), timeout=WAIT_MS)
    assert "not overwriting" in dialog.status.text()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_deidentify_enables_source_copies(qtbot, series, ct_volume, tmp_path):
    dialog = _dialog(qtbot, series, [], tmp_path)
    assert not dialog.source_copies.isEnabled()
    named = dialog.folder_edit.text()
    dialog.deidentify.setChecked(True)
    # the proposed folder may be named after the patient: a de-identified export gets another
    assert Path(dialog.folder_edit.text()).name.startswith("deidentified-")
    assert dialog.source_copies.isEnabled()
    dialog.source_copies.setChecked(True)
    assert "source_copies" in dialog.chosen_kinds()
    dialog.deidentify.setChecked(False)
    assert "source_copies" not in dialog.chosen_kinds()
    assert dialog.folder_edit.text() == named
    assert dialog.images_note.text().startswith("0 finding key image(s)")


def test_opening_an_exported_seg_overlays_it_on_its_source(qtbot, tmp_path, ct_volume):
    from medviewer.io.database import StudyDatabase
    from medviewer.report import export as ex
    from medviewer.report.content import ReportContent, ReportHeader
    from medviewer.ui.main_window import MainWindow
    from medviewer.ui.settings import Settings

    folder = tmp_path / "study"
    write_series(folder / "ct", CT_SPEC)
    seg = make_seg_result(ct_volume)
    content = ReportContent(ReportHeader.of(ct_volume.metadata), (seg,))
    plan = [ex.PlannedFile("seg", folder / "seg" / "SEG.dcm", seg.key)]
    steps = ex.run_export(content, ct_volume.metadata, plan)
    for _ in steps:
        pass
    window = MainWindow(StudyDatabase(tmp_path / "db.sqlite"), Settings(tmp_path / "s.ini"))
    qtbot.addWidget(window)
    window.show()
    window.import_paths([str(folder)])
    qtbot.waitUntil(lambda: window.imports.job is not None and window.imports.job.done,
                    timeout=WAIT_MS)
    (seg_id,) = window.db.series_under([str(folder / "seg")])
    window.open_series(seg_id)
    view = window.grid.active
    qtbot.waitUntil(lambda: view.overlay.result is not None, timeout=WAIT_MS)
    shown = view.overlay.result
    assert view.volume.metadata.series_uid == ct_volume.metadata.series_uid
    assert np.array_equal(shown.label_map, seg.label_map)
    assert {k: s.name for k, s in shown.segments.items()} == {
        1: "left lung", 2: "right lung", 3: "nodule"}
    assert shown.statistics[3].voxels == seg.statistics[3].voxels
    assert shown.prediction.model.name == "Test lungs and nodules"
    seg_uid = str(pydicom.dcmread(folder / "seg" / "SEG.dcm", stop_before_pixels=True)
                  .SeriesInstanceUID)
    model = shown.prediction.model  # no UID or path: a re-export must not carry them
    assert seg_uid not in model.id and "SEG.dcm" not in model.intended_use

    # Export right after an edit: the dialog waits for the edit's measurement.
    erased = shown.label_map == 3
    erased[:, :, :18] = False  # half of the ball
    shown.label_map[erased] = 0
    shown.history.changed_labels = frozenset({3})
    window.ai._labels_edited(shown)
    assert window.export_report() is None and window.ai.measuring(shown.key[0])
    qtbot.waitUntil(lambda: window.reports.dialog is not None, timeout=WAIT_MS)
    dialog = window.reports.dialog
    exported = dialog.results[0]
    assert exported.statistics[3].voxels == int((shown.label_map == 3).sum())
    assert exported.edited
    assert dialog.isModal() or dialog.windowModality() != Qt.WindowModality.NonModal
    with qtbot.waitSignal(dialog.destroyed, timeout=WAIT_MS):  # closed dialogs are freed
        dialog.close()
    assert window.reports.dialog is None
    window.close()


def test_report_measurements_are_measured_on_their_drawing_plane(ct_volume):
    from medviewer.core import measurements as mm
    from medviewer.core.geometry import reslice
    from medviewer.ui.report_dialog import report_measurements

    plane = reslice(ct_volume.array, ct_volume.affine, "axial", 6)
    sy, sx = plane.pixel_spacing
    a, b = mm.screen_to_patient(plane.affine, 5, 6), mm.screen_to_patient(plane.affine, 15, 12)
    uid = ct_volume.metadata.series_uid
    ellipse = mm.Measurement("ellipse", (a, b), "axial", uid)
    ruler = mm.Measurement("distance", (a, b), "axial", uid, label="span")
    probe = mm.Measurement("probe", (a,), "axial", uid)
    roi, line, probed = report_measurements(ct_volume, [ellipse, ruler, probe])
    assert probed.value == pytest.approx(float(plane.image[6, 5])) and probed.unit == "[hnsf'U]"
    assert roi.value == pytest.approx(np.pi * (10 * sx) * (6 * sy) / 4) and roi.unit == "mm2"
    assert roi.outline_type == "ELLIPSE"
    np.testing.assert_allclose(roi.outline[0], mm.screen_to_patient(plane.affine, 5, 9))
    assert "mean" in roi.text and "HU" in roi.text  # statistics on the drawing plane's pixels
    assert line.value == pytest.approx(np.hypot(10 * sx, 6 * sy)) and line.label == "span"
