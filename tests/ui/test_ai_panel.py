"""AI panel, queue and controller with tiny closed-form models: lists, queue, errors, overlays."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medviewer.ai.registry import ModelRegistry
from medviewer.io.results_store import ResultStore
from medviewer.ui import workers
from medviewer.ui.ai_controller import AIController
from medviewer.ui.ai_panel import APPLICABLE_ROLE, card_html
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.viewer_grid import ViewerGrid
from tests.ai.tiny_models import ThresholdSegmenter, make_card, make_volume
from tests.waits import WAIT_MS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    user = tmp_path / "models"
    make_card(user / "bright", ThresholdSegmenter(100.0), model_id="bright", dims=2,
              orientation="PLS")  # fmt: skip
    make_card(user / "dim", ThresholdSegmenter(50.0), model_id="dim", dims=2, orientation="PLS",
              labels={"1": {"name": "dim", "color": "#00ff00"}})  # fmt: skip
    make_card(user / "mr-only", ThresholdSegmenter(), model_id="mr-only", modalities=("MR",))
    return ModelRegistry(bundled=tmp_path / "no-bundled", user=user)


def _volume(slices: int = 4):
    array = np.zeros((slices, 32, 32), np.int16)
    array[:, 8:20, 10:22] = 200  # > 100: "bright" and "dim"
    array[:, 24:28, 4:8] = 80  # only "dim" (> 50)
    return make_volume(array, spacing=(0.8, 0.8, 2.0))


@pytest.fixture
def controller(qtbot, tmp_path, registry):
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    grid.resize(500, 500)
    grid.show()
    ai = AIController(grid, registry, ResultStore(tmp_path / "results"))
    qtbot.addWidget(ai.panel)
    yield ai
    ai.shutdown()


def _show(ai: AIController, volume) -> None:
    ai.grid.show_series(OpenSeries("key", volume))


def _segmented(qtbot, controller, volume=None):
    """Show `volume` (default :func:`_volume`), click Segment and wait for every run to end."""
    volume = _volume() if volume is None else volume
    _show(controller, volume)
    qtbot.mouseClick(controller.panel.segment_button, Qt.MouseButton.LeftButton)
    _idle(qtbot, controller)
    return volume


def _idle(qtbot, controller) -> None:
    qtbot.waitUntil(lambda: controller.panel.idle, timeout=WAIT_MS)


def _items(panel) -> dict[str, tuple[str, bool]]:
    out = {}
    for i in range(panel.model_list.count()):
        item = panel.model_list.item(i)
        out[item.data(Qt.ItemDataRole.UserRole)] = (item.text(), item.data(APPLICABLE_ROLE))
    return out


def test_models_that_do_not_suit_the_series_are_greyed_with_the_reason(
    tmp_path, controller
) -> None:
    make_card(tmp_path / "models" / "volumetric", ThresholdSegmenter(), model_id="volumetric")
    controller.panel.reload_models()
    _show(controller, _volume(slices=1))  # a single image
    items = _items(controller.panel)
    assert items["bright"][1] and items["dim"][1]
    assert not items["mr-only"][1] and "for MR; this series is CT" in items["mr-only"][0]
    assert not items["volumetric"][1] and "single image" in items["volumetric"][0]
    assert controller.panel.segment_button.isEnabled()
    assert not controller.panel.classify_button.isEnabled()
    html = card_html(controller.panel.cards[0])
    assert "Intended use" in html and "Tests only." in html and "sha256" in html
    # A greyed model is still selectable, so its card is a click away.
    panel = controller.panel
    row = [panel.model_list.item(i).data(Qt.ItemDataRole.UserRole)
           for i in range(panel.model_list.count())].index("mr-only")  # fmt: skip
    panel.model_list.setCurrentRow(row)
    assert panel.selected_card().id == "mr-only"
    assert (
        panel.model_list.item(row).foreground().color()
        != panel.model_list.item(0).foreground().color()
    )


def test_listing_results_keeps_an_outer_signal_block(controller) -> None:
    """Refilling the result list restores the combo's own blocking (issue 19)."""
    combo = controller.panel.result_combo
    combo.blockSignals(True)
    _show(controller, _volume())
    assert combo.signalsBlocked()
    combo.blockSignals(False)
    _show(controller, _volume(slices=2))
    assert not combo.signalsBlocked()


