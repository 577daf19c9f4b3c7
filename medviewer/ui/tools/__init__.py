"""The left-button tools of a viewport: one small handler object per tool name.

A viewport routes clicks, drags and hovers to ``tools[current tool name]`` (see
:mod:`medviewer.ui.tools.base`); the right and middle buttons and the wheel go to
:mod:`~medviewer.ui.tools.window_level` and :mod:`~medviewer.ui.tools.pan_zoom`, keys to the
table of :mod:`~medviewer.ui.tools.keys`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from medviewer.ai.interactive import Prompt
from medviewer.ui.overlay_items import BrushCursor
from medviewer.ui.tools.base import Tool, ToPatient, route_drag
from medviewer.ui.tools.brush import BRUSH_TOOLS, BrushPainter, BrushTool
from medviewer.ui.tools.crosshair import NavigateTool
from medviewer.ui.tools.measure import (
    DRAG_KINDS,
    AddMeasurement,
    AngleTool,
    DragMeasureTool,
    MeasurePreview,
    ProbeTool,
)
from medviewer.ui.tools.smart import SmartTool

TOOLS = ("navigate", "distance", "angle", "ellipse", "rectangle", "probe", "brush", "eraser",
         "smart")
__all__ = ["BRUSH_TOOLS", "TOOLS", "Tool", "make_tools", "route_drag"]


def make_tools(
    viewbox: pg.ViewBox,
    to_patient: ToPatient,
    point_at: Callable[[np.ndarray], None],
    add: AddMeasurement,
    select: Callable[[str], None],
    painter: BrushPainter,
    cursor: BrushCursor,
    prompt: Callable[[Prompt], None] = lambda _prompt: None,
    modifiers: Callable[[], Qt.KeyboardModifier] | None = None,
    rotate: Callable[[float], None] | None = None,
    centre: Callable[[], tuple[float, float] | None] | None = None,
) -> dict[str, Tool]:
    """One handler per name of ``TOOLS`` for a viewport.

    Parameters
    ----------
    viewbox : pyqtgraph.ViewBox
        Where the measuring tools draw their preview.
    to_patient : callable
        View ``(x, y)`` -> LPS point.
    point_at : callable
        Puts the crosshair on an LPS point (navigate).
    add : callable
        ``add(kind, points)`` stores a measurement.
    select : callable
        Selects a measurement by id.
    painter, cursor : BrushPainter, BrushCursor
        The view's painter and brush outline (brush and eraser).
    prompt : callable
        Receives the Smart tool's prompts (click to segment).
    modifiers : callable, optional
        The keyboard modifiers of the mouse event being handled.
    rotate, centre : callable, optional
        Alt+drag with navigate: turn the MPR frame about the view's normal by the degrees
        swept about `centre()` (the crosshair's crossing in view coordinates).
    """
    preview = MeasurePreview(viewbox)
    drags = {kind: DragMeasureTool(kind, preview, to_patient, add, select) for kind in DRAG_KINDS}
    tools: dict[str, Tool] = {
        "navigate": NavigateTool(to_patient, point_at, rotate, centre, modifiers),
        "angle": AngleTool(to_patient, add),
        "probe": ProbeTool(to_patient, add),
        "brush": BrushTool(painter, cursor, to_patient, erase=False),
        "eraser": BrushTool(painter, cursor, to_patient, erase=True),
        "smart": SmartTool(to_patient, prompt, modifiers),
        **drags,
    }
    return {name: tools[name] for name in TOOLS}
