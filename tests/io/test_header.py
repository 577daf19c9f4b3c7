"""The fast header reader is exact: same record as pydicom wherever it does not decline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medviewer.io import header
from medviewer.io.fastheader import parse_fast
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.corpus import corpus_files, corpus_id

CORPUS = corpus_files()


def _compare(path: Path) -> str:
    fast = parse_fast(str(path), None, os.path.getsize(path))
    try:
        ref = header.parse_with_pydicom(str(path))
    except header.SkipFile:
        assert fast is None or not fast.get("pixel_keyword"), "fast path read a file pydicom cannot"
        return "skip"
    if fast is None:
        return "declined"
    ref["needs_pydicom"] = False  # the fast path declines every file that needs pydicom
    assert fast == ref
    return "fast"


@pytest.mark.parametrize("path", CORPUS, ids=[corpus_id(p) for p in CORPUS])
def test_fast_header_equals_pydicom_on_corpus(path: Path) -> None:
    _compare(path)


def test_fast_path_covers_most_of_the_corpus() -> None:
    outcomes = [_compare(p) for p in CORPUS]
    assert outcomes.count("fast") >= 120, "the fast path should take the plain files"


@pytest.mark.parametrize(
    "syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"]
)
def test_fast_header_on_generated_series(tmp_path: Path, syntax: str) -> None:
    spec = SeriesSpec(transfer_syntax=syntax, orientation=(0.6, 0.8, 0, 0, 0, -1))
    written = write_series(tmp_path, spec)
    for path in written.paths:
        assert _compare(path) == "fast"
    record = header.read_header(written.paths[0])
    assert record.orientation == pytest.approx((0.6, 0.8, 0, 0, 0, -1))
    assert record.pixel_spacing == pytest.approx(spec.pixel_spacing)
    assert record.rescale_intercept == -1024.0


def test_pixel_offset_points_at_the_pixel_bytes(series_dir) -> None:
    _folder, written = series_dir
    record = header.read_header(written.paths[0])
    raw = Path(record.path).read_bytes()
    assert record.pixel_length == record.rows * record.columns * 2
    assert len(raw) == record.pixel_offset + record.pixel_length
    assert raw[record.pixel_offset - 12 : record.pixel_offset - 8] == b"\xe0\x7f\x10\x00"


def test_truncated_pixel_data_is_reported(series_dir, tmp_path: Path) -> None:
    _, written = series_dir
    data = written.paths[0].read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:-100])
    with pytest.raises(header.SkipFile, match="truncated: pixel data has"):
        header.read_header(cut)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a DICOM file"),
        (b"hello, this is a text file\n" * 20, "not a DICOM file"),
        (bytes(range(256)) * 40, "not a DICOM file"),
    ],
)
def test_junk_is_reported(tmp_path: Path, content: bytes, reason: str) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(content)
    with pytest.raises(header.SkipFile, match=reason):
        header.read_header(junk)


def test_transfer_syntaxes_are_pydicoms_and_plain_strings() -> None:
    from pydicom import uid

    from medviewer.io import header_fields

    native, deflated = header_fields.NATIVE_SYNTAXES, header_fields.DEFLATED_LE
    assert native == set(uid.UncompressedTransferSyntaxes)
    assert deflated == uid.DeflatedExplicitVRLittleEndian
    assert type(deflated) is str and all(type(s) is str for s in native)  # as records hold
    with pytest.raises(AttributeError):
        header_fields.NOT_A_CONSTANT  # noqa: B018


def test_importing_the_loader_and_the_index_leaves_pydicom_unimported() -> None:
    """pydicom takes a quarter of a second to import: opening the window does not pay it
    (the transfer syntax constants are pydicom's, looked up on first use)."""
    import subprocess
    import sys

    code = (
        "import sys, medviewer.io.series, medviewer.io.database, medviewer.io.thumbnails; "
        "print([m for m in sys.modules if m.split('.')[0] == 'pydicom'])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
