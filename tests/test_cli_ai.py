"""``medviewer infer`` and ``medviewer models`` on real DICOM files with tiny known models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.weights import clear_network_cache
from medviewer.cli import main
from medviewer.io.formats import read_image
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.ai.test_explain import KWARGS, blob_detector
from tests.ai.tiny_models import ThresholdSegmenter, card_dict, make_card, write_card

# Oblique rows/cols (about 20 degrees off axial), non-square pixels.
OBLIQUE = (0.9397, 0.3420, 0.0, -0.3320, 0.9122, 0.2400)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_network_cache()


@pytest.fixture
def oblique_ct(tmp_path: Path):
    folder = tmp_path / "ct"
    spec = SeriesSpec(shape=(10, 24, 20), orientation=OBLIQUE, pixel_spacing=(0.7, 0.9),
                      slice_spacing=2.5)
    return folder, write_series(folder, spec)


def test_infer_writes_labels_on_the_series_grid(
    tmp_path: Path, oblique_ct, capsys: pytest.CaptureFixture
) -> None:
    folder, truth = oblique_ct
    threshold = float(np.median(truth.values)) + 0.5
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    out = tmp_path / "out"
    assert main(["infer", "--model", str(model.folder), str(folder), "--out", str(out),
                 "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result == json.loads((out / "result.json").read_text())
    assert result["model"]["sha256"] == model.weights.sha256
    assert result["task"] == "segmentation" and result["device"].startswith("CPU")
    expected = truth.values > threshold
    voxel_ml = 0.7 * 0.9 * 2.5 / 1000
    assert result["segments"]["bright"]["volume_ml"] == pytest.approx(expected.sum() * voxel_ml,
                                                                      rel=1e-4)
    labels = read_image(out / "labels.nii.gz")
    np.testing.assert_array_equal(labels.array, expected)
    np.testing.assert_allclose(labels.affine, truth.affine, atol=1e-4)
    assert sorted(p.name for p in out.iterdir()) == ["labels.nii.gz", "result.json"]
    assert "100% done" in captured.err


def test_infer_writes_a_pdf_seg_and_sr_de_identified(
    tmp_path: Path, oblique_ct, capsys: pytest.CaptureFixture
) -> None:
    import pydicom

    from medviewer.io.seg import label_map_from_seg
    from medviewer.io.series import load_series
    from medviewer.report.sources import read_source_images
    from tests.dciodvfy import dciodvfy_report

    folder, truth = oblique_ct
    threshold = float(np.median(truth.values)) + 0.5
    model = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3)
    pdf, seg, sr = tmp_path / "r.pdf", tmp_path / "seg.dcm", tmp_path / "sr.dcm"
    args = ["infer", "--model", str(model.folder), str(folder), "--out", str(tmp_path / "out"),
            "--device", "cpu", "--pdf", str(pdf), "--seg", str(seg), "--sr", str(sr),
            "--impression", "Bright region.", "--json"]
    assert main([*args, "--deidentify"]) == 0
    assert json.loads(capsys.readouterr().out)["exported"] == [str(pdf), str(seg), str(sr)]
    assert pdf.read_bytes().startswith(b"%PDF")
    for path in (seg, sr):
        assert dciodvfy_report(path).errors == (), dciodvfy_report(path).output
        data = path.read_bytes()
        assert b"SYNTHETIC" not in data and b"SYN0001" not in data  # the patient is gone
        assert truth.series_uid.encode() not in data
    # the de-identified SEG's frames hold the label map in the series' slice order
    volume = load_series(folder)
    header = pydicom.dcmread(seg, stop_before_pixels=True)
    mapping = {f.ReferencedSOPInstanceUID: f for f in [
        item.DerivationImageSequence[0].SourceImageSequence[0]
        for item in header.PerFrameFunctionalGroupsSequence]}
    assert len(mapping) > 0
    sources = read_source_images(volume.metadata)
    assert not {sources.sop_uid_of_slice(i) for i in range(volume.shape[0])} & set(mapping)
    # a second run refuses to overwrite, before running the model
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    uids = [sources.sop_uid_of_slice(i) for i in range(volume.shape[0])]
    back = label_map_from_seg(seg, uids)
    np.testing.assert_array_equal(back.labels, truth.values > threshold)


def test_infer_writes_the_heatmap_and_probabilities(
    tmp_path: Path, oblique_ct
) -> None:
    from safetensors.torch import save_file

    folder, truth = oblique_ct
    model = tmp_path / "cls"
    model.mkdir()
    save_file(blob_detector().state_dict(), str(model / "model.safetensors"))
    write_card(model, card_dict(
        model / "model.safetensors", "safetensors", task="classification", dims=2,
        orientation="PLS", classes=["normal", "blob"],
        intensity=[{"op": "scale_range", "min": -1024, "max": 3000, "to": [0, 1]}],
        architecture={"name": "medviewer.ai.nets.ConvClassifier", "kwargs": KWARGS},
        explain={"method": "gradcam", "layer": "features.block0"},
    ))
    out = tmp_path / "out"
    assert main(["infer", "--model", str(model / "model.json"), str(folder), "--out", str(out),
                 "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert set(result["classes"]) == {"normal", "blob"}
    assert len(result["slice_probabilities"]["probabilities"]) == truth.values.shape[0]
    heatmap = read_image(out / "heatmap.nii.gz")
    assert heatmap.shape == truth.values.shape
    np.testing.assert_allclose(heatmap.affine, truth.affine, atol=1e-4)


def test_infer_refuses_a_wrong_modality_and_writes_nothing(
    tmp_path: Path, oblique_ct, capsys: pytest.CaptureFixture
) -> None:
    folder, _ = oblique_ct
    model = make_card(tmp_path / "model", ThresholdSegmenter(), modalities=("MR",))
    out = tmp_path / "out"
    assert main(["infer", "--model", str(model.folder), str(folder), "--out", str(out)]) == 1
    assert "is for MR images; this series is CT" in capsys.readouterr().err
    assert not out.exists()


def test_infer_with_an_unknown_model_lists_the_known_ones(
    tmp_path: Path, oblique_ct, capsys: pytest.CaptureFixture
) -> None:
    folder, _ = oblique_ct
    assert main(["infer", "--model", "no-such-model", str(folder), "--out",
                 str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "no-such-model" in err and len(err.strip().splitlines()) == 1


def test_infer_on_a_missing_source_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["infer", "--model", "x", str(tmp_path / "nothing"), "--out", "o"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_models_add_list_show(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = make_card(tmp_path / "model", ThresholdSegmenter(), model_id="tiny-seg")
    assert main(["models", "add", str(model.folder)]) == 0
    assert "installed tiny-seg 1.0.0" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tiny-seg"]["source"] == "user"
    assert rows["tiny-seg"]["task"] == "segmentation"
    assert main(["models", "show", "tiny-seg"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"]["sha256"] == model.weights.sha256
    assert main(["models", "add", str(model.folder)]) == 1
    assert "--replace" in capsys.readouterr().err


def test_models_add_refuses_tampered_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = make_card(tmp_path / "model", ThresholdSegmenter(), model_id="tampered")
    with model.weights_path.open("ab") as handle:
        handle.write(b"x")
    assert main(["models", "add", str(model.folder)]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err
    assert main(["models", "list", "--json"]) == 0
    assert "tampered" not in {r["id"] for r in json.loads(capsys.readouterr().out)}


def test_installed_model_runs_by_id_from_a_fresh_process(tmp_path: Path, oblique_ct) -> None:
    """The whole path a user takes: add a TorchScript model + card, infer by id."""
    folder, truth = oblique_ct
    model = make_card(tmp_path / "model", ThresholdSegmenter(0.5, 1.0), model_id="by-id")
    env = {**os.environ}
    add = subprocess.run([sys.executable, "-m", "medviewer", "models", "add", str(model.folder)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert add.returncode == 0, add.stderr
    out = tmp_path / "out"
    infer = subprocess.run(
        [sys.executable, "-m", "medviewer", "infer", "--model", "by-id", str(folder),
         "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert infer.returncode == 0, infer.stderr
    assert "written:" in infer.stdout
    labels = read_image(out / "labels.nii.gz").array
    np.testing.assert_array_equal(labels, truth.values > 0.5)


# -- what a killed run leaves behind ------------------------------------------------------

BLOCKING_RUN = """
import sys
from pathlib import Path

