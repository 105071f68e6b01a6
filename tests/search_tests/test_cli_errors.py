"""Bad input from the command line: one line on stderr that says what to do, exit code 2,
no traceback, and nothing written (no database, lock, table or report file).

Each case runs ``stagetune`` in a scratch working directory that holds files of every
wrong kind and a copy of a finished search (``search.db``, search ``browse``), and checks
that every file there is byte for byte what it was."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagetune.search._cli import main
from tests.search_tests.conftest import SmallSearch

#: Quick settings for a run that must fail before it trains.
RUN = ["--trials", "1", "--epochs", "1", "--quiet"]


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file under the directory with a hash of its bytes.

    SQLite opens a WAL-mode database (search.db) for reading by creating its ``-shm``
    index and an empty ``-wal``: those are not writes; a ``-wal`` with content is.
    """
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and not p.name.endswith("-shm")
        and not (p.name.endswith("-wal") and p.stat().st_size == 0)
    }


def fails_cleanly(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], directory: Path
) -> str:
    """Run the CLI in ``directory``; it must exit 2 with one line holding ``message``
    and leave every file there as it was."""
    before = _snapshot(directory)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith("stagetune"), err
    assert "Traceback" not in err
    assert message in err, err
    assert _snapshot(directory) == before, "a failed command wrote files"
    return err


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_search: SmallSearch) -> Path:
    """A scratch working directory with files of every wrong kind and a finished search."""
    monkeypatch.chdir(tmp_path)
    # A consistent copy (the search's file is in WAL mode: its -wal may hold commits).
    source = sqlite3.connect(small_search.url.removeprefix("sqlite:///"))
    copy = sqlite3.connect(tmp_path / "search.db")
    source.backup(copy)
    copy.close()
    source.close()
    (tmp_path / "search.db-lock").touch()  # as `stagetune run` leaves it beside its database
    (tmp_path / "bad.db").write_text("this is not a database\n")
    (tmp_path / "afile").write_text("a file, not a directory\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir.csv").mkdir()
    (tmp_path / "notoml.toml").write_bytes(b"\x00\x01 = = garbage\n")
    (tmp_path / "badkey.toml").write_text('profile = "mlp"\nfoo = 1\n')
    (tmp_path / "raises.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "syntax.py").write_text("def (:\n")
    (tmp_path / "missdep.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "callfail.py").write_text("def task():\n    return 1 / 0\n")
    (tmp_path / "notask.py").write_text("task = 42\n")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE invoices (id INTEGER)")
    other.commit()
    other.close()
    return tmp_path


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int]]:
    """A loopback port nobody listens on, and one that accepts and never answers."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    yield refused, silent.getsockname()[1]
    silent.close()


# -- the cases ----------------------------------------------------------------


def test_a_name_with_a_slash(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails_cleanly(["run", "--name", "a/b", *RUN], "Invalid search name 'a/b'", capsys, here)
    assert "choose another --name, e.g. 'a-b'" in err


def test_a_file_that_is_not_a_database(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for storage in ("sqlite:///bad.db", "bad.db"):
        err = fails_cleanly(
            ["run", "--storage", storage, *RUN], "'bad.db' is not a SQLite database", capsys, here
        )
        assert "pass --storage with the database the search used" in err
    for command in (["status"], ["report"], ["export"], ["dashboard", "--port", "0"]):
        fails_cleanly(
            [*command, "--storage", "bad.db"], "'bad.db' is not a SQLite database", capsys, here
        )


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("tpu", "Unknown device 'tpu'; choose one of "),
        ("cuda:x", "Unknown device 'cuda:x'; choose one of "),
        ("", "Unknown device ''; choose one of "),
        ("meta", "Device 'meta' cannot train a model here"),
        ("cpu:3", "the CPU takes no index; use 'cpu'"),
        ("cuda:99", "Device 'cuda:99' "),
    ],
)
def test_bad_devices(
    device: str, message: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails_cleanly(["run", "--device", device, *RUN], message, capsys, here)


def test_cuda_on_a_machine_without_cuda(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    err = fails_cleanly(["run", "--device", "cuda:7", *RUN], "needs CUDA, but", capsys, here)
    assert "choose one of cpu" in err


# -- run: values, files of the wrong kind, missing files, servers -------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", ""], "Invalid search name ''"),
        (["--seed", "-1"], "seed must be an integer from 0 to "),
        (["--seed", str(2**40)], "seed must be an integer from 0 to "),
        (["--epochs", "0"], "epochs must be a positive integer, but got 0"),
        (["--trials", "0"], "--trials must be >= 1, but got 0"),
        (["--workers", "0"], "--workers must be >= 1, but got 0"),
        (["--threads", "0"], "--threads must be >= 1, but got 0"),
        (["--workers", "100000"], "100000 workers are more than this search can use"),
        (["--profile", "nope"], "Unknown profile 'nope'; available: "),
        (["--config", "missing.toml"], "Cannot read plan file 'missing.toml'"),
        (["--config", "adir"], "Cannot read plan file 'adir'"),
        (["--config", "notoml.toml"], "notoml.toml: not a valid TOML file"),
        (["--config", "bad.db"], "bad.db: not a valid TOML file"),
        (["--config", "badkey.toml"], "badkey.toml: foo: unknown key; allowed: "),
    ],
)
def test_run_with_wrong_values(
    argv: list[str], message: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails_cleanly(["run", *RUN, *argv], message, capsys, here)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("nope", "Unknown task 'nope'; available: "),
        ("adir", "Unknown task 'adir'"),
        ("missing.py:task", "No file "),
        ("nomodule_xyz:task", "Cannot import module 'nomodule_xyz'"),
        ("notask.py:task", "must be a stagetune.objectives.Task or a function"),
        ("os:path", "must be a stagetune.objectives.Task or a function"),
        ("raises.py:task", "failed: RuntimeError: boom at import ("),
        ("raises:task", "Importing 'raises' for task 'raises:task' failed: RuntimeError"),
        ("syntax.py:task", "failed: SyntaxError: invalid syntax ("),
        ("missdep.py:task", "No module named 'no_such_dependency_xyz'"),
        ("callfail.py:task", "Calling 'callfail.py:task' to build the task failed"),
    ],
)
def test_run_with_bad_tasks(
    task: str, message: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = fails_cleanly(["run", "--task", task, *RUN], message, capsys, here)
    if "failed:" in message:  # the user's own code: the file and line, and what to do
        assert ".py, line " in err and "then run again" in err


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("missing/x.db", "the directory 'missing' does not exist"),
        ("afile/x.db", "'afile' is not a directory"),
        ("sqlite:///adir", "'adir' as the search database: it is a directory"),
        ("adir", "Invalid storage URL 'adir'"),
        ("not a url", "Invalid storage URL 'not a url'"),
        ("foo://x", "Unknown database in storage URL 'foo://x'"),
        ("mysql://u@127.0.0.1/x", "The database driver for 'mysql://u@127.0.0.1/x' is not"),
        ("${STAGETUNE_TEST_UNSET_VAR}", "names the environment variable STAGETUNE_TEST_UNSET_VAR"),
        ("sqlite:///x.db?timeout=abc", "Invalid timeout='abc' in the storage URL"),
        ("other.db", "'other.db' is a SQLite database of something else (tables: invoices)"),
        ("sqlite://", "An in-memory SQLite database ('sqlite://') cannot hold a search"),
        ("sqlite:///:memory:", "An in-memory SQLite database"),
    ],
)
def test_run_with_bad_storages(
    storage: str, message: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails_cleanly(["run", "--storage", storage, *RUN], message, capsys, here)


def test_unreachable_database_servers(
    ports: tuple[int, int], here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused, silent = ports
    fix = "check that the database server runs and is reachable"
    for command in (["run", *RUN], ["status"]):
        url = f"postgresql://u@127.0.0.1:{refused}/x"
        err = fails_cleanly([*command, "--storage", url], "Connection refused", capsys, here)
        assert fix in err
    # A server that takes the connection and never answers: libpq would wait forever.
    url = f"postgresql://u@127.0.0.1:{silent}/x?connect_timeout=1"
    err = fails_cleanly(["status", "--storage", url], "timeout expired", capsys, here)
    assert fix in err


def test_resuming_with_another_plan_changes_nothing(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails_cleanly(
        ["run", "--storage", "search.db", "--name", "browse", "--trials", "2", "--quiet"],
        "Search 'browse' exists in this storage with another plan",
        capsys,
        here,
    )


# -- the read-only commands -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status"], "No search database at 'stagetune.db'"),
        (["status", "--storage", "other.db"], "holds no Optuna studies (no Optuna tables)"),
        (["status", "--storage", "search.db", "--name", "nope"], "No search named 'nope'"),
        (["status", "--storage", "search.db", "--name", "a/b"], "Invalid search name 'a/b'"),
        (["report", "--storage", "search.db", "--name", "nope"], "No search named 'nope'"),
        (
            ["report", "--storage", "search.db", "--name", "browse", "--out", "afile"],
            "Cannot write the report into 'afile': it is a file, not a directory",
        ),
        (
            ["report", "--storage", "search.db", "--name", "browse", "--out", "/proc/nope"],
            "Cannot write the report into '/proc/nope'",
        ),
        (["export", "--storage", "search.db", "--name", "nope"], "No search named 'nope'"),
        (
            ["export", "--storage", "search.db", "--name", "browse", "--out", "x.xlsx"],
            "the file must end in one of ('.csv', '.parquet')",
        ),
        (
            ["export", "--storage", "search.db", "--name", "browse", "--out", "missing/x.csv"],
            "the directory 'missing' does not exist",
        ),
        (
            ["export", "--storage", "search.db", "--name", "browse", "--out", "adir.csv"],
            "Cannot export to 'adir.csv': it is a directory",
        ),
        (
            ["export", "--storage", "search.db", "--name", "browse", "--out", "/proc/x.csv"],
            "Cannot export to '/proc/x.csv'",
        ),
        (["dashboard", "--storage", "search.db", "--port", "70000"], "--port must be in 0..65535"),
        (["profiles", "nope"], "Unknown profile 'nope'"),
    ],
)
def test_read_only_commands(
    argv: list[str], message: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails_cleanly(argv, message, capsys, here)


# -- arguments argparse refuses: one line too, naming the subcommand's --help -------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--trials", "abc"], "stagetune run: error: argument --trials: invalid int"),
        (["dashboard", "--port", "x"], "stagetune dashboard: error: argument --port: invalid"),
        (["run", "--bogus"], "stagetune run: error: unrecognized arguments: --bogus"),
        (["tasks", "extra"], "stagetune tasks: error: unrecognized arguments: extra"),
        (["nocommand"], "stagetune: error: argument COMMAND: invalid choice: 'nocommand'"),
        ([], "stagetune: error: the following arguments are required: COMMAND"),
        (["run", "--profile", "mlp", "--config", "x.toml"], "not allowed with argument"),
    ],
)
def test_arguments_argparse_refuses(
    argv: list[str], message: str, here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(here)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and message in err, err
    assert err.rstrip().endswith("--help`."), err
    assert _snapshot(here) == before
