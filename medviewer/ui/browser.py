"""The study browser: a filterable patient -> study -> series tree with thumbnails.

:class:`StudyBrowser` reads the :class:`~medviewer.io.database.StudyDatabase` and shows it
as a tree. :meth:`StudyBrowser.refresh` updates the tree in place (rows are matched by key,
never rebuilt), so it is cheap to call repeatedly during an import and keeps what the user
expanded and selected. Series thumbnails are made one at a time in the background
(:class:`ThumbnailQueue`) and cached on disk (:class:`~medviewer.io.thumbnails.ThumbnailCache`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QMimeData,
    QModelIndex,
    QObject,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QIcon,
    QImage,
    QPixmap,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from medviewer.io.database import StudyDatabase
from medviewer.io.thumbnails import DEFAULT_SIZE, ThumbnailCache, make_thumbnail
from medviewer.ui import workers

log = logging.getLogger(__name__)

#: Mime type of a dragged series; the data is the database series id as ASCII digits.
SERIES_MIME = "application/x-medviewer-series"
#: Item roles (column 0): the database series id and the SeriesInstanceUID of series rows.
SERIES_ID_ROLE = Qt.ItemDataRole.UserRole + 1
SERIES_UID_ROLE = Qt.ItemDataRole.UserRole + 2
#: The row's identity, ``(level, database id)``; matched on refresh.
KEY_ROLE = Qt.ItemDataRole.UserRole + 3
#: Instances of a series at the last refresh, and those its shown thumbnail was made of.
INSTANCES_ROLE = Qt.ItemDataRole.UserRole + 4
THUMBNAIL_COUNT_ROLE = Qt.ItemDataRole.UserRole + 5

COLUMNS = ("Name / description", "Modality", "Date", "Images")
ICON_SIZE = 48
FILTER_PLACEHOLDER = "Filter patients, studies, series"

Key = tuple[str, int]


# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """What one tree row should show (built from the database, then synced into items)."""

    key: Key
    texts: tuple[str, str, str, str]
    tooltip: str = ""
    series_uid: str = ""
    instances: int = 0
    children: tuple[_Node, ...] = ()


def format_person_name(name: str) -> str:
    """A DICOM person name for display: ``FAMILY^GIVEN^MIDDLE`` -> ``FAMILY, GIVEN MIDDLE``."""
    parts = [p.strip() for p in (name or "").split("=")[0].split("^")]
    family, rest = (parts[0], [p for p in parts[1:3] if p]) if parts else ("", [])
    if not family and not rest:
        return "(no name)"
    return f"{family}, {' '.join(rest)}" if family and rest else family or " ".join(rest)


def format_date(value: str | None) -> str:
    """A DICOM DA value as ``YYYY-MM-DD`` (other text unchanged)."""
    text = (value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _series_node(row: dict) -> _Node:
    number = row.get("number")
    prefix = f"#{number} " if number is not None else ""
    description = (row.get("description") or "").strip() or "(no description)"
    return _Node(
        key=("series", int(row["id"])),
        texts=(f"{prefix}{description}", row.get("modality") or "", "", str(row["images"])),
        tooltip=f"Series {row['series_uid']}\n{row['instances']} instances",
        series_uid=row["series_uid"],
        instances=int(row["instances"]),
    )


def _study_node(row: dict, series: Sequence[_Node]) -> _Node:
    description = (row.get("description") or "").strip() or "(no description)"
    images = sum(int(s.texts[3]) for s in series)
    tooltip = f"Study {row['study_uid']}\nAccession {row.get('accession') or '-'}"
    return _Node(
        key=("study", int(row["id"])),
        texts=(description, "", format_date(row.get("date")), str(images)),
        tooltip=tooltip,
        children=tuple(series),
    )


def _patient_node(row: dict, studies: Sequence[_Node]) -> _Node:
    name = format_person_name(row.get("name") or "")
    patient_id = (row.get("patient_id") or "").strip()
    label = f"{name} ({patient_id})" if patient_id else name
    images = sum(int(s.texts[3]) for s in studies)
    tooltip = f"ID {patient_id or '-'}, born {format_date(row.get('birth_date')) or '-'}"
    return _Node(
        key=("patient", int(row["id"])),
        texts=(label, "", "", str(images)),
        tooltip=tooltip,
        children=tuple(studies),
    )


def read_tree(db: StudyDatabase) -> list[_Node]:
    """The whole patient -> study -> series tree of `db`, in the database's order."""
    patients = []
    for patient in db.patients():
        studies = []
        for study in db.studies(patient["id"]):
            series = [_series_node(s) for s in db.series(study["id"])]
            studies.append(_study_node(study, series))
        patients.append(_patient_node(patient, studies))
    return patients


