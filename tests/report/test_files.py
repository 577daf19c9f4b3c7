"""FileBatch: every file or none, existing files kept unless asked, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medviewer.report import files
from medviewer.report.files import ExportExistsError, FileBatch


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_commit_moves_every_file_into_place(tmp_path):
    targets = [tmp_path / "a.txt", tmp_path / "sub" / "deep" / "b.nii.gz"]
    batch = FileBatch(targets)
    batch.write_bytes(targets[0], b"A")
    temp = batch.temporary(targets[1])
    assert temp.name.endswith(".nii.gz") and temp.name.startswith(".")  # format by suffix
    temp.write_bytes(b"B")
    assert batch.commit() == targets
    assert listing(tmp_path) == ["a.txt", "sub", "sub/deep", "sub/deep/b.nii.gz"]
    assert targets[1].read_bytes() == b"B"


def test_abort_removes_temporary_files_and_the_folders_it_made(tmp_path):
    (tmp_path / "kept").mkdir()
    targets = [tmp_path / "kept" / "a.txt", tmp_path / "new" / "deeper" / "b.txt"]
    batch = FileBatch(targets)
    for target in targets:
        batch.write_bytes(target, b"x")
    batch.abort()
    assert listing(tmp_path) == ["kept"]


def test_a_missing_file_commits_nothing(tmp_path):
    targets = [tmp_path / "a.txt", tmp_path / "b.txt"]
    batch = FileBatch(targets)
    batch.write_bytes(targets[0], b"x")
    with pytest.raises(RuntimeError, match=r"b\.txt missing"):
        batch.commit()
    assert listing(tmp_path) == []


def test_existing_files_are_refused_at_start_and_at_commit(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(ExportExistsError):
        FileBatch([target])
    other = tmp_path / "b.txt"
    batch = FileBatch([other])
    batch.write_bytes(other, b"new")
    other.write_text("appeared meanwhile")
    with pytest.raises(ExportExistsError):
        batch.commit()
    assert other.read_text() == "appeared meanwhile"
    assert listing(tmp_path) == ["a.txt", "b.txt"]


def test_a_failed_move_puts_replaced_files_back(tmp_path, monkeypatch):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("old a")
    second.write_text("old b")
    batch = FileBatch([first, second], overwrite=True)
    batch.write_bytes(first, b"new a")
    batch.write_bytes(second, b"new b")
    real = os.replace

    def failing(src, dst):
        if str(dst) == str(second) and ".partial-" in str(src):
            raise OSError("disk went away")
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk went away"):
        batch.commit()
    assert (first.read_text(), second.read_text()) == ("old a", "old b")
    assert listing(tmp_path) == ["a.txt", "b.txt"]


def test_a_folder_in_the_way_is_refused(tmp_path):
    (tmp_path / "report.pdf").mkdir()
    with pytest.raises(IsADirectoryError):
        FileBatch([tmp_path / "report.pdf"], overwrite=True)


# -- what killed runs leave behind ---------------------------------------------------------

DAY_S = 24 * 3600
QUIET_S = 20 * 60  # past files.QUIET_BEFORE_REMOVAL_S, well within the day


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def age(path, seconds: float, inside: bool = True) -> None:
    """Make `path` and (unless not `inside`) everything inside it look `seconds` old (their
    modification times, not the clock, are what counts)."""
    for inner in sorted(path.rglob("*"), reverse=True) if path.is_dir() and inside else ():
        age(inner, seconds)
    stamp = path.lstat().st_mtime - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def stale_layout(folder, dead: int) -> dict[str, set[str]]:
    """Staging entries as killed, live, foreign and legacy runs leave them, and unrelated
    hidden files; returns the names that must go and those that must stay."""
    host = files._host_tag()
    other = "0" * 8 if host != "0" * 8 else "f" * 8
    token = "0123456789ab"
    folder.mkdir(exist_ok=True)

    def make(name: str, kind: str = "file", old: bool = False, quiet: bool = False) -> str:
        path = folder / name
        if kind == "folder":
            path.mkdir()
            (path / "labels.nii.gz").write_bytes(b"half written")
        else:
            path.write_bytes(b"half written")
        if old or quiet:
            age(path, 2 * DAY_S if old else QUIET_S)
        return name

    # a dead run's staging goes once it has not changed for a while
    gone = {
        make(f".partial-{host}-{dead}-{token}-report.pdf", quiet=True),  # killed run, here
        make(f".partial-{host}-{dead}-k3j_x9z0", "folder", quiet=True),  # killed infer
        # a.txt is in place: the old copy goes
        make(f".replaced-{host}-{dead}-{token}-a.txt", quiet=True),
        make(f".partial-{other}-{dead}-{token}-e.pdf", old=True),  # another machine, a day old
        make(f".partial-{host}-{os.getpid()}-{token}-f.pdf", old=True),  # pid reused since
        make(f".partial-{token}-g.pdf", old=True),  # before pids were in the names
        make(".partial-abcd_123", "folder", old=True),
    }
    (folder / "a.txt").write_text("new a")
    make(f".replaced-{host}-{dead}-{token}-b.txt", quiet=True)  # b.txt missing: put back
    writing = make(f".partial-{host}-{dead}-w_r1t1ng0", "folder", quiet=True)
    (folder / writing / "heatmap.nii.gz").write_bytes(b"just written")
    age(folder / writing, QUIET_S, inside=False)  # the folder itself looks quiet
    kept = {
        "a.txt", "b.txt",
        # a dead pid here, but changed just now: maybe a live run on a machine of this name
        make(f".partial-{host}-{dead}-{token}-fresh.pdf"),
        make(f".replaced-{host}-{dead}-{token}-fresh.txt"),  # not put back either
        writing,  # a quiet folder, with a file written into it just now
        make(f".partial-{host}-{os.getpid()}-{token}-c.pdf"),  # a live run (this test)
        make(f".partial-{other}-{dead}-{token}-d.pdf"),  # another machine, recent
        make(f".partial-{token}-h.pdf"),  # legacy, recent
        make(".partial-notes.txt", old=True),  # not a staging name
        make(".hidden-settings", old=True),
        make(f".partial-{host}-{dead}-{token}", old=True),  # a file where a folder would be
        make(f".partial-{host}-{dead}-{token}-x.pdf", "folder", old=True),  # a folder, named
        make("report.pdf", old=True),
    }
    return {"gone": gone, "kept": kept}


def test_a_new_batch_removes_only_what_dead_runs_left(tmp_path):
    dead = dead_pid()
    expected = stale_layout(tmp_path, dead)
    inner = tmp_path / "sub"
    inner.mkdir()
    (inner / f".partial-{files._host_tag()}-{dead}-0123456789ab-z.pdf").write_bytes(b"x")
    batch = FileBatch([tmp_path / "new.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected["kept"] | {"sub"})
    assert (tmp_path / "b.txt").read_bytes() == b"half written"  # the set-aside original
    assert (tmp_path / "a.txt").read_text() == "new a"
    assert len(list(inner.iterdir())) == 1  # not a folder this batch writes into
    batch.write_bytes(tmp_path / "new.txt", b"n")
    batch.commit()
    assert (tmp_path / "new.txt").read_bytes() == b"n"


def test_remove_stale_staging_says_what_it_removed(tmp_path):
    dead = dead_pid()
    expected = stale_layout(tmp_path, dead)
    removed = files.remove_stale_staging(tmp_path)
    put_back = f".replaced-{files._host_tag()}-{dead}-0123456789ab-b.txt"
    assert sorted(p.name for p in removed) == sorted(expected["gone"] | {put_back})
    assert files.remove_stale_staging(tmp_path) == []  # nothing stale is left
    assert files.remove_stale_staging(tmp_path / "missing") == []


def test_staging_names_carry_the_machine_and_the_process(tmp_path):
    target = tmp_path / "a.txt"
    first = FileBatch([target])
    temp = first.temporary(target)
    assert temp.name.startswith(files.staging_prefix()) and temp.name.endswith("-a.txt")
    assert f"-{os.getpid()}-" in temp.name and temp.name.startswith(".partial-")
    temp.write_bytes(b"first")
    FileBatch([tmp_path / "b.txt"])  # a second export into the folder, same live process
    assert temp.read_bytes() == b"first"
    assert first.commit() == [target]
    assert target.read_bytes() == b"first"


def test_a_dead_pids_staging_is_kept_until_it_has_been_quiet_for_a_while(tmp_path):
    dead, host = dead_pid(), files._host_tag()
    file = tmp_path / f".partial-{host}-{dead}-0123456789ab-report.pdf"
    file.write_bytes(b"being written on another machine named like this one")
    folder = tmp_path / f".partial-{host}-{dead}-k3j_x9z0"
    folder.mkdir()
    (folder / "labels.nii.gz").write_bytes(b"old")
    age(folder, QUIET_S)
    (folder / "heatmap.nii.gz").write_bytes(b"new")  # a change inside: the run is alive
    age(folder, QUIET_S, inside=False)  # the folder's own time says nothing changed
    original = tmp_path / "b.txt"  # missing: a set-aside original would be put back
    aside = tmp_path / f".replaced-{host}-{dead}-0123456789ab-b.txt"
    aside.write_bytes(b"original b")
    assert files.remove_stale_staging(tmp_path) == []
    age(file, 5 * 60)
    age(aside, 5 * 60)
    assert files.remove_stale_staging(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([file.name, folder.name,
                                                                 aside.name])
    for entry in (file, folder, aside):
        age(entry, QUIET_S)
    assert sorted(files.remove_stale_staging(tmp_path)) == sorted([file, folder, aside])
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]
    assert original.read_bytes() == b"original b"
