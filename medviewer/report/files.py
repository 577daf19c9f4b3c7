"""All-or-nothing writing of a set of export files.

Every file is first written under a hidden temporary name beside its target; only when all of
them were written are they moved into place. A failure or a cancel before that removes the
temporary files and the folders the batch created, so an export leaves either every file or
none, and never a partial one. Existing files are not overwritten unless asked (checked
before anything is written, and again when moving into place); when they are replaced, they
are first set aside and put back if a later move fails.

Staging names are hidden and say who made them: ``.partial-<host>-<pid>-<token>-<name>``
(``.replaced-...`` for a file set aside; ``<host>``: 8 hex digits of the machine's name). A run
killed outright (``kill -9``, a power cut) cannot clean up after itself, so the next batch
writing into the same folder removes what such runs left there
(:func:`remove_stale_staging`), and only that: a dead run's staging is removed once it has not
changed for :data:`QUIET_BEFORE_REMOVAL_S`, anyone's after :data:`STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

#: Staging left this long ago is stale whoever made it: the pid may have been reused by
#: another process, or the run was on another machine writing into a shared folder.
STALE_AFTER_S = 24 * 3600
#: Staging whose pid no longer runs here is removed only when neither it nor anything inside it
#: (a staging folder) has changed for this long: machines of the same name (``localhost``)
#: writing into one shared folder have the same host tag, and a pid dead here may be a live
#: export there.
QUIET_BEFORE_REMOVAL_S = 10 * 60
# .partial-<host>-<pid>-<token>[-<target name>]: a batch's file, or a folder (medviewer infer)
_STAGING = re.compile(r"\.(partial|replaced)-([0-9a-f]{8})-([0-9]+)-([0-9a-z_]{8,12})(?:-(.+))?")
# the names of medviewer 0.x before the pid was in them: judged by age alone
_LEGACY_FILE = re.compile(r"\.(partial|replaced)-([0-9a-f]{12})-(.+)")
_LEGACY_FOLDER = re.compile(r"\.partial-([0-9a-z_]{8})")


class ExportExistsError(FileExistsError):
    """Some targets exist already and overwriting was not asked for."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = tuple(paths)
        names = ", ".join(str(p) for p in self.paths[:5])
        more = f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else ""
        super().__init__(f"not overwriting existing files: {names}{more}")


