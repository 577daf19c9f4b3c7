"""PACS nodes: where a PACS listens, parsed from the command line or kept in the user's settings.

A node is a DIMSE peer (an AE title at a host and port) or a DICOMweb service (a base URL). On
the command line a node is a configured node's name, ``AET@HOST:PORT`` or an ``http(s)://``
URL. Configured nodes live in ``pacs-nodes.json`` in the user's config folder; no password or
token is ever written there or logged.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from medviewer.core.errors import NetworkError
from medviewer.core.staging import staged_file

DEFAULT_AE_TITLE = "MEDVIEWER"
"""medviewer's own AE title when settings and ``--aet`` name none."""

_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE: 16 chars, no backslash
_NODE = re.compile(r"^(?P<aet>[^@]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\s]+):(?P<port>\d+)$")


@dataclass(frozen=True)
class Node:
    """A PACS: a DIMSE peer (``ae_title``, ``host``, ``port``) or a DICOMweb ``url``.

    Attributes
    ----------
    name : str
        What the user calls it (the ``AET@HOST:PORT`` or URL text for an unnamed node).
    kind : {"dimse", "dicomweb"}
        How it is reached.
    ae_title : str
        The called AE title (DIMSE).
    host : str
        Host name or address (DIMSE).
    port : int
        TCP port (DIMSE).
    url : str
        DICOMweb base URL (QIDO-RS, WADO-RS and STOW-RS live under it).
    tls : bool
        DIMSE over TLS (DICOM PS3.15 secure transport).
    ca_file, cert_file, key_file : str
        TLS: the certificate authorities to trust (PEM; the system's when empty), and
        medviewer's own certificate and key when the PACS asks for one (DIMSE; for an
        ``https`` DICOMweb node, `ca_file` alone).
    auth : {"", "basic", "bearer"}
        DICOMweb authentication: none, HTTP basic (`username` and a password) or a bearer
        token. The password or token is kept by :mod:`medviewer.net.secrets`, never here.
    username : str
        The HTTP basic user name.
    """

    name: str
    kind: Literal["dimse", "dicomweb"]
    ae_title: str = ""
    host: str = ""
    port: int = 0
    url: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    auth: Literal["", "basic", "bearer"] = ""
    username: str = ""

    def describe(self) -> str:
        """``AET@HOST:PORT`` or the URL without any credentials: safe for logs and messages."""
        if self.kind == "dimse":
            return f"{self.ae_title}@{self.host}:{self.port}" + (" (TLS)" if self.tls else "")
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def check_ae_title(title: str, what: str = "AE title") -> str:
    """`title` when it is a valid DICOM AE title (1-16 printable characters, no backslash,
    not all spaces), else :class:`NetworkError` saying why."""
    if not _AE_TITLE.match(title) or not title.strip():
        raise NetworkError(
            f"{what} {title!r} is not a DICOM AE title (1 to 16 printable ASCII characters, "
            "no backslash, not only spaces)"
        )
    return title


def dimse_node(ae_title: str, host: str, port: int, name: str = "", *, tls: bool = False,
               ca_file: str = "", cert_file: str = "", key_file: str = "") -> Node:
    """A validated DIMSE node (with TLS when `tls`: the files must exist)."""
    check_ae_title(ae_title, "called AE title")
    if not host or any(c.isspace() for c in host):
        raise NetworkError(f"host {host!r} is not a host name or address")
    if not 1 <= int(port) <= 65535:
        raise NetworkError(f"port {port} is outside 1-65535")
    if (cert_file or key_file or ca_file) and not tls:
        raise NetworkError("certificate files are for a TLS node (set tls)")
    if bool(cert_file) != bool(key_file):
        raise NetworkError("a TLS client certificate needs its key, and a key its certificate")
    for path in (ca_file, cert_file, key_file):
        if path and not Path(path).is_file():
            raise NetworkError(f"TLS file {path} does not exist")
    node = Node(name="", kind="dimse", ae_title=ae_title, host=host.strip("[]"), port=int(port),
                tls=tls, ca_file=ca_file, cert_file=cert_file, key_file=key_file)
    return Node(**{**asdict(node), "name": name or node.describe()})


