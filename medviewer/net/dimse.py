"""DIMSE with a PACS through pynetdicom: C-ECHO, C-FIND (results as they arrive) and C-GET
(instances written as they arrive, each file complete or absent).

Every function opens its own association and releases it (aborts it on cancel or error), so
nothing is left open. Messages name the node as ``AET@HOST:PORT`` and never hold patient data.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.core.errors import CancelledError, NetworkError
from medviewer.core.staging import staged_file
from medviewer.net.nodes import DEFAULT_AE_TITLE, Node, check_ae_title

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                "NumberOfPatientRelatedStudies"),
    "STUDY": ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate",
              "StudyTime", "AccessionNumber", "StudyDescription", "ModalitiesInStudy",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "SeriesDescription", "NumberOfSeriesRelatedInstances"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
              "InstanceNumber"),
}
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_PENDING = (0xFF00, 0xFF01)
_UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")
_STORED_SYNTAXES = (
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.1.99",
)
"""Compressed syntaxes proposed one context each, beside one uncompressed context per SOP
class, so the PACS picks the one an instance is stored in and sends it unchanged (a single
context of many syntaxes gets one syntax accepted, and every instance converted to it)."""
MAX_MATCHES = 1000
"""Matches a user's query lists at most (``pacs find --limit``, the Query/Retrieve window)."""
MAX_INSTANCE_MATCHES = 200_000
"""Instances one study's listing accepts at most (a retrieve's IMAGE-level queries)."""
MAX_STORAGE_CONTEXTS = 127
"""Storage contexts a C-GET proposes at most (128 per association, one is the C-GET's)."""


@dataclass(frozen=True)
class Query:
    """A C-FIND query: the level and its filters (empty: no filter).

    ``patient_name`` may hold DICOM wildcards (``*``, ``?``); ``date`` is ``YYYYMMDD``,
    ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` or ``-YYYYMMDD``; ``modality`` matches the study's
    modalities (STUDY) or the series' (SERIES); ``description`` the study's or series'.
    SERIES and IMAGE queries need ``study_uid`` (IMAGE also ``series_uid``), as the study
    root's hierarchy asks.
    """

    level: str = "STUDY"
    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    date: str = ""
    modality: str = ""
    description: str = ""
    study_uid: str = ""
    series_uid: str = ""

    def identifier(self) -> Any:
        """The C-FIND identifier: return keys of the level, filters set."""
        from pydicom.dataset import Dataset

        if self.level not in LEVELS:
            raise NetworkError(f"query level must be one of {', '.join(LEVELS)}, not "
                               f"{self.level!r}")
        if self.date and not re.fullmatch(r"(\d{8})?-?(\d{8})?", self.date):
            raise NetworkError(f"date {self.date!r} is not YYYYMMDD or a YYYYMMDD-YYYYMMDD range")
        ds = Dataset()
        ds.QueryRetrieveLevel = self.level
        for keyword in RETURN_KEYS[self.level]:
            setattr(ds, keyword, "")
        filters = {"PatientName": self.patient_name, "PatientID": self.patient_id,
                   "StudyInstanceUID": self.study_uid, "SeriesInstanceUID": self.series_uid}
        if self.level == "STUDY":
            filters.update(AccessionNumber=self.accession_number, StudyDate=self.date,
                           ModalitiesInStudy=self.modality, StudyDescription=self.description)
        elif self.level == "SERIES":
            filters.update(Modality=self.modality, SeriesDescription=self.description)
        for keyword, value in filters.items():
            if value:
                setattr(ds, keyword, value)
        return ds


class TooManyMatches(NetworkError):
    """A query matched more than its limit: raised after the first `limit` rows were given."""

    def __init__(self, node: Node, limit: int) -> None:
        super().__init__(f"{node.describe()} has more than {limit} matches; the first {limit} "
                         "are listed: narrow the query (patient, date, modality)")
        self.limit = limit