def test_jobs_queue_run_in_order_and_each_result_is_listed(qtbot, controller) -> None:
    volume = _volume()
    _show(controller, volume)
    panel = controller.panel
    jobs = panel.run_task("segmentation")
    assert [j.card.id for j in jobs] == ["bright", "dim"]
    assert jobs[1].state == "queued" and len(panel.job_rows()) == 2
    _idle(qtbot, controller)
    assert [j.state for j in jobs] == ["done", "done"]
    results = controller.findings.for_series("1.2.3")
    assert {r.key[1] for r in results} == {"bright", "dim"}
    bright = controller.findings.get(("1.2.3", "bright", "1.0.0"))
    assert np.array_equal(bright.label_map, (volume.array > 100).astype(bright.label_map.dtype))
    dim = controller.findings.get(("1.2.3", "dim", "1.0.0"))
    assert np.array_equal(dim.label_map == 1, volume.array > 50)
    assert panel.result_combo.count() == 2
    # The newest result is shown, its table lists one component per slab, on every view.
    shown = panel.current_result()
    assert shown is dim and controller.grid.views[0].overlay.result is dim
    assert [r.name for r in panel.table.components()] == ["dim 1", "dim 2"]
    qtbot.waitUntil(lambda: len(list((controller.results.root).glob("*.npz"))) == 2,
                    timeout=WAIT_MS)


def test_a_bad_model_is_a_message_in_the_panel_and_the_queue_goes_on(
    qtbot, tmp_path, controller
) -> None:
    weights = tmp_path / "models" / "bright" / "model.ts"
    weights.write_bytes(weights.read_bytes() + b"tampered")
    controller.panel.reload_models()
    _show(controller, _volume())
    jobs = controller.panel.run_task("segmentation")
    _idle(qtbot, controller)
    assert [j.state for j in jobs] == ["failed", "done"]
    assert "sha256" in jobs[0].error
    assert "failed" in controller.panel.message_label.text()
    assert {r.key[1] for r in controller.findings.for_series("1.2.3")} == {"dim"}


def test_a_wrong_modality_run_fails_with_a_clear_message(qtbot, controller) -> None:
    volume = _volume()
    _show(controller, volume)
    card = next(c for c in controller.panel.cards if c.id == "mr-only")
    job = controller.jobs.submit(card, volume, "cpu")
    _idle(qtbot, controller)
    assert job.state == "failed" and "MR" in job.error and "CT" in job.error
    assert len(controller.findings) == 0


def test_cancel_a_queued_job_never_runs_it(qtbot, controller) -> None:
    _show(controller, _volume())
    first, second = controller.panel.run_task("segmentation")
    controller.jobs.cancel(second)
    assert second.state == "cancelled"
    _idle(qtbot, controller)
    assert first.state == "done"
    assert {r.key[1] for r in controller.findings.for_series("1.2.3")} == {"bright"}


def test_overlay_key_and_style_reach_every_view(qtbot, controller) -> None:
    controller.grid.set_layout("1x3")
    _show(controller, _volume())
    controller.panel.run_task("segmentation")
    _idle(qtbot, controller)
    assert all(view.overlay.result is controller.panel.current_result()
               for view in controller.grid.views)  # fmt: skip
    controller.set_overlays_visible(False)
    assert not any(view.overlay.label_item.isVisible() for view in controller.grid.views)
    assert not controller.panel.overlay_controls.current_style().visible
    controller.set_overlays_visible(True)
    assert all(view.overlay.label_item.isVisible() for view in controller.grid.views)


