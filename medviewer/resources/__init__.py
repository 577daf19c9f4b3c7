"""The files shipped inside the package: bundled models, application icons, the desktop entry.

They are package data, found through :mod:`importlib.resources` wherever medviewer runs:
a source checkout, an installed wheel, or the PyInstaller bundle (which collects this folder
next to its frozen modules). Nothing here builds paths from the source tree.

No Qt and no torch here.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

APP_ID = "medviewer"
"""The application id: desktop entry name, icon name, Qt desktop file name."""

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
"""The sizes of the application icon PNGs in ``icons/`` (pixels, square)."""


def resource_path(*parts: str) -> Path:
    """A file or folder of the package data, as a file-system path.

    Parameters
    ----------
    *parts : str
        Path parts below ``medviewer/resources``, e.g. ``("icons", "medviewer-32.png")``.

    Returns
    -------
    Path
        The path; it may not exist (callers say what is missing).

    Raises
    ------
    RuntimeError
        When the package is not on the file system (imported from a zip archive): the models
        and icons are read as files, so medviewer must be installed unpacked.
    """
    item = importlib.resources.files(__name__).joinpath(*parts)
    if not isinstance(item, Path):
        raise RuntimeError(
            f"medviewer's resources are inside an archive ({item}); install medviewer unpacked"
        )
    return item


def models_dir() -> Path:
    """The bundled models folder (one sub-folder per model: ``model.json`` + weights)."""
    return resource_path("models")


def icon_path(size: int) -> Path:
    """The application icon PNG of `size` pixels (one of :data:`ICON_SIZES`).

    Raises
    ------
    ValueError
        For a size that is not shipped.
    """
    if size not in ICON_SIZES:
        raise ValueError(f"no {size} px icon; sizes: {', '.join(map(str, ICON_SIZES))}")
    return resource_path("icons", f"{APP_ID}-{size}.png")


def desktop_entry_path() -> Path:
    """The freedesktop.org desktop entry shipped with medviewer (``medviewer.desktop``)."""
    return resource_path(f"{APP_ID}.desktop")
