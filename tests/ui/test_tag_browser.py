"""File > DICOM tags on the demo CT: the shown slice's own file, its values, sequences as
items, the filter; a file that cannot be read says why."""

from __future__ import annotations

import pydicom
import pytest

from medviewer.io.tag_tree import VALUE_CHARS, read_tag_tree, value_text
from medviewer.ui.tag_browser import TagBrowser, shown_file
from tests.waits import WAIT_MS


def _open(qtbot, location: str) -> TagBrowser:
    browser = TagBrowser(location)
    qtbot.addWidget(browser)
    browser.show()
    qtbot.waitUntil(lambda: browser.tags is not None, timeout=WAIT_MS)
    return browser


def test_the_active_views_slice_and_its_tags(qtbot, ct_window) -> None:
    window = ct_window
    view = window.grid.active
    view.set_index(17)
    location = shown_file(view)
    ds = pydicom.dcmread(location, stop_before_pixels=True)
    # the file of the slice shown: its position is the view's slice position
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(view.plane_slice.affine[2, 3])
    window.window_actions.by_name["tags"].trigger()
    browser = window.window_actions.tag_browser
    qtbot.waitUntil(lambda: browser.tags is not None, timeout=WAIT_MS)
    rows = {tag: (name, value) for tag, name, value in browser.shown_rows()}
    assert rows["(0010,0010)"] == ("PatientName", "DEMO^PATIENT1")
    assert rows["(0020,0013)"] == ("InstanceNumber", str(ds.InstanceNumber))
    assert rows["(0028,1050)"][1] == "\\".join(str(v) for v in ds.WindowCenter)
    assert rows["(0002,0010)"][0] == "TransferSyntaxUID"  # the file meta group
    assert rows["(7FE0,0010)"] == ("PixelData", "<not read: the image>")
    browser.filter.setText("window")
    shown = browser.shown_rows()
    assert {tag for tag, _, _ in shown} >= {"(0028,1050)", "(0028,1051)", "(0028,1055)"}
    assert "(0010,0010)" not in {tag for tag, _, _ in shown}
    browser.close()


def test_sequences_show_their_items_and_the_filter_opens_them(qtbot, demo_study) -> None:
    first = sorted((demo_study.dicom / "DEMO0001" / "PT").iterdir())[0]
    browser = _open(qtbot, str(first))
    browser.filter.setText("halflife")
    shown = browser.shown_rows()
    assert [row[:2] for row in shown] == [
        ("(0054,0016)", "RadiopharmaceuticalInformationSequence"),
        ("Item 1", ""),
        ("(0018,1075)", "RadionuclideHalfLife"),
    ]
    assert shown[0][2] == "1 item" and shown[2][2] == "6586.2"
    top = browser.tree.topLevelItem(
        [browser.tree.topLevelItem(i).text(0) for i in range(browser.tree.topLevelItemCount())]
        .index("(0054,0016)"))
    assert top.isExpanded() and top.child(0).isExpanded()
    browser.filter.setText("")
    assert len(browser.shown_rows()) > 60 and not top.isExpanded()
    browser.close()


def test_a_file_that_cannot_be_read_says_why(qtbot, tmp_path) -> None:
    bad = tmp_path / "moved.dcm"  # indexed, then moved away
    tree = read_tag_tree(str(bad))
    assert tree.nodes == [] and tree.error.startswith(f"{bad}: cannot be read")
    browser = _open(qtbot, str(bad))
    assert browser.status.text() == tree.error and browser.shown_rows() == []
    browser.close()


def test_long_and_binary_values_are_shortened() -> None:
    from pydicom.dataelem import DataElement

    long = DataElement(0x00081030, "LO", "x" * 500)
    assert len(value_text(long)) == VALUE_CHARS and value_text(long).endswith("…")
    assert value_text(DataElement(0x00091001, "OB", b"\1" * 40)) == "<40 bytes>"
