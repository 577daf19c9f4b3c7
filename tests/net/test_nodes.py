"""PACS nodes: parsing, validation with clear messages, the settings file."""

from __future__ import annotations

import stat

import pytest

from medviewer.core.errors import NetworkError
from medviewer.net.nodes import (
    Node,
    check_ae_title,
    dicomweb_node,
    dimse_node,
    load_nodes,
    parse_node,
    save_nodes,
)


def test_parse_dimse_addresses():
    node = parse_node("PACS_AE@pacs.hospital.org:11112")
    assert (node.kind, node.ae_title, node.host, node.port) == (
        "dimse", "PACS_AE", "pacs.hospital.org", 11112)
    assert node.name == node.describe() == "PACS_AE@pacs.hospital.org:11112"
    v6 = parse_node("ARCHIVE@[::1]:104")
    assert (v6.host, v6.port) == ("::1", 104)


def test_parse_dicomweb_urls_and_configured_names():
    web = parse_node("https://pacs.example.org/dicom-web/")
    assert (web.kind, web.url) == ("dicomweb", "https://pacs.example.org/dicom-web")
    mine = dimse_node("ORTHANC", "10.0.0.5", 4242, "orthanc")
    assert parse_node("orthanc", {"orthanc": mine}) is mine


@pytest.mark.parametrize(("text", "message"), [
    ("pacs:104", r"is not a PACS node: give a configured node's name \(none configured\)"),
    ("A@host:0", "port 0 is outside 1-65535"),
    ("AN_AE_TITLE_LONGER_THAN_16@host:104", "is not a DICOM AE title"),
    ("BACK\\SLASH@host:104", "is not a DICOM AE title"),
    ("   @host:104", "is not a DICOM AE title"),
    ("ftp://pacs/", "is not a PACS node"),
    ("https://user:secret@pacs.example.org/wado", "must not hold a user name or password"),
])
def test_bad_nodes_say_what_is_wrong(text, message):
    with pytest.raises(NetworkError, match=message):
        parse_node(text)


def test_credentials_never_reach_a_description():
    node = Node("web", "dicomweb", url="https://pacs.example.org:8443/dicom-web")
    assert node.describe() == "https://pacs.example.org:8443/dicom-web"
    assert check_ae_title("MEDVIEWER") == "MEDVIEWER"


def test_settings_round_trip_private_to_the_user(tmp_path):
    path = tmp_path / "config" / "pacs-nodes.json"
    nodes = {"archive": dimse_node("ARCHIVE", "pacs", 104, "archive"),
             "web": dicomweb_node("https://pacs.example.org/dicom-web", "web")}
    assert save_nodes(nodes, path) == path
    assert load_nodes(path) == nodes
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_nodes(tmp_path / "absent.json") == {}


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "cannot read the PACS nodes"),
    ('{"name": "x"}', "expected a list of nodes"),
    ('[{"name": "x", "kind": "fax"}]', "node 1: kind must be 'dimse' or 'dicomweb'"),
    ('[{"name": "x", "kind": "dimse", "ae_title": "A", "host": "h", "port": 70000}]',
     "node 1: port 70000 is outside 1-65535"),
    ('[{"name": "x", "kind": "dimse", "host": "h", "port": 104}]', "node 1: 'ae_title'"),
])
def test_a_bad_settings_file_names_itself_and_the_entry(tmp_path, content, message):
    path = tmp_path / "pacs-nodes.json"
    path.write_text(content)
    with pytest.raises(NetworkError, match=message) as error:
        load_nodes(path)
    assert str(path) in str(error.value)
