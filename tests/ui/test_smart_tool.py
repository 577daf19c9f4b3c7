"""The Smart tool end to end on the demo CT: click a nodule -> its mask on every plane ->
a negative click shrinks it -> undo -> accept -> the findings table and an exported SEG hold
it. Clicks only, with the default engine (auto: the bundled promptable network for a nodule).
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import Qt

from medviewer.core.geometry import voxel_to_patient
from medviewer.ui.smart_controller import MODEL
from tests.ui.helpers import click, widget_pos
from tests.ui.test_ai_workflow import (
    _screen_index,
    _truth,
)
from tests.waits import WAIT_MS


def _smart_result(window):
    view = window.grid.active
    return window.ai.findings.get((view.series.volume.metadata.series_uid, MODEL.id,
                                   MODEL.version))


def _object_voxels(window, label=1) -> np.ndarray:
    result = _smart_result(window)
    return np.zeros(0, bool) if result is None else result.label_map == label


def _click_at(qtbot, view, lps, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    x, y, _ = view.patient_to_view(np.asarray(lps, float))
    click(view, widget_pos(view, x, y), modifiers=modifiers)


def test_click_a_nodule_refine_undo_accept_and_export(qtbot, tmp_path, demo_study, ct_window):
    window = ct_window
    nodule = max(_truth(demo_study, "CT")["nodules"], key=lambda n: n["diameter_mm"])
    centre = np.asarray(nodule["centroid_lps"], float)
    window.grid.focus_on(centre, nodule["diameter_mm"])
    window.actions_by_name["tool_smart"].trigger()
    view = window.grid.active
    assert view.tool == "smart"

    _click_at(qtbot, view, centre)
    qtbot.waitUntil(lambda: _object_voxels(window).sum() > 0 and not window.smart.busy(),
                    timeout=WAIT_MS)
    first = _object_voxels(window).copy()
    # the default engine, auto, answered with the bundled promptable network (a nodule)
    qtbot.waitUntil(lambda: "(demo-ct-interactive)" in window.statusBar().currentMessage(),
                    timeout=WAIT_MS)
    volume = view.series.volume
    spacing = volume.spacing
    found = np.argwhere(first).mean(axis=0)[::-1]  # (col, row, slice)
    found_lps = volume.affine[:3, :3] @ found + volume.affine[:3, 3]
    assert np.linalg.norm(found_lps - centre) < 2.0
    sphere_ml = np.pi / 6 * nodule["diameter_mm"] ** 3 / 1000
    assert first.sum() * np.prod(spacing) / 1000 == pytest.approx(sphere_ml, rel=0.35)

    # A negative click (Shift) near the edge takes part away, adding nothing.
    edge = centre + np.array([0.35 * nodule["diameter_mm"], 0.0, 0.0])
    _click_at(qtbot, view, edge, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: 0 < _object_voxels(window).sum() < first.sum()
                    and not window.smart.busy(), timeout=WAIT_MS)
    assert not (_object_voxels(window) & ~first).any()

    # Undo takes the negative click back.
    window.actions_by_name["undo_edit"].trigger()
    assert np.array_equal(_object_voxels(window), first)

    # On every plane: the 1x3 layout's views all draw label 1's colour at the centre.
    window.set_layout("1x3")
    window.grid.focus_on(centre, nodule["diameter_mm"])
    colour = _smart_result(window).segments[1].rgb
    qtbot.waitUntil(lambda: len(window.grid.views) == 3, timeout=WAIT_MS)
    for plane_view in window.grid.views:
        rgba = plane_view.overlay.overlay_rgba()
        col, row, _ = _screen_index(plane_view, centre)
        assert tuple(rgba[row, col, :3]) == colour and rgba[row, col, 3] > 0, plane_view

    # Enter accepts the object: the findings table lists it, an exported SEG holds it.
    qtbot.keyClick(window.grid.active, Qt.Key.Key_Return)
    assert "object 1 accepted" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not window.ai.measuring(volume.metadata.series_uid), timeout=WAIT_MS)
    rows = [r for r in window.ai.panel.table.components() if r.segment == "object 1"]
    assert rows and rows[0].component.volume_ml == pytest.approx(
        first.sum() * np.prod(spacing) / 1000, rel=1e-6)
    # measured on its box: the centroid is where its voxels are on the whole grid
    where = voxel_to_patient(volume.affine, np.argwhere(first)[:, ::-1].astype(float))
    assert np.allclose(_smart_result(window).statistics[1].centroid_lps, where.mean(axis=0),
                       atol=1e-3)

    # A second nodule clicked and exported without Enter: the export accepts and measures it.
    other = sorted(_truth(demo_study, "CT")["nodules"], key=lambda n: -n["diameter_mm"])[1]
    other_centre = np.asarray(other["centroid_lps"], float)
    window.set_layout("1x1")
    window.grid.focus_on(other_centre, other["diameter_mm"])
    _click_at(qtbot, window.grid.active, other_centre)
    qtbot.waitUntil(lambda: _object_voxels(window, 2).sum() > 0 and not window.smart.busy(),
                    timeout=WAIT_MS)
    out = tmp_path / "export"
    window.actions_by_name["export_report"].trigger()  # opens once object 2 is measured
    qtbot.waitUntil(lambda: window.reports.dialog is not None, timeout=WAIT_MS)
    dialog = window.reports.dialog
    qtbot.waitUntil(lambda: not dialog.rendering, timeout=WAIT_MS)
    dialog.folder_edit.setText(str(out))
    with qtbot.waitSignal(dialog.exported, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    stats = _smart_result(window).statistics
    assert stats[2].voxels == int(_object_voxels(window, 2).sum())
    (seg_path,) = (out / "dicom").glob("SEG_*.dcm")
    seg = pydicom.dcmread(seg_path)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["object 1", "object 2"]



def test_fill_between_slices_completes_a_label_and_undoes_in_one_step(qtbot, ct_window):
    from medviewer.core.findings import AIResult, Prediction, Segment, now_iso

    window = ct_window
    window.set_layout("1x1")
    view = window.grid.active
    volume = view.series.volume
    assert abs(view.plane_slice.affine[2, 2]) > 0  # the axial view: it steps across slices
    labels = np.zeros(volume.shape, np.uint8)
    k0, k1 = volume.shape[0] // 2 - 6, volume.shape[0] // 2 + 6
    rows, cols = np.indices(volume.shape[1:])
    pixel = float(volume.spacing[0])
    for k, radius in ((k0, 10.0), (k1, 20.0)):
        labels[k] = ((rows - 256) * pixel) ** 2 + ((cols - 256) * pixel) ** 2 <= radius**2
    prediction = Prediction(
        model=MODEL, task="segmentation", device="cpu", seconds=0.0, created=now_iso(),
        series_uid=volume.metadata.series_uid, affine=volume.affine,
        shape=tuple(volume.shape), label_map=labels, segments={1: Segment(1, "drawn", "#ff0000")})
    result = AIResult.of(prediction)
    window.ai.add_result(result)
    window.ai.panel.show_result(result)
    qtbot.waitUntil(lambda: window.ai.panel.edit_controls.label() == 1, timeout=WAIT_MS)
    drawn = result.label_map.copy()

    window.ai.panel.edit_controls.fill_button.click()
    qtbot.waitUntil(lambda: (result.label_map[k0 + 1:k1] == 1).any(), timeout=WAIT_MS)
    filled = result.label_map == 1
    assert np.array_equal(filled[[k0, k1]], drawn[[k0, k1]] == 1)
    assert not filled[:k0].any() and not filled[k1 + 1:].any()
    middle = filled[(k0 + k1) // 2].sum() * pixel**2
    assert middle == pytest.approx(np.pi * 15.0**2, rel=0.05)  # the radius half way: 15 mm
    qtbot.waitUntil(lambda: not window.ai.measuring(volume.metadata.series_uid), timeout=WAIT_MS)
    window.ai.undo()
    assert np.array_equal(result.label_map, drawn)  # one undo step
