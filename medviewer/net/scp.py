"""medviewer's storage SCP (the destination of a C-MOVE, and ``medviewer pacs listen``), and
C-MOVE through it.

A PACS can send only to AE titles it knows: register medviewer there with its AE title (``--aet``,
default ``MEDVIEWER``), this workstation's address and the SCP's port. The SCP accepts
associations addressed to that AE title only, for every storage SOP class, in any transfer
syntax the sender proposes (so instances arrive as the PACS stores them).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer.core.errors import CancelledError, NetworkError
from medviewer.net.dimse import (
    GetProgress,
    GetReport,
    Receiver,
    associate,
    drop_partial_on_close,
    finish_report,
    follow_retrieve,
    receive_to_disk,
    release,
    retrieve_identifiers,
)
from medviewer.net.nodes import DEFAULT_AE_TITLE, Node, check_ae_title


@dataclass(frozen=True)
class ServerTls:
    """TLS for medviewer's storage SCP: its certificate and key (PEM) and, when given, the
    certificate authorities whose clients it accepts (a client must then show a certificate
    they signed; without it any client may connect, as over plain DIMSE)."""

    cert_file: str
    key_file: str
    ca_file: str = ""

    def context(self) -> ssl.SSLContext:
        """The server's SSL context, or :class:`NetworkError` naming the unusable file."""
        for path in (self.cert_file, self.key_file, self.ca_file):
            if path and not Path(path).is_file():
                raise NetworkError(f"TLS file {path} does not exist")
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.ca_file:
                context.load_verify_locations(self.ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(f"cannot use the storage SCP's TLS files: {exc}") from None
        return context


def listener_tls(node: Node) -> ServerTls | None:
    """The TLS a C-MOVE destination needs for `node`: none for a plain node; for a TLS node,
    medviewer's own certificate and key from the node's settings (the PACS connects back to
    medviewer over TLS), trusting the node's CA for the PACS's certificate."""
    if not node.tls:
        return None
    if not node.cert_file:
        raise NetworkError(f"C-MOVE from {node.describe()} over TLS needs medviewer's own "
                           "certificate and key (the node's cert_file and key_file, or "
                           "--tls-cert/--tls-key): the PACS connects back to medviewer")
    return ServerTls(node.cert_file, node.key_file, node.ca_file)


class StorageServer:
    """A storage SCP writing what it receives under `dest` (see :class:`Receiver`), over TLS
    when `tls` is given.

    Use as a context manager: listening on entry, shut down on exit.
    """

    def __init__(self, dest: Path, port: int, *, ae_title: str = DEFAULT_AE_TITLE,
                 host: str = "", tls: ServerTls | None = None) -> None:
        self.receiver = Receiver(dest)
        self.ae_title = check_ae_title(ae_title)
        self.port, self.host = port, host
        self._ssl = tls.context() if tls is not None else None
        self._server: Any = None

    def __enter__(self) -> StorageServer:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        receive_to_disk()
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server(
                (self.host, self.port), block=False, ssl_context=self._ssl,
                evt_handlers=[(evt.EVT_C_STORE, self.receiver.handle),
                              (evt.EVT_CONN_CLOSE, drop_partial_on_close)])
        except OSError as exc:
            raise NetworkError(f"cannot listen on port {self.port}: {exc.strerror or exc}"
                               ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Shut the server down (its associations end); again is harmless."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def move(
    node: Node,
    wanted: Sequence[dict[str, str]],
    dest: Path,
    *,
    port: int,
    move_aet: str = DEFAULT_AE_TITLE,
    calling_aet: str = DEFAULT_AE_TITLE,
    timeout: float = 60.0,
    cancel: Callable[[], bool] | None = None,
    have: frozenset[str] = frozenset(),
) -> Generator[GetProgress, None, GetReport]:
    """C-MOVE the instances `wanted` to medviewer's own SCP (`move_aet` on `port`, over TLS
    for a TLS node: :func:`listener_tls`), written into `dest` as they arrive. The same
    contract as :func:`medviewer.net.dimse.get`."""
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove,
    )

    started = time.perf_counter()
    missing = [row for row in wanted if row["SOPInstanceUID"] not in have]
    report = GetReport([], len(wanted) - len(missing), [], 0.0)
    if not missing:
        return report
    model = StudyRootQueryRetrieveInformationModelMove
    with StorageServer(dest, port, ae_title=move_aet, tls=listener_tls(node)) as server:
        assoc = associate(node, calling_aet, timeout, [(model, None)])
        try:
            for identifier in retrieve_identifiers(missing, wanted, have):
                responses = assoc.send_c_move(identifier, move_aet, model, msg_id=1)
                yield from follow_retrieve(responses, assoc, server.receiver, len(missing),
                                           cancel, node, "C-MOVE")
        except CancelledError:
            report.cancelled = True
        except NetworkError as exc:
            report.error = _move_hint(str(exc), move_aet, port)
        finally:
            release(assoc)
    # the server has shut down: every file is whole and listed
    return finish_report(report, missing, server.receiver, started)


def _move_hint(message: str, move_aet: str, port: int) -> str:
    """A C-MOVE failure, with what to check when the PACS does not know the destination."""
    if "0xA801" in message or "0xC000" in message:  # destination unknown (Orthanc: C000)
        return (f"{message}: does the PACS know the move destination {move_aet!r}? Register "
                f"it there with this workstation's address and port {port}")
    return message
