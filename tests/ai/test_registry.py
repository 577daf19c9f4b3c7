"""The model registry: bundled and user models, shadowing, problems, atomic add."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import medviewer
from medviewer.ai.model_card import CARD_FILE, SCHEMA, file_sha256
from medviewer.ai.registry import (
    ModelEntry,
    ModelRegistry,
    bundled_models_dir,
    user_models_dir,
)
from medviewer.core.errors import ModelCardError
from tests.ai.test_monai_bundle import (
    EXPECTED_WARNINGS,
    TORCHSCRIPT,
    make_bundle,
    torchscript_bytes,
)


def card_dict(model_id: str, weights: bytes, version: str = "1.0") -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "id": model_id,
        "name": model_id.title(),
        "version": version,
        "task": "segmentation",
        "intended_use": "Tests.",
        "modalities": ["CT"],
        "weights": {
            "file": "model.ts",
            "sha256": hashlib.sha256(weights).hexdigest(),
            "format": "torchscript",
        },
        "input": {"dims": 3, "orientation": "RAS"},
        "output": {"activation": "softmax", "labels": {"1": {"name": "organ"}}},
    }


def make_model(
    folder: Path, model_id: str, version: str = "1.0", weights: bytes | None = None
) -> Path:
    """A card folder: model.json, model.ts and a README."""
    data = weights if weights is not None else torchscript_bytes(f"{model_id} {version}")
    folder.mkdir(parents=True)
    card = card_dict(model_id, data, version)
    (folder / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    (folder / "model.ts").write_bytes(data)
    (folder / "README.md").write_text(f"# {model_id}\n", encoding="utf-8")
    return folder


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "bundled", tmp_path / "user"


def _ids(entries: list[ModelEntry]) -> list[tuple[str, str]]:
    return [(entry.card.id, entry.source) for entry in entries]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_default_folders() -> None:
    package = Path(medviewer.__file__).resolve().parent
    assert bundled_models_dir() == package / "resources" / "models"
    assert user_models_dir() == Path(os.environ["XDG_DATA_HOME"]) / "medviewer" / "models"
    registry = ModelRegistry()
    assert registry.bundled == bundled_models_dir()
    assert registry.user == user_models_dir()


def test_missing_folders_are_empty(dirs: tuple[Path, Path]) -> None:
    registry = ModelRegistry(*dirs)
    assert registry.entries() == []
    assert registry.problems() == []


def test_entries_from_bundled_and_user(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    make_model(bundled / "zeta", "zeta")
    make_model(bundled / "alpha", "alpha")
    make_model(user / "mid", "mid")
    (user / "not-a-model").mkdir()
    (user / "stray.txt").write_text("x", encoding="utf-8")
    entries = ModelRegistry(bundled, user).entries()
    assert _ids(entries) == [("alpha", "bundled"), ("mid", "user"), ("zeta", "bundled")]
    assert entries[0].folder == bundled / "alpha"
    assert entries[0].card.path == bundled / "alpha" / CARD_FILE
    assert entries[1].folder == user / "mid"


def test_user_model_shadows_bundled(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    make_model(bundled / "lung", "lung", version="1.0")
    make_model(user / "lung", "lung", version="2.0")
    entries = ModelRegistry(bundled, user).entries()
    assert _ids(entries) == [("lung", "user")]
    assert entries[0].card.version == "2.0"
    assert entries[0].folder == user / "lung"


def test_invalid_cards_become_problems(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    make_model(user / "good", "good")
    bad = make_model(user / "bad", "bad")
    card = json.loads((bad / CARD_FILE).read_text(encoding="utf-8"))
    card["input"]["orientation"] = "RRS"
    (bad / CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    broken = user / "broken"
    broken.mkdir()
    (broken / CARD_FILE).write_text("{", encoding="utf-8")
    registry = ModelRegistry(bundled, user)
    assert _ids(registry.entries()) == [("good", "user")]
    problems = registry.problems()
    assert [folder for folder, _ in problems] == [bad, broken]
    assert problems[0][1].startswith(f"{bad / CARD_FILE}: input.orientation: ")
    assert "invalid JSON at line 1" in problems[1][1]


def test_duplicate_ids_in_one_folder(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    make_model(user / "a", "same")
    make_model(user / "b", "same")
    registry = ModelRegistry(bundled, user)
    assert [entry.folder for entry in registry.entries()] == [user / "a"]
    assert registry.problems() == [(user / "b", f"{user / 'b'}: id 'same' appears twice in {user}")]


def test_get_by_id_and_by_path(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    bundled, user = dirs
    make_model(bundled / "lung", "lung")
    elsewhere = make_model(tmp_path / "elsewhere", "liver")
    registry = ModelRegistry(bundled, user)
    by_id = registry.get("lung")
    assert (by_id.card.id, by_id.source, by_id.folder) == ("lung", "bundled", bundled / "lung")
    by_folder = registry.get(str(elsewhere))
    assert (by_folder.card.id, by_folder.source, by_folder.folder) == ("liver", "path", elsewhere)
    by_file = registry.get(str(elsewhere / CARD_FILE))
    assert (by_file.card.id, by_file.source) == ("liver", "path")


def test_get_unknown_id_lists_known_ids(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    make_model(bundled / "lung", "lung")
    make_model(user / "brain", "brain")
    with pytest.raises(ModelCardError) as info:
        ModelRegistry(bundled, user).get("liver")
    assert str(info.value) == "unknown model 'liver'; known models: brain, lung"
    with pytest.raises(ModelCardError, match="known models: none installed"):
        ModelRegistry(bundled / "x", user / "x").get("liver")


def test_get_invalid_card_by_path(tmp_path: Path) -> None:
    folder = make_model(tmp_path / "m", "m")
    (folder / CARD_FILE).write_text("[]", encoding="utf-8")
    with pytest.raises(ModelCardError, match="must be a JSON object"):
        ModelRegistry(tmp_path / "b", tmp_path / "u").get(str(folder))


# -- add --------------------------------------------------------------------------------


def test_add_copies_the_model(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    bundled, user = dirs
    source = make_model(tmp_path / "src", "liver")
    (source / "notes.txt").write_text("notes", encoding="utf-8")
    (source / "sub").mkdir()
    (source / "sub" / "ignored.txt").write_text("no", encoding="utf-8")
    registry = ModelRegistry(bundled, user)
    entry, warnings = registry.add(source)
    assert warnings == []
    assert (entry.card.id, entry.source, entry.folder) == ("liver", "user", user / "liver")
    assert _names(user) == ["liver"]
    assert _names(user / "liver") == ["README.md", CARD_FILE, "model.ts", "notes.txt"]
    assert file_sha256(user / "liver" / "model.ts") == entry.card.weights.sha256
    assert file_sha256(user / "liver" / "model.ts") == file_sha256(source / "model.ts")
    assert entry.card.path == user / "liver" / CARD_FILE
    assert _ids(registry.entries()) == [("liver", "user")]


def test_add_from_a_card_file(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    source = make_model(tmp_path / "src", "liver")
    entry, _ = ModelRegistry(*dirs).add(source / CARD_FILE)
    assert entry.folder == dirs[1] / "liver"


def test_add_refuses_a_sha_mismatch(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    bundled, user = dirs
    make_model(user / "other", "other")
    source = make_model(tmp_path / "src", "liver")
    (source / "model.ts").write_bytes(b"tampered")
    with pytest.raises(ModelCardError, match=r"sha256 mismatch.*the model is refused"):
        ModelRegistry(bundled, user).add(source)
    assert _names(user) == ["other"]


def test_add_refuses_missing_weights(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    source = make_model(tmp_path / "src", "liver")
    (source / "model.ts").unlink()
    with pytest.raises(ModelCardError, match="weights file missing"):
        ModelRegistry(*dirs).add(source)
    assert _names(dirs[1]) == []


def test_add_refuses_an_existing_id_without_replace(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    bundled, user = dirs
    registry = ModelRegistry(bundled, user)
    registry.add(make_model(tmp_path / "v1", "liver", version="1.0"))
    newer = make_model(tmp_path / "v2", "liver", version="2.0")
    with pytest.raises(ModelCardError, match=r"already installed .*use --replace"):
        registry.add(newer)
    assert registry.get("liver").card.version == "1.0"
    entry, _ = registry.add(newer, replace=True)
    assert entry.card.version == "2.0"
    assert registry.get("liver").card.version == "2.0"
    assert (user / "liver" / "model.ts").read_bytes() == (newer / "model.ts").read_bytes()
    assert _names(user) == ["liver"]


def test_add_may_shadow_a_bundled_model(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    bundled, user = dirs
    make_model(bundled / "lung", "lung", version="1.0")
    registry = ModelRegistry(bundled, user)
    registry.add(make_model(tmp_path / "src", "lung", version="3.0"))
    assert _ids(registry.entries()) == [("lung", "user")]
    assert registry.get("lung").card.version == "3.0"


def test_add_a_monai_bundle(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    bundled, user = dirs
    registry = ModelRegistry(bundled, user)
    entry, warnings = registry.add(make_bundle(tmp_path / "spleen"))
    assert warnings == EXPECTED_WARNINGS
    assert (entry.card.id, entry.source) == ("spleen-ct-segmentation", "user")
    assert entry.folder == user / "spleen-ct-segmentation"
    assert _names(user) == ["spleen-ct-segmentation"]
    assert _names(entry.folder) == ["README.md", CARD_FILE, "model.ts"]
    assert (entry.folder / "model.ts").read_bytes() == TORCHSCRIPT
    with pytest.raises(ModelCardError, match="already installed"):
        registry.add(tmp_path / "spleen")
    assert _names(user) == ["spleen-ct-segmentation"]


def test_add_refuses_other_paths(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    registry = ModelRegistry(*dirs)
    with pytest.raises(ModelCardError, match="no such file or folder"):
        registry.add(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelCardError, match="neither a model folder"):
        registry.add(tmp_path / "empty")


def test_listing_models_does_not_import_torch(dirs: tuple[Path, Path]) -> None:
    code = (
        "import sys\n"
        "import medviewer.ai.registry, medviewer.ai.model_card, medviewer.ai.monai_bundle\n"
        "import medviewer.ai.runner, medviewer.ai.prediction  # the GUI imports these at start\n"
        f"registry = medviewer.ai.registry.ModelRegistry({str(dirs[0])!r}, {str(dirs[1])!r})\n"
        "registry.entries()\n"
        "heavy = {'torch', 'monai', 'SimpleITK'} & set(sys.modules)\n"
        "assert not heavy, f'imported at start-up: {heavy}'\n"
    )
    make_model(dirs[0] / "lung", "lung")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
