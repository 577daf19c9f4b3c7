"""Comparing the two slots of the grid (current and prior): linked scrolling and windowing
through a rigid map from slot A's patient space to slot B's.

By default the map is the identity: the slots scroll together by table position (the same
LPS position along each view's normal), which is right for two series of one frame of
reference and a first guess for two studies. The user sets the offset once by putting the
crosshair on the same anatomy in both (``ViewerGrid.link_at_crosshairs``) or registers the
studies (:mod:`medviewer.core.registration`). Each viewport has a lock (``SliceView.linked``);
the grid-wide switch is :attr:`SlotLink.enabled`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PySide6.QtCore import QRectF

from medviewer.core.registration import RigidMap
from medviewer.ui.slice_view import SliceView


class SlotLink:
    """The link between slot A and slot B (see the module)."""

    def __init__(self) -> None:
        self.map = RigidMap()
        self.enabled = True
        self._syncing = False

    def mapped(self, point: np.ndarray, from_slot: str) -> np.ndarray:
        """`point` of `from_slot`'s patient space in the other slot's."""
        return self.map.apply(point) if from_slot == "A" else self.map.inverse().apply(point)

    @contextmanager
    def _guard(self) -> Iterator[bool]:
        if self._syncing:
            yield False
            return
        self._syncing = True
        try:
            yield True
        finally:
            self._syncing = False

    def follow(self, source: SliceView, source_slot: str, targets: list[SliceView]) -> None:
        """Move the linked `targets` (views of the other slot) to `source`'s slice, through
        the map, plane by plane; with different series, to its window too."""
        if not self.enabled or not source.linked or source.plane_slice is None:
            return
        with self._guard() as first:
            if not first:
                return
            rows, cols = source.plane_slice.image.shape[:2]
            centre = source.plane_slice.affine @ np.array([(cols - 1) / 2, (rows - 1) / 2, 0, 1])
            point = self.mapped(centre[:3], source_slot)
            for target in targets:
                self._move(source, target, point)

    def follow_range(self, source: SliceView, source_slot: str,
                     targets: list[SliceView]) -> None:
        """Zoom and pan the linked `targets` like `source`: the same millimetres across,
        centred on the mapped centre of `source`'s view."""
        if not self.enabled or not source.linked or source.plane_slice is None:
            return
        with self._guard() as first:
            if not first:
                return
            rect = source.viewbox.viewRect()
            centre = source.view_to_patient(rect.center().x(), rect.center().y())
            point = self.mapped(centre, source_slot)
            for target in targets:
                if (not target.linked or target.plane_slice is None or target.state is None
                        or source.state is None or target.state.plane != source.state.plane):
                    continue
                x, y, _ = target.patient_to_view(point)
                target.viewbox.setRange(QRectF(x - rect.width() / 2, y - rect.height() / 2,
                                               rect.width(), rect.height()), padding=0.0)

    def _move(self, source: SliceView, target: SliceView, point: np.ndarray) -> None:
        if (not target.linked or target.volume is None or target.state is None
                or source.state is None or target.state.plane != source.state.plane):
            return
        index = target.index_of(point)
        if index is not None and index != target.state.index:
            target.set_index(index)
        same_series = target.series is source.series
        source_meta, target_meta = source.volume.metadata, target.volume.metadata
        if not same_series and source_meta.modality == target_meta.modality:
            window = source.state.linear_window
            if window is not None and window != target.state.linear_window:
                target.set_window(*window)
