"""Which device each worker trains on: GPU i mod G, --gpus, --workers-per-gpu, --device."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagetune.search import SearchError
from stagetune.search._cli import main
from stagetune.search._placement import parse_gpus, worker_count, worker_devices
from tests.search_tests.nothing_lost import studies


def test_workers_go_round_robin_over_the_visible_gpus() -> None:
    assert worker_devices(5, device_count=2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices(3, device="cuda", device_count=4) == ["cuda:0", "cuda:1", "cuda:2"]


def test_gpus_picks_the_gpus_and_workers_per_gpu_packs_them() -> None:
    assert worker_devices(3, gpus=(0, 2, 3), device_count=4) == ["cuda:0", "cuda:2", "cuda:3"]
    placement = {"gpus": (1, 3), "workers_per_gpu": 2, "device_count": 4}
    count = worker_count(None, **placement)
    assert count == 4
    assert sorted(worker_devices(count, **placement)) == ["cuda:1", "cuda:1", "cuda:3", "cuda:3"]
    assert worker_count(None, workers_per_gpu=3, device_count=2) == 6
    assert worker_count(None) == 1 and worker_count(5, workers_per_gpu=2, device_count=8) == 5


def test_an_explicit_device_puts_every_worker_there() -> None:
    assert worker_devices(2, device="cuda:1", device_count=2) == ["cuda:1", "cuda:1"]
    assert worker_devices(2, device="cpu", device_count=2) == ["cpu", "cpu"]


def test_without_a_gpu_workers_use_the_default_device() -> None:
    assert worker_devices(3, device_count=0) == [None, None, None]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpus": (0, 4), "device_count": 4}, "GPU 4 is not visible: this machine shows 4"),
        ({"gpus": (0,), "device_count": 0}, "No CUDA GPU is visible"),
        ({"workers_per_gpu": 1, "device_count": 0}, "No CUDA GPU is visible"),
        ({"device": "cuda", "device_count": 0}, "No CUDA GPU is visible"),
        ({"workers_per_gpu": 1, "device_count": 2}, "3 workers do not fit on 2 GPU"),
        ({"workers_per_gpu": 0, "device_count": 2}, "--workers-per-gpu must be >= 1"),
        ({"device": "cuda:1", "gpus": (0,), "device_count": 2}, "drop it to spread"),
    ],
)
def test_impossible_placements_name_the_problem(options: dict, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        worker_devices(3, **options)


@pytest.mark.parametrize("text", ["", "a", "0,0", "-1", "1,,2"])
def test_bad_gpu_lists_are_refused(text: str) -> None:
    with pytest.raises(SearchError, match="--gpus must be distinct GPU indices"):
        parse_gpus(text)


def test_gpus_on_a_machine_without_one_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = main(["run", "--storage", str(tmp_path / "s.db"), "--gpus", "0", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("stagetune: error: No CUDA GPU is visible") and err.count("\n") == 1


def test_each_trial_records_its_workers_device(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    argv = ["run", "--storage", url, "--name", "d", "--trials", "2", "--epochs", "2"]
    assert main([*argv, "--quiet", "--workers", "2", "--device", "cpu", "--threads", "1"]) == 0
    for study in studies(url, "d").values():
        assert {t.user_attrs["device"] for t in study.trials} == {"cpu"}
