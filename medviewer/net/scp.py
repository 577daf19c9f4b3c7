"""medviewer's storage SCP (the destination of a C-MOVE, and ``medviewer pacs listen``), and
C-MOVE through it.

A PACS can send only to AE titles it knows: register medviewer there with its AE title (``--aet``,
default ``MEDVIEWER``), this workstation's address and the SCP's port. The SCP accepts
associations addressed to that AE title only, for every storage SOP class, in any transfer
syntax the sender proposes (so instances arrive as the PACS stores them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from medviewer.core.errors import CancelledError, NetworkError
from medviewer.net.dimse import (
    GetProgress,
    GetReport,
    Receiver,
    associate,
    finish_report,
    follow_retrieve,
    receive_to_disk,
    release,
    retrieve_identifiers,
)
from medviewer.net.nodes import DEFAULT_AE_TITLE, Node, check_ae_title


class StorageServer:
    """A storage SCP writing what it receives under `dest` (see :class:`Receiver`).

    Use as a context manager: listening on entry, shut down on exit.
    """

    def __init__(self, dest: Path, port: int, *, ae_title: str = DEFAULT_AE_TITLE,
                 host: str = "") -> None:
        self.receiver = Receiver(dest)
        self.ae_title = check_ae_title(ae_title)
        self.port, self.host = port, host
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
                (self.host, self.port), block=False,
                evt_handlers=[(evt.EVT_C_STORE, self.receiver.handle)])
        except OSError as exc:
            raise NetworkError(f"cannot listen on port {self.port}: {exc.strerror or exc}"
                               ) from None
        return self

    def __exit__(self, *exc: object) -> None:
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
    """C-MOVE the instances `wanted` to medviewer's own SCP (`move_aet` on `port`), written
    into `dest` as they arrive. The same contract as :func:`medviewer.net.dimse.get`."""
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove,
    )

    started = time.perf_counter()
    missing = [row for row in wanted if row["SOPInstanceUID"] not in have]
    report = GetReport([], len(wanted) - len(missing), [], 0.0)
    if not missing:
        return report
    model = StudyRootQueryRetrieveInformationModelMove
    with StorageServer(dest, port, ae_title=move_aet) as server:
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
