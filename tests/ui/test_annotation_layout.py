"""Corner texts, edge letters and the scale bar never overlap, at any viewport size from
250 px wide up: the least important lines go first and long ones are elided; in the 1x3
layout of the main window at its default size too."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtGui import QFont, QFontMetrics

from medviewer.ui.slice_annotations import layout_annotations

CORNERS = {
    "top_left": ["DEMO PATIENT1 WITH A RATHER LONG FAMILY NAME", "DEMO0001-IDENTIFIER"],
    "top_right": ["2026-12-04", "Synthetic chest CT with contrast, lung protocol",
                  "#2 Chest 1.25 mm lung kernel", "CT axial"],
    "bottom_left": ["Loading 120/300", "Im 150/300", "Pos -123.8 mm"],
    "bottom_right": ["W 1500 L -600 inv", "Zoom 1.37x"],
}
LETTERS = {"top": "A", "bottom": "P", "left": "R", "right": "L"}


def _disjoint(placed) -> list[tuple[str, str]]:
    return [(a.place + ":" + a.kind, b.place + ":" + b.kind)
            for a, b in itertools.combinations(placed, 2) if a.rect.intersects(b.rect)]


@pytest.mark.parametrize("width", [200, 250, 300, 380, 460, 620, 900, 1400])
@pytest.mark.parametrize("height", [200, 320, 520, 900])
def test_nothing_overlaps_and_what_matters_stays(qapp, width, height):
    text, letter = QFont(), QFont()
    text.setPointSize(9)
    letter.setPointSize(11)
    letter.setBold(True)
    scale = (min(100.0, width / 4), "5 cm")
    placed = layout_annotations(width, height, CORNERS, LETTERS, scale,
                                QFontMetrics(text), QFontMetrics(letter))
    assert not _disjoint(placed)
    for item in placed:  # inside the viewport
        assert item.rect.left() >= 0 and item.rect.top() >= 0
        assert item.rect.right() < width and item.rect.bottom() < height
    kinds = {(p.kind, p.place) for p in placed}
    assert {("letter", k) for k in LETTERS} <= kinds and ("scale", "bottom") in kinds
    shown = {p.place: p.text for p in placed if p.kind == "corner"}
    if height >= 320 and width >= 250:  # what matters most is there (elided when narrow)
        assert shown["top_left"].startswith("DEMO")
        assert "Im 150/300" in shown["bottom_left"] and "W 1500" in shown["bottom_right"]
        assert shown["top_right"].splitlines()[-1].startswith("CT")
    if "Zoom 1.37x" in shown.get("bottom_right", ""):  # zoom is the first to go
        assert all(line in "\n".join(shown.values()) for line in ("Im 150/300", "W 1500 L"))
    if width >= 1400 and height >= 900:  # room for everything
        assert all(line in shown[place] for place, lines in CORNERS.items() for line in lines)


def test_the_1x3_layout_at_the_default_window_size(qtbot, ct_window):
    """The default window (1400 x 900 with the browser and AI docks) gives each view about
    200 px."""
    window = ct_window
    window.set_layout("1x3")
    assert len(window.grid.views) == 3
    qtbot.waitUntil(lambda: all(v.plane_slice is not None and v.annotations.width() > 150
                                for v in window.grid.views), timeout=30_000)
    for view in window.grid.views:
        view.annotations.describe(view)
        placed = view.annotations.layout()
        assert len([p for p in placed if p.kind == "letter"]) == 4, view.state.plane
        assert not _disjoint(placed), (view.state.plane, view.width(), _disjoint(placed))
