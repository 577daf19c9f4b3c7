"""NIfTI / NRRD / MHA through SimpleITK keep the DICOM geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.core.errors import LoadError
from medviewer.io.formats import read_image, write_image
from medviewer.io.series import load_series
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_dicom_to_file_and_back_keeps_geometry(tmp_path: Path, suffix: str) -> None:
    written = write_series(tmp_path / "dcm", SeriesSpec(orientation=(0.8660254, 0.5, 0, 0, 0, -1)))
    volume = load_series(tmp_path / "dcm")
    path = tmp_path / f"volume{suffix}"
    write_image(volume, path)
    back = load_series(path)
    np.testing.assert_array_equal(back.array, written.values)
    np.testing.assert_allclose(back.affine, written.affine, atol=1e-4)


def test_nifti_header_is_ras_on_disk(tmp_path: Path) -> None:
    """Known truth: NIfTI stores RAS, so its qoffset x/y are the LPS origin negated."""
    written = write_series(tmp_path / "dcm", SeriesSpec())
    path = tmp_path / "v.nii"
    write_image(load_series(tmp_path / "dcm"), path)
    header = path.read_bytes()[:348]
    qoffset = np.frombuffer(header[268:280], dtype="<f4")
    origin = written.affine[:3, 3]
    np.testing.assert_allclose(qoffset, [-origin[0], -origin[1], origin[2]], atol=1e-4)


def test_unreadable_image_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"nope")
    with pytest.raises(LoadError, match="cannot read image"):
        read_image(bad)
