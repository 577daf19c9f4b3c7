"""Desktop integration: the menu entry and icons written for the user, and removed again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer import desktop_entry
from medviewer.cli import main
from medviewer.resources import ICON_SIZES, icon_path
from tests.packaging.test_resources import read_desktop_entry


def unescape_string(value: str) -> str:
    """A desktop entry string value read back (``\\s``, ``\\n``, ``\\t``, ``\\r``, ``\\\\``)."""
    escapes = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    out, k = "", 0
    while k < len(value):
        if value[k] == "\\" and k + 1 < len(value) and value[k + 1] in escapes:
            out += escapes[value[k + 1]]
            k += 2
        else:
            out += value[k]
            k += 1
    return out


def split_exec(value: str) -> list[str]:
    """An ``Exec`` value as a launcher reads it (Desktop Entry Specification, "Exec key").

    First the string escapes (``\\\\`` is one backslash), then the arguments: separated by
    spaces, double-quoted ones with ``\\"``, ``\\```, ``\\$``, ``\\\\`` escapes; ``%%`` is ``%``.
    """
    text = unescape_string(value)
    args, current, quoted, k = [], "", False, 0
    while k < len(text):
        ch = text[k]
        if quoted and ch == "\\":
            current += text[k + 1]
            k += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == " " and not quoted:
            args.append(current)
            current = ""
        else:
            current += ch
        k += 1
    args.append(current)
    return [a.replace("%%", "%") if a != "%F" else a for a in args]


@pytest.mark.parametrize(
    "command",
    [
        ["/opt/medviewer/medviewer"],
        ["/home/a user/My Apps/medviewer"],
        ["/usr/bin/python3", "-m", "medviewer"],
        ['/tmp/odd "name" $HOME `x` \\ 100%/medviewer'],
        ["/tmp/new\nline/and\ttab\\back/medviewer"],
    ],
)
def test_exec_quoting_round_trips(command: list[str]) -> None:
    text = desktop_entry.desktop_entry_text(command)
    entry = read_desktop_entry(text)
    assert split_exec(entry["Exec"]) == [*command, "%F"]
    assert unescape_string(entry["TryExec"]) == command[0]
    assert "\n" not in entry["Exec"] + entry["TryExec"]  # one line per key
    assert entry["Icon"] == "medviewer"


def test_install_writes_the_entry_and_every_icon_then_uninstall_removes_them(
    tmp_path: Path,
) -> None:
    home = tmp_path / "share"
    written = desktop_entry.install(home, ["/opt/medviewer/medviewer"])
    assert written[0] == home / "applications" / "medviewer.desktop"
    assert len(written) == 1 + len(ICON_SIZES)
    for size, path in zip(ICON_SIZES, written[1:], strict=True):
        assert path == home / f"icons/hicolor/{size}x{size}/apps/medviewer.png"
        assert path.read_bytes() == icon_path(size).read_bytes()
        assert path.stat().st_mode & 0o777 == 0o644
    entry = read_desktop_entry(written[0].read_text(encoding="utf-8"))
    assert entry["Exec"] == "/opt/medviewer/medviewer %F"
    assert not [p for p in home.rglob(".*") if p.is_file()]  # no temporary file left
    assert desktop_entry.uninstall(home) == [p for p in written]
    # What stays is the menu's shared MIME cache, where update-desktop-database is installed.
    left = [p.name for p in home.rglob("*") if p.is_file()]
    assert left in ([], ["mimeinfo.cache"])
    assert desktop_entry.uninstall(home) == []


def test_the_launcher_is_the_venv_script_or_the_frozen_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = Path(sys.executable).parent / "medviewer"
    expected = [str(script.absolute())] if script.is_file() else [
        str(Path(sys.executable).absolute()), "-m", "medviewer"
    ]
    assert desktop_entry.launcher_command() == expected
    frozen = tmp_path / "bundle" / "medviewer"
    frozen.parent.mkdir()
    frozen.write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(frozen))
    assert desktop_entry.launcher_command() == [str(frozen.resolve())]


def test_data_home_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert desktop_entry.user_data_home() == tmp_path
    monkeypatch.setenv("XDG_DATA_HOME", "relative/not/allowed")
    assert desktop_entry.user_data_home() == Path.home() / ".local" / "share"


def test_the_desktop_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home = tmp_path / "share"
    assert main(["desktop", "install", "--data-home", str(home)]) == 0
    out = capsys.readouterr().out
    assert f"installed the menu entry {home / 'applications' / 'medviewer.desktop'}" in out
    entry = read_desktop_entry((home / "applications" / "medviewer.desktop").read_text())
    assert split_exec(entry["Exec"])[:-1] == desktop_entry.launcher_command()
    assert os.access(split_exec(entry["Exec"])[0], os.X_OK)
    assert main(["desktop", "uninstall", "--data-home", str(home)]) == 0
    assert f"removed {1 + len(ICON_SIZES)} files" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-utils is not installed")
@pytest.mark.parametrize(
    "program", ["/opt/my apps/medviewer", "/tmp/new\nline \"q\" $x\\y/medviewer"]
)
def test_the_installed_entry_passes_desktop_file_validate(tmp_path: Path, program: str) -> None:
    written = desktop_entry.install(tmp_path, [program])
    done = subprocess.run(["desktop-file-validate", str(written[0])],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "", done.stdout
