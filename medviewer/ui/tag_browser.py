"""File > DICOM tags: the data elements of the image shown in the active view, searchable,
sequences expandable. The file is read in a worker (:mod:`medviewer.io.tag_tree`)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.core.geometry import native_plane, patient_to_voxel
from medviewer.io.tag_tree import TagNode, TagTree, read_tag_tree
from medviewer.ui import workers

COLUMNS = ("Tag", "Name", "VR", "Value")


class TagBrowser(QDialog):
    """The elements of one file as a tree, with a filter that keeps matching rows (and the
    sequences and items holding them) and expands to them."""

    def __init__(self, location: str, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"DICOM tags — {title or location}")
        self.resize(820, 640)
        self.location = location
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: tag, name or value (e.g. 0010, Window, HFS)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.apply_filter)
        self.status = QLabel(f"Reading {location}…")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setColumnWidth(0, 130)
        self.tree.setColumnWidth(1, 230)
        self.tree.setColumnWidth(2, 40)
        self.tree.setUniformRowHeights(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (self.filter, self.tree, self.status, buttons):
            layout.addWidget(widget)
        self.tags: TagTree | None = None
        self.job = workers.start(
            lambda cancel: read_tag_tree(location), name="tags", returned=self._show,
            errored=lambda exc: self._show(
                TagTree(location, [], error=f"{location}: cannot be shown: {exc}")),
        )  # fmt: skip

    def _show(self, tree: TagTree) -> None:
        self.tags = tree
        self.tree.clear()
        for node in tree.nodes:
            self.tree.addTopLevelItem(_item(node))
        if tree.error:
            self.status.setText(tree.error)
        else:
            more = " (the first 20 000 elements)" if tree.truncated else ""
            self.status.setText(f"{tree.location}{more}")
        self.apply_filter(self.filter.text())

    def apply_filter(self, text: str) -> None:
        """Show the rows whose tag, name or value holds `text`, with their parents."""
        needle = text.strip().lower()
        for item in _top_items(self.tree):
            _filter(item, needle)

    def shown_rows(self) -> list[tuple[str, str, str]]:
        """(tag, name, value) of every visible row, depth first (for tests)."""
        rows: list[tuple[str, str, str]] = []

        def walk(item: QTreeWidgetItem) -> None:
            if item.isHidden():
                return
            rows.append((item.text(0), item.text(1), item.text(3)))
            for child in _children(item):
                walk(child)

        for item in _top_items(self.tree):
            walk(item)
        return rows


def shown_file(view) -> str | None:
    """The file (``path`` or ``archive.zip::member``) of the image a view shows: its slice
    on the acquisition plane, else the slice at the crosshair, else the middle one."""
    volume = view.volume
    if volume is None or view.state is None:
        return None
    meta = volume.metadata
    files = [location for location, _frame in meta.source_frames] or list(meta.source_paths)
    if not files:
        return None
    if len(files) != volume.shape[0]:
        return files[0]  # one multi-frame file, or a mosaic
    if view.state.plane == native_plane(volume.affine):
        index = view.shown_voxel_slice()
    elif view.crosshair_point is not None:
        index = round(float(patient_to_voxel(volume.affine, view.crosshair_point).reshape(-1)[2]))
    else:
        index = len(files) // 2
    return files[min(max(index, 0), len(files) - 1)]


def _top_items(tree: QTreeWidget) -> list[QTreeWidgetItem]:
    items = (tree.topLevelItem(index) for index in range(tree.topLevelItemCount()))
    return [item for item in items if item is not None]


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    children = (item.child(index) for index in range(item.childCount()))
    return [child for child in children if child is not None]


def _item(node: TagNode) -> QTreeWidgetItem:
    item = QTreeWidgetItem([node.tag, node.keyword, node.vr, node.value])
    item.setData(0, Qt.ItemDataRole.UserRole, node)
    for child in node.children:
        item.addChild(_item(child))
    return item


def _filter(item: QTreeWidgetItem, needle: str) -> bool:
    """Hide `item` unless it or a descendant matches (a matching row keeps all its children);
    expand to the matches below. Returns whether the row is shown."""
    node: TagNode = item.data(0, Qt.ItemDataRole.UserRole)
    own = not needle or node.matches(needle)
    child_match = False
    for child in _children(item):
        child_match |= _filter(child, "" if own else needle)
    visible = own or child_match
    item.setHidden(not visible)
    item.setExpanded(bool(needle) and not own and child_match)
    return visible
