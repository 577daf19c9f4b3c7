"""All-or-nothing writing of a set of export files.

Every file is first written under a hidden temporary name beside its target; only when all of
them were written are they moved into place. A failure or a cancel before that removes the
temporary files and the folders the batch created, so an export leaves either every file or
none, and never a partial one. Existing files are not overwritten unless asked (checked
before anything is written, and again when moving into place); when they are replaced, they
are first set aside and put back if a later move fails.

The staging names, the moves and the removal of what killed runs left are
:mod:`medviewer.core.staging`'s: temporary files are ``.partial-<host>-<pid>-<token>-<name>``,
and a new batch first removes the stale staging in the folders it writes into
(:func:`~medviewer.core.staging.remove_stale_staging`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from medviewer.core.staging import move_into_place, new_token, remove_stale_staging, staging_name


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
        self._token = new_token()
        self._written: dict[Path, Path] = {}
        self._made_dirs: list[Path] = []

    def _check_existing(self) -> None:
        existing = [t for t in self.targets if t.exists()]
        if existing and not self.overwrite:
            raise ExportExistsError(existing)

    def temporary(self, target: str | os.PathLike[str]) -> Path:
        """The temporary path to write `target` to (its folder is created)."""
        target = Path(target)
        if target not in self.targets:
            raise ValueError(f"{target} is not one of this export's files")
        self._make_folder(target.parent)
        # hidden, and ending like the target so writers that go by suffix pick the format
        temp = target.with_name(staging_name(target.name, self._token))
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
            moves = [(temp, target) for target, temp in self._written.items()]
            moved = move_into_place(moves, self._token)
        except BaseException:
            self.abort()
            raise
        self._written.clear()
        self._made_dirs.clear()
        return moved

    def abort(self) -> None:
        """Remove every temporary file and the folders this batch made (if left empty)."""
        for temp in self._written.values():
            temp.unlink(missing_ok=True)
        self._written.clear()
        for folder in reversed(self._made_dirs):
            with contextlib.suppress(OSError):  # not empty: something else lives there now
                folder.rmdir()
        self._made_dirs.clear()
