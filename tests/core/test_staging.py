"""core.staging: staged writes appear whole or not at all, with real files in tmp_path; what
killed runs left is recognised and removed by the next run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.core import staging
from medviewer.core.staging import StagingFolder, move_into_place, staged_file, staged_folder


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def failing_replace(monkeypatch: pytest.MonkeyPatch, onto: Path) -> None:
    """Make os.replace fail when it moves a staged entry onto `onto`."""
    real = os.replace

    def replace(src, dst):
        if str(dst) == str(onto) and ".partial-" in str(src):
            raise OSError("disk went away")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


# -- staged folders ---------------------------------------------------------------------------


def test_a_staged_folder_appears_whole(tmp_path: Path) -> None:
    target = tmp_path / "parent" / "out"
    with staged_folder(target) as built:
        assert built.name == "out" and built.parent.parent == target.parent
        assert built.parent.name.startswith(staging.staging_prefix())
        (built / "sub").mkdir()
        (built / "sub" / "a.txt").write_text("a")
        assert not target.exists()
    assert listing(tmp_path / "parent") == ["out", "out/sub", "out/sub/a.txt"]


def test_a_failure_midway_leaves_no_target_and_no_staging(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("kept")
    with pytest.raises(RuntimeError, match="injected"), staged_folder(tmp_path / "out") as built:
        (built / "a.txt").write_text("half")
        raise RuntimeError("injected")
    assert listing(tmp_path) == ["mine.txt"]


def test_an_empty_folder_is_filled_and_a_full_one_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with staged_folder(tmp_path / "empty") as built:
        (built / "a.txt").write_text("new")
    assert listing(tmp_path / "empty") == ["a.txt"]
    refused = pytest.raises(FileExistsError, match="exists and is not empty")
    with refused, staged_folder(tmp_path / "empty") as built:
        (built / "b.txt").write_text("other")
    assert listing(tmp_path) == ["empty", "empty/a.txt"]


def test_an_existing_folder_is_replaced_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staged_folder(target, replace=True) as built:
        (built / "new.txt").write_text("new")
    assert listing(tmp_path) == ["out", "out/new.txt"]


def test_a_replaced_folder_comes_back_when_the_new_one_cannot_move_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    failing_replace(monkeypatch, target)
    failed = pytest.raises(OSError, match="disk went away")
    with failed, staged_folder(target, replace=True) as built:
        (built / "new.txt").write_text("new")
    assert listing(tmp_path) == ["out", "out/old.txt"]


# -- moving staged entries into place -------------------------------------------------------------


def test_staging_folder_moves_its_files_and_folders_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("old b")
    with StagingFolder(tmp_path) as folder:
        (folder.path / "a.txt").write_text("a")
        (folder.path / "b.txt").write_text("new b")
        (folder.path / "model").mkdir()
        names = ["model", "b.txt", "a.txt"]
        moved = folder.move_into_place([(folder.path / n, tmp_path / n) for n in names])
    assert moved == [tmp_path / n for n in names]
    assert listing(tmp_path) == ["a.txt", "b.txt", "model"]
    assert (tmp_path / "b.txt").read_text() == "new b"


def test_a_failed_move_takes_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, other = tmp_path / "a.txt", tmp_path / "b", tmp_path / "c"
    first.write_text("old a")
    second.mkdir()
    (second / "inside.txt").write_text("old b")
    other.mkdir()  # an older copy under another name, to go with the move
    with StagingFolder(tmp_path) as folder:
        (folder.path / "a.txt").write_text("new a")
        (folder.path / "b").mkdir()
        failing_replace(monkeypatch, second)
        with pytest.raises(OSError, match="disk went away"):
            folder.move_into_place([(folder.path / "a.txt", first), (folder.path / "b", second)],
                                   replacing=[other])
        assert sorted(p.name for p in folder.path.iterdir()) == ["a.txt", "b"]  # moved back
    assert listing(tmp_path) == ["a.txt", "b", "b/inside.txt", "c"]
    assert first.read_text() == "old a"


def test_replaced_entries_are_removed_once_all_are_in_place(tmp_path: Path) -> None:
    (tmp_path / "old-name").mkdir()
    (tmp_path / "old-name" / "x").write_text("x")
    (tmp_path / "a.txt").write_text("old")
    staged = tmp_path / staging.staging_name("a.txt", "0123456789ab")
    staged.write_text("new")
    assert move_into_place([(staged, tmp_path / "a.txt")], "0123456789ab",
                           replacing=[tmp_path / "old-name"]) == [tmp_path / "a.txt"]
    assert listing(tmp_path) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "new"


def test_a_staging_folder_is_named_for_the_stale_cleanup(tmp_path: Path) -> None:
    folder = StagingFolder(tmp_path / "new")
    name = folder.path.name
    assert name == f"{staging.staging_prefix()}{folder.token}" and folder.path.is_dir()
    assert staging._stale_target(folder.path) is None  # this process runs
    folder.remove()
    assert listing(tmp_path) == ["new"]


# -- what killed runs leave behind ----------------------------------------------------------


DAY_S = 24 * 3600
QUIET_S = 20 * 60  # past staging.QUIET_BEFORE_REMOVAL_S, well within the day


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
    host = staging.host_tag()
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


def test_remove_stale_staging_says_what_it_removed(tmp_path):
    dead = dead_pid()
    expected = stale_layout(tmp_path, dead)
    removed = staging.remove_stale_staging(tmp_path)
    put_back = f".replaced-{staging.host_tag()}-{dead}-0123456789ab-b.txt"
    assert sorted(p.name for p in removed) == sorted(expected["gone"] | {put_back})
    assert staging.remove_stale_staging(tmp_path) == []  # nothing stale is left
    assert staging.remove_stale_staging(tmp_path / "missing") == []


def test_a_dead_pids_staging_is_kept_until_it_has_been_quiet_for_a_while(tmp_path):
    dead, host = dead_pid(), staging.host_tag()
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
    assert staging.remove_stale_staging(tmp_path) == []
    age(file, 5 * 60)
    age(aside, 5 * 60)
    assert staging.remove_stale_staging(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([file.name, folder.name,
                                                                 aside.name])
    for entry in (file, folder, aside):
        age(entry, QUIET_S)
    assert sorted(staging.remove_stale_staging(tmp_path)) == sorted([file, folder, aside])
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]
    assert original.read_bytes() == b"original b"


def test_a_folder_set_aside_by_a_killed_run_is_put_back_or_removed(tmp_path: Path) -> None:
    dead, host = dead_pid(), staging.host_tag()
    missing = tmp_path / f".replaced-{host}-{dead}-0123456789ab-liver"  # liver is missing
    present = tmp_path / f".replaced-{host}-{dead}-0123456789ab-lung"  # lung is in place
    for aside in (missing, present):
        aside.mkdir()
        (aside / "model.json").write_text("old")
    (tmp_path / "lung").mkdir()
    for aside in (missing, present):
        age(aside, QUIET_S)
    assert sorted(staging.remove_stale_staging(tmp_path)) == sorted([missing, present])
    assert listing(tmp_path) == ["liver", "liver/model.json", "lung"]


# -- staged_file ------------------------------------------------------------------------------


def test_staged_file_appears_complete_and_replaces_the_old(tmp_path: Path) -> None:
    target = tmp_path / "shot.png"
    target.write_bytes(b"old")
    with staged_file(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".partial-")
        assert staging.name.endswith("-shot.png")  # writers that go by the suffix still can
        staging.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not in place before the block ends
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.png"]


def test_a_failed_staged_file_leaves_the_target_and_no_staging(tmp_path: Path) -> None:
    target = tmp_path / "card.json"
    target.write_text("{}")
    with pytest.raises(RuntimeError, match="disk full"), staged_file(target) as staging:
        staging.write_text('{"half": ')
        raise RuntimeError("disk full")
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_a_staged_file_never_written_is_an_error_and_moves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), staged_file(tmp_path / "out.bin"):
        pass
    assert list(tmp_path.iterdir()) == []