@dataclass
class GetProgress:
    """Where a C-GET stands: instances received (files written) of those asked for."""

    received: int
    total: int
    new_files: list[Path] = field(default_factory=list)
    indexed_series: tuple[str, ...] = ()
    """Series Instance UIDs whose instances the study database gained at this step (set by
    :func:`medviewer.net.retrieve.retrieve`, which indexes in batches)."""


@dataclass
class GetReport:
    """The end of a C-GET: files written, instances already local, and failures."""

    files: list[Path]
    skipped: int
    failed: list[str]
    seconds: float
    cancelled: bool = False
    error: str = ""


def echo(node: Node, *, calling_aet: str = DEFAULT_AE_TITLE, timeout: float = 10.0) -> float:
    """C-ECHO `node`; return the round trip in seconds.

    Raises
    ------
    NetworkError
        No association (the reason: refused, rejected and why, aborted, timed out) or a
        failure status.
    """
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    started = time.perf_counter()
    assoc = associate(node, calling_aet, timeout, [(Verification, None)])
    try:
        status = assoc.send_c_echo()
        _check_final(status, node, "C-ECHO")
    finally:
        release(assoc)
    return time.perf_counter() - started


def find(
    node: Node,
    query: Query,
    *,
    calling_aet: str = DEFAULT_AE_TITLE,
    timeout: float = 30.0,
    cancel: Callable[[], bool] | None = None,
    limit: int | None = MAX_MATCHES,
) -> Iterator[dict[str, str]]:
    """C-FIND `query` on `node`; yield each match (keyword -> text) as it arrives.

    Cancelling (`cancel` returns True between matches) sends C-CANCEL and raises
    :class:`CancelledError`. A match beyond `limit` (None: no limit) sends C-CANCEL and
    raises :class:`TooManyMatches`, the first `limit` having been yielded.
    """
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
    )

    identifier = query.identifier()
    model = (PatientRootQueryRetrieveInformationModelFind if query.level == "PATIENT"
             else StudyRootQueryRetrieveInformationModelFind)
    assoc = associate(node, calling_aet, timeout, [(model, None)])
    try:
        responses = assoc.send_c_find(identifier, model, msg_id=1)
        count = 0
        for status, match in responses:
            if cancel is not None and cancel():
                assoc.send_c_cancel(1, query_model=model)
                raise CancelledError("query cancelled")
            if status and status.Status in _PENDING and match is not None:
                if limit is not None and count >= limit:
                    assoc.send_c_cancel(1, query_model=model)
                    raise TooManyMatches(node, limit)
                count += 1
                yield _row(match, query.level)
            else:
                _check_final(status, node, "C-FIND")
    finally:
        release(assoc)


def instances(
    node: Node, study_uid: str, series_uid: str | None = None, *,
    calling_aet: str = DEFAULT_AE_TITLE, timeout: float = 30.0,
) -> list[dict[str, str]]:
    """The instances of a study (or of one of its series) on `node`, by IMAGE-level C-FINDs."""
    if series_uid:
        series = [series_uid]
    else:
        series = [row["SeriesInstanceUID"] for row in find(
            node, Query("SERIES", study_uid=study_uid), calling_aet=calling_aet,
            timeout=timeout, limit=MAX_MATCHES)]
    rows: list[dict[str, str]] = []
    for uid in series:
        rows.extend(find(node, Query("IMAGE", study_uid=study_uid, series_uid=uid),
                         calling_aet=calling_aet, timeout=timeout,
                         limit=MAX_INSTANCE_MATCHES - len(rows)))
    return rows


