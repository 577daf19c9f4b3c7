"""DIMSE over TLS against an Orthanc serving TLS: the certificate checked against the node's
CA file, and each mismatch (plain to TLS, TLS to plain, an unknown CA) said clearly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest

from medviewer.core.errors import NetworkError
from medviewer.net import dimse, scp
from medviewer.net.nodes import dimse_node, load_nodes, save_nodes
from tests.net import orthanc


def make_ca_and_server(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl): ca, crt, key."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt = (folder / f"{name}{s}" for s in (
        "-ca.key", "-ca.crt", ".key", ".csr", ".crt"))
    san = folder / f"{name}.ext"
    san.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=120)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
            str(ca), "-days", "2", "-subj", f"/CN={name} test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(san))
    return ca, crt, key


MOVE_PORT = orthanc.free_port()
"""medviewer's TLS storage SCP for C-MOVE, registered in the TLS Orthanc as 'medviewer'."""


@pytest.fixture(scope="module")
def tls_pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    ca, crt, key = make_ca_and_server(root / "certs", "pacs")
    server = orthanc.start(root / "server", extra={
        "DicomTlsEnabled": True, "DicomTlsCertificate": str(crt),
        "DicomTlsPrivateKey": str(key), "DicomTlsTrustedCertificates": str(ca),
        "DicomTlsRemoteCertificateRequired": False,
        "DicomModalities": {"medviewer": {"AET": "MEDVIEWER", "Host": "127.0.0.1",
                                          "Port": MOVE_PORT, "UseDicomTls": True}}})
    yield server, ca, root
    server.stop()


@pytest.fixture(scope="module")
def tls_series(tls_pacs, tmp_path_factory):
    """A small CT on the TLS Orthanc."""
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series

    series = write_series(tmp_path_factory.mktemp("tls-ct"), SeriesSpec(
        shape=(4, 10, 8), patient_name="TLS^ONE", patient_id="TLS0001", seed=111))
    tls_pacs[0].upload(list(series.paths))
    return series


def test_echo_over_tls_with_the_node_s_ca(tls_pacs, tmp_path):
    server, ca, _ = tls_pacs
    node = dimse_node(server.ae_title, "127.0.0.1", server.dicom_port, "secure", tls=True,
                      ca_file=str(ca))
    assert 0 < dimse.echo(node) < 10
    save_nodes({"secure": node}, tmp_path / "nodes.json")
    assert load_nodes(tmp_path / "nodes.json")["secure"] == node  # TLS settings kept
    assert node.describe().endswith("(TLS)")


def test_tls_mismatches_are_explained(tls_pacs, pacs):
    server, _, root = tls_pacs
    plain = dimse_node(server.ae_title, "127.0.0.1", server.dicom_port)
    with pytest.raises(NetworkError, match="does that port expect TLS"):
        dimse.echo(plain, timeout=10)
    other_ca, _, _ = make_ca_and_server(root / "other", "other")
    stranger = dimse_node(server.ae_title, "127.0.0.1", server.dicom_port, tls=True,
                          ca_file=str(other_ca))
    with pytest.raises(NetworkError, match="the TLS handshake failed"):
        dimse.echo(stranger, timeout=10)
    to_plain = dimse_node(pacs.server.ae_title, "127.0.0.1", pacs.server.dicom_port, tls=True,
                          ca_file=str(other_ca))
    with pytest.raises(NetworkError, match="the TLS handshake failed"):
        dimse.echo(to_plain, timeout=10)


def test_tls_settings_are_checked():
    with pytest.raises(NetworkError, match="certificate files are for a TLS node"):
        dimse_node("A", "h", 104, ca_file="/etc/hostname")
    with pytest.raises(NetworkError, match="does not exist"):
        dimse_node("A", "h", 104, tls=True, ca_file="/nonexistent/ca.pem")
    with pytest.raises(NetworkError, match="needs its key"):
        dimse_node("A", "h", 104, tls=True, cert_file="/etc/hostname")


def test_echo_over_tls_from_the_command_line(tls_pacs, capsys):
    from medviewer.cli import main

    server, ca, _ = tls_pacs
    spec = f"{server.ae_title}@127.0.0.1:{server.dicom_port}"
    assert main(["pacs", "echo", spec, "--tls", "--tls-ca", str(ca)]) == 0
    assert "(TLS): C-ECHO answered in" in capsys.readouterr().out
    assert main(["pacs", "echo", spec]) == 1
    assert "does that port expect TLS" in capsys.readouterr().err


