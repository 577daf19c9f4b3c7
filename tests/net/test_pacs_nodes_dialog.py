"""The PACS node settings: add a DIMSE node and a DICOMweb node with authentication, Test
each against the test Orthanc, Save (the secret outside the nodes file), edit, remove."""

from __future__ import annotations

from medviewer.net import secrets
from medviewer.net.nodes import load_nodes, nodes_path, save_nodes
from medviewer.ui.pacs_nodes_dialog import NodeSettingsDialog

WAIT_MS = 60_000


def _kind(dialog, key: str) -> None:
    box = dialog.fields.kind
    box.setCurrentIndex(box.findData(key))


def test_add_test_save_and_remove_a_dimse_node(qtbot, pacs):
    save_nodes({})
    told: list[int] = []
    dialog = NodeSettingsDialog(changed=lambda: told.append(1))
    qtbot.addWidget(dialog)
    dialog.new_node()
    fields = dialog.fields
    fields.name.setText("archive")
    _kind(dialog, "dimse")
    fields.ae_title.setText(pacs.server.ae_title)
    fields.host.setText("127.0.0.1")
    fields.port.setValue(pacs.server.dicom_port)
    assert not fields.url.isVisibleTo(dialog) and fields.host.isVisibleTo(dialog)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "answered in" in dialog.status.text(), timeout=WAIT_MS)
    assert load_nodes() == {}  # Test does not save
    dialog.save_button.click()
    assert dialog.status.text().startswith("Saved 'archive'")
    node = load_nodes()["archive"]
    assert (node.kind, node.ae_title, node.port) == ("dimse", "ORTHANC", pacs.server.dicom_port)
    assert told == [1] and dialog.node_list.currentItem().text() == "archive"
    fields.port.setValue(1)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Test failed: cannot reach"),
                    timeout=WAIT_MS)
    dialog.remove_button.click()
    assert load_nodes() == {} and dialog.node_list.count() == 0


def test_a_dicomweb_node_keeps_its_password_out_of_the_nodes_file(qtbot, pacs):
    save_nodes({})
    dialog = NodeSettingsDialog()
    qtbot.addWidget(dialog)
    dialog.new_node()
    fields = dialog.fields
    fields.name.setText("web")
    _kind(dialog, "dicomweb")
    fields.url.setText(pacs.server.url + "/dicom-web")
    fields.auth.setCurrentIndex(fields.auth.findData("basic"))
    assert fields.username.isVisibleTo(dialog) and not fields.host.isVisibleTo(dialog)
    fields.username.setText("alice")
    fields.secret.setText("typed-password")
    dialog.test_button.click()  # the session Orthanc wants no credentials: it answers
    qtbot.waitUntil(lambda: "answered in" in dialog.status.text(), timeout=WAIT_MS)
    dialog.save_button.click()
    assert "its password is kept in" in dialog.status.text()
    assert "typed-password" not in nodes_path().read_text()
    assert "typed-password" not in dialog.status.text()
    secrets.use_for_session("web", "")
    assert secrets.secret_for("web") == "typed-password"
    assert fields.secret.text() == ""  # never shown again
    dialog.node_list.setCurrentRow(0)
    assert fields.secret.placeholderText() == "kept; type to replace"
    assert load_nodes()["web"].username == "alice"
    fields.name.setText("web-renamed")
    dialog.save_button.click()
    assert sorted(load_nodes()) == ["web-renamed"]
    assert (secrets.secret_for("web-renamed"), secrets.secret_for("web")) == (
        "typed-password", "")
    dialog.remove_button.click()
    assert load_nodes() == {} and secrets.secret_for("web-renamed") == ""


def test_invalid_forms_are_said_not_saved(qtbot):
    save_nodes({})
    dialog = NodeSettingsDialog()
    qtbot.addWidget(dialog)
    dialog.new_node()
    dialog.save_button.click()
    assert dialog.status.text() == "Not saved: give the node a name"
    dialog.fields.name.setText("x")
    _kind(dialog, "dicomweb")
    dialog.fields.url.setText("http://pacs.example.org/dw")
    dialog.fields.auth.setCurrentIndex(dialog.fields.auth.findData("bearer"))
    dialog.save_button.click()
    assert "in clear over http://" in dialog.status.text()
    assert load_nodes() == {}
