"""packaging/verify.py's own checks: they pass on a good installation and catch a bad one.

The full run (fresh venv + bundle) is ``make package-test``; here the script's checks run
against this checkout's editable install, whose models live in the source tree: exactly
what verify.py must refuse for a wheel or a bundle.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "medviewer"


def _load_verify():
    spec = importlib.util.spec_from_file_location("verify", REPO / "packaging" / "verify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify = _load_verify()


@pytest.mark.skipif(not SCRIPT.is_file(), reason="needs the installed medviewer script")
def test_the_checks_refuse_models_read_from_the_source_tree(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    inst = verify.Installation("editable", SCRIPT, venv, tmp_path)
    verify.check_basics(inst, "0.1.0", frozen=False)
    assert inst.results["libraries"]["torch"].startswith("2.")
    # Everything passes except where the models are: in the checkout, not the installation.
    assert inst.failures == [
        f"editable: models in {REPO / 'medviewer' / 'resources' / 'models'}",
        "editable: models list: a model outside the installation",
    ]
    assert (tmp_path / "share" / "applications" / "medviewer.desktop").is_file()


def test_compare_names_every_difference() -> None:
    wheel = {"demo_sha256": "a", "info_ct": {"shape": [1]}, "info_plain": {"shape": [2]},
             "labels_sha256": "l", "ct_segments": {}, "torch": ["2.13.0+cpu", "None"],
             "dx_classes": {"nodule": 0.9}}
    same = {**wheel, "dx_classes": {"nodule": 0.9 + 5e-6}}
    assert verify.compare(wheel, same) == []
    other = {**wheel, "demo_sha256": "b", "torch": ["2.13.0+cu128", "12.8"],
             "dx_classes": {"nodule": 0.8}}
    assert verify.compare(wheel, other) == [
        "bundle and wheel differ in demo_sha256",
        "bundle and wheel differ in torch",
        "bundle and wheel differ in the probability of nodule",
    ]
    # A result missing on both sides (a label map neither wrote) is a difference, not a match.
    both_missing = {k: v for k, v in wheel.items() if k != "labels_sha256"}
    assert verify.compare(both_missing, dict(both_missing)) == [
        "bundle and wheel differ in labels_sha256"
    ]


def test_png_size_reads_the_header(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (900, 300)).save(tmp_path / "a.png")
    assert verify.png_size(tmp_path / "a.png") == (900, 300)
    (tmp_path / "b.png").write_bytes(b"not a png")
    assert verify.png_size(tmp_path / "b.png") is None
    assert verify.png_size(tmp_path / "missing.png") is None
