"""Bad input from the command line: one line on stderr that says what to do, exit code 2,
no traceback, and nothing written (no database, lock, table or report file)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from stagetune.search._cli import main

#: Quick settings for a run that should fail before it trains.
RUN = ["--trials", "1", "--epochs", "1", "--quiet"]


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file under the directory with a hash of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def fails_cleanly(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    directory: Path,
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
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory (the default storage, stagetune.db, would land here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("tpu", "Unknown device 'tpu'; choose one of "),
        ("cuda:x", "Unknown device 'cuda:x'; choose one of "),
        ("meta", "Device 'meta' cannot train a model here"),
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