def _new_row(node: _Node, placeholder: QIcon) -> list[QStandardItem]:
    flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
    if node.key[0] == "series":
        flags |= Qt.ItemFlag.ItemIsDragEnabled
    row = [QStandardItem(text) for text in node.texts]
    for item in row:
        item.setFlags(flags)
    row[0].setData(node.key, KEY_ROLE)
    if node.key[0] == "series":
        row[0].setData(node.key[1], SERIES_ID_ROLE)
        row[0].setData(node.series_uid, SERIES_UID_ROLE)
        row[0].setIcon(placeholder)
    return row


def _update_row(parent: QStandardItem, position: int, node: _Node) -> None:
    for column, text in enumerate(node.texts):
        item = parent.child(position, column)
        if item.text() != text:
            item.setText(text)
    first = parent.child(position, 0)
    if first.toolTip() != node.tooltip:
        first.setToolTip(node.tooltip)
    if node.key[0] == "series" and first.data(INSTANCES_ROLE) != node.instances:
        first.setData(node.instances, INSTANCES_ROLE)


# -- icons --------------------------------------------------------------------------------


def placeholder_icon() -> QIcon:
    """A transparent icon that keeps series rows as tall as they are with a thumbnail."""
    pixmap = QPixmap(ICON_SIZE, ICON_SIZE)
    pixmap.fill(QColor(0, 0, 0, 0))
    return QIcon(pixmap)


