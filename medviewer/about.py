"""What this installation of medviewer is made of: versions, models, devices, pixel decoders.

``medviewer about`` prints it, for support questions and for the packaging checks, which
assert that a wheel or a desktop bundle can decode every compressed transfer syntax medviewer
supports and finds its bundled models. Importing torch here is deliberate (the report says
which devices it sees); only the ``about`` command calls this.

No Qt here (the command adds the Qt versions from :mod:`medviewer.ui.app`).
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from pydicom import uid

from medviewer import __version__
from medviewer.resources import ICON_SIZES, icon_path, models_dir

# The compressed transfer syntaxes medviewer reads, and the pydicom decoder plugins expected
# for each in a complete installation (wheel or bundle).
EXPECTED_DECODERS: dict[str, tuple[str, ...]] = {
    str(uid.JPEGBaseline8Bit): ("gdcm", "pylibjpeg"),
    str(uid.JPEGExtended12Bit): ("gdcm", "pylibjpeg"),
    str(uid.JPEGLossless): ("gdcm", "pylibjpeg"),
    str(uid.JPEGLosslessSV1): ("gdcm", "pylibjpeg"),
    str(uid.JPEGLSLossless): ("gdcm", "pylibjpeg"),
    str(uid.JPEGLSNearLossless): ("gdcm", "pylibjpeg"),
    str(uid.JPEG2000Lossless): ("gdcm", "pylibjpeg"),
    str(uid.JPEG2000): ("gdcm", "pylibjpeg"),
    str(uid.HTJ2KLossless): ("pylibjpeg",),
    str(uid.RLELossless): ("pydicom", "pylibjpeg"),
}


def library_versions() -> dict[str, str]:
    """Versions of the libraries medviewer reads, computes and writes with (Qt-free ones)."""
    import highdicom
    import monai
    import numpy
    import pydicom
    import reportlab
    import SimpleITK
    import torch

    return {
        "numpy": numpy.__version__,
        "pydicom": pydicom.__version__,
        "SimpleITK": SimpleITK.Version.VersionString(),
        "highdicom": highdicom.__version__,
        "reportlab": reportlab.Version,
        "torch": torch.__version__,
        "torch_cuda": str(torch.version.cuda),
        "monai": monai.__version__,
    }


def pixel_decoders() -> dict[str, dict[str, Any]]:
    """For each transfer syntax in :data:`EXPECTED_DECODERS`: its name and available plugins."""
    from pydicom.pixels import get_decoder

    out: dict[str, dict[str, Any]] = {}
    for syntax in EXPECTED_DECODERS:
        decoder = get_decoder(uid.UID(syntax))
        out[syntax] = {"name": uid.UID(syntax).name, "plugins": sorted(decoder.available_plugins)}
    return out


def missing_decoders(decoders: dict[str, dict[str, Any]]) -> list[str]:
    """``"<syntax name>: <plugin>"`` for every expected plugin that is not available."""
    return [
        f"{decoders[uid]['name']}: {plugin}"
        for uid, plugins in EXPECTED_DECODERS.items()
        for plugin in plugins
        if plugin not in decoders[uid]["plugins"]
    ]


def about() -> dict[str, Any]:
    """The whole report, JSON-ready.

    Returns
    -------
    dict
        ``medviewer``, ``python``, ``platform``, ``frozen``, ``executable``, ``libraries``,
        ``devices`` ([name, description]), ``models_dir``, ``bundled_models`` (ids),
        ``icons`` (sizes found), ``pixel_decoders``, ``missing_decoders``.
    """
    from medviewer.ai.device import available_devices
    from medviewer.ai.registry import ModelRegistry

    registry = ModelRegistry()
    decoders = pixel_decoders()
    return {
        "medviewer": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "executable": sys.executable,
        "libraries": library_versions(),
        "devices": [list(device) for device in available_devices()],
        "models_dir": str(models_dir()),
        "bundled_models": sorted(e.card.id for e in registry.entries() if e.source == "bundled"),
        "model_problems": [f"{folder}: {problem}" for folder, problem in registry.problems()],
        "icons": [size for size in ICON_SIZES if icon_path(size).is_file()],
        "pixel_decoders": decoders,
        "missing_decoders": missing_decoders(decoders),
    }
