"""Staged, all-or-nothing writes: hidden staging beside the target, renamed into place.

Everything medviewer writes that must appear complete or not at all (exports, ``medviewer
infer`` results, installed models, the demo data) is first written under a hidden staging name
in the folder of its target, on the same file system, and renamed onto the target at the end
(:func:`move_into_place`). A target that exists is first renamed aside and is put back if a
later rename fails, so a failure leaves the folder as it was; a staging folder
(:class:`StagingFolder`, :func:`staged_folder`) is removed whatever happens.

Staging names are hidden and say who made them: ``.partial-<host>-<pid>-<token>-<name>`` for a
staged file, ``.partial-<host>-<pid>-<token>`` for a staging folder (what it holds is named
inside it) and ``.replaced-<host>-<pid>-<token>-<name>`` for a target set aside (``<host>``: 8 hex
digits of the machine's name). A run killed outright (``kill -9``, a power cut) cannot clean up
after itself, so the next run writing into the same folder removes what such runs left there
(:func:`remove_stale_staging`), and only that: a dead run's staging is removed once it has not
changed for :data:`QUIET_BEFORE_REMOVAL_S`, anyone's after :data:`STALE_AFTER_S`; a target set
aside whose target is missing is put back instead.

Standard library only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

#: Staging left this long ago is stale whoever made it: the pid may have been reused by
#: another process, or the run was on another machine writing into a shared folder.
STALE_AFTER_S = 24 * 3600
#: Staging whose pid no longer runs here is removed only when neither it nor anything inside it
#: (a staging folder) has changed for this long: machines of the same name (``localhost``)
#: writing into one shared folder have the same host tag, and a pid dead here may be a live
#: export there.
QUIET_BEFORE_REMOVAL_S = 10 * 60
# .partial-<host>-<pid>-<token>[-<target name>]: a staged file, or a staging folder
_STAGING = re.compile(r"\.(partial|replaced)-([0-9a-f]{8})-([0-9]+)-([0-9a-z_]{8,12})(?:-(.+))?")
# the names of medviewer 0.x before the pid was in them: judged by age alone
_LEGACY_FILE = re.compile(r"\.(partial|replaced)-([0-9a-f]{12})-(.+)")
_LEGACY_FOLDER = re.compile(r"\.partial-([0-9a-z_]{8})")

Moves = Sequence[tuple[Path, Path]]


# -- names ------------------------------------------------------------------------------------


@functools.cache
def host_tag() -> str:
    """8 hex digits naming this machine (its name, hashed: nothing readable in file names)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def staging_prefix(kind: str = "partial") -> str:
    """How this process's hidden staging names start: ``.partial-<host>-<pid>-``.

    Parameters
    ----------
    kind : str
        ``"partial"`` (written, not yet in place) or ``"replaced"`` (an original set aside).
    """
    return f".{kind}-{host_tag()}-{os.getpid()}-"