def test_slice_by_slice_probabilities_plot_follows_and_moves_the_views(qtbot, tmp_path, controller):
    from medviewer.core.viewstate import array_index_of
    from tests.ai.tiny_models import MeanClassifier

    make_card(tmp_path / "models" / "mean", MeanClassifier(25.0, 0.2), model_id="mean",
              task="classification", dims=2, orientation="PLS")  # fmt: skip
    controller.panel.reload_models()
    array = np.zeros((6, 16, 16), np.int16)
    array[4] = 60  # the one bright slice: p = sigmoid(0.2 * 35) = 0.999
    volume = make_volume(array, spacing=(1.0, 1.0, 3.0))
    _show(controller, volume)
    panel = controller.panel
    qtbot.mouseClick(panel.classify_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.idle and panel.current_result() is not None, timeout=WAIT_MS)
    result = panel.current_result()
    assert result.prediction.classes["bright"] == pytest.approx(1 / (1 + np.exp(-7.0)), abs=1e-5)
    assert panel.chart.values()["bright"] == pytest.approx(result.prediction.classes["bright"])
    assert not panel.slice_plot.isHidden() and panel.slice_plot.count == 6
    np.testing.assert_allclose(panel.slice_plot.curve.getData()[1],
                               result.prediction.slice_probabilities[:, 1])  # fmt: skip
    view = controller.grid.views[0]
    panel.slice_plot.sliceClicked.emit(4)  # as a click on the plot at Im 5 does
    assert array_index_of(volume, view.plane_slice.affine[:3, 3]) == 4
    view.set_index(1)  # scrolling moves the plot's marker to that slice
    assert panel.slice_plot.current_x() == 1 + array_index_of(
        volume, view.plane_slice.affine[:3, 3]
    )


def test_an_edit_re_measures_only_what_it_changed_and_is_saved(qtbot, controller) -> None:
    volume = _segmented(qtbot, controller)
    panel = controller.panel
    dim = controller.findings.get(("1.2.3", "dim", "1.0.0"))
    assert panel.current_result() is dim
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=WAIT_MS)  # the results' saves
    before = dim.statistics[1]
    assert before.voxels == int((volume.array > 50).sum()) and before.component_count == 2
    view = controller.grid.views[0]
    centre = volume.affine @ np.array([15.0, 14.0, view.state.index, 1.0])  # inside the block
    slice_index = round(float((np.linalg.inv(volume.affine) @ centre)[2]))
    view.brush_radius_mm = 2.0
    erased = view.brush_dab(centre[:3], erase=True)
    assert erased > 0
    with qtbot.waitSignal(controller.editMeasured, timeout=WAIT_MS):
        assert view.end_brush_stroke()
    assert dim.history.changed_labels == frozenset({1})
    after = dim.statistics[1]
    assert after.voxels == before.voxels - erased
    assert (dim.label_map[slice_index] == 0).sum() == (
        volume.array[slice_index] <= 50
    ).sum() + erased
    assert dim.edited and panel.edit_controls.undo_button.isEnabled()
    assert [r.component.voxels for r in panel.table.components()] == [
        c.voxels for c in after.components
    ]
    with qtbot.waitSignal(controller.editMeasured, timeout=WAIT_MS):
        qtbot.mouseClick(panel.edit_controls.undo_button, Qt.MouseButton.LeftButton)
    assert dim.statistics[1] == before  # undo gives back exactly the first measurement
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=WAIT_MS)
    (saved,) = [r for r in controller.results.load_series("1.2.3") if r.key == dim.key]
    assert np.array_equal(saved.label_map, dim.label_map) and saved.edited


