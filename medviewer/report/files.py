"""All-or-nothing writing of a set of export files.

Every file is first written under a hidden temporary name beside its target; only when all of
them were written are they renamed into place. A failure (or a cancel) removes the temporary
files, so an export leaves either every file or none, and never a partial one. Existing files
are not overwritten unless asked, and that is checked before anything is written.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path


class ExportExistsError(FileExistsError):
    """Some targets exist already and overwriting was not asked for."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = tuple(paths)
        names = ", ".join(str(p) for p in self.paths[:5])
        more = f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else ""
        super().__init__(f"not overwriting existing files: {names}{more}")


class FileBatch:
    """Temporary files renamed onto their targets together (see the module docstring).

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
        existing = [t for t in self.targets if t.exists()]
        if existing and not overwrite:
            raise ExportExistsError(existing)
        self._token = uuid.uuid4().hex[:12]
        self._written: dict[Path, Path] = {}

    def temporary(self, target: str | os.PathLike[str]) -> Path:
        """The temporary path to write `target` to (its folder is created)."""
        target = Path(target)
        if target not in self.targets:
            raise ValueError(f"{target} is not one of this export's files")
        target.parent.mkdir(parents=True, exist_ok=True)
        # hidden, and ending like the target so writers that go by suffix pick the format
        temp = target.with_name(f".partial-{self._token}-{target.name}")
        self._written[target] = temp
        return temp

    def write_bytes(self, target: str | os.PathLike[str], data: bytes) -> None:
        """Write `data` for `target` (into its temporary file)."""
        self.temporary(target).write_bytes(data)

    def commit(self) -> list[Path]:
        """Rename every written temporary file onto its target; returns the targets."""
        missing = [t for t in self.targets if t not in self._written]
        if missing:
            self.abort()
            raise RuntimeError(f"export incomplete, nothing written: {missing[0]} missing")
        for target, temp in self._written.items():
            os.replace(temp, target)
        done = list(self._written)
        self._written.clear()
        return done

    def abort(self) -> None:
        """Remove every temporary file (targets are left as they were)."""
        for temp in self._written.values():
            temp.unlink(missing_ok=True)
        self._written.clear()
