"""FileBatch: every file or none, existing files kept unless asked, nothing left behind."""

from __future__ import annotations

import os

import pytest

from medviewer.core import staging
from medviewer.report.files import ExportExistsError, FileBatch
from tests.core.test_staging import dead_pid, stale_layout


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


def test_a_new_batch_removes_only_what_dead_runs_left(tmp_path):
    dead = dead_pid()
    expected = stale_layout(tmp_path, dead)
    inner = tmp_path / "sub"
    inner.mkdir()
    (inner / f".partial-{staging.host_tag()}-{dead}-0123456789ab-z.pdf").write_bytes(b"x")
    batch = FileBatch([tmp_path / "new.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected["kept"] | {"sub"})
    assert (tmp_path / "b.txt").read_bytes() == b"half written"  # the set-aside original
    assert (tmp_path / "a.txt").read_text() == "new a"
    assert len(list(inner.iterdir())) == 1  # not a folder this batch writes into
    batch.write_bytes(tmp_path / "new.txt", b"n")
    batch.commit()
    assert (tmp_path / "new.txt").read_bytes() == b"n"


def test_staging_names_carry_the_machine_and_the_process(tmp_path):
    target = tmp_path / "a.txt"
    first = FileBatch([target])
    temp = first.temporary(target)
    assert temp.name.startswith(staging.staging_prefix()) and temp.name.endswith("-a.txt")
    assert f"-{os.getpid()}-" in temp.name and temp.name.startswith(".partial-")
    temp.write_bytes(b"first")
    FileBatch([tmp_path / "b.txt"])  # a second export into the folder, same live process
    assert temp.read_bytes() == b"first"
    assert first.commit() == [target]
    assert target.read_bytes() == b"first"
