"""Shared fixtures: synthetic series with known truth, the corpus, file hashing."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

# No test writes into the user's own cache, config or data folders (platformdirs reads these).
_USER_DIRS = tempfile.mkdtemp(prefix="medviewer-tests-")
for _var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
    os.environ[_var] = os.path.join(_USER_DIRS, _var.lower())
# Nor into the user's OS keyring: PACS secrets go to the fallback file in the folders above.
os.environ["MEDVIEWER_SECRETS"] = "file"
os.environ.pop("MEDVIEWER_PACS_SECRET", None)

from medviewer.synthetic.demo import DEMO_SEED, DemoData, write_demo_data  # noqa: E402 (after the env)
from medviewer.synthetic.dicom_writer import SeriesSpec, WrittenSeries, write_series  # noqa: E402 (after the env)


@pytest.fixture
def series_dir(tmp_path: Path) -> tuple[Path, WrittenSeries]:
    """A small shuffled axial CT series and its truth."""
    folder = tmp_path / "series"
    return folder, write_series(folder, SeriesSpec())


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    """The viewer's demo (one patient: CT and radiograph studies, with truth), written once."""
    return write_demo_data(tmp_path_factory.mktemp("demo") / "study", DEMO_SEED, cases=1)


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, to prove inputs were not modified."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