def thumbnail_icon(array: np.ndarray) -> QIcon:
    """A QIcon of a uint8 ``(h, w)`` grey or ``(h, w, 3)`` RGB thumbnail (copied)."""
    data = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = data.shape[:2]
    if data.ndim == 2:
        image = QImage(data.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        image = QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QIcon(QPixmap.fromImage(image.copy()))


# -- the model ----------------------------------------------------------------------------


class BrowserModel(QStandardItemModel):
    """The tree's item model: series rows drag as :data:`SERIES_MIME`."""

    def mimeTypes(self) -> list[str]:
        """The one mime type this model produces."""
        return [SERIES_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData | None:
        """The series id of the first series row among `indexes`, as ASCII bytes."""
        for index in indexes:
            series_id = index.siblingAtColumn(0).data(SERIES_ID_ROLE)
            if series_id is not None:
                mime = QMimeData()
                mime.setData(SERIES_MIME, QByteArray(str(int(series_id)).encode("ascii")))
                return mime
        return None


def series_id_from_mime(mime: QMimeData) -> int | None:
    """The series id a :data:`SERIES_MIME` drag carries, or None."""
    if not mime.hasFormat(SERIES_MIME):
        return None
    text = bytes(mime.data(SERIES_MIME).data()).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


# -- thumbnails ---------------------------------------------------------------------------


def _thumbnail_task(
    db: StudyDatabase,
    cache: ThumbnailCache,
    series_id: int,
    series_uid: str,
    n_instances: int,
    size: int,
    *,
    cancel: Callable[[], bool],
) -> tuple[int, np.ndarray]:
    """Worker side: the cached thumbnail, else one made (and cached); with its instance count."""
    cached = cache.get(series_uid, n_instances)
    if cached is not None:
        return n_instances, cached
    try:
        records = db.series_records(series_id)
    finally:
        db.close()  # this worker thread's connection
    thumbnail = make_thumbnail(records, size, cancel)
    cache.put(series_uid, len(records), thumbnail)
    return len(records), thumbnail


class ThumbnailQueue:
    """Makes series thumbnails in the background, one job at a time, in request order.

    Parameters
    ----------
    db : StudyDatabase
        Where the series' records come from.
    cache : ThumbnailCache
        Where thumbnails are looked up first and stored.
    ready : callable
        GUI-thread callback ``ready(series_id, n_instances, array)``.
    failed : callable
        GUI-thread callback ``failed(series_id, message)``.
    size : int
        Longer side of the thumbnails, in pixels.
    """

    def __init__(
        self,
        db: StudyDatabase,
        cache: ThumbnailCache,
        ready: Callable[[int, int, np.ndarray], None],
        failed: Callable[[int, str], None],
        size: int = DEFAULT_SIZE,
    ) -> None:
        self._db, self._cache, self._size = db, cache, size
        self._ready, self._failed = ready, failed
        self._queue: dict[int, tuple[str, int]] = {}
        self._job: workers.Job | None = None
        self._running: int | None = None
        self._closed = False

    @property
    def busy(self) -> bool:
        """True while a thumbnail is queued or being made."""
        return self._job is not None or bool(self._queue)

    def pending(self, series_id: int) -> bool:
        """True when `series_id` is queued or being made."""
        return series_id in self._queue or series_id == self._running

    def request(self, series_id: int, series_uid: str, n_instances: int) -> None:
        """Queue a thumbnail (a newer request for the same series replaces a queued one)."""
        if self._closed:
            return
        self._queue[series_id] = (series_uid, n_instances)
        self._start_next()

    def shutdown(self) -> None:
        """Drop the queue and cancel the running job; no callback is called afterwards."""
        self._closed = True
        self._queue.clear()
        if self._job is not None:
            self._job.cancel()

    def _start_next(self) -> None:
        if self._job is not None or self._closed or not self._queue:
            return
        series_id = next(iter(self._queue))
        series_uid, n_instances = self._queue.pop(series_id)
        task = functools.partial(
            _thumbnail_task, self._db, self._cache, series_id, series_uid, n_instances, self._size
        )
        self._running = series_id
        self._job = workers.start(
            task,
            name=f"thumbnail of series {series_id}",
            returned=functools.partial(self._on_returned, series_id),
            errored=functools.partial(self._on_errored, series_id),
            finished=self._on_finished,
        )

    def _on_returned(self, series_id: int, result: tuple[int, np.ndarray]) -> None:
        if not self._closed:
            self._ready(series_id, *result)

    def _on_errored(self, series_id: int, exc: BaseException) -> None:
        log.warning("no thumbnail for series %s: %s", series_id, exc)
        if not self._closed:
            self._failed(series_id, str(exc))

    def _on_finished(self) -> None:
        self._job, self._running = None, None
        self._start_next()


# -- the widget ---------------------------------------------------------------------------


class StudyBrowser(QWidget):
    """The study browser: filter box over a patient -> study -> series tree.

    Parameters
    ----------
    db : StudyDatabase
        The index to show.
    thumbnails : ThumbnailCache, optional
        Where series thumbnails are cached; default the user's cache folder.
    parent : QWidget, optional

    Signals
    -------
    seriesActivated(int)
        A series row was double-clicked or Enter was pressed on it (database series id).
    seriesSelected(int)
        A series row became the current row.
    """

    seriesActivated = Signal(int)
    seriesSelected = Signal(int)

    def __init__(
        self,
        db: StudyDatabase,
        thumbnails: ThumbnailCache | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._db = db
        self._items: dict[Key, QStandardItem] = {}
        self._expanded: set[Key] = set()
        self._failed: dict[int, int] = {}  # series id -> instance count that failed
        self._restoring = False
        self._placeholder = placeholder_icon()
        cache = thumbnails if thumbnails is not None else ThumbnailCache()
        self._thumbnails = ThumbnailQueue(db, cache, self._show_thumbnail, self._thumbnail_failed)
        self._build_models()
        self._build_widgets()
        self.refresh()

    # -- construction ---------------------------------------------------------------------

    def _build_models(self) -> None:
        self.model = BrowserModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setAutoAcceptChildRows(True)

    def _build_widgets(self) -> None:
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText(FILTER_PLACEHOLDER)
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter_changed)
        self.view = QTreeView(self)
        self.view.setModel(self.proxy)
        self._configure_view(self.view)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view)

    def _configure_view(self, view: QTreeView) -> None:
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setDragEnabled(True)
        view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        view.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        view.setAlternatingRowColors(True)
        header = view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column, width in ((1, 52), (2, 80), (3, 50)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        view.doubleClicked.connect(self._activate)
        view.expanded.connect(lambda index: self._remember_expansion(index, True))
        view.collapsed.connect(lambda index: self._remember_expansion(index, False))
        view.selectionModel().currentChanged.connect(self._on_current_changed)
        view.installEventFilter(self)

    # -- public API -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring the tree up to date with the database, in place.

        Rows are matched by database id: changed texts are updated, new rows inserted and
        vanished ones removed, so expansion and selection survive. New patients and
        studies are expanded. Series whose thumbnail is missing or stale get one queued.
        """
        created: list[QStandardItem] = []
        self._sync(self.model.invisibleRootItem(), read_tree(self._db), created)
        self._items = {item.data(KEY_ROLE): item for item in self._walk_items()}
        self._expanded.update(item.data(KEY_ROLE) for item in created if item.hasChildren())
        self._expanded.intersection_update(self._items)
        self._apply_expansion()
        self._request_thumbnails()

    def shutdown(self) -> None:
        """Cancel thumbnail work (call before the browser goes away)."""
        self._thumbnails.shutdown()

    @property
    def busy(self) -> bool:
        """True while thumbnail work is queued or running."""
        return self._thumbnails.busy

    def series_ids_in_view(self) -> list[int]:
        """Database ids of the series rows the filter lets through, top to bottom."""
        return [
            int(index.data(SERIES_ID_ROLE))
            for index in self._walk_proxy()
            if index.data(SERIES_ID_ROLE) is not None
        ]

    def current_series_id(self) -> int | None:
        """The series id of the current row, or None when it is not a series."""
        return self._series_id(self.view.currentIndex())

    def series_item(self, series_id: int) -> QStandardItem | None:
        """The column-0 item of a series row (source model), or None."""
        return self._items.get(("series", series_id))

    def has_thumbnail(self, series_id: int) -> bool:
        """True once a series row shows its thumbnail rather than the placeholder."""
        item = self.series_item(series_id)
        return item is not None and item.data(THUMBNAIL_COUNT_ROLE) is not None

    def proxy_index(self, series_id: int) -> QModelIndex:
        """The view (proxy) index of a series row; invalid when missing or filtered out."""
        item = self.series_item(series_id)
        return self.proxy.mapFromSource(item.index()) if item is not None else QModelIndex()

    # -- syncing --------------------------------------------------------------------------

    def _sync(
        self, parent: QStandardItem, nodes: Sequence[_Node], created: list[QStandardItem]
    ) -> None:
        wanted = {node.key for node in nodes}
        for row in reversed(range(parent.rowCount())):
            if parent.child(row, 0).data(KEY_ROLE) not in wanted:
                parent.removeRow(row)
        for position, node in enumerate(nodes):
            item = self._place(parent, position, node, created)
            _update_row(parent, position, node)
            if node.children or item.hasChildren():
                self._sync(item, node.children, created)

    def _place(
        self, parent: QStandardItem, position: int, node: _Node, created: list[QStandardItem]
    ) -> QStandardItem:
        """Make sure the row for `node` is at `position` of `parent` and return its item."""
        for row in range(position, parent.rowCount()):
            if parent.child(row, 0).data(KEY_ROLE) == node.key:
                if row != position:  # moved (rare): expansion is re-applied afterwards
                    parent.insertRow(position, parent.takeRow(row))
                return parent.child(position, 0)
        parent.insertRow(position, _new_row(node, self._placeholder))
        created.append(parent.child(position, 0))
        return parent.child(position, 0)

    def _walk_items(self, parent: QStandardItem | None = None) -> Iterator[QStandardItem]:
        parent = parent or self.model.invisibleRootItem()
        for row in range(parent.rowCount()):
            item = parent.child(row, 0)
            yield item
            yield from self._walk_items(item)

    def _walk_proxy(self, parent: QModelIndex | None = None) -> Iterator[QModelIndex]:
        parent = parent or QModelIndex()
        for row in range(self.proxy.rowCount(parent)):
            index = self.proxy.index(row, 0, parent)
            yield index
            yield from self._walk_proxy(index)

    # -- expansion ------------------------------------------------------------------------

    def _remember_expansion(self, index: QModelIndex, expanded: bool) -> None:
        key = index.data(KEY_ROLE)
        if self._restoring or key is None:
            return
        if expanded:
            self._expanded.add(key)
        else:
            self._expanded.discard(key)

    def _apply_expansion(self) -> None:
        """Expand what the user left expanded (everything while a filter is on)."""
        self._restoring = True
        try:
            if self.filter_edit.text().strip():
                self.view.expandAll()
                return
            for key, item in self._items.items():
                if not item.hasChildren():
                    continue
                index = self.proxy.mapFromSource(item.index())
                if index.isValid() and self.view.isExpanded(index) != (key in self._expanded):
                    self.view.setExpanded(index, key in self._expanded)
        finally:
            self._restoring = False

    def _on_filter_changed(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        self._apply_expansion()

    # -- activation and selection ---------------------------------------------------------

    def _series_id(self, index: QModelIndex) -> int | None:
        if not index.isValid():
            return None
        value = index.siblingAtColumn(0).data(SERIES_ID_ROLE)
        return None if value is None else int(value)

    def _activate(self, index: QModelIndex) -> None:
        series_id = self._series_id(index)
        if series_id is not None:
            self.seriesActivated.emit(series_id)

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        series_id = self._series_id(current)
        if series_id is not None:
            self.seriesSelected.emit(series_id)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Enter/Return on a series row activates it."""
        if (
            watched is self.view
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and self._series_id(self.view.currentIndex()) is not None
        ):
            self._activate(self.view.currentIndex())
            return True
        return super().eventFilter(watched, event)

    # -- thumbnails -----------------------------------------------------------------------

    def _request_thumbnails(self) -> None:
        for key, item in self._items.items():
            if key[0] != "series":
                continue
            count = item.data(INSTANCES_ROLE)
            stale = item.data(THUMBNAIL_COUNT_ROLE) != count
            if stale and self._failed.get(key[1]) != count and not self._thumbnails.pending(key[1]):
                self._thumbnails.request(key[1], item.data(SERIES_UID_ROLE), count)

    def _show_thumbnail(self, series_id: int, n_instances: int, array: np.ndarray) -> None:
        item = self.series_item(series_id)
        if item is None:
            return
        item.setIcon(thumbnail_icon(array))
        item.setData(n_instances, THUMBNAIL_COUNT_ROLE)
        self._failed.pop(series_id, None)

    def _thumbnail_failed(self, series_id: int, message: str) -> None:
        item = self.series_item(series_id)
        if item is not None:
            self._failed[series_id] = item.data(INSTANCES_ROLE)
            item.setToolTip(f"{item.toolTip()}\nno thumbnail: {message}")

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel thumbnail work when the browser closes."""
        self.shutdown()
        super().closeEvent(event)