@pytest.mark.parametrize(
    ("directions", "axis"),
    [
        (np.diag([1.0, 1.0, -1.0]), 0),  # feet first: array slice 0 is the most superior
        (np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]), 1),  # coronal: rows run down S
    ],
)
def test_slice_plot_and_jumps_follow_the_viewers_image_numbers(
    qtbot, tmp_path, controller, directions, axis
) -> None:
    from medviewer.core.viewstate import array_index_of, array_slice_centre, plane_index_of
    from tests.ai.tiny_models import MeanClassifier

    make_card(tmp_path / "models" / "mean", MeanClassifier(25.0, 0.2), model_id="mean",
              task="classification", dims=2, orientation="PLS")  # fmt: skip
    controller.panel.reload_models()
    array = np.zeros((5, 6, 7), np.int16)
    bright = 1
    index = [slice(None)] * 3
    index[axis] = bright
    array[tuple(index)] = 60  # one bright axial image: array index 1 along `axis`
    volume = make_volume(array, spacing=(1.0, 2.0, 3.0), directions=directions)
    _show(controller, volume)
    panel = controller.panel
    panel.run_task("classification")
    qtbot.waitUntil(lambda: panel.idle and panel.current_result() is not None, timeout=WAIT_MS)
    p = panel.current_result().prediction
    assert p.slice_axis == axis and int(np.argmax(p.slice_probabilities[:, 1])) == bright
    n = array.shape[axis]
    expected = [
        plane_index_of(volume, "axial", array_slice_centre(volume, k, axis)) + 1 for k in range(n)
    ]
    assert sorted(expected) == list(range(1, n + 1)) and expected[0] == n  # reversed order
    x, y = panel.slice_plot.curve.getData()
    assert dict(zip(x.tolist(), y.tolist(), strict=True)) == pytest.approx(
        {float(e): float(v) for e, v in zip(expected, p.slice_probabilities[:, 1], strict=True)}
    )
    view = controller.grid.views[0]
    panel.slice_plot.sliceClicked.emit(bright)
    assert array_index_of(volume, view.plane_slice.affine[:3, 3], axis) == bright
    assert view.state.index + 1 == expected[bright] == panel.slice_plot.current_x()


def test_the_brush_label_follows_the_shown_result(qtbot, tmp_path, controller) -> None:
    from tests.ai.tiny_models import OctantSegmenter

    labels = {str(k): {"name": f"q{k}", "color": "#00ff00"} for k in range(1, 5)}
    make_card(tmp_path / "models" / "quad", OctantSegmenter(), model_id="quad", dims=2,
              orientation="PLS", labels=labels)  # fmt: skip
    controller.panel.reload_models()
    _segmented(qtbot, controller)
    panel = controller.panel
    quad = controller.findings.get(("1.2.3", "quad", "1.0.0"))
    dim = controller.findings.get(("1.2.3", "dim", "1.0.0"))
    panel.show_result(quad)
    combo = panel.edit_controls.label_combo
    combo.setCurrentIndex(combo.findData(3))  # the user picks label 3 of this result
    view = controller.grid.views[0]
    assert view.brush_label == 3
    panel.show_result(dim)  # dim has label 1 only
    assert view.overlay.result is dim and view.brush_label == 1
    controller.grid.set_brush(3.0, 0)  # "no label" means the overlay's first segment
    assert view.brush_label == 1


def test_saves_land_in_order_and_a_deleted_result_stays_deleted(qtbot, controller) -> None:
    volume = _segmented(qtbot, controller)
    panel = controller.panel
    dim = controller.findings.get(("1.2.3", "dim", "1.0.0"))
    bright = controller.findings.get(("1.2.3", "bright", "1.0.0"))
    view = controller.grid.views[0]
    panel.show_result(dim)
    for col in (6.0, 12.0, 18.0):  # three quick strokes: saves overlap with edits
        point = volume.affine @ np.array([col, 14.0, view.state.index, 1.0])
        view.brush_dab(point[:3], erase=True)
        view.end_brush_stroke()
    panel.show_result(bright)
    controller.delete_result(bright)  # its first save may still be writing
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=WAIT_MS)
    qtbot.wait(50)
    saved = {r.key[1]: r for r in controller.results.load_series("1.2.3")}
    assert set(saved) == {"dim"}
    assert np.array_equal(saved["dim"].label_map, dim.label_map)
    assert saved["dim"].statistics == dim.statistics
    assert dim.statistics[1].voxels == int((dim.label_map == 1).sum())


