"""The DICOM test corpus: pydicom-data's files and pydicom's own test files."""

from __future__ import annotations

import os
from pathlib import Path

import data_store
import pydicom

DATA_STORE = Path(data_store.__file__).parent / "data"
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def corpus_files() -> list[Path]:
    """Every file of both corpora, sorted (folders walked recursively)."""
    files = [p for p in DATA_STORE.rglob("*") if p.is_file()]
    files += [p for p in PYDICOM_FILES.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(files)


def corpus_id(path: Path) -> str:
    """A short test id for a corpus file."""
    return os.path.relpath(path, path.parents[1])


def nibabel_file(name: str, folder: Path) -> Path:
    """A scanner file from nibabel's wheel (its nicom test data: Siemens mosaics, a Philips
    Enhanced MR), gunzipped into `folder` when packed; skips when the install lacks it."""
    import gzip
    import shutil

    import nibabel
    import pytest

    source = Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / name
    if not source.exists():
        pytest.skip(f"{name} is not in this nibabel install")
    if source.suffix != ".gz":
        return source
    target = folder / source.stem
    with gzip.open(source) as packed, open(target, "wb") as out:
        shutil.copyfileobj(packed, out)
    return target
