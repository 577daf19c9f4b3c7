"""The viewer says what a machine lacks to show a window, before Qt aborts with its own message."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from medviewer.ui import display_check
from medviewer.ui.display_check import (
    display_problem,
    import_error_problem,
    install_hint,
    parse_ldd_missing,
    x_server_reachable,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux check")

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibfoo-unknown.so.3 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
"""


def fake_ldd(folder: Path, output: str) -> Path:
    """An ``ldd`` on PATH that prints `output` whatever it is asked."""
    folder.mkdir(exist_ok=True)
    script = folder / "ldd"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture
def x_display():
    """A local display number with a listening abstract X socket (no X server needed)."""
    number = 4000 + uuid.uuid4().int % 20000
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(f"\0/tmp/.X11-unix/X{number}")
    server.listen(1)
    yield f":{number}"
    server.close()


def test_ldd_output_gives_each_missing_library_once():
    assert parse_ldd_missing(LDD_OUTPUT) == [
        "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libfoo-unknown.so.3"
    ]


def test_install_hint_names_debian_packages_and_unknown_libraries():
    hint = install_hint(["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libfoo-unknown.so.3"])
    assert hint == ("sudo apt-get install libxcb-icccm4 libxcb-keysyms1; and the packages "
                    "that provide libfoo-unknown.so.3")
    # one package for several of its libraries
    assert install_hint(["libglib-2.0.so.0", "libgthread-2.0.so.0"]) == (
        "sudo apt-get install libglib2.0-0"
    )


def test_no_display_is_said_plainly():
    problem = display_problem({})
    assert problem is not None
    assert problem.startswith("no display: DISPLAY (X11) and WAYLAND_DISPLAY are not set")
    assert "QT_QPA_PLATFORM=offscreen" in problem


@pytest.mark.parametrize("platform", ["offscreen", "minimal", "offscreen:fontengine=freetype"])
def test_headless_platforms_need_no_display(platform):
    assert display_problem({"QT_QPA_PLATFORM": platform}) is None


def test_missing_x11_libraries_are_listed_with_packages(tmp_path, monkeypatch, x_display):
    monkeypatch.setenv("PATH", f"{fake_ldd(tmp_path / 'bin', LDD_OUTPUT)}{os.pathsep}"
                               f"{os.environ['PATH']}")
    problem = display_problem({"DISPLAY": x_display})
    assert problem is not None
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1, libfoo-unknown.so.3" in problem
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1;" in problem


def test_complete_libraries_and_a_live_display_pass(tmp_path, monkeypatch, x_display):
    monkeypatch.setenv("PATH", f"{fake_ldd(tmp_path / 'bin', '')}{os.pathsep}"
                               f"{os.environ['PATH']}")
    assert display_problem({"DISPLAY": x_display}) is None


def test_a_display_nobody_answers_on_is_reported(monkeypatch):
    monkeypatch.setattr(display_check, "missing_libraries", lambda platform: [])
    number = 4000 + uuid.uuid4().int % 20000
    problem = display_problem({"DISPLAY": f":{number}"})
    assert problem == (
        f"cannot open a window: no X server answers on DISPLAY=:{number} (is the desktop "
        "session still running? over ssh, connect with ssh -X)."
    )


def test_display_strings(x_display):
    assert x_server_reachable(x_display)
    assert x_server_reachable(f"unix{x_display}.0")
    assert not x_server_reachable(":65000")
    assert x_server_reachable("something Qt will judge")  # unreadable: Qt has the last word


def test_wayland_falls_back_to_x11_when_its_libraries_are_missing(monkeypatch, x_display):
    missing = {"wayland": ["libwayland-cursor.so.0"], "xcb": []}
    monkeypatch.setattr(display_check, "missing_libraries", missing.__getitem__)
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": x_display}) is None
    problem = display_problem({"WAYLAND_DISPLAY": "wayland-0"})
    assert problem is not None and "apt-get install libwayland-cursor0" in problem


def test_qt_import_failure_names_the_package():
    error = ImportError("libEGL.so.1: cannot open shared object file: No such file or directory")
    problem = import_error_problem(error)
    assert problem is not None and "sudo apt-get install libegl1" in problem
    assert import_error_problem(ImportError("No module named 'PySide6'")) is None


def _viewer(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run([sys.executable, "-m", "medviewer", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=300, check=False)


def test_demo_without_display_exits_with_one_line_instead_of_a_qt_abort():
    done = _viewer(["demo"], {})
    assert done.returncode == 1  # not Qt's abort (a negative signal number)
    assert done.stderr.strip().splitlines() == [
        "medviewer: no display: DISPLAY (X11) and WAYLAND_DISPLAY are not set. Run medviewer "
        "in a desktop session (or over ssh -X); for a headless machine set "
        "QT_QPA_PLATFORM=offscreen, or use 'medviewer screenshot', which needs no display."
    ]


def test_viewer_lists_the_missing_packages(tmp_path, x_display):
    path = f"{fake_ldd(tmp_path / 'bin', LDD_OUTPUT)}{os.pathsep}{os.environ['PATH']}"
    done = _viewer([], {"DISPLAY": x_display, "PATH": path})
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1;" in line
