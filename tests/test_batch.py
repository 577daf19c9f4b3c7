"""``medviewer batch``: every series run once per model hash, outputs equal to ``infer``'s
voxel for voxel, re-runs that do nothing, a changed model that runs again, a failure that
leaves the rest done, a coordinator killed mid-job, and the status and summary files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.weights import clear_network_cache
from medviewer.batch.jobs import JobTable
from medviewer.cli import main
from medviewer.io.formats import read_image
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.ai.tiny_models import ThresholdSegmenter, make_card

UID = "1.2.826.0.1.3680043.8.498.5151.{}"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_network_cache()


@pytest.fixture
def studies(tmp_path: Path) -> tuple[Path, list, float]:
    """Three small CT series in one folder, with different voxels."""
    root = tmp_path / "studies"
    written = []
    for k in range(3):
        spec = SeriesSpec(shape=(6, 16, 14), seed=k + 1, series_uid=UID.format(10 + k),
                          study_uid=UID.format(20 + k), series_description=f"series {k}")
        written.append(write_series(root / f"s{k}", spec))
    threshold = float(np.median(np.concatenate([w.values.ravel() for w in written]))) + 0.5
    return root, written, threshold


def _batch(*args: str) -> int:
    return main(["batch", *args, "--device", "cpu"])


def test_every_series_once_with_outputs_equal_to_infer(tmp_path, studies, capsys) -> None:
    root, written, threshold = studies
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    out = tmp_path / "batch"
    assert _batch("--model", str(model.folder), str(root), "--out", str(out), "--json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert sorted(e["series_uid"] for e in lines) == sorted(w.series_uid for w in written)
    assert {e["state"] for e in lines} == {"done"}
    for w in written:
        labels = read_image(out / w.series_uid / "tiny-model" / "labels.nii.gz")
        single = tmp_path / f"infer-{w.series_uid}"
        assert main(["infer", "--model", str(model.folder), str(root / f"s{written.index(w)}"),
                     "--out", str(single), "--device", "cpu"]) == 0  # fmt: skip
        np.testing.assert_array_equal(labels.array, read_image(single / "labels.nii.gz").array)
        np.testing.assert_array_equal(labels.array, w.values > threshold)
    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {r["state"] for r in rows} == {"done"}
    volumes = [json.loads(r["findings"])["bright volume_ml"] for r in rows]
    assert all(v > 0 for v in volumes)
    capsys.readouterr()
    assert main(["batch", "status", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {"queued": 0, "running": 0, "done": 3, "failed": 0,
                                "cancelled": 0}  # fmt: skip


def test_a_rerun_does_nothing_and_a_changed_model_runs_again(tmp_path, studies, capsys) -> None:
    root, written, threshold = studies
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    out = tmp_path / "batch"
    assert _batch("--model", str(model.folder), str(root), "--out", str(out)) == 0
    result = out / written[0].series_uid / "tiny-model" / "result.json"
    stamp = result.stat().st_mtime_ns
    capsys.readouterr()
    assert _batch("--model", str(model.folder), str(root), "--out", str(out), "--json") == 0
    assert capsys.readouterr().err == ""  # nothing ran
    assert result.stat().st_mtime_ns == stamp
    changed = make_card(tmp_path / "model2", ThresholdSegmenter(threshold + 100.0, 5.0), dims=3)
    assert _batch("--model", str(changed.folder), str(root), "--out", str(out), "--json") == 0
    ran = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(ran) == 3 and all(e["state"] == "done" for e in ran)
    table = JobTable(out)
    assert table.counts()["done"] == 6  # each series once per model hash
    assert len({r["model_sha256"] for r in table.rows()}) == 2


def test_a_failing_series_leaves_the_rest_done_and_retry_picks_it_up(
    tmp_path, studies, capsys
) -> None:
    root, written, threshold = studies
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    out = tmp_path / "batch"
    assert _batch("--model", str(model.folder), str(root), "--out", str(out), "--dry-run") == 0
    hidden = root / "s1"
    moved = tmp_path / "away"
    hidden.rename(moved)  # indexed, then gone: the load fails
    assert _batch("--model", str(model.folder), str(tmp_path / "studies"), "--out",
                  str(out)) == 1  # fmt: skip
    table = JobTable(out)
    states = {r["series_uid"]: (r["state"], r["error"]) for r in table.rows()}
    state, error = states[written[1].series_uid]
    assert state == "failed" and "s1" in error
    assert sum(s == "done" for s, _ in states.values()) == 2
    assert not (out / written[1].series_uid).exists()  # nothing partial
    moved.rename(hidden)
    assert _batch("--model", str(model.folder), str(root), "--out", str(out), "--retry") == 0
    assert table.counts()["done"] == 3
    row = next(r for r in table.rows() if r["series_uid"] == written[1].series_uid)
    assert row["attempts"] == 2


def test_a_job_left_running_by_a_killed_coordinator_runs_again_once(
    tmp_path, studies
) -> None:
    root, written, threshold = studies
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    out = tmp_path / "batch"
    assert _batch("--model", str(model.folder), str(root), "--out", str(out), "--dry-run") == 0
    table = JobTable(out)
    job = table.claim("killed-host:1")  # claimed, then the process died (kill -9)
    assert job is not None and table.counts()["running"] == 1
    assert _batch("--model", str(model.folder), str(root), "--out", str(out)) == 0
    assert table.counts() == {"queued": 0, "running": 0, "done": 3, "failed": 0, "cancelled": 0}
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("1.2")) == sorted(
        w.series_uid for w in written)


def test_status_of_a_folder_without_a_batch(tmp_path, capsys) -> None:
    assert main(["batch", "status", str(tmp_path)]) == 2
    assert "holds no batch" in capsys.readouterr().err