def get(
    node: Node,
    wanted: Sequence[dict[str, str]],
    dest: Path,
    *,
    calling_aet: str = DEFAULT_AE_TITLE,
    timeout: float = 60.0,
    cancel: Callable[[], bool] | None = None,
    have: frozenset[str] = frozenset(),
) -> Generator[GetProgress, None, GetReport]:
    """C-GET the instances `wanted` (rows of :func:`instances`) into ``dest/STUDY/SERIES/``.

    Cancelling (`cancel` returns True between responses) aborts the association and returns
    with ``cancelled`` set and the files written until then; a failure midway returns them
    with ``error`` set. Instances whose SOP Instance UID
    is in `have` are not asked for (a resumed retrieve). Each
    received instance is written as it arrives, under its SOP Instance UID, complete or not at
    all, byte for byte as sent (the transfer syntax the PACS chose among all that medviewer
    proposes). Yields progress after each response; returns what was written and what failed.
    A whole series is asked for by its Series Instance UID, a partial one by its instances'.
    """
    started = time.perf_counter()
    missing = [row for row in wanted if row["SOPInstanceUID"] not in have]
    report = GetReport([], len(wanted) - len(missing), [], 0.0)
    if not missing:
        return report
    receiver = Receiver(dest)
    assoc = _get_association(node, calling_aet, timeout, missing, receiver)
    try:
        for identifier in retrieve_identifiers(missing, wanted, have):
            yield from _one_get(assoc, identifier, receiver, len(missing), cancel, node)
    except CancelledError:
        report.cancelled = True
    except NetworkError as exc:  # the peer stopped answering or failed: keep what came
        report.error = str(exc)
    finally:
        release(assoc)
        assoc.join(timeout)  # the receiving thread has ended: every file is whole and listed
        drop_partial_instance(assoc)
    return finish_report(report, missing, receiver, started)


def finish_report(report: GetReport, missing: Sequence[dict[str, str]], receiver: Receiver,
                  started: float) -> GetReport:
    """`report` completed from what `receiver` wrote: files, failures (instances asked for
    and not received, and write errors), seconds since `started`."""
    received = {p.stem for p in receiver.files}
    report.files = list(receiver.files)
    report.failed = [row["SOPInstanceUID"] for row in missing
                     if row["SOPInstanceUID"] not in received] + receiver.errors
    report.seconds = time.perf_counter() - started
    return report


