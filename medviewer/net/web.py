"""DICOMweb with a PACS (over the standard library's HTTP): QIDO-RS search, WADO-RS retrieve and
STOW-RS store of the files' own bytes (``multipart/related``, any transfer syntax), so what
arrives is what the PACS holds and what is sent is the file as written."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer.core.errors import NetworkError
from medviewer.core.staging import staged_file
from medviewer.net.dimse import (
    MAX_INSTANCE_MATCHES,
    MAX_MATCHES,
    RETURN_KEYS,
    GetProgress,
    GetReport,
    Query,
    TooManyMatches,
    instance_identity,
    instance_path,
)
from medviewer.net.nodes import Node

_ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_QIDO_FIELDS = RETURN_KEYS  # the same attributes as C-FIND returns


def search(node: Node, query: Query, *, timeout: float = 30.0,
           limit: int | None = MAX_MATCHES) -> Iterator[dict[str, str]]:
    """QIDO-RS `query` on `node`: yield rows keyword -> text, as :func:`dimse.find` does.

    At most `limit` rows (None: any number) are yielded; when the server has more, the search
    asks for one more than that and raises :class:`TooManyMatches` after the first `limit`.
    ``^`` and the wildcards go unescaped in the query string: servers accept them, and Orthanc
    1.7's DICOMweb plugin matches nothing for an escaped ``%5E``.
    """
    from urllib.parse import urlencode

    from pydicom import Dataset

    if query.level == "PATIENT":
        raise NetworkError("QIDO-RS searches studies, series and instances, not patients")
    query.identifier()  # the same validation as C-FIND (level, date)
    path = {"STUDY": "/studies",
            "SERIES": f"/studies/{query.study_uid}/series" if query.study_uid else "/series",
            "IMAGE": _instances_path(query)}[query.level]
    pairs = [*_filters(query).items(),
             ("includefield", ",".join(_QIDO_FIELDS[query.level]))]  # one list: Orthanc 1.7
    # matches nothing when includefield is repeated 10 times or more
    if query.level == "SERIES" and query.series_uid:
        pairs.append(("SeriesInstanceUID", query.series_uid))
    if limit is not None:
        pairs.append(("limit", str(limit + 1)))
    url = f"{node.url}{path}?{urlencode(pairs, safe='^*?,')}"
    answer = _http(node, "QIDO-RS", "GET", url, {"Accept": "application/dicom+json"},
                   timeout=timeout)
    if answer.status == 204:
        return
    if answer.status != 200:
        raise NetworkError(f"QIDO-RS on {node.describe()} failed: HTTP {answer.status}")
    for count, item in enumerate(json.loads(answer.body or b"[]")):
        if limit is not None and count >= limit:
            raise TooManyMatches(node, limit)
        ds = Dataset.from_json(item)
        yield {k: str(ds.get(k, "") or "") for k in _QIDO_FIELDS[query.level]}


def probe(node: Node, *, timeout: float = 10.0) -> float:
    """One QIDO-RS study search (``limit=1``): seconds to answer, or :class:`NetworkError`."""
    started = time.perf_counter()
    answer = _http(node, "QIDO-RS", "GET", f"{node.url}/studies?limit=1",
                   {"Accept": "application/dicom+json"}, timeout=timeout)
    if answer.status not in (200, 204):
        raise NetworkError(f"QIDO-RS on {node.describe()} failed: HTTP {answer.status}")
    return time.perf_counter() - started


def _instances_path(query: Query) -> str:
    if query.study_uid and query.series_uid:
        return f"/studies/{query.study_uid}/series/{query.series_uid}/instances"
    return f"/studies/{query.study_uid}/instances" if query.study_uid else "/instances"


def instances(node: Node, study_uid: str, series_uid: str | None = None, *,
              timeout: float = 30.0) -> list[dict[str, str]]:
    """The instances of a study (or one of its series) on `node`, by QIDO-RS."""
    return list(search(node, Query("IMAGE", study_uid=study_uid, series_uid=series_uid or ""),
                       timeout=timeout, limit=MAX_INSTANCE_MATCHES))


def retrieve(
    node: Node,
    wanted: Sequence[dict[str, str]],
    dest: Path,
    *,
    timeout: float = 60.0,
    cancel: Callable[[], bool] | None = None,
    have: frozenset[str] = frozenset(),
) -> Generator[GetProgress, None, GetReport]:
    """WADO-RS each instance of `wanted` not in `have` into ``dest/STUDY/SERIES/SOP.dcm``, in
    the syntax the PACS stores it in; the same contract as :func:`dimse.get`."""
    started = time.perf_counter()
    missing = [row for row in wanted if row["SOPInstanceUID"] not in have]
    report = GetReport([], len(wanted) - len(missing), [], 0.0)
    _check_web(node)
    for row in missing:
        if cancel is not None and cancel():
            report.cancelled = True
            break
        url = (f"{node.url}/studies/{row['StudyInstanceUID']}/series/"
               f"{row['SeriesInstanceUID']}/instances/{row['SOPInstanceUID']}")
        try:
            parts = _get_parts(node, url, timeout)
        except NetworkError as exc:  # the server: stop, keep what came
            report.error = str(exc)
            break
        try:
            path = _write_instance(dest, row, parts)
            report.files.append(path)
            new = [path]
        except (OSError, ValueError, NetworkError) as exc:  # this instance only
            report.failed.append(f"{row['SOPInstanceUID']}: {exc}")
            new = []
        yield GetProgress(len(report.files), len(missing), new)
    received = {p.stem for p in report.files}
    report.failed += [r["SOPInstanceUID"] for r in missing
                      if r["SOPInstanceUID"] not in received
                      and not any(f.startswith(r["SOPInstanceUID"]) for f in report.failed)]
    report.seconds = time.perf_counter() - started
    return report


def _write_instance(dest: Path, row: dict[str, str], parts: list[bytes]) -> Path:
    """The answer's Part 10 file under ``dest/STUDY/SERIES/SOP.dcm``, once it is checked to
    be the instance asked for (a server may answer with anything)."""
    if not parts or parts[0][128:132] != b"DICM":
        raise NetworkError("the answer holds no DICOM Part 10 file")
    asked = (row["StudyInstanceUID"], row["SeriesInstanceUID"], row["SOPInstanceUID"])
    found = instance_identity(parts[0])
    if found != asked:
        raise NetworkError(f"the answer holds another instance ({found[2][:70]!r})")
    path = instance_path(dest, *asked)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(path) as part:
        part.write_bytes(parts[0])
    return path


def store(node: Node, paths: Sequence[Path], *, timeout: float = 120.0) -> list[Path]:
    """STOW-RS `paths` (their bytes as they are) to `node` in one request; the paths stored.

    Raises
    ------
    NetworkError
        The request failed or the PACS refused some instances (the message says how many).
    """
    from xml.etree import ElementTree

    if not paths:
        return []
    boundary = uuid.uuid4().hex
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
                    + Path(p).read_bytes() + b"\r\n" for p in paths)
    body += b"--" + boundary.encode() + b"--\r\n"
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; '
                               f"boundary={boundary}",
               "Accept": "application/dicom+json"}
    answer = _http(node, "STOW-RS", "POST", f"{node.url}/studies", headers, body, timeout)
    if answer.status not in (200, 202):
        raise NetworkError(f"STOW-RS to {node.describe()} failed: HTTP {answer.status}")
    failed = 0
    try:
        failed = len(json.loads(answer.body).get("00081198", {}).get("Value", []))
    except ValueError:  # an XML answer
        root = ElementTree.fromstring(answer.body)
        failed = sum(1 for e in root.iter() if e.get("keyword") == "FailedSOPSequence")
    if failed:
        raise NetworkError(f"STOW-RS: {node.describe()} refused {failed} of {len(paths)} "
                           "instances")
    return list(paths)


def _filters(query: Query) -> dict[str, str]:
    filters = {"PatientName": query.patient_name, "PatientID": query.patient_id}
    if query.level == "STUDY":
        filters.update(StudyInstanceUID=query.study_uid,
                       AccessionNumber=query.accession_number, StudyDate=query.date,
                       ModalitiesInStudy=query.modality, StudyDescription=query.description)
    elif query.level == "SERIES":
        filters.update(Modality=query.modality, SeriesDescription=query.description)
    return {k: v for k, v in filters.items() if v}


MAX_ANSWER_BYTES = {"QIDO-RS": 256 * 2**20, "WADO-RS": 4 * 2**30, "STOW-RS": 64 * 2**20}
"""The most an answer may hold before it is refused (a search, one instance, a store's
report): a PACS is untrusted input, and the whole answer is held in memory."""


@dataclass
class _Answer:
    status: int
    content_type: str
    body: bytes


def _check_web(node: Node) -> None:
    if node.kind != "dicomweb":
        raise NetworkError(f"{node.describe()} is a DIMSE node; this needs DICOMweb")


def _http(node: Node, what: str, method: str, url: str, headers: dict[str, str],
          data: bytes | None = None, timeout: float = 30.0) -> _Answer:
    """One HTTP request, the URL sent as built (``^`` and ``*`` unescaped), with the node's
    credentials; an HTTP error status is an answer (401 and 403 a :class:`NetworkError` saying
    what to check), an unreachable server a :class:`NetworkError`. Redirects are not followed
    (they would carry the credentials elsewhere): the message names the new address."""
    import urllib.error
    import urllib.request

    _check_web(node)
    limit = MAX_ANSWER_BYTES[what]
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={**headers, **_credentials(node)})
    try:
        with _opener(node).open(request, timeout=timeout) as response:
            body = response.read(limit + 1)
            if len(body) > limit:
                raise NetworkError(f"{what}: {node.describe()} answered more than "
                                   f"{limit:,} bytes; refused")
            return _Answer(response.status, response.headers.get("Content-Type", ""), body)
    except urllib.error.HTTPError as exc:
        _refused(node, what, exc.code, exc.headers)
        return _Answer(exc.code, exc.headers.get("Content-Type", ""), exc.read(2**16))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(f"{what}: cannot reach {node.describe()} ({reason})") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx becomes an HTTPError, answered by _refused


def _opener(node: Node) -> urllib.request.OpenerDirector:
    import ssl

    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if node.url.startswith("https://"):
        try:
            context = ssl.create_default_context(cafile=node.ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(f"{node.describe()}: cannot use its CA file: {exc}") from None
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _credentials(node: Node) -> dict[str, str]:
    """The ``Authorization`` header for `node` (its secret from :mod:`.secrets`)."""
    if not node.auth:
        return {}
    import base64

    from medviewer.net.secrets import secret_for

    secret = secret_for(node.name)
    if not secret:
        what = "password" if node.auth == "basic" else "token"
        raise NetworkError(f"no {what} for {node.name!r} ({node.describe()}): set it in the "
                           "PACS nodes settings, or in MEDVIEWER_PACS_SECRET for one command")
    if node.auth == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    pair = f"{node.username}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _refused(node: Node, what: str, status: int, headers: Any) -> None:
    """A :class:`NetworkError` for an answer that needs the user: credentials or a new URL."""
    where = node.describe()
    if status == 401:
        given = f"the {node.auth} credentials were refused" if node.auth else "no credentials"
        raise NetworkError(f"{what}: {where} wants authentication (HTTP 401; {given}): check "
                           "the node's user name and password or token")
    if status == 403:
        raise NetworkError(f"{what}: {where} refused access (HTTP 403): the account may not "
                           "do this")
    if 300 <= status < 400:
        target = (headers.get("Location", "") if headers is not None else "") or "elsewhere"
        raise NetworkError(f"{what}: {where} redirects to {target[:200]}; set the node's URL "
                           "to that address (medviewer does not follow redirects with "
                           "credentials)")


def _get_parts(node: Node, url: str, timeout: float) -> list[bytes]:
    """The bodies of a WADO-RS multipart answer."""
    answer = _http(node, "WADO-RS", "GET", url, {"Accept": _ANY_SYNTAX}, timeout=timeout)
    if answer.status != 200:
        raise NetworkError(f"WADO-RS on {node.describe()} answered HTTP {answer.status}")
    return multipart_bodies(answer.body, answer.content_type)


def multipart_bodies(content: bytes, content_type: str) -> list[bytes]:
    """The parts' bodies of a ``multipart/related`` message (RFC 2046)."""
    boundary = ""
    for field in content_type.split(";"):
        key, _, value = field.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise NetworkError(f"not a multipart answer: {content_type[:80]!r}")
    # A delimiter is CRLF "--" boundary (or "--" boundary at the very start), then CRLF
    # (another part) or "--" (the end): the boundary's text inside a part's data is not one.
    # Found with bytes.find, so a part's bytes are copied once (a CT slice is 0.5 MB).
    delimiter = b"\r\n--" + boundary.encode()
    after = _after_delimiter(content, delimiter, 0, first=True)
    bodies = []
    while after >= 0 and not content.startswith(b"--", after):
        header_end = content.find(b"\r\n\r\n", after)
        if header_end < 0:
            break
        start = header_end + 4
        end = _delimiter_at(content, delimiter, start)
        if end < 0:
            break
        bodies.append(content[start:end])
        after = end + len(delimiter)
    return bodies


def _delimiter_at(content: bytes, delimiter: bytes, start: int) -> int:
    """Where the next real delimiter (followed by CRLF or "--") begins, or -1."""
    position = content.find(delimiter, start)
    while position >= 0:
        tail = content[position + len(delimiter):position + len(delimiter) + 2]
        if tail in (b"\r\n", b"--"):
            return position
        position = content.find(delimiter, position + 1)
    return -1


def _after_delimiter(content: bytes, delimiter: bytes, start: int, *, first: bool) -> int:
    """The index just after the first delimiter (it may open the message without CRLF)."""
    if first and content.startswith(delimiter[2:]):
        tail = content[len(delimiter) - 2:len(delimiter)]
        if tail in (b"\r\n", b"--"):
            return len(delimiter) - 2
    position = _delimiter_at(content, delimiter, start)
    return position + len(delimiter) if position >= 0 else -1
