"""Retrieve from a PACS into the study database: instances are indexed in batches as they
arrive, so a series can be opened while the rest still comes; what is already local is not
asked for again; a transfer that stops short is reported with what is missing."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path

from medviewer.core.errors import CancelledError, NetworkError
from medviewer.io.database import StudyDatabase
from medviewer.net import dimse, web
from medviewer.net.nodes import DEFAULT_AE_TITLE, Node


@dataclass
class RetrieveReport:
    """What a retrieve did.

    Attributes
    ----------
    received : int
        Instances written and indexed.
    skipped : int
        Instances already local (not asked for).
    failed : list of str
        SOP Instance UIDs (or reasons) not received: retry to complete the series.
    series : list of int
        Database ids of the retrieved series.
    seconds : float
        Wall time.
    """

    received: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    series: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Every instance asked for is local."""
        return not self.failed


def default_store() -> Path:
    """Where retrieved instances are kept: ``pacs`` in the user's data folder."""
    import platformdirs

    return Path(platformdirs.user_data_dir("medviewer")) / "pacs"


def _series_of(paths: list[Path]) -> tuple[str, ...]:
    """The Series Instance UIDs of files written as ``DEST/STUDY/SERIES/SOP.dcm``."""
    return tuple(sorted({path.parent.name for path in paths}))


def resolve(node: Node, uid: str, *, calling_aet: str = DEFAULT_AE_TITLE,
            timeout: float = 30.0) -> tuple[str, str | None]:
    """``(study_uid, series_uid or None)`` for a Study or Series Instance UID on `node`."""
    def search(query: dimse.Query) -> list[dict[str, str]]:
        if node.kind == "dicomweb":
            return list(web.search(node, query, timeout=timeout))
        return list(dimse.find(node, query, calling_aet=calling_aet, timeout=timeout))

    if search(dimse.Query("STUDY", study_uid=uid)):
        return uid, None
    series = search(dimse.Query("SERIES", series_uid=uid))
    if series:
        return series[0]["StudyInstanceUID"], uid
    raise NetworkError(f"{node.describe()} holds no study or series with UID {uid}")


def retrieve(
    db: StudyDatabase,
    node: Node,
    uid: str,
    *,
    dest: Path | None = None,
    calling_aet: str = DEFAULT_AE_TITLE,
    timeout: float = 60.0,
    cancel: Callable[[], bool] | None = None,
    batch: int = 32,
    move_port: int | None = None,
) -> Generator[dimse.GetProgress, None, RetrieveReport]:
    """C-GET study or series `uid` from `node` into `dest` and index it in `db` as it arrives;
    with `move_port`, C-MOVE it to medviewer's own storage SCP listening there instead (its AE
    title is `calling_aet`; the PACS must know it); from a DICOMweb node, WADO-RS.

    Yields the C-GET's progress; returns a :class:`RetrieveReport`. The first instance is
    indexed as soon as it is written (a viewer can open the series at once), the rest in
    batches of `batch` (and at the end), so the database never lists a file that is not
    complete, and an interrupted retrieve leaves only whole, indexed instances behind.
    """
    import time

    started = time.perf_counter()
    dest = dest or default_store()
    study_uid, series_uid = resolve(node, uid, calling_aet=calling_aet, timeout=timeout)
    if node.kind == "dicomweb":
        wanted = web.instances(node, study_uid, series_uid, timeout=timeout)
    else:
        wanted = dimse.instances(node, study_uid, series_uid, calling_aet=calling_aet,
                                 timeout=timeout)
    have: set[str] = set()
    for series in {row["SeriesInstanceUID"] for row in wanted}:
        have |= db.local_sop_instance_uids(series)
    indexed: set[Path] = set()
    pending: list[Path] = []
    if node.kind == "dicomweb":
        steps = web.retrieve(node, wanted, dest, timeout=timeout, cancel=cancel,
                             have=frozenset(have))
    elif move_port is None:
        steps = dimse.get(node, wanted, dest, calling_aet=calling_aet, timeout=timeout,
                          cancel=cancel, have=frozenset(have))
    else:
        from medviewer.net.scp import move

        steps = move(node, wanted, dest, port=move_port, move_aet=calling_aet,
                     calling_aet=calling_aet, timeout=timeout, cancel=cancel,
                     have=frozenset(have))
    try:
        while True:
            progress = next(steps)
            pending.extend(progress.new_files)
            if pending and (len(pending) >= batch or not indexed):  # the first at once
                db.import_paths(pending)
                indexed.update(pending)
                progress = replace(progress, indexed_series=_series_of(pending))
                pending = []
            yield progress
    except StopIteration as stop:
        result: dimse.GetReport = stop.value
    rest = [path for path in result.files if path not in indexed]
    if rest:  # whole files only, indexed also when the transfer stopped short
        db.import_paths(rest)
    if result.error:
        kept = (f"; {len(result.files)} instances were received, kept and indexed, and a "
                "retry asks only for the rest") if result.files else ""
        raise NetworkError(result.error + kept)
    if result.cancelled:
        raise CancelledError(f"retrieve cancelled after {len(result.files)} of "
                             f"{len(wanted) - result.skipped} instances; they are kept and "
                             "indexed, and a retry asks only for the rest")
    series_ids = {db.series_id_of(row["SeriesInstanceUID"]) for row in wanted}
    return RetrieveReport(
        received=len(result.files), skipped=result.skipped, failed=result.failed,
        series=sorted(i for i in series_ids if i is not None),
        seconds=time.perf_counter() - started)