class FileBatch:
    """Temporary files moved onto their targets together (see the module docstring).

    Parameters
    ----------
    targets : iterable of path
        Every file the batch may write.
    overwrite : bool
        Replace existing targets; otherwise :class:`ExportExistsError` is raised at once.
    """

    def __init__(self, targets: Iterable[str | os.PathLike[str]], overwrite: bool = False):
        self.targets = [Path(t) for t in targets]
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("two exports would be written to the same file")
        folders = [t for t in self.targets if t.exists() and not t.is_file()]
        if folders:
            raise IsADirectoryError(f"{folders[0]} is a folder, not a file")
        self.overwrite = overwrite
        for folder in dict.fromkeys(t.parent for t in self.targets):
            remove_stale_staging(folder)
        self._check_existing()
        self._token = uuid.uuid4().hex[:12]
        self._written: dict[Path, Path] = {}
        self._made_dirs: list[Path] = []

    def _check_existing(self) -> None:
        existing = [t for t in self.targets if t.exists()]
        if existing and not self.overwrite:
            raise ExportExistsError(existing)

    def _hidden(self, target: Path, kind: str) -> Path:
        # hidden, and ending like the target so writers that go by suffix pick the format
        return target.with_name(f"{staging_prefix(kind)}{self._token}-{target.name}")

    def temporary(self, target: str | os.PathLike[str]) -> Path:
        """The temporary path to write `target` to (its folder is created)."""
        target = Path(target)
        if target not in self.targets:
            raise ValueError(f"{target} is not one of this export's files")
        self._make_folder(target.parent)
        temp = self._hidden(target, "partial")
        self._written[target] = temp
        return temp

    def _make_folder(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir(exist_ok=True)
            self._made_dirs.append(made)

    def write_bytes(self, target: str | os.PathLike[str], data: bytes) -> None:
        """Write `data` for `target` (into its temporary file)."""
        self.temporary(target).write_bytes(data)

    def commit(self) -> list[Path]:
        """Move every written temporary file onto its target; returns the targets.

        Raises
        ------
        RuntimeError
            When a target was never written (nothing is moved).
        ExportExistsError
            When a target appeared meanwhile and overwriting was not asked (nothing is moved).
        OSError
            When a move fails: the targets moved so far are taken back and replaced files put
            back, so the folder is as it was.
        """
        missing = [t for t in self.targets if t not in self._written]
        if missing:
            self.abort()
            raise RuntimeError(f"export incomplete, nothing written: {missing[0]} missing")
        try:
            self._check_existing()
            moved = self._move_all()
        except BaseException:
            self.abort()
            raise
        self._written.clear()
        self._made_dirs.clear()
        return moved

    def _move_all(self) -> list[Path]:
        moved: list[tuple[Path, Path | None]] = []  # (target, the file it replaced, set aside)
        try:
            for target, temp in self._written.items():
                kept = self._hidden(target, "replaced") if target.exists() else None
                if kept is not None:
                    os.replace(target, kept)
                moved.append((target, kept))
                os.replace(temp, target)
        except BaseException:
            _take_back(moved)
            raise
        for _target, kept in moved:
            if kept is not None:
                kept.unlink(missing_ok=True)
        return [target for target, _kept in moved]

    def abort(self) -> None:
        """Remove every temporary file and the folders this batch made (if left empty)."""
        for temp in self._written.values():
            temp.unlink(missing_ok=True)
        self._written.clear()
        for folder in reversed(self._made_dirs):
            with contextlib.suppress(OSError):  # not empty: something else lives there now
                folder.rmdir()
        self._made_dirs.clear()


def _take_back(moved: list[tuple[Path, Path | None]]) -> None:
    """Undo moves onto targets: the new file goes, the replaced one (if any) comes back."""
    for target, kept in reversed(moved):
        if target.exists() and target.is_file():
            target.unlink()
        if kept is not None:
            os.replace(kept, target)


def staging_prefix(kind: str = "partial") -> str:
    """How this process's hidden staging names start: ``.partial-<host>-<pid>-``.

    Parameters
    ----------
    kind : str
        ``"partial"`` (written, not yet in place) or ``"replaced"`` (an original set aside).
    """
    return f".{kind}-{_host_tag()}-{os.getpid()}-"


def remove_stale_staging(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove from `folder` the staging files and folders that killed runs left behind.

    Only medviewer's own hidden staging names (see the module docstring) count, and only when
    the run that made them is gone: made on this machine (by its name) by a process that no
    longer runs, and unchanged for :data:`QUIET_BEFORE_REMOVAL_S` (the entry and everything
    inside it); or unchanged for :data:`STALE_AFTER_S` whoever made it. A process that runs
    protects its staging for that day. A set-aside original (``.replaced-...``) whose file
    is missing is put back instead (the run died before the new file was in place). Nothing
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
    """For a stale staging entry, the name of the file it stands for ("" for a folder);
    None for anything else."""
    folder = entry.is_dir() and not entry.is_symlink()
    match = _STAGING.fullmatch(entry.name)
    if match is not None:
        target = match[5] or ""
        # a batch's file (partial or replaced) has a name; medviewer infer's folder has none
        ours = not folder if target else folder and match[1] == "partial"
        if not ours:
            return None
        quiet = _quiet_s(entry)
        gone = (quiet >= QUIET_BEFORE_REMOVAL_S and match[2] == _host_tag()
                and not _process_runs(int(match[3])))
        return target if gone or quiet > STALE_AFTER_S else None
    legacy = _LEGACY_FILE.fullmatch(entry.name)
    if legacy is not None and not folder and _quiet_s(entry) > STALE_AFTER_S:
        return legacy[3]
    if _LEGACY_FOLDER.fullmatch(entry.name) and folder and _quiet_s(entry) > STALE_AFTER_S:
        return ""
    return None


def _clear(entry: Path, target: str) -> None:
    """Remove a stale staging entry; put a set-aside original back when its file is missing."""
    if entry.name.startswith(".replaced-"):
        original = entry.with_name(target)
        if not original.exists() and not original.is_symlink():
            os.replace(entry, original)
            return
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


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


@functools.cache
def _host_tag() -> str:
    """8 hex digits naming this machine (its name, hashed: nothing readable in file names)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
