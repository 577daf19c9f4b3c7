"""``medviewer segment-click``: the mask written on the series grid, the JSON report, and
clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medviewer.cli import main
from medviewer.io.formats import read_image, write_image
from tests.ai.test_interactive import centre_of, dice, oblique_affine, phantom


def test_a_click_writes_the_object_on_the_series_grid(tmp_path, capsys):
    affine = oblique_affine(spacing=(0.8, 0.8, 2.0))
    shape = (30, 70, 80)
    a = centre_of(affine, shape, (0.5, 0.5, 0.35))
    b = centre_of(affine, shape, (0.5, 0.5, 0.65))
    neck = [tuple(np.asarray(a) + t * (np.asarray(b) - np.asarray(a)))
            for t in np.linspace(0, 1, 12)]
    volume, truths = phantom(affine, shape=shape, balls=[(a, 7.0, 40.0), (b, 7.0, 40.0),
                                                         *((p, 2.0, 40.0) for p in neck)])
    source = tmp_path / "ct.nii.gz"
    write_image(volume.with_array(volume.array.astype(np.int16)), source)
    out = tmp_path / "out" / "mask.nii.gz"
    text = lambda p: ",".join(f"{v:.3f}" for v in p)  # noqa: E731
    assert main(["segment-click", str(source), f"--point={text(a)}", f"--negative={text(b)}",
                 "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engine"] == "classical" and report["seconds"] > 0
    written = read_image(out)
    np.testing.assert_allclose(written.affine, read_image(source).affine, atol=1e-4)
    mask = written.array.astype(bool)
    assert report["voxels"] == int(mask.sum())
    assert dice(mask, truths[0]) > 0.85 and not (mask & truths[1]).any()
    assert report["volume_ml"] == pytest.approx(mask.sum() * np.prod(volume.spacing) / 1000,
                                                rel=1e-3)
    assert [p.name for p in out.parent.iterdir()] == ["mask.nii.gz"]  # no staging left


def test_segment_click_errors_are_one_line(tmp_path, capsys):
    volume, _ = phantom(np.eye(4), shape=(5, 10, 10), balls=[])
    source = tmp_path / "v.nii.gz"
    write_image(volume, source)
    assert main(["segment-click", str(source), "--out", str(tmp_path / "m.nii.gz")]) == 1
    assert "give a --point inside the object or a --box" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["segment-click", str(source), "--point", "1,2", "--out", "m.nii.gz"])
    assert stop.value.code == 2
    assert "expected X,Y,Z in mm, got '1,2'" in capsys.readouterr().err
    assert main(["segment-click", str(source), "--point", "500,0,0",
                 "--out", str(tmp_path / "m.nii.gz")]) == 1
    assert "is outside the series" in capsys.readouterr().err
    assert main(["segment-click", str(source), "--point", "1,1,1", "--engine", "sam",
                 "--out", str(tmp_path / "m.nii.gz")]) == 1
    assert "no interactive engine 'sam' (available: classical, auto" in capsys.readouterr().err
    assert not (tmp_path / "m.nii.gz").exists()
