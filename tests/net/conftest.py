"""A session-wide Orthanc holding a few small series of known content."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydicom.uid import RLELossless

from medviewer.synthetic.dicom_writer import SeriesSpec, WrittenSeries, write_series
from tests.net import orthanc


@dataclass
class PacsContent:
    """The series uploaded to the test Orthanc (paths and truth)."""

    server: orthanc.Orthanc
    move_port: int
    ct: WrittenSeries
    multiframe: WrittenSeries
    compressed: WrittenSeries


@pytest.fixture(scope="session")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> PacsContent:
    root = tmp_path_factory.mktemp("orthanc")
    try:
        move_port = orthanc.free_port()
        server = orthanc.start(root / "server",
                               {"medviewer": ("MEDVIEWER", "127.0.0.1", move_port)})
    except RuntimeError as exc:
        pytest.fail(str(exc))
    data = root / "uploaded"
    ct = write_series(data / "ct", SeriesSpec(shape=(12, 16, 12), patient_name="PACS^ONE",
                                              patient_id="PACS0001", seed=101))
    multiframe = write_series(data / "mf", SeriesSpec(
        shape=(6, 10, 8), multiframe=True, patient_name="PACS^TWO", patient_id="PACS0002",
        seed=102, modality="MR", rescale_intercept=0.0))
    compressed = write_series(data / "rle", SeriesSpec(
        shape=(5, 16, 12), transfer_syntax=RLELossless, patient_name="PACS^THREE",
        patient_id="PACS0003", seed=103))
    for series in (ct, multiframe, compressed):
        server.upload(list(series.paths))
    yield PacsContent(server, move_port, ct, multiframe, compressed)
    server.stop()


@pytest.fixture
def node(pacs: PacsContent):
    from medviewer.net.nodes import dimse_node

    return dimse_node(pacs.server.ae_title, "127.0.0.1", pacs.server.dicom_port, "test-pacs")


