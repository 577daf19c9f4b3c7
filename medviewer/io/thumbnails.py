"""Series thumbnails: one decoded frame, windowed and shrunk, and a small disk cache.

:func:`make_thumbnail` decodes only the middle frame of a series' largest stack (through
the same decode machinery the loader uses), windows it for display and shrinks it with
area averaging so its longer side is ``size`` pixels, keeping the physical aspect ratio.
:class:`ThumbnailCache` keeps the results as ``.npy`` files keyed by SeriesInstanceUID and
instance count, so a series that grows during an import gets a fresh thumbnail.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from medviewer.core.errors import LoadError
from medviewer.core.windowing import apply_window, auto_window, window_from_dicom
from medviewer.io.header import InstanceRecord
from medviewer.io.series import Stack, StackLoader, assemble_stacks

DEFAULT_SIZE = 96


def make_thumbnail(
    records: Sequence[InstanceRecord],
    size: int = DEFAULT_SIZE,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Make a display thumbnail of a series from its middle frame.

    Parameters
    ----------
    records : sequence of InstanceRecord
        The instances of one series (as the study database returns them).
    size : int
        Length in pixels of the thumbnail's longer side.
    cancel : callable, optional
        Polled by the decoder; True raises :class:`~medviewer.core.errors.CancelledError`.

    Returns
    -------
    numpy.ndarray
        uint8, ``(h, w)`` for greyscale or ``(h, w, 3)`` for colour, with
        ``max(h, w) == size`` and ``h / w`` the physical height / width ratio.

    Raises
    ------
    LoadError
        When there is no image in `records` or the frame cannot be decoded.
    ValueError
        When `size` is smaller than 1.
    """
    if size < 1:
        raise ValueError(f"thumbnail size must be >= 1, got {size}")
    stacks = assemble_stacks(records)
    if not stacks:
        raise LoadError("no image to make a thumbnail of")
    stack = stacks[0]
    frame = decode_middle_frame(stack, cancel)
    display = to_display(frame, stack.first)
    return shrink(display, _thumbnail_shape(frame.shape[:2], _spacing(stack), size))


def decode_middle_frame(stack: Stack, cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """Decode only the middle frame of `stack` (rescaled), ``(rows, cols[, 3])``."""
    middle = stack.frames[len(stack.frames) // 2]
    loader = StackLoader(replace(stack, frames=(middle,)))
    for _ in loader.slices(cancel):
        pass
    frame: np.ndarray = loader.array[0]
    return frame


def to_display(frame: np.ndarray, record: InstanceRecord) -> np.ndarray:
    """Window a decoded frame to uint8: the file's window, else an automatic one.

    Greyscale MONOCHROME1 is inverted; colour data already in uint8 is returned unchanged.
    """
    if frame.ndim == 3:
        return frame if frame.dtype == np.uint8 else apply_window(frame, *_auto(frame))
    presets = window_from_dicom(record.window_center or None, record.window_width or None)
    center, width = (presets[0].center, presets[0].width) if presets else _auto(frame)
    return apply_window(frame, center, width, invert=record.photometric == "MONOCHROME1")


def _auto(frame: np.ndarray) -> tuple[float, float]:
    try:
        return auto_window(frame)
    except ValueError:  # no finite value at all: any window shows it as black
        return 0.0, 1.0


def _spacing(stack: Stack) -> tuple[float, float]:
    """(row spacing, column spacing) in mm, from the stack's affine."""
    col_step, row_step = stack.affine[:3, 0], stack.affine[:3, 1]
    return float(np.linalg.norm(row_step)), float(np.linalg.norm(col_step))


def _thumbnail_shape(
    shape: tuple[int, ...], spacing: tuple[float, float], size: int
) -> tuple[int, int]:
    """Output (h, w) whose longer side is `size` and whose ratio is the physical one."""
    height, width = shape[0] * spacing[0], shape[1] * spacing[1]
    longer = max(height, width)
    return (
        max(1, round(size * height / longer)),
        max(1, round(size * width / longer)),
    )


def shrink(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a uint8 image to ``shape`` (h, w): area average down, nearest neighbour up.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 ``(rows, cols)`` or ``(rows, cols, channels)``.
    shape : tuple of int
        Output height and width.

    Returns
    -------
    numpy.ndarray
        uint8 ``(h, w)`` or ``(h, w, channels)``, C-contiguous.
    """
    result = image.astype(np.float32)
    for axis, n_out in enumerate(shape):
        result = _resample_axis(result, n_out, axis)
    return np.ascontiguousarray(np.clip(np.rint(result), 0, 255).astype(np.uint8))


def _resample_axis(array: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = array.shape[axis]
    if n_out == n_in:
        return array
    if n_out > n_in:
        index = ((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp)
        nearest: np.ndarray = np.take(array, index, axis=axis)
        return nearest
    edges = (np.arange(n_out) * n_in) // n_out
    sums = np.add.reduceat(array, edges, axis=axis)
    counts = np.diff(np.append(edges, n_in)).astype(np.float32)
    counts_shape = [1] * array.ndim
    counts_shape[axis] = n_out
    return sums / counts.reshape(counts_shape)


# -- cache --------------------------------------------------------------------------------


def default_folder() -> Path:
    """The user's thumbnail cache: ``<user cache dir>/medviewer/thumbnails``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("medviewer", appauthor=False)) / "thumbnails"


class ThumbnailCache:
    """Thumbnails on disk as ``.npy`` files, keyed by SeriesInstanceUID and instance count.

    Parameters
    ----------
    folder : path-like, optional
        Where the files go (created on the first :meth:`put`); default :func:`default_folder`.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()

    def path_for(self, series_uid: str, n_instances: int) -> Path:
        """The file of one (series, instance count) pair."""
        return self.folder / f"{_uid_hash(series_uid)}_{int(n_instances)}.npy"

    def get(self, series_uid: str, n_instances: int) -> np.ndarray | None:
        """The cached thumbnail, or None when missing or unreadable."""
        try:
            array = np.load(self.path_for(series_uid, n_instances), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return array if _is_thumbnail(array) else None

    def put(self, series_uid: str, n_instances: int, array: np.ndarray) -> None:
        """Store a thumbnail atomically and drop the ones made for other instance counts.

        Raises
        ------
        ValueError
            When `array` is not a uint8 ``(h, w)`` or ``(h, w, 3)`` image.
        """
        if not _is_thumbnail(array):
            raise ValueError(f"not a thumbnail: {array.dtype} {array.shape}")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path_for(series_uid, n_instances)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".thumb-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._drop_others(series_uid, target)

    def _drop_others(self, series_uid: str, keep: Path) -> None:
        for path in self.folder.glob(f"{_uid_hash(series_uid)}_*.npy"):
            if path != keep:
                with contextlib.suppress(OSError):
                    path.unlink()


def _uid_hash(series_uid: str) -> str:
    return hashlib.sha256(series_uid.encode("utf-8")).hexdigest()[:32]


def _is_thumbnail(array: np.ndarray) -> bool:
    return (
        isinstance(array, np.ndarray)
        and array.dtype == np.uint8
        and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3))
        and min(array.shape[:2]) > 0
    )
