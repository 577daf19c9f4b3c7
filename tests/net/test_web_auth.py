"""DICOMweb with authentication: HTTP basic against an Orthanc that requires it, a bearer
token through a proxy that requires one, secrets kept out of the nodes file (OS keyring, else a
0600 file), redirects never followed with credentials."""

from __future__ import annotations

import http.server
import io
import json
import stat
import threading
import urllib.request
from collections.abc import Iterator
from typing import ClassVar

import pydicom
import pytest

from medviewer.cli import main
from medviewer.core.errors import NetworkError
from medviewer.net import dimse, secrets, web
from medviewer.net.nodes import dicomweb_node, load_nodes, nodes_path, save_nodes
from medviewer.synthetic.dicom_writer import SeriesSpec, write_series
from tests.net import orthanc
from tests.net.test_dimse import dataset_bytes, run

PASSWORD = "pw-for-tests-only"
TOKEN = "token-for-tests-only"


@pytest.fixture(scope="module")
def locked_pacs(tmp_path_factory) -> Iterator[orthanc.Orthanc]:
    """An Orthanc whose HTTP API (DICOMweb included) wants user 'alice' and her password."""
    server = orthanc.start(tmp_path_factory.mktemp("locked"), extra={
        "AuthenticationEnabled": True, "RegisteredUsers": {"alice": PASSWORD}})
    yield server
    server.stop()


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards GETs to `target` when they carry the bearer token; `/moved/...` redirects."""

    target = ""
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization", ""))
        if self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.end_headers()
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Bearer")
            self.end_headers()
            return
        with urllib.request.urlopen(self.target + self.path, timeout=60) as answer:
            body, kind = answer.read(), answer.headers.get("Content-Type", "")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bearer_proxy(pacs) -> Iterator[str]:
    """A token-checking proxy in front of the session's Orthanc: its DICOMweb base URL."""
    _Proxy.target, _Proxy.seen = pacs.server.url, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(30)


def test_basic_auth_store_search_and_retrieve_with_a_kept_password(locked_pacs, tmp_path):
    """A configured node with basic auth: the password is kept in the secrets store (0600 file
    here; no keyring in the tests), not in pacs-nodes.json; STOW, QIDO and WADO all pass."""
    url = locked_pacs.url + "/dicom-web"
    anonymous = dicomweb_node(url, "anonymous")
    with pytest.raises(NetworkError, match=r"wants authentication \(HTTP 401; no credentials\)"):
        web.probe(anonymous)
    node = dicomweb_node(url, "locked", auth="basic", username="alice")
    with pytest.raises(NetworkError, match="no password for 'locked'"):
        web.probe(node)
    save_nodes({"locked": node})
    where = secrets.store_secret("locked", PASSWORD)
    assert "readable only by you" in where
    assert stat.S_IMODE(secrets.secrets_path().stat().st_mode) == 0o600
    assert PASSWORD not in nodes_path().read_text()
    assert load_nodes()["locked"] == node

    series = write_series(tmp_path / "ct", SeriesSpec(shape=(3, 8, 6), seed=121,
                                                      patient_name="AUTH^ONE"))
    assert sorted(web.store(node, list(series.paths))) == sorted(series.paths)
    rows = list(web.search(node, dimse.Query("STUDY", patient_name="AUTH^*")))
    assert [r["StudyInstanceUID"] for r in rows] == [series.study_uid]
    wanted = web.instances(node, series.study_uid)
    _, report = run(web.retrieve(node, wanted, tmp_path / "store"))
    assert len(report.files) == 3 and not report.failed
    got = {p.stem: p for p in report.files}
    for path in series.paths:
        sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert dataset_bytes(got[sop]) == dataset_bytes(path)

    secrets.store_secret("locked", "not-the-password")
    with pytest.raises(NetworkError, match="the basic credentials were refused"):
        web.probe(node)
    secrets.store_secret("locked", "")
    assert "locked" not in json.loads(secrets.secrets_path().read_text())


