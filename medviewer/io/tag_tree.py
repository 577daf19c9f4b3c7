"""A DICOM file's data elements as a tree of plain rows, for the tag browser.

Read header only (the pixel data is named, never read), with the same bounded
reader as everything else (:func:`~medviewer.io.header.dcmread_bounded`): a file that cannot
be read gives its reason. Values are shown as text of at most :data:`VALUE_CHARS` characters;
binary values by their length; sequences as their items, each a node of its own elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medviewer.io.header import NESTED_TOO_DEEP, dcmread_bounded, source_of, split_location

VALUE_CHARS = 200
#: Deepest sequence nesting shown (deeper items are named, not expanded).
MAX_DEPTH = 12
#: Most elements listed from one file (a hostile file with millions stops here).
MAX_ELEMENTS = 20000
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


@dataclass
class TagNode:
    """One row: a data element (``tag`` like ``"(0010,0010)"``), or a sequence item
    (``tag`` ``"Item 1"``), with its children."""

    tag: str
    keyword: str
    vr: str
    value: str
    children: list[TagNode] = field(default_factory=list)

    def matches(self, text: str) -> bool:
        """Whether `text` (lower case) is in the tag, keyword or value."""
        return text in self.tag.lower() or text in self.keyword.lower() or text in (
            self.value.lower())


@dataclass
class TagTree:
    """The elements of one file (``file_meta`` first), or why it could not be read."""

    location: str
    nodes: list[TagNode]
    error: str = ""
    truncated: bool = False


def read_tag_tree(location: str) -> TagTree:
    """The data elements of the file at `location` (a path or ``archive.zip::member``)."""
    path, member = split_location(location)
    try:
        ds = dcmread_bounded(source_of(path, member), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - the browser shows why, whatever it is
        reason = NESTED_TOO_DEEP if isinstance(exc, RecursionError) else str(exc)
        return TagTree(location, [], error=f"{location}: cannot be read: {reason}")
    budget = [MAX_ELEMENTS]
    nodes: list[TagNode] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta):
        nodes.append(TagNode("File meta", "", "", "", _elements(meta, 0, budget)))
    nodes.extend(_elements(ds, 0, budget))
    nodes.append(TagNode("(7FE0,0010)", "PixelData", "", "<not read: the image>"))
    return TagTree(location, nodes, truncated=budget[0] <= 0)


def _elements(dataset: Any, depth: int, budget: list[int]) -> list[TagNode]:
    nodes = []
    for element in dataset:
        if budget[0] <= 0:
            break
        budget[0] -= 1
        nodes.append(_node(element, depth, budget))
    return nodes


def _node(element: Any, depth: int, budget: list[int]) -> TagNode:
    tag = f"({element.tag.group:04X},{element.tag.element:04X})"
    keyword = element.keyword or ("private" if element.tag.is_private else "")
    if element.VR == "SQ":
        items = list(element.value or [])
        node = TagNode(tag, keyword, "SQ", f"{len(items)} item{'s' * (len(items) != 1)}")
        if depth >= MAX_DEPTH:
            node.value += " (nested too deeply to show)"
            return node
        for number, item in enumerate(items, 1):
            node.children.append(TagNode(f"Item {number}", "", "", "",
                                         _elements(item, depth + 1, budget)))  # fmt: skip
        return node
    return TagNode(tag, keyword, str(element.VR), value_text(element))


def value_text(element: Any) -> str:
    """An element's value as one line of at most VALUE_CHARS characters."""
    if element.tag == 0x7FE00010 or str(element.VR) in _BINARY_VRS:
        raw = element.value
        return f"<{len(raw)} bytes>" if isinstance(raw, (bytes, bytearray)) else "<binary>"
    value = element.value
    if value is None or value == "":
        return ""
    text = "\\".join(str(v) for v in value) if isinstance(value, (list, tuple)) or (
        type(value).__name__ == "MultiValue") else str(value)
    text = " ".join(text.split())
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"
