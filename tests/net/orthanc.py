"""A real Orthanc for the PACS tests: its own free loopback ports, storage folder and
configuration, started and stopped by the test session (no fixed port, nothing shared)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install -y orthanc orthanc-dicomweb dcmtk"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AE_TITLE = "ORTHANC"


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def executable() -> str | None:
    """The Orthanc program, when installed."""
    return shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)


@dataclass
class Orthanc:
    """A running Orthanc: its DICOM port and AE title, its REST/DICOMweb base URL."""

    process: subprocess.Popen[bytes]
    root: Path
    http_port: int
    dicom_port: int
    log: object = None
    ae_title: str = AE_TITLE

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rest(self, path: str, data: bytes | None = None, method: str | None = None) -> object:
        """A REST call; the JSON answer."""
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def push(self, series_uid: str, modality: str = "medviewer") -> None:
        """C-STORE a series to a registered modality (as a PACS's "send to" does); returns
        when Orthanc has sent it."""
        found = self.rest("/tools/lookup", series_uid.encode(), "POST")
        body = json.dumps({"Resources": [found[0]["ID"]], "Synchronous": True}).encode()  # type: ignore[index]
        request = urllib.request.Request(f"{self.url}/modalities/{modality}/store", data=body,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=120):
            pass

    def upload(self, paths: list[Path]) -> None:
        """Store files in Orthanc through its REST API (as a modality's push would)."""
        for path in paths:
            self.rest("/instances", path.read_bytes(), "POST")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        if self.log is not None:
            self.log.close()  # type: ignore[attr-defined]


def start(root: Path, modalities: dict[str, tuple[str, str, int]] | None = None,
          extra: dict[str, object] | None = None) -> Orthanc:
    """Start Orthanc with storage and configuration under `root` (`extra`: more settings);
    wait until it answers."""
    program = executable()
    if program is None:
        raise RuntimeError(f"Orthanc is not installed: run `{INSTALL}` (as root), or "
                           "`make test`, which installs it where it can")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "medviewer-test", "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"), "HttpPort": http_port, "DicomPort": dicom_port,
        "DicomAet": AE_TITLE, "DicomCheckCalledAet": True, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomModalities": {
            name: list(entry) for name, entry in (modalities or {}).items()},
        "DicomCheckModalityHost": False, "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True, "DicomAlwaysAllowMove": True,
        "UnknownSopClassAccepted": True, "StableAge": 1, "HttpTimeout": 60,
        "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        **(extra or {}),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config, indent=2))
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 (the process owns it)
    process = subprocess.Popen([program, str(root / "config.json")], stdout=log,
                               stderr=subprocess.STDOUT)
    server = Orthanc(process, root, http_port, dicom_port, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited ({process.returncode}): "
                               f"{(root / 'orthanc.log').read_text()[-2000:]}")
        try:
            server.rest("/system")
            return server
        except urllib.error.HTTPError as exc:  # answering, and wanting credentials
            if exc.code == 401:
                return server
            time.sleep(0.2)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("Orthanc did not answer within 120 s")
