"""Saved AI results come back equal, and a failed or foreign file never hurts."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.statistics import segment_statistics
from medviewer.core.findings import AIResult, FindingsModel, ModelInfo, Prediction, Segment
from medviewer.io.results_store import ResultStore

MODEL = ModelInfo("seg", "Demo segmenter", "1.2.0", "ab" * 32, "segmentation", "research")


def _segmentation(series_uid: str = "1.2.3") -> Prediction:
    affine = np.diag([0.7, 0.7, 2.0, 1.0])
    affine[:3, 3] = (-100.0, -90.0, 30.0)
    labels = np.zeros((6, 30, 30), np.uint8)
    labels[1:4, 5:15, 5:15] = 1
    labels[2:4, 20:24, 20:24] = 3
    values = np.arange(labels.size, dtype=np.int16).reshape(labels.shape)
    stats = segment_statistics(labels, affine, {1: "lung", 3: "nodule"}, values=values)
    return Prediction(
        model=MODEL, task="segmentation", device="CPU (1 threads)", seconds=1.5,
        created="2026-11-21T10:00:00+00:00", series_uid=series_uid, affine=affine,
        shape=labels.shape, label_map=labels, statistics=stats,
        segments={1: Segment(1, "lung", "#80c0ff"), 3: Segment(3, "nodule", "#ff3030")},
    )  # fmt: skip


def _classification() -> Prediction:
    heatmap = np.linspace(0, 1, 2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    return Prediction(
        model=ModelInfo("cls", "Demo classifier", "0.3.0", "cd" * 32, "classification", "x"),
        task="classification", device="CPU", seconds=0.2, created="2026-11-21T11:00:00+00:00",
        series_uid="1.2.3", affine=np.eye(4), shape=(2, 8, 8),
        classes={"normal": 0.2, "nodule": 0.8}, decision=("nodule",), threshold=0.5,
        slice_probabilities=np.array([[0.9, 0.1], [0.2, 0.8]], np.float32), slice_axis=0,
        heatmap=heatmap, heatmap_class="nodule", warnings=("a warning",),
    )  # fmt: skip


def test_a_segmentation_round_trips_with_its_statistics_and_edit_mark(tmp_path) -> None:
    store = ResultStore(tmp_path / "results")
    result = AIResult.of(_segmentation())
    result.mark_edited()
    store.save(result)
    (loaded,) = store.load_series("1.2.3")
    assert loaded.key == ("1.2.3", "seg", "1.2.0")
    assert np.array_equal(loaded.label_map, result.label_map)
    assert loaded.label_map.dtype == np.uint8
    assert np.array_equal(loaded.prediction.affine, result.prediction.affine)
    assert loaded.statistics == result.statistics  # dataclass equality, every field
    assert loaded.segments == result.segments
    assert loaded.edited == result.edited != ""
    assert loaded.prediction.model == MODEL


def test_a_classification_round_trips_with_heatmap_and_slice_probabilities(tmp_path) -> None:
    store = ResultStore(tmp_path)
    result = AIResult.of(_classification())
    store.save(result)
    (loaded,) = store.load_series("1.2.3")
    p, q = loaded.prediction, result.prediction
    assert p.classes == q.classes and p.decision == q.decision and p.warnings == q.warnings
    assert np.array_equal(p.slice_probabilities, q.slice_probabilities)
    assert np.abs(p.heatmap - q.heatmap).max() < 1e-3  # stored as float16
    assert p.heatmap.dtype == np.float32 and p.heatmap_class == "nodule"


def test_one_file_per_series_and_model_version(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.save(AIResult.of(_segmentation()))
    store.save(AIResult.of(_segmentation()))  # same key: replaced
    store.save(AIResult.of(_segmentation("9.9")))
    store.save(AIResult.of(_classification()))
    assert len(list(tmp_path.glob("*.npz"))) == 3
    assert {r.key[1] for r in store.load_series("1.2.3")} == {"seg", "cls"}
    assert len(store.load_series("9.9")) == 1
    store.delete(("9.9", "seg", "1.2.0"))
    assert store.load_series("9.9") == []


def test_unreadable_files_are_skipped_with_a_warning(tmp_path, caplog) -> None:
    store = ResultStore(tmp_path)
    store.save(AIResult.of(_segmentation()))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    saved = store.path_of(("1.2.3", "seg", "1.2.0")).read_bytes()
    (tmp_path / "truncated.npz").write_bytes(saved[:200])
    (tmp_path / ".in-progress.tmp.npz").write_bytes(b"PK\x03\x04 half written")
    with caplog.at_level("WARNING"):
        assert len(store.load_series("1.2.3")) == 1
    assert "broken.npz" in caplog.text and "truncated.npz" in caplog.text
    assert "in-progress" not in caplog.text  # a save in progress is not read at all


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch) -> None:
    store = ResultStore(tmp_path)
    result = AIResult.of(_segmentation())
    path = store.save(result)
    before = path.read_bytes()

    def fail(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(OSError, match="disk full"):
        store.save(result)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_findings_model_keeps_one_result_per_key_and_notifies() -> None:
    model, heard = FindingsModel(), []
    model.subscribe(heard.append)
    first = model.add(AIResult.of(_segmentation()))
    second = model.add(AIResult.of(_segmentation()))
    model.add(AIResult.of(_classification()))
    assert len(model) == 2 and model.get(first.key) is second
    assert [r.key[1] for r in model.for_series("1.2.3")] == ["cls", "seg"]  # newest first
    model.remove(first.key)
    assert heard == ["1.2.3"] * 4 and not model.get(first.key)


def test_component_rows_and_title() -> None:
    result = AIResult.of(_segmentation())
    rows = result.component_rows()
    assert [r.name for r in rows] == ["lung 1", "nodule 1"]
    assert rows[1].component.voxels == 2 * 4 * 4
    assert rows[1].component.volume_ml == pytest.approx(32 * 0.7 * 0.7 * 2.0 / 1000)
    assert result.title() == "Demo segmenter 1.2.0, 2026-11-21 10:00 UTC"
    result.mark_edited()
    assert ", edited 20" in result.title() and result.version == 1


def test_overlapping_saves_of_one_result_leave_one_valid_file(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = ResultStore(tmp_path)
    result = AIResult.of(_segmentation())
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _i: store.save(result.snapshot()), range(8)))
    assert [p.name for p in tmp_path.iterdir()] == [store.path_of(result.key).name]
    (loaded,) = store.load_series("1.2.3")
    assert np.array_equal(loaded.label_map, result.label_map)


def test_a_snapshot_does_not_follow_later_edits() -> None:
    result = AIResult.of(_segmentation())
    result.mark_edited()
    copy = result.snapshot()
    result.label_map[:] = 0
    assert copy.label_map.any() and copy.edited == result.edited and copy.key == result.key
    assert copy.statistics == result.statistics