class Receiver:
    """The C-STORE handler of a C-GET or of medviewer's storage SCP: writes each instance as
    it arrives, under ``dest/STUDY/SERIES/SOP.dcm``, complete or not at all."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.files: list[Path] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._taken = 0

    def handle(self, event: Any) -> int:
        """pynetdicom's EVT_C_STORE handler: write the instance, answer its status.

        With :func:`receive_to_disk` on (medviewer's associations and servers turn it on),
        pynetdicom has streamed the instance to a temporary Part 10 file as it arrived, so an
        instance of any size never sits in memory whole; that file is checked and copied.
        """
        try:
            announced = str(event.request.AffectedSOPInstanceUID)
            received = _received_file(event)
            if received is None:
                path = self._write_from_memory(event, announced)
            else:
                try:
                    path = self._write_from_file(received, announced)
                finally:  # pynetdicom deletes it after a server's handler, not a C-GET's
                    _discard_received(event.request, received)
        except OSError as exc:  # the disk: the PACS may try again later
            return self._refuse(f"{type(exc).__name__}: {exc}", 0xA700)  # out of resources
        except (ValueError, NetworkError) as exc:  # the instance itself
            return self._refuse(f"{type(exc).__name__}: {exc}", 0xC000)  # cannot understand
        with self._lock:
            self.files.append(path)
        return 0x0000

    def _target(self, identity: tuple[str, str, str], announced: str) -> Path:
        study, series, sop = identity
        if sop != announced:
            raise NetworkError(f"the instance announced as {announced[:70]} holds "
                               f"SOP Instance UID {sop[:70]!r}")
        path = instance_path(self.dest, study, series, sop)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _write_from_memory(self, event: Any, announced: str) -> Path:
        from pydicom.filebase import DicomFileLike
        from pydicom.filewriter import write_file_meta_info

        dataset = event.request.DataSet.getvalue()
        path = self._target(instance_identity(dataset), announced)
        with staged_file(path) as part, open(part, "wb") as handle:
            handle.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(DicomFileLike(handle), event.file_meta, enforce_standard=True)
            handle.write(dataset)
        return path

    def _write_from_file(self, received: Path, announced: str) -> Path:
        import shutil

        path = self._target(instance_identity(received), announced)
        with staged_file(path) as part:
            shutil.copyfile(received, part)
        return path

    def _refuse(self, reason: str, status: int) -> int:
        with self._lock:
            self.errors.append(reason)
        return status

    def take_new(self) -> list[Path]:
        """Files written since the last call."""
        with self._lock:
            new = self.files[self._taken:]
            self._taken = len(self.files)
        return new


def instance_identity(data: bytes | Path) -> tuple[str, str, str]:
    """(Study, Series, SOP Instance UID) read from an encoded data set, a Part 10 file's bytes
    or a file (only those elements are parsed; what is missing is empty)."""
    from io import BytesIO

    from pydicom.filereader import dcmread

    source = data if isinstance(data, Path) else BytesIO(data)
    header = dcmread(source, force=True, stop_before_pixels=True,
                     specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    return (str(header.get("StudyInstanceUID", "")), str(header.get("SeriesInstanceUID", "")),
            str(header.get("SOPInstanceUID", "")))


def receive_to_disk() -> None:
    """Have pynetdicom stream every received C-STORE data set to a temporary file instead of
    holding it in memory (its ``STORE_RECV_CHUNKED_DATASET``; process-wide, and
    :class:`Receiver` handles both forms)."""
    from pynetdicom import _config

    _config.STORE_RECV_CHUNKED_DATASET = True


def _discard_received(request: Any, received: Path) -> None:
    handle = getattr(request, "_dataset_file", None)
    if handle is not None:
        handle.close()
    received.unlink(missing_ok=True)


def _received_file(event: Any) -> Path | None:
    """The temporary Part 10 file pynetdicom streamed the instance to, or None (in memory)."""
    where = getattr(event.request, "_dataset_path", None)
    if where is None:
        return None
    return Path(where[0] if isinstance(where, tuple) else where)


def instance_path(dest: Path, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """``dest/STUDY/SERIES/SOP.dcm``; each part must be a plain UID, so the path stays inside
    `dest` whatever a PACS sends (:class:`NetworkError` otherwise)."""
    for part in (study_uid, series_uid, sop_uid):
        if not _UID.match(part) or len(part) > 64:
            raise NetworkError(f"instance with an invalid UID {part[:70]!r}")
    return dest / study_uid / series_uid / f"{sop_uid}.dcm"


def _get_association(node: Node, calling_aet: str, timeout: float,
                     missing: Sequence[dict[str, str]], receiver: Receiver) -> Any:
    from pynetdicom import ALL_TRANSFER_SYNTAXES, build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelGet,
    )

    classes = sorted({row["SOPClassUID"] for row in missing if row.get("SOPClassUID")})
    if len(classes) > MAX_STORAGE_CONTEXTS:
        raise NetworkError(f"the instances span {len(classes)} SOP classes; one C-GET "
                           f"association negotiates at most {MAX_STORAGE_CONTEXTS}")
    contexts: list[tuple[str, list[str] | None]] = [
        (StudyRootQueryRetrieveInformationModelGet, None)]
    per_syntax = len(classes) * (1 + len(_STORED_SYNTAXES)) <= MAX_STORAGE_CONTEXTS
    for uid in classes:
        if per_syntax:  # the PACS can send each instance in the syntax it stores it in
            contexts.append((uid, list(_UNCOMPRESSED)))
            contexts += [(uid, [syntax]) for syntax in _STORED_SYNTAXES]
        else:
            contexts.append((uid, list(ALL_TRANSFER_SYNTAXES)))
    roles = [build_role(uid, scp_role=True) for uid in classes]
    return associate(node, calling_aet, timeout, contexts, roles=roles,
                      handlers=[(evt.EVT_C_STORE, receiver.handle)])


def retrieve_identifiers(missing: Sequence[dict[str, str]], wanted: Sequence[dict[str, str]],
                     have: frozenset[str]) -> Iterator[Any]:
    from pydicom.dataset import Dataset

    by_series: dict[tuple[str, str], list[str]] = {}
    for row in missing:
        key = (row["StudyInstanceUID"], row["SeriesInstanceUID"])
        by_series.setdefault(key, []).append(row["SOPInstanceUID"])
    complete = {(r["StudyInstanceUID"], r["SeriesInstanceUID"]) for r in wanted
                if r["SOPInstanceUID"] in have}
    for (study, series), sops in by_series.items():
        ds = Dataset()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        if (study, series) in complete:  # part of it is local: ask for the rest by instance
            ds.QueryRetrieveLevel = "IMAGE"
            ds.SOPInstanceUID = sops
        else:
            ds.QueryRetrieveLevel = "SERIES"
        yield ds


def _one_get(assoc: Any, identifier: Any, receiver: Receiver, total: int,
             cancel: Callable[[], bool] | None, node: Node) -> Iterator[GetProgress]:
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelGet,
    )

    responses = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet,
                                 msg_id=1)
    yield from follow_retrieve(responses, assoc, receiver, total, cancel, node, "C-GET")


def follow_retrieve(responses: Iterator[tuple[Any, Any]], assoc: Any, receiver: Receiver,
                    total: int, cancel: Callable[[], bool] | None, node: Node,
                    what: str) -> Iterator[GetProgress]:
    """Progress through a C-GET's or C-MOVE's responses, files taken from `receiver`;
    aborts on cancel (:class:`CancelledError`), raises :class:`NetworkError` on failure."""
    for status, _ in responses:
        if cancel is not None and cancel():
            assoc.abort()
            raise CancelledError("retrieve cancelled; the instances received so far are kept")
        if status and status.Status in _PENDING:
            yield GetProgress(len(receiver.files), total, receiver.take_new())
            continue
        if status and status.Status == 0xB000:  # warning: some sub-operations failed
            break
        _check_final(status, node, what)
    yield GetProgress(len(receiver.files), total, receiver.take_new())


def associate(node: Node, calling_aet: str, timeout: float,
               contexts: Sequence[tuple[str, list[str] | None]], *,
               roles: list[Any] | None = None, handlers: list[Any] | None = None) -> Any:
    """An established association with `node`, or :class:`NetworkError` saying why not."""
    from pynetdicom import AE, evt

    if node.kind != "dimse":
        raise NetworkError(f"{node.describe()} is a DICOMweb node; this needs DIMSE")
    check_ae_title(calling_aet, "calling AE title")
    _reachable(node, timeout)
    receive_to_disk()
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    for abstract, syntaxes in contexts:
        if syntaxes is None:
            ae.add_requested_context(abstract)
        else:
            ae.add_requested_context(abstract, syntaxes)
    opened: list[Any] = []  # the connection's socket, closed here if association fails

    def remember(event: Any) -> None:
        opened.append(event.assoc.dul.socket.socket)

    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=roles,
                         evt_handlers=[*(handlers or []), (evt.EVT_CONN_OPEN, remember),
                                       (evt.EVT_CONN_CLOSE, drop_partial_on_close)],
                         tls_args=_tls_args(node))
    if assoc.is_established:
        return assoc
    for sock in opened:  # pynetdicom skips close() when shutdown() fails on a reset socket
        if sock is not None:
            sock.close()
    where = node.describe()
    if node.tls and not assoc.is_rejected:
        raise NetworkError(f"no TLS association with {where}: the TLS handshake failed (is "
                           "that port TLS, does the CA file sign its certificate, and does it "
                           "want a client certificate: cert_file, key_file?)")
    if assoc.is_rejected:
        primitive = assoc.acceptor.primitive
        why = getattr(primitive, "reason_str", "") or "no reason given"
        raise NetworkError(f"{where} rejected the association: {why} (calling AE title "
                           f"{calling_aet!r})")
    if assoc.is_aborted:
        raise NetworkError(f"{where} aborted the association (is the calling AE title "
                           f"{calling_aet!r} allowed there, or does that port expect TLS?)")
    raise NetworkError(f"no DICOM answer from {where} within {timeout:g} s (it accepted the "
                       "connection but did not associate)")


def _tls_args(node: Node) -> tuple[Any, str] | None:
    """pynetdicom's ``tls_args`` for a TLS node: a client context that verifies the PACS's
    certificate (and its host name) against the node's CA file or the system's."""
    if not node.tls:
        return None
    import ssl

    try:
        context = ssl.create_default_context(cafile=node.ca_file or None)
        if node.cert_file:
            context.load_cert_chain(node.cert_file, node.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise NetworkError(f"{node.describe()}: cannot use its TLS files: {exc}") from None
    return context, node.host


def _reachable(node: Node, timeout: float) -> None:
    """Connect once (with the TLS handshake for a TLS node), so an absent peer or a TLS
    problem gets its own message, and pynetdicom, which leaks the socket of a failed
    connection or handshake, never meets one."""
    import socket

    tls = _tls_args(node)
    try:
        plain = socket.create_connection((node.host, node.port), timeout=timeout)
    except TimeoutError:
        raise NetworkError(f"no DICOM answer from {node.describe()} within {timeout:g} s "
                           "(a firewall, or the wrong host)") from None
    except OSError as exc:
        raise NetworkError(f"cannot reach {node.describe()}: {exc.strerror or exc} (not "
                           "running, or the wrong host or port)") from None
    with plain:
        if tls is None:
            return
        try:
            with tls[0].wrap_socket(plain, server_hostname=tls[1]):
                pass
        except OSError as exc:  # ssl.SSLError is one; a plain port may just reset
            reason = (getattr(exc, "verify_message", "") or getattr(exc, "reason", "")
                      or exc.strerror or str(exc))
            raise NetworkError(
                f"no TLS association with {node.describe()}: the TLS handshake failed "
                f"({reason}; is that port TLS, and does the CA file sign its certificate?)"
            ) from None


def _check_final(status: Any, node: Node, what: str) -> None:
    """Raise unless `status` is success; an empty status means the peer went silent."""
    if status is None or "Status" not in status:
        raise NetworkError(f"{what}: {node.describe()} stopped answering (timeout or the "
                           "connection dropped)")
    code = int(status.Status)
    if code == 0x0000:
        return
    if code == 0xFE00:
        raise CancelledError(f"{what} cancelled")
    comment = str(status.get("ErrorComment", "")).strip()
    raise NetworkError(f"{what} on {node.describe()} failed: status 0x{code:04X}"
                       + (f" ({comment})" if comment else ""))


def release(assoc: Any) -> None:
    """Release `assoc` when it is still established, and close its socket whatever happened
    (pynetdicom leaves it open when the peer vanished mid-association)."""
    if assoc.is_established:
        assoc.release()
    transport = getattr(getattr(assoc, "dul", None), "socket", None)
    sock = getattr(transport, "socket", None)
    if sock is not None:
        sock.close()


def drop_partial_instance(assoc: Any) -> None:
    """Close and delete the temporary file of an instance the association was receiving when
    it ended (pynetdicom leaves it open, and on disk, when a transfer stops mid-instance)."""
    message: Any = getattr(getattr(assoc, "dimse", None), "message", None)
    handle = getattr(message, "_data_set_file", None)
    if message is None or handle is None:
        return
    handle.close()
    Path(handle.name).unlink(missing_ok=True)
    message._data_set_file = None
    message._data_set_path = None


def drop_partial_on_close(event: Any) -> None:
    """pynetdicom's EVT_CONN_CLOSE handler: :func:`drop_partial_instance`."""
    drop_partial_instance(event.assoc)


def _row(match: Any, level: str) -> dict[str, str]:
    return {keyword: str(match.get(keyword, "") or "") for keyword in RETURN_KEYS[level]}