def new_token() -> str:
    """A random token telling one run's staging names from another's (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def staging_name(name: str, token: str, kind: str = "partial") -> str:
    """The hidden name ``.<kind>-<host>-<pid>-<token>-<name>`` standing for the file `name`.

    It ends like `name`, so writers that go by the suffix pick the format.

    Parameters
    ----------
    name : str
        The target's file name.
    token : str
        The run's token (:func:`new_token`, or a :class:`StagingFolder`'s).
    kind : str
        ``"partial"`` or ``"replaced"`` (see :func:`staging_prefix`).
    """
    return f"{staging_prefix(kind)}{token}-{name}"


# -- moving into place ------------------------------------------------------------------------


def move_into_place(moves: Moves, token: str, replacing: Iterable[Path] = ()) -> list[Path]:
    """Rename each staged path onto its target, all or nothing.

    Existing targets, and the paths in `replacing` (others that must go), are first renamed
    aside (to ``.replaced-...`` names beside them); once every staged path is in place they are
    removed. When a rename fails, the paths moved in so far go back to their staged names and
    what was set aside is put back, so the folders are as they were.

    Parameters
    ----------
    moves : sequence of (staged, target) pairs
        In the order they are moved (the last one appears last).
    token : str
        The run's token, for the set-aside names.
    replacing : iterable of path
        Existing files or folders to take away with the move (e.g. an older copy under another
        name).

    Returns
    -------
    list of pathlib.Path
        The targets, in order.

    Raises
    ------
    OSError
        When a rename fails (after the rollback).
    """
    aside: list[tuple[Path, Path]] = []  # (original, where it was set aside)
    moved: list[tuple[Path, Path]] = []  # (staged, target), including the one being moved
    try:
        for original in replacing:
            aside.append((original, _set_aside(original, token)))
        for staged, target in moves:
            if os.path.lexists(target):
                aside.append((target, _set_aside(target, token)))
            moved.append((staged, target))
            os.replace(staged, target)
    except BaseException:
        _take_back(moved, aside)
        raise
    for _original, kept in aside:
        with contextlib.suppress(OSError):  # in place already; the next run removes it
            _remove(kept)
    return [target for _staged, target in moved]


def _set_aside(path: Path, token: str) -> Path:
    kept = path.with_name(staging_name(path.name, token, "replaced"))
    os.replace(path, kept)
    return kept


def _take_back(moved: list[tuple[Path, Path]], aside: list[tuple[Path, Path]]) -> None:
    """Undo :func:`move_into_place`: the new entries go back to their staged names, the
    entries set aside come back."""
    for staged, target in reversed(moved):
        if not os.path.lexists(staged) and os.path.lexists(target):  # it was moved in
            os.replace(target, staged)
    for original, kept in reversed(aside):
        os.replace(kept, original)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# -- staging folders --------------------------------------------------------------------------


class StagingFolder:
    """A hidden folder ``.partial-<host>-<pid>-<token>`` to write into, inside `parent`.

    Made at once (with `parent`, when missing), after what killed runs left in `parent` is
    removed (:func:`remove_stale_staging`); used as a context manager, it is removed with
    everything left in it on exit, whatever happened. What is written into it is moved out
    with :meth:`move_into_place`.

    Parameters
    ----------
    parent : path-like
        The folder the targets go into (same file system: the renames are atomic).

    Attributes
    ----------
    path : pathlib.Path
        The staging folder.
    token : str
        Its token, also used for the targets set aside.
    """

    def __init__(self, parent: str | os.PathLike[str]) -> None:
        parent = Path(parent)
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(parent)
        prefix = staging_prefix()
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self.token = self.path.name[len(prefix):]

    def __enter__(self) -> StagingFolder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def move_into_place(self, moves: Moves, replacing: Iterable[Path] = ()) -> list[Path]:
        """Move staged entries onto their targets, all or nothing (see :func:`move_into_place`).
        """
        return move_into_place(moves, self.token, replacing)

    def remove(self) -> None:
        """Remove the staging folder and whatever is left in it."""
        shutil.rmtree(self.path, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike[str], replace: bool = False) -> Iterator[Path]:
    """Build the folder `target` under a hidden name; it appears complete or not at all.

    Yields an empty folder named like `target` inside a :class:`StagingFolder` beside it. When
    the ``with`` block ends normally it is renamed onto `target`; when it raises, nothing is
    moved. Either way no staging is left.

    Parameters
    ----------
    target : path-like
        The folder to create.
    replace : bool
        Replace an existing `target` (put back if the new folder cannot be moved in).
        Otherwise `target` may exist only as an empty folder.

    Raises
    ------
    FileExistsError
        When `target` exists, is not an empty folder and `replace` is false (nothing is moved).
    """
    target = Path(target)
    with StagingFolder(target.parent) as staging:
        built = staging.path / target.name
        built.mkdir()
        yield built
        if not replace:
            _remove_empty_folder(target)
        staging.move_into_place([(built, target)])


@contextlib.contextmanager
def staged_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Write the file `target` under a hidden name; it appears complete or not at all.

    Yields a path beside `target` (``.partial-<host>-<pid>-<token>-<name>``, nothing there
    yet) for the caller to write. When the ``with`` block ends normally the file is renamed
    onto `target` (replacing it atomically); when the block raises, or wrote nothing, the
    staging file is removed and `target` is left as it was. Concurrent writers of the same
    target each stage under their own token; the last rename wins.

    Parameters
    ----------
    target : path-like
        The file to write.

    Raises
    ------
    FileNotFoundError
        When the block ends normally without having written the yielded path.
    """
    target = Path(target)
    staging = target.with_name(staging_name(target.name, new_token()))
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)


