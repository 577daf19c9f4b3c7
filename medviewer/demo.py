"""The bundled demo study (placeholder: one synthetic chest-like CT series).

The trained-models issue replaces this with the full phantom generator. Everything here is
synthetic: no patient data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medviewer.io.synthetic import SeriesSpec, write_series

DEMO_SHAPE = (60, 256, 256)
DEMO_SPACING = (1.2, 1.2)
DEMO_SLICE_SPACING = 2.5


def phantom_hu(shape: tuple[int, int, int] = DEMO_SHAPE, seed: int = 0) -> np.ndarray:
    """A simple chest-like phantom in HU: body, two lungs, spine, a nodule; int16."""
    rng = np.random.default_rng(seed)
    s, r, c = shape
    z, y, x = np.ogrid[0:s, 0:r, 0:c]
    yn, xn = (y - r / 2) / (r / 2), (x - c / 2) / (c / 2)
    hu = np.full(shape, -1000, dtype=np.int16)
    hu[np.broadcast_to((xn / 0.85) ** 2 + (yn / 0.6) ** 2 < 1, shape)] = 40
    for side in (-1, 1):  # patient right is image left in LPS column order
        lung = ((xn - side * 0.4) / 0.3) ** 2 + ((yn + 0.05) / 0.42) ** 2 < 1
        hu[np.broadcast_to(lung, shape)] = -850
    spine = (xn / 0.1) ** 2 + ((yn - 0.42) / 0.1) ** 2 < 1
    hu[np.broadcast_to(spine, shape)] = 700
    nodule = ((x - c * 0.68) ** 2 + (y - r * 0.45) ** 2 + ((z - s * 0.6) * 2.0) ** 2) < 8**2
    hu[nodule] = 30
    noise = rng.normal(0, 12, size=shape).astype(np.int16)
    return np.clip(hu + noise, -1024, 3071).astype(np.int16)


def write_demo(out: Path, seed: int = 0) -> Path:
    """Write the demo CT series into `out` (created) and return the folder."""
    hu = phantom_hu(seed=seed)
    spec = SeriesSpec(
        shape=DEMO_SHAPE,
        pixel_spacing=DEMO_SPACING,
        slice_spacing=DEMO_SLICE_SPACING,
        origin=(-153.6, -153.6, -75.0),
        values=hu.astype(np.int64) + 1024,
        seed=seed,
        patient_name="DEMO^PATIENT1",
        patient_id="DEMO0001",
        series_description="demo chest CT (synthetic)",
        window=(-600.0, 1500.0),
    )
    write_series(out, spec)
    _marker(out).write_text("ok\n")
    return out


def _marker(folder: Path) -> Path:
    """Written last, beside (not inside) the series folder, so imports never meet it."""
    return folder.with_name(folder.name + ".complete")


def demo_folder() -> Path:
    """The demo series in the user cache, written on first use and reused afterwards."""
    import platformdirs

    folder = Path(platformdirs.user_cache_dir("medviewer", appauthor=False)) / "demo" / "ct"
    if not _marker(folder).exists():
        write_demo(folder)
    return folder
