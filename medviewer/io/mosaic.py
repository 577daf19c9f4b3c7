"""Siemens mosaics: one stored image holding every slice of a volume as tiles.

Siemens MR (EPI: fMRI, diffusion) stores a volume's N slices tiled in one image, row by row,
on a grid of ceil(sqrt(N)) tiles per side (a tile is the image size divided by that, rounded
down: the mosaic may be padded at its right and bottom). The CSA image header (private,
read with nibabel's reader) gives N and the slice normal, whose direction is the order of
the tiles. Image Position (Patient) is that of the whole mosaic's first pixel, so the first
slice's position moves by half the size difference between the mosaic and one tile along
each in-plane axis (as nibabel's and dcm2niix's converters do).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.core.errors import LoadError
from medviewer.io.header import NESTED_TOO_DEEP, InstanceRecord, dcmread_bounded, source_of

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

MAX_TILES = 4096

CsaHeader = dict[str, Any]
"""A CSA header as nibabel's reader gives it: ``{"tags": {name: {"items": [...], ...}}, ...}``."""


@dataclass(frozen=True)
class Mosaic:
    """Where a mosaic's slices are.

    Attributes
    ----------
    count : int
        Number of slices (Number Of Images In Mosaic).
    side : int
        Tiles per row and per column of the mosaic.
    first_position : tuple of float
        Image Position (Patient) of slice 0 (its first pixel's centre), LPS mm.
    step : numpy.ndarray
        LPS mm from one slice to the next (slice normal x spacing between slices).
    warnings : tuple of str
        What had to be assumed.
    """

    count: int
    side: int
    first_position: tuple[float, float, float]
    step: np.ndarray
    warnings: tuple[str, ...] = ()

    def tile_shape(self, record: InstanceRecord) -> tuple[int, int]:
        """(rows, columns) of one slice."""
        return record.rows // self.side, record.columns // self.side

    def tile(self, image: np.ndarray, k: int) -> np.ndarray:
        """Slice `k` of the decoded mosaic `image` (rows, cols), as a view."""
        rows, cols = image.shape[0] // self.side, image.shape[1] // self.side
        r, c = divmod(k, self.side)
        return image[r * rows : (r + 1) * rows, c * cols : (c + 1) * cols]


def is_mosaic(record: InstanceRecord) -> bool:
    """Whether a record's Image Type says MOSAIC (one frame holding tiled slices)."""
    image_type = record.image_type
    values = image_type.split("\\") if isinstance(image_type, str) else image_type
    return record.frames <= 1 and any(str(v).strip().upper() == "MOSAIC" for v in values)


def read_mosaic(record: InstanceRecord) -> Mosaic:
    """Read a mosaic's slice count and geometry from its header.

    Raises
    ------
    LoadError
        When the file says MOSAIC but its header does not describe a usable mosaic.
    """
    try:
        ds = dcmread_bounded(source_of(record.path, record.member), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - deep nesting, damage: said with the file
        reason = NESTED_TOO_DEEP if isinstance(exc, RecursionError) else f"{exc}"
        raise LoadError(f"{record.location}: cannot read the mosaic header: {reason}") from None
    try:
        return _mosaic(ds, record)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise LoadError(
            f"{record.location}: cannot read the mosaic header: {type(exc).__name__}: {exc}"
        ) from None


def _mosaic(ds: Dataset, record: InstanceRecord) -> Mosaic:
    csa = _csa_image_header(ds)
    count = _count(ds, csa, record)
    side = math.ceil(math.sqrt(count))
    if record.rows < side or record.columns < side:
        raise LoadError(
            f"{record.location}: a mosaic of {count} slices ({side} tiles per side) cannot "
            f"fit in a {record.columns}x{record.rows} image"
        )
    if record.orientation is None or record.position is None:
        raise LoadError(f"{record.location}: a mosaic without patient position or orientation")
    row_cos, col_cos = np.asarray(record.orientation[:3]), np.asarray(record.orientation[3:6])
    spacing = record.pixel_spacing or (1.0, 1.0)
    tile_rows, tile_cols = record.rows // side, record.columns // side
    first = (
        np.asarray(record.position, float)
        + col_cos * spacing[0] * (record.rows - tile_rows) / 2
        + row_cos * spacing[1] * (record.columns - tile_cols) / 2
    )
    normal, normal_warnings = _normal(csa, row_cos, col_cos)
    if record.rows % side or record.columns % side:
        normal_warnings.append(
            f"the {record.columns}x{record.rows} mosaic is not a whole number of "
            f"{side}x{side} tiles: slices placed by the tile size rounded down "
            "(other converters may differ by up to half a pixel)"
        )
    between, between_warnings = _slice_spacing(ds)
    return Mosaic(
        count,
        side,
        (float(first[0]), float(first[1]), float(first[2])),
        normal * between,
        tuple(normal_warnings + between_warnings),
    )


def _csa_image_header(ds: Dataset) -> CsaHeader | None:
    """The CSA image header (nibabel's reader), None when absent or unreadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom says its readers are experimental
        from nibabel.nicom import csareader

        try:
            csa: CsaHeader | None = csareader.get_csa_header(ds, "image")
            return csa
        except Exception:  # noqa: BLE001 - a damaged private header: fall back to the public
            return None


def _count(ds: Dataset, csa: CsaHeader | None, record: InstanceRecord) -> int:
    count = _csa_scalar(csa, "NumberOfImagesInMosaic")
    if count is None:
        count = _siemens_mr_header_count(ds)
    if count is None or not 1 <= count <= MAX_TILES:
        raise LoadError(
            f"{record.location}: Image Type says MOSAIC but the header gives no usable "
            "number of images in the mosaic"
        )
    return int(count)


def _csa_scalar(csa: CsaHeader | None, name: str) -> Any:
    if not csa:
        return None
    try:
        items = csa["tags"][name]["items"]
    except (KeyError, TypeError):
        return None
    return items[0] if items else None


def _siemens_mr_header_count(ds: Dataset) -> int | None:
    """(0019,xx0A) Number Of Images In Mosaic of the 'SIEMENS MR HEADER' private block."""
    for element in range(0x10, 0x100):
        creator = ds.get((0x0019, element))
        if creator is not None and str(creator.value).strip() == "SIEMENS MR HEADER":
            value = ds.get((0x0019, (element << 8) | 0x0A))
            try:
                return int(value.value) if value is not None else None
            except (TypeError, ValueError):
                return None
    return None


def _normal(
    csa: CsaHeader | None, row_cos: np.ndarray, col_cos: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The CSA Slice Normal Vector (the tiles' order) when it is a unit normal of the image
    plane, else the row x column cross product (with a warning: the order may be reversed)."""
    cross = np.cross(row_cos, col_cos)
    items = (csa or {}).get("tags", {}).get("SliceNormalVector", {}).get("items") if csa else None
    if items and len(items) == 3:
        normal = np.asarray(items, float)
        if np.all(np.isfinite(normal)) and abs(abs(float(normal @ cross)) - 1.0) < 1e-3:
            return normal / np.linalg.norm(normal), []
    return cross, [
        "mosaic without a usable CSA slice normal: slices assumed in row x column order"
    ]


def _slice_spacing(ds: Dataset) -> tuple[float, list[str]]:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(keyword) or 0.0)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value, []
    return 1.0, ["mosaic without slice spacing or thickness: 1 mm assumed between slices"]
