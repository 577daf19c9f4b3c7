"""A series shown in viewports: its volume (possibly still filling in) and what is loaded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from medviewer.core.volume import Volume


class OpenSeries(QObject):
    """A volume and the mask of its decoded slices, shared by the viewports that show it.

    The worker that loads it writes decoded slices into ``volume.array``; the GUI thread
    calls :meth:`mark_loaded` when it hears of them, which emits :attr:`slicesLoaded`.

    Parameters
    ----------
    key : hashable
        What identifies the source (database series id or path), used by the cache.
    volume : Volume
        The volume; its array may still be filling in.
    loaded : numpy.ndarray of bool, optional
        Which slices (first array axis) are decoded; default all.
    """

    slicesLoaded = Signal(object)  # array of slice indices just decoded
    loadFinished = Signal()
    loadFailed = Signal(str)

    def __init__(self, key: Any, volume: Volume, loaded: np.ndarray | None = None) -> None:
        super().__init__()
        self.key = key
        self.volume = volume
        count = volume.array.shape[0]
        self.loaded = np.ones(count, bool) if loaded is None else np.asarray(loaded, bool)
        self.error = ""

    @property
    def complete(self) -> bool:
        """True once every slice is decoded."""
        return bool(self.loaded.all())

    @property
    def is_2d(self) -> bool:
        """A single image (radiograph, secondary capture): shown without MPR."""
        return self.volume.array.shape[0] == 1

    @property
    def frame_of_reference(self) -> str:
        """FrameOfReferenceUID when the series is positioned, else a key of its own."""
        meta = self.volume.metadata
        if meta.positioned and meta.frame_of_reference_uid:
            return meta.frame_of_reference_uid
        return f"series:{meta.series_uid or id(self)}"

    def mark_loaded(self, indices: Iterable[int]) -> None:
        """Record decoded slices (GUI thread) and tell the views."""
        index = np.fromiter(indices, dtype=np.int64)
        if index.size:
            self.loaded[index] = True
            self.slicesLoaded.emit(index)
        if self.complete:
            self.loadFinished.emit()

    def fail(self, message: str) -> None:
        """Record a failed load (GUI thread)."""
        self.error = message
        self.loadFailed.emit(message)
