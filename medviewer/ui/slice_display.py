"""How a resliced plane becomes the uint8 frame a viewport draws, and a view's first state.

Frames are windowed into buffers that are reused from slice to slice; pyqtgraph's ImageItem
then takes the uint8 frame without levels (drawn as Grayscale8/RGB888, no per-frame colour
table) and converts it to a QImage only when it paints.
"""

from __future__ import annotations

import numpy as np

from medviewer.core.viewstate import ViewState, initial_state, voi_luts_of
from medviewer.core.volume import Volume
from medviewer.core.windowing import VoiLut, apply_window
from medviewer.ui.open_series import OpenSeries


def initial_state_of(series: OpenSeries, plane: str) -> ViewState:
    """The first state of a view: middle slice; the window from the files or loaded slices."""
    volume = series.volume
    sample = None if series.complete else volume.array[series.loaded]
    return initial_state(volume, plane, sample)  # type: ignore[arg-type]


def shown_lut(volume: Volume | None, state: ViewState | None) -> VoiLut | None:
    """The VOI LUT `state` shows the image through, or None (linear window)."""
    if state is None or state.voi_lut is None or volume is None:
        return None
    luts = voi_luts_of(volume.metadata)
    return luts[state.voi_lut] if state.voi_lut < len(luts) else None


class FrameWindow:
    """Windows plane images into a reused uint8 frame buffer."""

    def __init__(self) -> None:
        self._display: np.ndarray | None = None  # reused uint8 frame buffer
        self._gathered = np.empty(0)  # reused contiguous copy of a strided slice

    def frame(self, image: np.ndarray, state: ViewState, lut: VoiLut | None) -> np.ndarray:
        """The uint8 frame of `image` (grey: windowed or through `lut`; colour: as is).

        Parameters
        ----------
        image : numpy.ndarray
            ``(rows, cols)`` values or ``(rows, cols, 3)`` colour.
        state : ViewState
            Window, inversion.
        lut : VoiLut or None
            The VOI LUT shown instead of the linear window.

        Returns
        -------
        numpy.ndarray
            uint8, the reused buffer for grey images (valid until the next call).
        """
        if image.ndim == 3:
            rgb = image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
            return 255 - rgb if state.invert else rgb
        if self._display is None or self._display.shape != image.shape:
            self._display = np.empty(image.shape, np.uint8)
            self._gathered = np.empty(image.shape, image.dtype)
        # Always window a private copy: sagittal/coronal views stride through memory (the copy
        # makes one pass), and slices still loading are written by a worker meanwhile (the
        # window's lookup table is sized from the values it sees, so they must not change).
        if self._gathered.dtype != image.dtype or self._gathered.shape != image.shape:
            self._gathered = np.empty(image.shape, image.dtype)
        np.copyto(self._gathered, image)
        if lut is not None:
            self._display[...] = lut.apply(self._gathered, state.invert)
            return self._display
        return apply_window(
            self._gathered, state.center, state.width, state.invert, out=self._display
        )
