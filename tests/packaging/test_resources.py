"""Package data: found through importlib.resources, complete, and what the wheel ships."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import medviewer
from medviewer.ai.registry import ModelRegistry, bundled_models_dir
from medviewer.resources import (
    APP_ID,
    ICON_SIZES,
    desktop_entry_path,
    icon_path,
    models_dir,
    resource_path,
)

PACKAGE = Path(medviewer.__file__).resolve().parent
REPO = PACKAGE.parent
BUNDLED_IDS = ["demo-ct-interactive", "demo-ct-lung-nodule-seg", "demo-ct-lungs",
               "demo-ct-nodule-cls", "demo-cxr-nodule-cls"]


def test_resources_live_inside_the_package() -> None:
    assert models_dir() == PACKAGE / "resources" / "models"
    assert bundled_models_dir() == models_dir()
    assert resource_path("icons", "medviewer-16.png") == icon_path(16)
    assert desktop_entry_path() == PACKAGE / "resources" / "medviewer.desktop"
    # Nothing is looked up beside the package any more (the old <repo>/resources folder).
    assert not (REPO / "resources").exists()


def test_the_bundled_models_are_found_and_their_weights_verify() -> None:
    registry = ModelRegistry(user=Path("/nonexistent-user-models"))
    bundled = [e for e in registry.entries() if e.source == "bundled"]
    assert [e.card.id for e in bundled] == BUNDLED_IDS
    assert registry.problems() == []
    for entry in bundled:
        assert entry.folder.parent == models_dir()


@pytest.mark.parametrize("size", ICON_SIZES)
def test_each_icon_has_its_size_and_a_transparent_outside(size: int) -> None:
    with Image.open(icon_path(size)) as image:
        assert image.size == (size, size) and image.mode == "RGBA"
        pixels = np.asarray(image)
    assert pixels[0, 0, 3] <= 8 and pixels[-1, -1, 3] <= 8  # rounded corners (filter ringing)
    assert pixels[size // 2, size // 2, 3] == 255
    # The same picture at every size: each equals the 512 px one reduced, but for filtering.
    with Image.open(icon_path(512)) as big:
        reduced = np.asarray(big.resize((size, size), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(reduced - pixels.astype(int)).mean() < 4


def test_windows_and_macos_icons_hold_the_sizes_their_platforms_use() -> None:
    with Image.open(resource_path("icons", "medviewer.ico")) as ico:
        assert {(s, s) for s in (16, 32, 48, 256)} <= set(ico.info["sizes"])
    with Image.open(resource_path("icons", "medviewer.icns")) as icns:
        assert icns.size in ((512, 512), (1024, 1024))


def test_an_unshipped_icon_size_is_refused() -> None:
    with pytest.raises(ValueError, match="no 17 px icon"):
        icon_path(17)


def read_desktop_entry(text: str) -> dict[str, str]:
    """The [Desktop Entry] group of a desktop file (keys case-sensitive)."""
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    assert parser.sections() == ["Desktop Entry"]
    return dict(parser["Desktop Entry"])


def test_the_desktop_entry_is_a_complete_application_entry() -> None:
    entry = read_desktop_entry(desktop_entry_path().read_text(encoding="utf-8"))
    assert entry["Type"] == "Application" and entry["Name"] == "medviewer"
    assert entry["Icon"] == APP_ID and entry["StartupWMClass"] == APP_ID
    assert entry["Exec"] == "medviewer %F" and entry["TryExec"] == "medviewer"
    assert entry["Terminal"] == "false"
    for key in ("Categories", "MimeType", "Keywords"):
        assert entry[key].endswith(";")
    assert "MedicalSoftware" in entry["Categories"].split(";")
    assert entry["MimeType"].split(";")[:-1] == ["application/dicom"]


def _package_data_files() -> list[str]:
    root = PACKAGE / "resources"
    return sorted(
        str(p.relative_to(REPO)) for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.mark.slow
def test_the_wheel_ships_every_resource_and_module(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources; every resource and module must be in it."""
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy2(REPO / name, source / name if source.exists() else _mkdir(source) / name)
    shutil.copytree(PACKAGE, source / "medviewer", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "out"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "out").glob("medviewer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        card = archive.read("medviewer/resources/models/demo-ct-nodule-cls/model.json")
    assert set(_package_data_files()) <= names
    modules = {
        str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
    }
    assert modules <= names
    assert card == (models_dir() / "demo-ct-nodule-cls" / "model.json").read_bytes()
    metadata = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "medviewer = medviewer.cli:main" in archive.read(metadata).decode()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