from medviewer.report import files, tabular

marker, where = Path(sys.argv[1]), sys.argv[2]


def block(*_args):
    marker.write_text("staged")  # the parent kills this process once it sees the marker
    sys.stdin.read()  # never returns while the parent holds the pipe open


if where == "result":
    write = tabular.write_volume

    def write_then_block(*args, **kwargs):
        write(*args, **kwargs)
        block()

    tabular.write_volume = write_then_block
else:
    files.FileBatch.commit = block

from medviewer.cli import main

sys.exit(main(sys.argv[3:]))
"""


def _staged(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".partial-",
                                                                         ".replaced-")))


def _kill_when_staged(tmp_path: Path, where: str, args: list[str]) -> int:
    """Run infer in a process that stops once its staging is written, kill -9 it there;
    returns its pid."""
    import signal
    import time

    script, marker = tmp_path / "blocking_run.py", tmp_path / "staged.marker"
    script.write_text(BLOCKING_RUN)
    errors = tmp_path / "stderr.txt"
    command = [sys.executable, str(script), str(marker), where, *args]
    with errors.open("w") as err, subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err
    ) as process:
        try:
            guard = time.monotonic() + 300  # a failure guard only: the marker is the event
            while not marker.exists():
                assert process.poll() is None, errors.read_text()
                assert time.monotonic() < guard, "the run never reached its staging"
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return process.pid


def _age(path: Path, seconds: float) -> None:
    """Set back the modification time of `path` and of everything inside it by `seconds`."""
    for inner in [*path.rglob("*"), path] if path.is_dir() else [path]:
        stamp = inner.lstat().st_mtime - seconds
        os.utime(inner, (stamp, stamp), follow_symlinks=False)


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and pid probing are POSIX")
@pytest.mark.parametrize("where", ["result", "reports"])
def test_a_run_killed_while_staging_is_cleaned_up_by_the_next(
    tmp_path: Path, oblique_ct, where: str
) -> None:
    from medviewer.core.staging import staging_prefix

    folder, truth = oblique_ct
    model = make_card(tmp_path / "model", ThresholdSegmenter(float(np.median(truth.values))),
                      dims=3)
    out, reports = tmp_path / "out", tmp_path / "reports"
    reports.mkdir()
    args = ["infer", "--model", str(model.folder), str(folder), "--out", str(out),
            "--device", "cpu", "--pdf", str(reports / "r.pdf"), "--seg", str(reports / "s.dcm")]
    pid = _kill_when_staged(tmp_path, where, args)
    left = out if where == "result" else reports
    staged = _staged(left)
    assert staged and all(f"-{pid}-" in name for name in staged)  # what kill -9 left
    for name in staged:  # left a while ago: a fresh one may be another machine's live run
        _age(left / name, 20 * 60)
    live = left / f"{staging_prefix()}0123456789ab-other.pdf"  # this process: running
    live.write_bytes(b"in progress")
    (left / ".unrelated").write_text("mine")
    assert main(args) == 0
    assert _staged(left) == [live.name]  # the killed run's staging is gone, nothing else
    assert (left / ".unrelated").read_text() == "mine"
    written = {"result": (out, {"labels.nii.gz", "result.json"}),
               "reports": (reports, {"r.pdf", "s.dcm"})}
    for kind, (place, names) in written.items():
        extra = {live.name, ".unrelated"} if kind == where else set()
        assert {p.name for p in place.iterdir()} == names | extra
    assert (reports / "r.pdf").read_bytes().startswith(b"%PDF")


def test_infer_deidentify_keeps_the_model_fields_of_result_json(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The demo patient's name part DEMO is also a word of the demo model's id and name."""
    folder = tmp_path / "ct"
    spec = SeriesSpec(shape=(10, 24, 20), pixel_spacing=(0.7, 0.9), slice_spacing=2.5,
                      patient_name="DEMO^PATIENT1", patient_id="DEMO0001")
    truth = write_series(folder, spec)
    threshold = float(np.median(truth.values)) + 0.5
    card = make_card(tmp_path / "model", ThresholdSegmenter(threshold, 5.0), dims=3,
                     model_id="demo-ct-lung-nodule-seg",
                     labels={"1": {"name": "demo nodule", "color": "#ff0000"}})
    name = "Lungs and nodules on chest CT (demo)"
    card = write_card(card.folder, {**card.to_dict(), "name": name})
    out = tmp_path / "out"
    assert main(["infer", "--model", str(card.folder), str(folder), "--out", str(out),
                 "--device", "cpu", "--deidentify", "--json"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert result["model"] == {"id": "demo-ct-lung-nodule-seg", "version": card.version,
                               "sha256": card.weights.sha256, "name": name}
    assert list(result["segments"]) == ["demo nodule"]
    assert result["series_uid"] and result["series_uid"] != truth.series_uid
    assert b"DEMO0001" not in (out / "result.json").read_bytes()
