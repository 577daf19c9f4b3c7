"""DIMSE over TLS against an Orthanc serving TLS: the certificate checked against the node's
CA file, and each mismatch (plain to TLS, TLS to plain, an unknown CA) said clearly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from medviewer.core.errors import NetworkError
from medviewer.net import dimse
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


@pytest.fixture(scope="module")
def tls_pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    ca, crt, key = make_ca_and_server(root / "certs", "pacs")
    server = orthanc.start(root / "server", extra={
        "DicomTlsEnabled": True, "DicomTlsCertificate": str(crt),
        "DicomTlsPrivateKey": str(key), "DicomTlsTrustedCertificates": str(ca),
        "DicomTlsRemoteCertificateRequired": False})
    yield server, ca, root
    server.stop()


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
