"""Render what the viewer shows for a source into a PNG, offscreen, with the viewer's widgets."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from medviewer.core.volume import Volume
from medviewer.ui.open_series import OpenSeries
from medviewer.ui.viewer_grid import ViewerGrid


def render_grid(
    volume: Volume,
    *,
    layout: str = "1x1",
    index: int | None = None,
    window: tuple[float, float] | None = None,
    size: tuple[int, int] = (768, 768),
    crosshair: bool = False,
) -> ViewerGrid:
    """A laid-out, painted :class:`ViewerGrid` showing `volume` (caller keeps it alive).

    Parameters
    ----------
    volume : Volume
        What to show (slot A).
    layout : str
        ``"1x1"``, ``"1x2"``, ``"1x3"`` or ``"2x2"``.
    index : int, optional
        Axial slice to show (default: the middle one); the other planes go through the
        same point.
    window : (center, width), optional
        Window level and width for every view (default: the files' window).
    size : (width, height)
        Pixel size of the image.
    """
    from medviewer.ui.app import application

    application()
    grid = ViewerGrid()
    grid.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    grid.resize(*size)
    grid.set_layout(layout)
    grid.set_crosshair(crosshair)
    grid.show()
    QApplication.processEvents()
    grid.show_series(
        OpenSeries(Path(volume.metadata.series_uid or "volume"), volume), grid.views[0]
    )
    axial = grid.views[0]
    if index is not None:
        axial.set_index(index)
    if axial.plane_slice is not None and len(grid.views) > 1:
        centre = axial.view_to_patient(*_centre(axial))
        grid.link_cursor(axial, centre)
    for view in grid.views:
        if window is not None:
            view.set_window(*window)
        view.fit()
    QApplication.processEvents()
    return grid


def _centre(view) -> tuple[float, float]:
    rows, cols = view.plane_slice.image.shape[:2]
    sy, sx = view.plane_slice.pixel_spacing
    return (cols - 1) / 2 * sx, (rows - 1) / 2 * sy


def save_screenshot(grid: ViewerGrid, out: str | os.PathLike[str]) -> Path:
    """Write the grid's pixels to a PNG atomically (no partial file on failure)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    image = grid.grab().toImage()
    if image.isNull() or not image.save(str(tmp), "PNG"):
        tmp.unlink(missing_ok=True)
        raise OSError(f"could not write {out}")
    os.replace(tmp, out)
    return out
