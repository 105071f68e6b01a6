"""Which torch device a trial trains on, checked when a search is built.

``torch.device("cuda:7")`` is accepted on any machine and fails only when the first
tensor moves (an ``AssertionError`` without CUDA, a ``RuntimeError`` for a missing
index); ``torch.device("tpu")`` raises a ``RuntimeError`` listing every type torch
knows, most of which cannot train here. :func:`resolve_device` turns each of these into
a :class:`DeviceError` that names the devices this machine has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Device types a trial can train on, where the machine has them.
TRAINING_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


class DeviceError(ValueError):
    """A device this machine cannot train on; the message names the ones it can."""


def cuda_device_count() -> int:
    """CUDA devices visible to this process (0 without CUDA or without a CUDA build)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def available_devices() -> list[str]:
    """The devices a trial can train on here, e.g. ``['cuda:0', 'cuda:1', 'cpu']``.

    Example:
        >>> "cpu" in available_devices()
        True
    """
    import torch

    devices = [f"cuda:{i}" for i in range(cuda_device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        devices += [f"xpu:{i}" for i in range(xpu.device_count())]
    return [*devices, "cpu"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to train on, or a :class:`DeviceError` saying why not.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"xpu[:N]"`` or a
            ``torch.device``; ``None`` takes CUDA when available, else the CPU.

    Returns:
        The device, checked against what this machine has.

    Raises:
        DeviceError: An unknown or malformed device, a device type that cannot train
            (``meta``, ...), CUDA (or MPS, XPU) on a machine without it, or an index
            beyond the visible devices.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        stagetune.objectives._device.DeviceError: Unknown device 'tpu'; choose one of ...
    """
    import torch

    if device is None:
        return torch.device("cuda" if cuda_device_count() else "cpu")
    parsed = _parse(device)
    if parsed.type == "cpu":
        if parsed.index not in (None, 0):
            raise DeviceError(f"Device {str(device)!r}: the CPU takes no index; use 'cpu'.")
        return parsed
    if parsed.type == "cuda":
        _check_index(device, parsed, cuda_device_count(), "CUDA", _no_cuda_reason)
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(
                f"Device {str(device)!r} needs Apple's Metal (MPS), which this machine "
                f"does not have; {_choices()}."
            )
    elif parsed.type == "xpu":
        xpu = getattr(torch, "xpu", None)
        count = xpu.device_count() if xpu is not None and xpu.is_available() else 0
        _check_index(device, parsed, count, "XPU", lambda: "no Intel XPU is visible")
    else:
        raise DeviceError(
            f"Device {str(device)!r} cannot train a model here (stagetune trains on "
            f"{', '.join(TRAINING_DEVICE_TYPES)}); {_choices()}."
        )
    return parsed


def _parse(device: object) -> torch.device:
    import torch

    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str) or not device.strip():
        raise DeviceError(f"Unknown device {device!r}; {_choices()}.")
    try:
        return torch.device(device.strip())
    except (RuntimeError, ValueError):
        raise DeviceError(f"Unknown device {device!r}; {_choices()}.") from None


def _check_index(
    device: object, parsed: torch.device, count: int, kind: str, why: Callable[[], str]
) -> None:
    if count == 0:
        raise DeviceError(f"Device {str(device)!r} needs {kind}, but {why()}; {_choices()}.")
    if parsed.index is not None and parsed.index >= count:
        last = f"{parsed.type}:{count - 1}"
        visible = f"{parsed.type}:0" if count == 1 else f"{parsed.type}:0 to {last}"
        raise DeviceError(
            f"Device {str(device)!r} does not exist: this machine has {count} visible "
            f"{kind} device{'s' if count != 1 else ''} ({visible}); {_choices()}."
        )


def _no_cuda_reason() -> str:
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    return "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)"


def _choices() -> str:
    return (
        f"choose one of {', '.join(available_devices())}, or leave the device unset "
        f"(CUDA when available, else the CPU)"
    )
