"""Say what a machine lacks to show the viewer before Qt aborts with its generic message.

Qt's answer to a missing display or a missing X11/Wayland library is an abort ("This
application failed to start because no Qt platform plugin could be initialized"), which says
neither what is missing nor how to install it. :func:`display_problem` asks the same
questions first: which platform plugin Qt will use, whether a display is there for it, and
which shared libraries the plugin cannot find (``ldd``), mapped to the Debian/Ubuntu packages
that hold them.

This module imports nothing from Qt: it must work where Qt's libraries cannot load.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# soname -> the Debian/Ubuntu package that holds it (Qt 6's documented xcb, Wayland and GUI
# dependencies; https://doc.qt.io/qt-6/linux-requirements.html).
DEBIAN_PACKAGES = {
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libXext.so.6": "libxext6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
}

_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_CANNOT_OPEN = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


def display_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """Why the viewer's window cannot open here, with the fix; None when nothing is known wrong.

    Only Linux is checked (elsewhere Qt ships what it needs). A platform named in
    ``QT_QPA_PLATFORM`` is checked as named; headless ones (offscreen, minimal ...) need no
    display.
    """
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    chosen = env.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip()
    if chosen in _HEADLESS_PLATFORMS:
        return None
    if chosen == "wayland" or (not chosen and env.get("WAYLAND_DISPLAY")):
        missing = missing_libraries("wayland")
        if chosen == "wayland" or not env.get("DISPLAY"):
            return _missing_message("Wayland", missing) if missing else None
        if not missing:
            return None
    if chosen not in ("", "xcb", "wayland"):
        return None  # a platform we do not know: let Qt say what it needs
    if not env.get("DISPLAY"):
        return (
            "no display: DISPLAY (X11) and WAYLAND_DISPLAY are not set. Run medviewer in a "
            "desktop session (or over ssh -X); for a headless machine set "
            "QT_QPA_PLATFORM=offscreen, or use 'medviewer screenshot', which needs no display."
        )
    missing = missing_libraries("xcb")
    if missing:
        return _missing_message("X11", missing)
    if not x_server_reachable(env["DISPLAY"]):
        return (
            f"cannot open a window: no X server answers on DISPLAY={env['DISPLAY']} (is the "
            "desktop session still running? over ssh, connect with ssh -X)."
        )
    return None


def x_server_reachable(display: str, timeout_s: float = 5.0) -> bool:
    """Whether an X server accepts connections on `display` (``[host]:N[.screen]``).

    Local displays are tried on the abstract and the file socket ``/tmp/.X11-unix/XN``,
    remote ones (``ssh -X`` gives ``localhost:10.0``) on TCP port 6000 + N. A display
    string this cannot read counts as reachable: Qt then has the last word.
    """
    match = re.fullmatch(r"(?:unix/)?([^:/]*)(?:/unix)?:(\d+)(?:\.\d+)?", display.strip())
    if match is None:
        return True
    host, number = match.group(1), int(match.group(2))
    if host in ("", "unix"):
        paths = [f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"]
        return any(_connects(socket.AF_UNIX, path, timeout_s) for path in paths)
    return _connects(socket.AF_INET, (host, 6000 + number), timeout_s)


def _connects(family: int, address: object, timeout_s: float) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(address)
        return True
    except OSError:
        return False


def missing_libraries(platform: str) -> list[str]:
    """Sonames the Qt platform plugin `platform` (``xcb``, ``wayland``) needs and cannot find.

    Empty when the plugin's dependencies all resolve, or when they cannot be checked (no
    PySide6 or no ``ldd``: Qt will then say what it lacks).
    """
    plugin = _plugin_path(platform)
    ldd = shutil.which("ldd")
    if plugin is None or ldd is None:
        return []
    try:
        done = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ldd_missing(done.stdout + done.stderr)


def parse_ldd_missing(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` reported as "not found", once each, in order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def import_error_problem(error: ImportError) -> str | None:
    """The message for Qt failing to import for want of a system library; None otherwise."""
    names = _CANNOT_OPEN.findall(str(error))
    return _missing_message("Qt", names) if names else None


def install_hint(sonames: list[str]) -> str:
    """An ``apt-get install`` line for `sonames` (unknown ones are named as they are)."""
    packages = list(dict.fromkeys(DEBIAN_PACKAGES.get(name, "") for name in sonames))
    packages = [p for p in packages if p]
    unknown = [name for name in sonames if name not in DEBIAN_PACKAGES]
    hint = f"sudo apt-get install {' '.join(packages)}" if packages else ""
    if unknown:
        hint += ("; and the packages that provide " if hint else "install the packages that "
                 "provide ") + ", ".join(unknown)
    return hint


def _missing_message(what: str, sonames: list[str]) -> str:
    return (
        f"cannot open a window: Qt's {what} support needs system libraries this machine "
        f"lacks: {', '.join(sonames)}. On Debian or Ubuntu: {install_hint(sonames)} "
        "(other systems: the same libraries under their names there)."
    )


def _plugin_path(platform: str) -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    plugin = root / "Qt" / "plugins" / "platforms" / f"libq{platform}.so"
    return plugin if plugin.is_file() else None