AUTH_KINDS = ("", "basic", "bearer")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def dicomweb_node(url: str, name: str = "", *, auth: str = "", username: str = "",
                  ca_file: str = "") -> Node:
    """A validated DICOMweb node (an ``http`` or ``https`` base URL, no credentials in it;
    `auth` basic with `username`, or bearer; `ca_file` for an ``https`` server's CA)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NetworkError(f"{url!r} is not an http(s):// DICOMweb base URL")
    if parts.username or parts.password:
        raise NetworkError("a DICOMweb URL must not hold a user name or password; "
                           "give credentials in the node's settings")
    if auth not in AUTH_KINDS:
        raise NetworkError(f"auth must be basic, bearer or none, not {auth!r}")
    if (auth == "basic") != bool(username):
        raise NetworkError("HTTP basic authentication needs a user name (and only it does)")
    if auth and parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise NetworkError(f"{parts.hostname}: credentials would cross the network in clear "
                           "over http://; use the server's https:// address")
    if ca_file and (parts.scheme != "https" or not Path(ca_file).is_file()):
        raise NetworkError(f"ca_file {ca_file} must exist and is for an https:// node")
    node = Node(name="", kind="dicomweb", url=url.rstrip("/"), auth=auth,  # type: ignore[arg-type]
                username=username, ca_file=ca_file)
    return Node(**{**asdict(node), "name": name or node.describe()})


def parse_node(text: str, configured: Mapping[str, Node] | None = None) -> Node:
    """A node from the command line: a configured node's name, ``AET@HOST:PORT`` or a URL."""
    configured = configured or {}
    if text in configured:
        return configured[text]
    if text.startswith(("http://", "https://")):
        return dicomweb_node(text)
    match = _NODE.match(text)
    if match:
        return dimse_node(match["aet"], match["host"], int(match["port"]))
    known = ", ".join(sorted(configured)) or "none configured"
    raise NetworkError(
        f"{text!r} is not a PACS node: give a configured node's name ({known}), "
        "AET@HOST:PORT or an http(s):// DICOMweb URL"
    )


def nodes_path() -> Path:
    """The user's node settings file (``pacs-nodes.json`` in the config folder)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("medviewer")) / "pacs-nodes.json"


def load_nodes(path: Path | None = None) -> dict[str, Node]:
    """Configured nodes by name; none when the file does not exist.

    Raises
    ------
    NetworkError
        The file is not a list of valid nodes (the message names the file and the entry).
    """
    path = path or nodes_path()
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NetworkError(f"{path}: cannot read the PACS nodes: {exc}") from None
    if not isinstance(entries, list):
        raise NetworkError(f"{path}: expected a list of nodes")
    nodes: dict[str, Node] = {}
    for index, entry in enumerate(entries):
        try:
            node = _node_from_dict(entry)
        except (NetworkError, TypeError, ValueError, KeyError) as exc:
            raise NetworkError(f"{path}: node {index + 1}: {exc}") from None
        nodes[node.name] = node
    return nodes


def save_nodes(nodes: Mapping[str, Node], path: Path | None = None) -> Path:
    """Write the configured nodes (complete or not at all); return the file."""
    path = path or nodes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps([asdict(n) for n in nodes.values()], indent=2) + "\n"
    with staged_file(path) as part:
        part.write_text(text, encoding="utf-8")
        os.chmod(part, 0o600)
    return path


def _node_from_dict(entry: object) -> Node:
    if not isinstance(entry, dict):
        raise NetworkError("not an object")
    name = str(entry["name"])
    if entry.get("kind") == "dicomweb":
        return dicomweb_node(str(entry["url"]), name, auth=str(entry.get("auth", "")),
                             username=str(entry.get("username", "")),
                             ca_file=str(entry.get("ca_file", "")))
    if entry.get("kind") == "dimse":
        return dimse_node(str(entry["ae_title"]), str(entry["host"]), int(entry["port"]), name,
                          tls=bool(entry.get("tls", False)),
                          ca_file=str(entry.get("ca_file", "")),
                          cert_file=str(entry.get("cert_file", "")),
                          key_file=str(entry.get("key_file", "")))
    raise NetworkError(f"kind must be 'dimse' or 'dicomweb', not {entry.get('kind')!r}")