def test_the_command_line_takes_the_secret_from_stdin_or_the_environment(
        locked_pacs, monkeypatch, capsys):
    url = locked_pacs.url + "/dicom-web"
    save_nodes({"locked-cli": dicomweb_node(url, "locked-cli", auth="basic", username="alice")})
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["pacs", "secret", "locked-cli"]) == 0
    assert "kept: locked-cli in" in capsys.readouterr().out
    assert main(["pacs", "echo", "locked-cli"]) == 0
    assert "QIDO-RS answered" in capsys.readouterr().out
    assert main(["pacs", "secret", "locked-cli", "--forget"]) == 0
    assert main(["pacs", "echo", "locked-cli"]) == 1
    assert "no password for 'locked-cli'" in capsys.readouterr().err
    monkeypatch.setenv(secrets.ENVIRONMENT, PASSWORD)
    assert main(["pacs", "echo", url, "--auth", "basic", "--user", "alice"]) == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err


def test_a_bearer_token_is_sent_and_a_wrong_one_explained(bearer_proxy, pacs, tmp_path):
    node = dicomweb_node(bearer_proxy + "/dicom-web", "proxied", auth="bearer")
    secrets.store_secret("proxied", TOKEN)
    rows = list(web.search(node, dimse.Query("STUDY", study_uid=pacs.ct.study_uid)))
    assert [r["PatientID"] for r in rows] == ["PACS0001"]
    assert _Proxy.seen[-1] == f"Bearer {TOKEN}"
    secrets.store_secret("proxied", "wrong")
    with pytest.raises(NetworkError, match="the bearer credentials were refused"):
        web.probe(node)


def test_a_redirect_is_not_followed_with_the_credentials(bearer_proxy):
    node = dicomweb_node(bearer_proxy + "/moved", "moved", auth="bearer")
    secrets.store_secret("moved", TOKEN)
    with pytest.raises(NetworkError, match=r"redirects to http://127\.0\.0\.1:9/elsewhere; "
                                           "set the node's URL"):
        web.probe(node)
    assert len(_Proxy.seen) == 1  # one request, to the node itself


def test_credentials_never_cross_the_network_in_clear():
    with pytest.raises(NetworkError, match="in clear over http://"):
        dicomweb_node("http://pacs.example.org/dicom-web", auth="bearer")
    with pytest.raises(NetworkError, match="needs a user name"):
        dicomweb_node("https://pacs.example.org/dicom-web", auth="basic")
    with pytest.raises(NetworkError, match="auth must be basic, bearer or none"):
        dicomweb_node("https://pacs.example.org/dicom-web", auth="digest")
    with pytest.raises(NetworkError, match="is for an https:// node"):
        dicomweb_node("http://127.0.0.1/dicom-web", ca_file="/etc/hostname")
    assert dicomweb_node("https://pacs.example.org/dw", auth="basic", username="u").auth == "basic"


def test_a_secrets_file_others_can_read_is_refused(tmp_path):
    secrets.store_secret("somewhere", "x")
    path = secrets.secrets_path()
    path.chmod(0o644)
    try:
        with pytest.raises(NetworkError, match="readable by others: run `chmod 600"):
            secrets.secret_for("somewhere")
    finally:
        path.chmod(0o600)
        secrets.store_secret("somewhere", "")


def _memory_keyring():
    """A keyring backend in memory (the real ones are the desktop's)."""
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.kept: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.kept.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.kept[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            del self.kept[(service, username)]

    return Memory()


def test_with_an_os_keyring_the_secret_goes_there_and_nowhere_else(monkeypatch):
    import keyring

    backend = _memory_keyring()
    previous = keyring.get_keyring()
    monkeypatch.setenv("MEDVIEWER_SECRETS", "auto")
    keyring.set_keyring(backend)
    try:
        before = secrets.secrets_path().read_text() if secrets.secrets_path().exists() else ""
        assert secrets.store_secret("ring", "kept-in-the-ring") == "the OS keyring"
        assert backend.kept == {(secrets.SERVICE, "ring"): "kept-in-the-ring"}
        assert secrets.secret_for("ring") == "kept-in-the-ring"
        after = secrets.secrets_path().read_text() if secrets.secrets_path().exists() else ""
        assert "kept-in-the-ring" not in after and after == before
        secrets.store_secret("ring", "")
        assert backend.kept == {}
    finally:
        keyring.set_keyring(previous)


def test_requiring_a_keyring_where_there_is_none_is_an_error(monkeypatch):
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("MEDVIEWER_SECRETS", "keyring")
    try:
        with pytest.raises(NetworkError, match="no OS keyring is usable here"):
            secrets.store_secret("x", "y")
    finally:
        keyring.set_keyring(previous)