def test_c_move_over_tls_into_medviewer_s_tls_storage_scp(tls_pacs, tls_series, tmp_path):
    """The TLS PACS connects back to medviewer's storage SCP over TLS (its certificate signed
    by the CA the PACS trusts) and every instance arrives byte for byte."""
    from medviewer.io.database import StudyDatabase
    from medviewer.io.series import load_series
    from medviewer.net.retrieve import retrieve
    from tests.net.test_dimse import dataset_bytes, run

    server, ca, root = tls_pacs
    certs = root / "certs"
    node = dimse_node(server.ae_title, "127.0.0.1", server.dicom_port, tls=True,
                      ca_file=str(ca), cert_file=str(certs / "pacs.crt"),
                      key_file=str(certs / "pacs.key"))
    db = StudyDatabase(tmp_path / "db.sqlite")
    _, report = run(retrieve(db, node, tls_series.series_uid, dest=tmp_path / "store",
                             move_port=MOVE_PORT))
    assert report.complete and report.received == 4
    received = {p.name: p for p in (tmp_path / "store").rglob("*.dcm")}
    for path in tls_series.paths:
        sop = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(received[f"{sop}.dcm"]) == dataset_bytes(path)
    assert load_series(report.series[0], db=db).shape == (4, 10, 8)


def test_c_move_over_tls_without_our_certificate_is_refused_before_asking(tls_pacs, tmp_path):
    server, ca, _ = tls_pacs
    node = dimse_node(server.ae_title, "127.0.0.1", server.dicom_port, tls=True,
                      ca_file=str(ca))
    steps = scp.move(node, [{"SOPInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2",
                             "StudyInstanceUID": "1"}], tmp_path, port=MOVE_PORT)
    with pytest.raises(NetworkError, match="needs medviewer's own certificate and key"):
        next(steps)


def test_the_tls_storage_scp_takes_only_tls_clients_it_trusts(tls_pacs, tmp_path):
    """`listen` over TLS with --tls-ca: a TLS client with a certificate from that CA stores;
    a plain client, and a TLS client without a certificate, are told why not; nothing of
    theirs is written."""
    from medviewer.net.send import send
    from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
    from tests.net.test_dimse import run

    _, ca, root = tls_pacs
    certs = root / "certs"
    series = write_series(tmp_path / "ct", SeriesSpec(shape=(2, 8, 6), seed=112))
    port = orthanc.free_port()
    tls = scp.ServerTls(str(certs / "pacs.crt"), str(certs / "pacs.key"), str(ca))
    with scp.StorageServer(tmp_path / "store", port, tls=tls) as server:
        plain = dimse_node("MEDVIEWER", "127.0.0.1", port)
        with pytest.raises(NetworkError, match="does that port expect TLS"):
            run(send(plain, series.paths, timeout=10))
        anonymous = dimse_node("MEDVIEWER", "127.0.0.1", port, tls=True, ca_file=str(ca))
        with pytest.raises(NetworkError, match=r"handshake failed .*want a client certificate"):
            run(send(anonymous, series.paths, timeout=10))
        assert server.receiver.files == []
        trusted = dimse_node("MEDVIEWER", "127.0.0.1", port, tls=True, ca_file=str(ca),
                             cert_file=str(certs / "pacs.crt"),
                             key_file=str(certs / "pacs.key"))
        _, report = run(send(trusted, series.paths, timeout=10))
        assert report.complete
    assert sorted(p.name for p in server.receiver.files) == sorted(
        f"{pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID}.dcm"
        for p in series.paths)


def test_listen_tls_arguments_are_checked(capsys):
    from medviewer.cli import main

    assert main(["pacs", "listen", "--port", "1", "--tls-cert", "/etc/hostname"]) == 1
    assert "needs --tls-cert and --tls-key" in capsys.readouterr().err
    assert main(["pacs", "listen", "--port", str(orthanc.free_port()), "--tls-cert",
                 "/nonexistent.crt", "--tls-key", "/nonexistent.key"]) == 1
    assert "TLS file /nonexistent.crt does not exist" in capsys.readouterr().err
