"""The decoder processes decode JPEG 2000 with pydicom's pylibjpeg plugin (one thread) instead
of its first choice, GDCM (every core per frame): the values must be the same on every JPEG
2000 file of the corpus (issue 18)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import LoadError
from medviewer.io.pydicom_pixels import JPEG_2000_SYNTAXES, decode_frames
from tests.corpus import corpus_files, corpus_id

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _jpeg_2000_files() -> list[Path]:
    found = []
    for path in corpus_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        except Exception:  # noqa: BLE001 - not DICOM: not ours to test here
            continue
        if syntax in JPEG_2000_SYNTAXES:
            found.append(path)
    return found


FILES = _jpeg_2000_files()


def test_the_corpus_has_jpeg_2000_files() -> None:
    assert len(FILES) >= 10  # lossless, lossy, signed, colour, multi-frame, HTJ2K


def _with_plugin(path: Path, plugin: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin=plugin)
    return ds.pixel_array


@pytest.mark.parametrize("path", FILES, ids=[corpus_id(p) for p in FILES])
def test_single_thread_plugin_decodes_what_pydicom_decodes(path: Path) -> None:
    frames = int(pydicom.dcmread(path, stop_before_pixels=True).get("NumberOfFrames", 1) or 1)
    wanted = list(range(frames))
    try:
        reference = decode_frames(str(path), "", wanted)  # pydicom's own choice of plugin
    except LoadError as exc:
        pytest.skip(f"pydicom cannot decode this file either: {exc}")
    single = decode_frames(str(path), "", wanted, one_thread=True)
    assert single.dtype == reference.dtype and single.shape == reference.shape
    np.testing.assert_array_equal(single, reference)
    # and the single-thread path did use openjpeg, which gives the same values as GDCM
    openjpeg = _with_plugin(path, "pylibjpeg").reshape(single.shape)
    np.testing.assert_array_equal(single, openjpeg)
    try:
        gdcm = _with_plugin(path, "gdcm").reshape(single.shape)
    except Exception:  # noqa: BLE001 - e.g. HTJ2K, which GDCM does not read
        return
    np.testing.assert_array_equal(openjpeg, gdcm)