def test_running_again_asks_before_replacing_an_edited_result(qtbot, controller) -> None:
    _segmented(qtbot, controller)
    panel = controller.panel
    dim = controller.findings.get(("1.2.3", "dim", "1.0.0"))
    dim.mark_edited()
    asked: list = []
    panel.confirm_replace = lambda names: asked.append(names) or False
    jobs = panel.run_task("segmentation")
    assert asked == [["Tiny test model"]] and [j.card.id for j in jobs] == ["bright"]
    _idle(qtbot, controller)
    assert controller.findings.get(dim.key) is dim  # kept
    panel.confirm_replace = lambda names: True
    assert [j.card.id for j in panel.run_task("segmentation")] == ["bright", "dim"]
    _idle(qtbot, controller)
    assert (
        controller.findings.get(dim.key) is not dim and not controller.findings.get(dim.key).edited
    )


def test_a_job_that_cannot_start_fails_and_the_queue_goes_on(
    qtbot, controller, monkeypatch
) -> None:
    _show(controller, _volume())
    original = controller.jobs._runner

    def runner(job):
        if job.card.id == "bright":
            raise RuntimeError("no runner for you")
        return original(job)

    monkeypatch.setattr(controller.jobs, "_runner", runner)
    first, second = controller.panel.run_task("segmentation")
    _idle(qtbot, controller)
    assert first.state == "failed" and "no runner for you" in first.error
    assert second.state == "done"


def test_the_device_chosen_survives_the_device_list_arriving(controller) -> None:
    panel = controller.panel
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
    panel.set_devices([("auto", "Auto: CPU (2 cores)"), ("cpu", "CPU (2 cores)")])
    assert panel.device == "cpu"


def test_the_panel_scrolls_to_new_findings_but_not_after_each_edit(qtbot, controller) -> None:
    _show(controller, _volume())
    panel = controller.panel
    panel.resize(400, 300)
    panel.show()
    panel.run_task("segmentation")
    _idle(qtbot, controller)
    bar = panel.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: panel.result_combo.count() == 2, timeout=WAIT_MS)  # both results
    # the scroll to the newest result's findings has happened (not only been scheduled)
    qtbot.waitUntil(lambda: panel.scrolled_to is panel.current_result(), timeout=WAIT_MS)
    assert bar.value() > 0  # the findings came into view
    bar.setValue(bar.maximum())  # the user goes down to the correction tools
    controller.findings.notify("1.2.3")  # what an edit's new statistics do
    qtbot.wait(20)
    assert bar.value() == bar.maximum()


def test_segment_leaves_out_a_stage_whose_labels_a_cascade_keeps(qtbot, tmp_path) -> None:
    """"Lungs" is the first stage of "nodules", which keeps its labels: Segment runs nodules
    only (one result holding both), and lungs still runs on its own from the list."""
    from tests.ai.tiny_models import BandSegmenter, SigmoidThreshold

    user = tmp_path / "models"  # lungs: 1 at the 80 box, 2 at the 200 box; nodules: > 150
    make_card(user / "lungs", BandSegmenter([50.0, 150.0, 300.0]), model_id="lungs",
              labels={"1": {"name": "left lung", "color": "#4aa3df"},
                      "2": {"name": "right lung", "color": "#e0a030"}})  # fmt: skip
    make_card(user / "nodules", SigmoidThreshold(150.0), model_id="nodules",
              activation="sigmoid", labels={"3": {"name": "nodule", "color": "#ff3030"}},
              roi={"model": "lungs", "labels": [1, 2], "keep_labels": True})  # fmt: skip
    grid = ViewerGrid()
    qtbot.addWidget(grid)
    ai = AIController(grid, ModelRegistry(bundled=tmp_path / "none", user=user),
                      ResultStore(tmp_path / "results"))  # fmt: skip
    qtbot.addWidget(ai.panel)
    try:
        _show(ai, _volume())
        assert [c.id for c in ai.panel.applicable("segmentation")] == ["lungs", "nodules"]
        jobs = ai.panel.run_task("segmentation")
        assert [job.card.id for job in jobs] == ["nodules"]
        _idle(qtbot, ai)
        assert jobs[0].state == "done", jobs[0].error
        result = ai.findings.get(("1.2.3", "nodules", "1.0.0"))
        assert set(np.unique(result.label_map).tolist()) == {0, 1, 3}  # 2 is all nodule
    finally:
        ai.shutdown()
