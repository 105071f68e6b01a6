"""Which device each worker process trains on.

``--workers N`` on a machine with G visible GPUs puts worker ``i`` on GPU ``i mod G``;
``--gpus 0,2,3`` picks the GPUs (indices among the visible ones, so
``CUDA_VISIBLE_DEVICES`` is honoured: it decides what torch sees), and
``--workers-per-gpu K`` packs K workers on each (small models leave most of a GPU
idle). An explicit ``--device`` (``cpu``, ``cuda:1``) puts every worker there.
"""

from __future__ import annotations

from collections.abc import Sequence

from stagetune.search._errors import SearchError


def visible_gpus() -> int:
    """How many CUDA devices torch sees (after ``CUDA_VISIBLE_DEVICES``); 0 without CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_gpus(text: str) -> tuple[int, ...]:
    """``"0,2,3"`` -> ``(0, 2, 3)``.

    Raises:
        SearchError: Not a comma-separated list of distinct GPU indices.

    Example:
        >>> parse_gpus("0, 2,3")
        (0, 2, 3)
    """
    try:
        gpus = tuple(int(part) for part in text.split(","))
    except ValueError:
        gpus = ()
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise SearchError(
            f"--gpus must be distinct GPU indices separated by commas (e.g. 0,2,3), "
            f"but got {text!r}."
        )
    return gpus


def worker_count(
    workers: int | None,
    *,
    device: str | None = None,
    gpus: Sequence[int] | None = None,
    workers_per_gpu: int | None = None,
    device_count: int | None = None,
) -> int:
    """The number of workers: ``workers``, or one per GPU slot with ``workers_per_gpu``."""
    if workers is not None:
        return workers
    if workers_per_gpu is None:
        return 1
    return len(_gpu_list(device, gpus, device_count)) * workers_per_gpu


def worker_devices(
    workers: int,
    *,
    device: str | None = None,
    gpus: Sequence[int] | None = None,
    workers_per_gpu: int | None = None,
    device_count: int | None = None,
) -> list[str | None]:
    """The device of each of ``workers`` workers (``None``: the default, CUDA or CPU).

    Args:
        workers: Number of worker processes.
        device: An explicit device for all (``"cpu"``, ``"cuda:1"``); ``"cuda"`` or
            ``None`` spreads the workers over the GPUs.
        gpus: Indices of the visible GPUs to use (default: all).
        workers_per_gpu: Workers per GPU at most (default: as many as needed).
        device_count: GPUs visible (default: what torch sees; tests inject it).

    Raises:
        SearchError: A GPU index that is not visible, GPUs asked for where there are
            none, ``--gpus`` together with an explicit device, or more workers than
            ``len(gpus) * workers_per_gpu``.
    """
    if workers_per_gpu is not None and workers_per_gpu < 1:
        raise SearchError(f"--workers-per-gpu must be >= 1, but got {workers_per_gpu}.")
    explicit = device is not None and device != "cuda"
    if explicit:
        if gpus is not None or workers_per_gpu is not None:
            raise SearchError(
                f"--device {device} puts every worker on one device; drop it to spread "
                f"the workers with --gpus / --workers-per-gpu."
            )
        return [device] * workers
    count = visible_gpus() if device_count is None else device_count
    if count == 0 and gpus is None and workers_per_gpu is None and device is None:
        return [None] * workers  # no GPU: the default device (the CPU)
    chosen = _gpu_list(device, gpus, count)
    if workers_per_gpu is not None and workers > len(chosen) * workers_per_gpu:
        raise SearchError(
            f"{workers} workers do not fit on {len(chosen)} GPU(s) at {workers_per_gpu} "
            f"per GPU; raise --workers-per-gpu or lower --workers."
        )
    return [f"cuda:{chosen[i % len(chosen)]}" for i in range(workers)]


def _gpu_list(
    device: str | None, gpus: Sequence[int] | None, device_count: int | None
) -> list[int]:
    count = visible_gpus() if device_count is None else device_count
    if count == 0:
        raise SearchError(
            "No CUDA GPU is visible (torch.cuda.is_available() is false, or "
            "CUDA_VISIBLE_DEVICES hides them all); drop --gpus / --workers-per-gpu, "
            "or run where there is one."
        )
    if gpus is None:
        return list(range(count))
    missing = [g for g in gpus if g >= count]
    if missing:
        raise SearchError(
            f"GPU {missing[0]} is not visible: this machine shows {count} GPU(s), "
            f"indices 0..{count - 1} (after CUDA_VISIBLE_DEVICES)."
        )
    return list(gpus)
