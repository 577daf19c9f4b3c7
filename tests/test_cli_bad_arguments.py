"""Bad arguments give one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import pytest

from medviewer.cli import main


@pytest.mark.parametrize("command", ["info", "screenshot"])
@pytest.mark.parametrize("number", ["99999999999999999999", str(2**63)])
def test_a_series_id_beyond_the_database_range_is_a_usage_error(
    command: str, number: str, tmp_path, capsys: pytest.CaptureFixture
) -> None:
    extra = ["--out", str(tmp_path / "x.png")] if command == "screenshot" else []
    status = main([command, number, "--db", str(tmp_path / "db.sqlite"), *extra])
    assert status == 2
    err = capsys.readouterr().err
    assert err == f"medviewer: error: no such file, folder or series id: {number}\n"
    assert not (tmp_path / "x.png").exists()


def test_the_largest_series_id_is_looked_up_and_not_found(tmp_path, capsys) -> None:
    number = str(2**63 - 1)
    status = main(["info", number, "--db", str(tmp_path / "db.sqlite")])
    assert status == 1
    err = capsys.readouterr().err
    assert err == f"medviewer: no series with id {number} in {tmp_path / 'db.sqlite'}\n"
