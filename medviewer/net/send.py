"""C-STORE files to a PACS: each in the transfer syntax it is stored in (one presentation
context per SOP class and syntax the files use, never more than 128 per association), with a
status per file."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.core.errors import CancelledError, NetworkError
from medviewer.net.dimse import associate, release
from medviewer.net.nodes import DEFAULT_AE_TITLE, Node

MAX_CONTEXTS = 128


@dataclass
class SendProgress:
    """Files sent (with any status) of the total."""

    sent: int
    total: int


@dataclass
class SendReport:
    """The end of a send: files stored, and each failure as ``(path, reason)``."""

    stored: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Every file was stored."""
        return not self.failed


def send(
    node: Node,
    paths: Sequence[Path],
    *,
    calling_aet: str = DEFAULT_AE_TITLE,
    timeout: float = 60.0,
    cancel: Callable[[], bool] | None = None,
) -> Generator[SendProgress, None, SendReport]:
    """C-STORE DICOM `paths` to `node`; yield progress per file, return a :class:`SendReport`.

    A file that is not DICOM (or lacks its SOP class or transfer syntax) is reported, not
    sent. Files are grouped so that each association negotiates at most 128 contexts.
    Cancelling between files releases the association and raises :class:`CancelledError`.
    """
    started = time.perf_counter()
    report = SendReport()
    keyed: list[tuple[tuple[str, str], Path]] = []
    for path in paths:
        try:
            keyed.append((_context_of(path), path))
        except NetworkError as exc:
            report.failed.append((path, str(exc)))
    total, done = len(keyed), 0
    for group in _groups(keyed):
        contexts = sorted({key for key, _ in group})
        assoc = associate(node, calling_aet, timeout, [(c, [s]) for c, s in contexts])
        try:
            for _key, path in group:
                if cancel is not None and cancel():
                    raise CancelledError(f"send cancelled after {done} of {total} files")
                _store_one(assoc, path, node, report)
                done += 1
                yield SendProgress(done, total)
        finally:
            release(assoc)
    report.seconds = time.perf_counter() - started
    return report


def _context_of(path: Path) -> tuple[str, str]:
    """(SOP Class UID, Transfer Syntax UID) of a DICOM file, read from its header."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        header = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        sop_class = str(header.get("SOPClassUID", ""))
        syntax = str(header.file_meta.get("TransferSyntaxUID", ""))
    except (InvalidDicomError, OSError, ValueError, AttributeError) as exc:
        raise NetworkError(f"not a DICOM file: {exc}") from None
    if not sop_class or not syntax:
        raise NetworkError("no SOP Class UID or Transfer Syntax UID in the file")
    return sop_class, syntax


def _groups(keyed: list[tuple[tuple[str, str], Path]]
            ) -> list[list[tuple[tuple[str, str], Path]]]:
    """The files in groups whose (class, syntax) pairs fit one association."""
    groups: list[list[tuple[tuple[str, str], Path]]] = []
    contexts: set[tuple[str, str]] = set()
    for key, path in sorted(keyed, key=lambda item: item[0]):
        if not groups or (key not in contexts and len(contexts) == MAX_CONTEXTS):
            groups.append([])
            contexts = set()
        contexts.add(key)
        groups[-1].append((key, path))
    return groups


def _store_one(assoc: object, path: Path, node: Node, report: SendReport) -> None:
    try:
        status = assoc.send_c_store(path)  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError) as exc:
        report.failed.append((path, f"{type(exc).__name__}: {exc}"))
        return
    if status is None or "Status" not in status:
        raise NetworkError(f"C-STORE: {node.describe()} stopped answering")
    code = int(status.Status)
    if code == 0x0000 or (code & 0xF000) == 0xB000:  # success, or stored with a warning
        report.stored.append(path)
    else:
        comment = str(status.get("ErrorComment", "")).strip()
        report.failed.append((path, f"status 0x{code:04X}" + (f" ({comment})" if comment
                                                                  else "")))


def send_all(node: Node, paths: Sequence[Path], *, calling_aet: str = DEFAULT_AE_TITLE,
             cancel: Callable[[], bool] | None = None) -> SendReport:
    """Send `paths` to `node` to the end: C-STORE for a DIMSE node, one STOW-RS request for a
    DICOMweb node (all or none there: a refusal raises :class:`NetworkError`)."""
    if node.kind == "dicomweb":
        from medviewer.net.web import store

        started = time.perf_counter()
        return SendReport(stored=store(node, paths), seconds=time.perf_counter() - started)
    steps = send(node, paths, calling_aet=calling_aet, cancel=cancel)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            report: SendReport = stop.value
            return report
