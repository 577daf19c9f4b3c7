"""Linux desktop integration: the application menu entry and icons, for the current user.

``medviewer desktop install`` writes, under the user's data folder (``$XDG_DATA_HOME``,
default ``~/.local/share``)::

    applications/medviewer.desktop                 Exec = the running medviewer
    icons/hicolor/<n>x<n>/apps/medviewer.png       every size in medviewer.resources

The desktop entry is the shipped ``medviewer.desktop`` with ``Exec`` and ``TryExec`` pointing
at the executable that ran the command: the bundle's ``medviewer`` when frozen, the venv's
``medviewer`` script for a wheel. No root rights, no system folder; ``uninstall`` removes
exactly these files. Each file is written to a temporary name and renamed into place.

No Qt here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from medviewer.core.staging import staged_file
from medviewer.resources import APP_ID, ICON_SIZES, desktop_entry_path, icon_path

_EXEC_RESERVED = set(' \t\n\r"\'\\><~|&;$*?#()`')


def user_data_home() -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def launcher_command() -> list[str]:
    """The command that starts this medviewer: the frozen executable, the script, or python -m.

    Returns
    -------
    list of str
        Absolute program path first.
    """
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).resolve())]
    script = Path(sys.executable).parent / ("medviewer.exe" if os.name == "nt" else "medviewer")
    if script.is_file():
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "medviewer"]


def escape_string(text: str) -> str:
    """A value of type string as a desktop entry writes it: ``\\``, newline, tab, CR escaped."""
    for raw, escaped in (("\\", "\\\\"), ("\n", "\\n"), ("\t", "\\t"), ("\r", "\\r")):
        text = text.replace(raw, escaped)
    return text


def quote_exec_argument(argument: str) -> str:
    """One argument quoted as the Desktop Entry Specification's ``Exec`` key wants it.

    Arguments holding a reserved character are put in double quotes, with ``"``, `````,
    ``$`` and ``\\`` escaped by a backslash; then the string escapes apply to the whole
    (backslashes doubled, newline as ``\\n``), because the key's value is a string whose
    escapes are read first. ``%`` is doubled (field codes).
    """
    text = argument.replace("%", "%%")
    if not any(ch in _EXEC_RESERVED for ch in text):
        return escape_string(text)
    for ch in ("\\", '"', "`", "$"):
        text = text.replace(ch, "\\" + ch)
    return escape_string('"' + text + '"')


def desktop_entry_text(command: Sequence[str]) -> str:
    """The shipped desktop entry with ``Exec``/``TryExec`` set to `command`.

    Parameters
    ----------
    command : sequence of str
        The program and its fixed arguments (``%F``, the files to open, is appended).
    """
    exec_line = " ".join(quote_exec_argument(part) for part in command) + " %F"
    lines = []
    for line in desktop_entry_path().read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={exec_line}"
        elif line.startswith("TryExec="):
            line = f"TryExec={escape_string(command[0])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def installed_paths(data_home: Path) -> list[Path]:
    """Where :func:`install` writes the entry and the icons under `data_home`."""
    icons = [
        data_home / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        for size in ICON_SIZES
    ]
    return [data_home / "applications" / f"{APP_ID}.desktop", *icons]


def install(data_home: Path | None = None, command: Sequence[str] | None = None) -> list[Path]:
    """Write the desktop entry and the icons for the current user.

    Parameters
    ----------
    data_home : Path, optional
        Default :func:`user_data_home`.
    command : sequence of str, optional
        What the entry starts; default :func:`launcher_command`.

    Returns
    -------
    list of Path
        The files written (entry first).
    """
    home = data_home if data_home is not None else user_data_home()
    entry, *icons = installed_paths(home)
    _write_atomic(entry, desktop_entry_text(command or launcher_command()).encode("utf-8"))
    for size, target in zip(ICON_SIZES, icons, strict=True):
        _write_atomic(target, icon_path(size).read_bytes())
    _refresh_caches(home)
    return [entry, *icons]


def uninstall(data_home: Path | None = None) -> list[Path]:
    """Remove what :func:`install` wrote; returns the files that were there."""
    home = data_home if data_home is not None else user_data_home()
    removed = [path for path in installed_paths(home) if path.is_file()]
    for path in removed:
        path.unlink()
    _refresh_caches(home)
    return removed


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(target) as staging:
        staging.write_bytes(data)
        os.chmod(staging, 0o644)


def _refresh_caches(home: Path) -> None:
    """Update the menu's MIME cache where the tool is installed.

    No icon cache is made: in a user folder it would hide icons other programs add later.
    """
    found = shutil.which("update-desktop-database")
    applications = home / "applications"
    if found and applications.is_dir():
        subprocess.run([found, "-q", str(applications)], check=False, capture_output=True)
