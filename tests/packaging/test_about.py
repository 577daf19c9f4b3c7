"""``medviewer about``: what an installation holds, and what the packaging checks assert."""

from __future__ import annotations

import json

import pytest

from medviewer import about
from medviewer.cli import main
from medviewer.resources import ICON_SIZES, models_dir
from tests.packaging.test_resources import BUNDLED_IDS


def test_this_installation_has_every_decoder_model_and_icon() -> None:
    report = about.about()
    assert report["missing_decoders"] == []
    assert report["bundled_models"] == BUNDLED_IDS and report["model_problems"] == []
    assert report["icons"] == list(ICON_SIZES)
    assert report["models_dir"] == str(models_dir())
    assert report["frozen"] is False
    # Every installation can run on the CPU, after the automatic choice.
    assert report["devices"][0][0] == "auto" and report["devices"][1][:1] == ["cpu"]
    decoders = report["pixel_decoders"]
    assert decoders["1.2.840.10008.1.2.5"]["name"] == "RLE Lossless"
    assert {"gdcm", "pylibjpeg"} <= set(decoders["1.2.840.10008.1.2.4.90"]["plugins"])
    # What the report says of a library is the version that Python would import.
    from importlib.metadata import version

    assert report["libraries"]["torch"] == version("torch")


def test_missing_decoders_are_named_by_syntax_and_plugin() -> None:
    decoders = about.pixel_decoders()
    decoders["1.2.840.10008.1.2.4.90"]["plugins"] = ["pylibjpeg"]
    decoders["1.2.840.10008.1.2.5"]["plugins"] = []
    assert about.missing_decoders(decoders) == [
        "JPEG 2000 Image Compression (Lossless Only): gdcm",
        "RLE Lossless: pydicom",
        "RLE Lossless: pylibjpeg",
    ]


def test_the_about_command(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["about", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"PySide6", "qt", "pyqtgraph", "pydicom", "monai"} <= set(report["libraries"])
    assert main(["about"]) == 0
    text = capsys.readouterr().out
    assert ("bundled models: demo-ct-interactive, demo-ct-lung-nodule-seg, demo-ct-lungs, "
            "demo-ct-nodule-cls") in text
    assert "  RLE Lossless: pydicom, pylibjpeg" in text
    # A missing decoder makes the command fail (the packaging checks rely on it).
    monkeypatch.setitem(about.EXPECTED_DECODERS, "1.2.840.10008.1.2.5", ("no-such-plugin",))
    assert main(["about", "--json"]) == 1
    assert "medviewer: missing: RLE Lossless: no-such-plugin" in capsys.readouterr().err


def test_about_reports_a_qt_that_cannot_load(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine without libGL the command names the missing library instead of a trace."""
    import medviewer.ui.app

    def no_gl() -> dict[str, str]:
        raise ImportError("libGL.so.1: cannot open shared object file")

    monkeypatch.setattr(medviewer.ui.app, "qt_versions", no_gl)
    assert main(["about", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["qt_problem"] == (
        "Qt cannot load: libGL.so.1: cannot open shared object file"
    )
    assert "medviewer: missing: Qt cannot load: libGL.so.1" in captured.err
