"""Device strings are checked against the machine before anything trains."""

from __future__ import annotations

import re

import pytest
import torch

from stagetune.objectives import (
    DeviceError,
    available_devices,
    cuda_device_count,
    resolve_device,
)


def test_cpu_and_the_default() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert available_devices()[-1] == "cpu"
    assert len([d for d in available_devices() if d.startswith("cuda:")]) == cuda_device_count()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "", "  ", "gpu0"])
def test_unknown_devices_name_the_ones_this_machine_has(device: str) -> None:
    with pytest.raises(DeviceError, match=r"Unknown device .*; choose one of .*cpu"):
        resolve_device(device)


def test_unknown_types() -> None:
    with pytest.raises(DeviceError, match="Unknown device 7"):
        resolve_device(7)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", ["meta", "hpu", "xla"])
def test_device_types_that_cannot_train(device: str) -> None:
    with pytest.raises(DeviceError, match=rf"'{device}' cannot train a model here"):
        resolve_device(device)


def test_the_cpu_takes_no_index() -> None:
    assert resolve_device("cpu:0") == torch.device("cpu:0")
    with pytest.raises(DeviceError, match="the CPU takes no index; use 'cpu'"):
        resolve_device("cpu:3")


def test_a_cuda_index_beyond_the_visible_devices() -> None:
    count = cuda_device_count()
    with pytest.raises(DeviceError) as error:
        resolve_device(f"cuda:{count + 5}")
    if count == 0:
        assert "needs CUDA, but" in str(error.value)
    else:
        assert f"this machine has {count} visible CUDA device" in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda() -> None:
    for device in ("cuda", "cuda:0", "cuda:7"):
        with pytest.raises(
            DeviceError, match=rf"'{device}' needs CUDA, but .*; choose one of cpu"
        ):
            resolve_device(device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_visible_cuda_device_resolves() -> None:
    for index in range(cuda_device_count()):
        assert resolve_device(f"cuda:{index}") == torch.device("cuda", index)
    assert resolve_device("cuda") == torch.device("cuda")


def test_the_count_in_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a two-GPU machine says (its CUDA answers simulated: none here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    message = (
        "Device 'cuda:7' does not exist: this machine has 2 visible CUDA devices "
        "(cuda:0 to cuda:1); choose one of cuda:0, cuda:1, "
    )
    with pytest.raises(DeviceError, match=re.escape(message)):
        resolve_device("cuda:7")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match=r"has 1 visible CUDA device \(cuda:0\)"):
        resolve_device("cuda:1")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_mps() -> None:
    with pytest.raises(DeviceError, match="needs Apple's Metal"):
        resolve_device("mps")
