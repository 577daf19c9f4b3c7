"""PACS node settings: add, edit, test and remove the nodes kept in ``pacs-nodes.json``.

A node is a DIMSE peer (AE title, host, port, optional TLS files) or a DICOMweb base URL
(optional basic or bearer authentication). A password or token typed here goes to the OS
keyring (or the 0600 fallback file, :mod:`medviewer.net.secrets`), never into the nodes file;
Test uses what the form holds, saved or not, in a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.errors import MedviewerError
from medviewer.net.nodes import (
    DEFAULT_AE_TITLE,
    Node,
    dicomweb_node,
    dimse_node,
    load_nodes,
    save_nodes,
)
from medviewer.ui import workers

KINDS = (("dimse", "DIMSE (C-FIND / C-GET / C-MOVE / C-STORE)"),
         ("dicomweb", "DICOMweb (QIDO-RS / WADO-RS / STOW-RS)"))
AUTHS = (("", "none"), ("basic", "HTTP basic (user, password)"), ("bearer", "bearer token"))


class NodeSettingsDialog(QDialog):
    """Edit the user's PACS nodes; `changed` is called (GUI thread) after each save or
    removal, e.g. to refresh a node list."""

    def __init__(self, parent: QWidget | None = None,
                 changed: Callable[[], None] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS nodes")
        self._changed = changed or (lambda: None)
        self._job: workers.Job | None = None
        self.node_list = QListWidget(self)
        self.node_list.currentTextChanged.connect(self._show)
        self.add_button = QPushButton("New", self)
        self.add_button.clicked.connect(self.new_node)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.clicked.connect(self.remove_current)
        self.fields = _NodeFields(self)
        self.our_aet = QLineEdit(DEFAULT_AE_TITLE, self)
        self.test_button = QPushButton("Test", self)
        self.test_button.clicked.connect(self.test)
        self.save_button = QPushButton("Save", self)
        self.save_button.clicked.connect(self.save)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self._lay_out()
        self._reload()
        self.resize(760, 460)

    # -- actions ------------------------------------------------------------------------

    def new_node(self) -> None:
        """Clear the form for a new node."""
        self.node_list.clearSelection()
        self.fields.show_node(None)
        self._say("A new node: fill in its name and address, Test, then Save")

    def save(self) -> bool:
        """Validate the form and keep the node (and its secret, when one was typed); False
        with the reason shown when it cannot be kept."""
        from medviewer.net.secrets import secret_for, store_secret

        try:
            node = self.fields.node()
            nodes = load_nodes()
            old = self.node_list.currentItem().text() if self.node_list.currentItem() else ""
            typed = self.fields.secret.text()
            if old and old != node.name:  # renamed: the kept secret follows the node
                nodes.pop(old, None)
                typed = typed or secret_for(old)
                store_secret(old, "")
            save_nodes({**nodes, node.name: node})
            where = store_secret(node.name, typed) if typed and node.auth else ""
            if not node.auth:
                store_secret(node.name, "")  # no authentication any more: nothing kept
            self.fields.secret.clear()
        except (MedviewerError, OSError) as exc:
            self._say(f"Not saved: {exc}")
            return False
        self._reload(node.name)
        self._say(f"Saved {node.name!r} ({node.describe()})"
                  + (f"; its {self._secret_word(node)} is kept in {where}" if where else ""))
        self._changed()
        return True

    def remove_current(self) -> None:
        """Remove the selected node and forget its secret."""
        from medviewer.net.secrets import store_secret

        item = self.node_list.currentItem()
        if item is None:
            self._say("Select a node first")
            return
        name = item.text()
        try:
            nodes = load_nodes()
            nodes.pop(name, None)
            save_nodes(nodes)
            store_secret(name, "")
        except (MedviewerError, OSError) as exc:
            self._say(f"Not removed: {exc}")
            return
        self._reload()
        self._say(f"Removed {name!r}")
        self._changed()

    def test(self) -> None:
        """C-ECHO (DIMSE) or one QIDO-RS search (DICOMweb) with what the form holds."""
        from medviewer.net.secrets import use_for_session

        try:
            node = self.fields.node()
        except MedviewerError as exc:
            self._say(str(exc))
            return
        if self.fields.secret.text():
            use_for_session(node.name, self.fields.secret.text())
        aet = self.our_aet.text().strip() or DEFAULT_AE_TITLE

        def task(cancel: Callable[[], bool]) -> float:
            if node.kind == "dicomweb":
                from medviewer.net.web import probe

                return probe(node)
            from medviewer.net.dimse import echo

            return echo(node, calling_aet=aet)

        self._say(f"Testing {node.describe()}…")
        self._job = workers.start(
            task, name="pacs node test",
            returned=lambda s: self._say(f"{node.describe()} answered in {s * 1000:.0f} ms"),
            errored=lambda exc: self._say(f"Test failed: {exc}"))

    def busy(self) -> bool:
        """Whether a test is still running."""
        return self._job is not None and not self._job.done

    # -- helpers ------------------------------------------------------------------------

    def _show(self, name: str) -> None:
        try:
            self.fields.show_node(load_nodes().get(name))
        except MedviewerError as exc:
            self._say(str(exc))

    def _reload(self, select: str = "") -> None:
        try:
            names = sorted(load_nodes())
        except MedviewerError as exc:
            names = []
            self._say(str(exc))
        self.node_list.blockSignals(True)
        self.node_list.clear()
        self.node_list.addItems(names)
        self.node_list.blockSignals(False)
        if select in names:
            self.node_list.setCurrentRow(names.index(select))
        elif names:
            self.node_list.setCurrentRow(0)
        else:
            self.fields.show_node(None)

    @staticmethod
    def _secret_word(node: Node) -> str:
        return "password" if node.auth == "basic" else "token"

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _lay_out(self) -> None:
        left = QVBoxLayout()
        left.addWidget(self.node_list, 1)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        right = QVBoxLayout()
        right.addLayout(self.fields.form)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Test as AE title", self))
        buttons.addWidget(self.our_aet)
        buttons.addStretch(1)
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.save_button)
        right.addLayout(buttons)
        right.addWidget(self.status)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(right, 2)

    def closeEvent(self, event: object) -> None:
        """Cancel a running test on close."""
        if self._job is not None:
            self._job.cancel()
        super().closeEvent(event)  # type: ignore[arg-type]


class _NodeFields:
    """The form of one node: which rows apply follows the kind and the authentication."""

    def __init__(self, parent: QWidget) -> None:
        self.name = QLineEdit(parent)
        self.kind = QComboBox(parent)
        for key, label in KINDS:
            self.kind.addItem(label, key)
        self.ae_title, self.host = QLineEdit(parent), QLineEdit(parent)
        self.port = QSpinBox(parent)
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.tls = QCheckBox("TLS", parent)
        self.ca_file, self.cert_file, self.key_file = (QLineEdit(parent) for _ in range(3))
        self.url = QLineEdit(parent)
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth = QComboBox(parent)
        for key, label in AUTHS:
            self.auth.addItem(label, key)
        self.username = QLineEdit(parent)
        self.secret = QLineEdit(parent)
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.form = QFormLayout()
        for label, widget in (("Name", self.name), ("Kind", self.kind),
                              ("Called AE title", self.ae_title), ("Host", self.host),
                              ("Port", self.port), ("", self.tls),
                              ("CA certificates (PEM)", self.ca_file),
                              ("Our certificate (PEM)", self.cert_file),
                              ("Our key (PEM)", self.key_file), ("Base URL", self.url),
                              ("Authentication", self.auth), ("User", self.username),
                              ("Password / token", self.secret)):
            self.form.addRow(label, widget)
        self.kind.currentIndexChanged.connect(self._follow)
        self.auth.currentIndexChanged.connect(self._follow)
        self.tls.toggled.connect(self._follow)
        self._follow()

    def node(self) -> Node:
        """The validated node the form describes (:class:`MedviewerError` saying why not)."""
        name = self.name.text().strip()
        if not name:
            raise MedviewerError("give the node a name")
        if self.kind.currentData() == "dicomweb":
            return dicomweb_node(self.url.text().strip(), name, auth=self.auth.currentData(),
                                 username=self.username.text().strip(),
                                 ca_file=self.ca_file.text().strip())
        tls = self.tls.isChecked()
        return dimse_node(self.ae_title.text().strip(), self.host.text().strip(),
                          self.port.value(), name, tls=tls,
                          ca_file=self.ca_file.text().strip() if tls else "",
                          cert_file=self.cert_file.text().strip() if tls else "",
                          key_file=self.key_file.text().strip() if tls else "")

    def show_node(self, node: Node | None) -> None:
        """Fill the form from `node` (empty for None); the secret field always starts empty
        (a kept secret is never shown)."""
        node = node or replace(Node(name="", kind="dimse"), port=104)
        self.name.setText(node.name)
        self.kind.setCurrentIndex([k for k, _ in KINDS].index(node.kind))
        self.ae_title.setText(node.ae_title)
        self.host.setText(node.host)
        self.port.setValue(node.port or 104)
        self.tls.setChecked(node.tls)
        self.ca_file.setText(node.ca_file)
        self.cert_file.setText(node.cert_file)
        self.key_file.setText(node.key_file)
        self.url.setText(node.url)
        self.auth.setCurrentIndex([k for k, _ in AUTHS].index(node.auth))
        self.username.setText(node.username)
        self.secret.clear()
        self.secret.setPlaceholderText("kept; type to replace" if node.auth else "")
        self._follow()

    def _follow(self) -> None:
        dimse = self.kind.currentData() == "dimse"
        auth = self.auth.currentData()
        shown = {self.ae_title: dimse, self.host: dimse, self.port: dimse, self.tls: dimse,
                 self.ca_file: (dimse and self.tls.isChecked()) or not dimse,
                 self.cert_file: dimse and self.tls.isChecked(),
                 self.key_file: dimse and self.tls.isChecked(),
                 self.url: not dimse, self.auth: not dimse,
                 self.username: not dimse and auth == "basic",
                 self.secret: not dimse and bool(auth)}
        for widget, visible in shown.items():
            self.form.setRowVisible(widget, visible)