def _remove_empty_folder(target: Path) -> None:
    """Make way for a new folder where an empty one may stand; anything else is refused."""
    if not os.path.lexists(target):
        return
    if not target.is_dir() or target.is_symlink() or any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not empty")
    target.rmdir()  # fails, and moves nothing, if something was put into it meanwhile


# -- what killed runs left ------------------------------------------------------------------


def remove_stale_staging(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove from `folder` the staging files and folders that killed runs left behind.

    Only medviewer's own hidden staging names (see the module docstring) count, and only when
    the run that made them is gone: made on this machine (by its name) by a process that no
    longer runs, and unchanged for :data:`QUIET_BEFORE_REMOVAL_S` (the entry and everything
    inside it); or unchanged for :data:`STALE_AFTER_S` whoever made it. A process that runs
    protects its staging for that day. A set-aside original (``.replaced-...``) whose target
    is missing is put back instead (the run died before the new one was in place). Nothing
    else in the folder is touched, and a folder that cannot be read is left alone.

    Returns
    -------
    list of pathlib.Path
        The staging entries removed or put back.
    """
    try:
        entries = list(Path(folder).iterdir())
    except OSError:  # missing, not a folder, not readable: nothing of ours to clean
        return []
    cleaned = []
    for entry in entries:
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
            target = _stale_target(entry)
            if target is not None:
                _clear(entry, target)
                cleaned.append(entry)
    return cleaned


def _stale_target(entry: Path) -> str | None:
    """For a stale staging entry, the name of what it stands for ("" for a staging folder);
    None for anything else."""
    folder = entry.is_dir() and not entry.is_symlink()
    match = _STAGING.fullmatch(entry.name)
    if match is not None:
        target = match[5] or ""
        if not _is_ours(match[1], target, folder):
            return None
        quiet = _quiet_s(entry)
        gone = (quiet >= QUIET_BEFORE_REMOVAL_S and match[2] == host_tag()
                and not _process_runs(int(match[3])))
        return target if gone or quiet > STALE_AFTER_S else None
    legacy = _LEGACY_FILE.fullmatch(entry.name)
    if legacy is not None and not folder and _quiet_s(entry) > STALE_AFTER_S:
        return legacy[3]
    if _LEGACY_FOLDER.fullmatch(entry.name) and folder and _quiet_s(entry) > STALE_AFTER_S:
        return ""
    return None


def _is_ours(kind: str, target: str, folder: bool) -> bool:
    """Whether a staging name fits what medviewer makes under it: a staged file (named), a
    staging folder (no name) or a target set aside (named, a file or a folder)."""
    if not target:
        return folder and kind == "partial"
    return kind == "replaced" or not folder


def _clear(entry: Path, target: str) -> None:
    """Remove a stale staging entry; put a set-aside original back when its target is missing."""
    if entry.name.startswith(".replaced-"):
        original = entry.with_name(target)
        if not original.exists() and not original.is_symlink():
            os.replace(entry, original)
            return
    _remove(entry)


def _quiet_s(entry: Path) -> float:
    """Seconds since `entry`, or anything inside it when it is a folder (links not followed),
    last changed; negative when a modification time is in the future (another machine's
    clock)."""
    newest = entry.lstat().st_mtime
    if entry.is_dir() and not entry.is_symlink():
        for folder, dirs, names in os.walk(entry):
            for name in (*dirs, *names):
                with contextlib.suppress(OSError):  # gone meanwhile
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return time.time() - newest


def _process_runs(pid: int) -> bool:
    """False when no process `pid` runs on this machine; True when it may (Windows, where
    os.kill would end it, is not asked: there the age alone decides)."""
    if os.name != "posix":
        return True
    if pid <= 0:  # 0 and negative numbers name process groups, not a process
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True
