"""Worker processes: one search run by N processes on one storage.

``stagetune run --workers N`` starts N processes (``spawn``, one torch thread
each) that all run the same search on the same storage, exactly as N copies of
``stagetune run`` started in N terminals would: they share the stages through
the storage (see ``stagetune.search._barrier``), so a process started later, here or on
another machine, joins them.

SIGTERM and SIGINT stop a worker as they stop ``stagetune run``
(``stagetune.search._signals``): its running trial is marked FAIL and queued to run
again, and the process exits with ``128 + signal``; the parent passes the signal on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stagetune.search._errors import SearchError, SearchTimeout, user_errors
from stagetune.search._signals import Interrupted, critical, install_signal_handlers

if TYPE_CHECKING:
    from stagetune.search._read import SearchResult
    from stagetune.search._search import StagedSearch

#: Seconds the parent waits for interrupted workers to fail their trials and exit.
STOP_TIMEOUT = 120.0
#: Exit code of a worker (and of ``stagetune run``) stopped by the search's timeout.
EXIT_TIMEOUT = 3


def quiet_optuna() -> None:
    """Optuna logs warnings only (not a line per trial): stagetune shows progress itself."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to rebuild the search (all picklable)."""

    search: StagedSearch
    threads: int
    index: int
    device: str | None = None


def _stop_with_parent() -> None:
    """Linux: SIGTERM this worker when its parent dies (even by SIGKILL), so that no
    worker runs on unseen; its trial is then failed and queued like any other."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the worker finishes the search on its own
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(spec: WorkerSpec) -> None:
    """Entry point of a worker process: run the search, exit with a code the parent reads."""
    code = 0
    restore = install_signal_handlers()
    try:
        _stop_with_parent()
        import torch

        torch.set_num_threads(spec.threads)
        quiet_optuna()
        if spec.device is not None:
            from stagetune.objectives import resolve_device

            spec.search.device = resolve_device(spec.device)
        try:
            spec.search.run()
        except SearchTimeout:
            code = EXIT_TIMEOUT
    except Interrupted as interrupted:
        code = interrupted.exit_code
    except KeyboardInterrupt:
        code = 130
    except user_errors() as error:
        print(f"stagetune: worker {spec.index}: error: {error}", file=sys.stderr)
        code = 2
    finally:
        restore()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


@dataclass(frozen=True)
class WorkerExit:
    """How one worker process ended."""

    index: int
    pid: int
    exitcode: int

    def describe(self) -> str:
        if self.exitcode < 0:
            try:
                name = signal.Signals(-self.exitcode).name
            except ValueError:
                name = f"signal {-self.exitcode}"
            return f"worker {self.index} (pid {self.pid}) was killed by {name}"
        return f"worker {self.index} (pid {self.pid}) exited with code {self.exitcode}"


def check_workers(search: StagedSearch, workers: int, threads: int = 1) -> None:
    """Refuse worker and thread counts that cannot work, before anything is written.

    No stage runs more trials at once than its budget (the barrier gives each
    running trial a slot), so workers beyond the largest budget would only wait.

    Raises:
        SearchError: ``workers`` or ``threads`` below 1, or more workers than the
            largest stage budget.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SearchError(f"workers must be >= 1, but got {workers!r}.")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SearchError(f"threads must be >= 1, but got {threads!r}.")
    largest = max(stage.n_trials for stage in search.plan.stages)
    if workers > largest:
        raise SearchError(
            f"{workers} workers are more than this search can use: its largest stage runs "
            f"{largest} trial{'s' if largest != 1 else ''} and no stage trains more trials "
            f"at once than it runs, so the other workers would only wait; use --workers "
            f"{largest} or fewer, or more trials per stage (--trials)."
        )


def run_workers(
    search: StagedSearch,
    workers: int,
    *,
    threads: int = 1,
    on_poll: Callable[[], None] | None = None,
    poll_interval: float = 1.0,
    devices: Sequence[str | None] | None = None,
) -> tuple[SearchResult | None, list[WorkerExit]]:
    """Run ``search`` in ``workers`` processes until it is finished.

    A worker that dies (``kill -9``, out of memory) leaves its trial to the
    others, which fail it and run it again. SIGINT/SIGTERM sent to this process
    are passed on to the workers, which fail their running trials cleanly.

    Args:
        search: A search whose storage is a URL or path (workers open it themselves).
        workers: Number of processes.
        threads: Torch threads per worker.
        on_poll: Called about every ``poll_interval`` seconds while workers run
            (the CLI draws progress from storage with it).
        devices: Each worker's device (``search._placement.worker_devices``); default:
            the search's device for all.

    Returns:
        The result read from storage (``None`` if the search did not finish) and
        how each worker ended.

    Raises:
        Interrupted: This process got SIGINT/SIGTERM (after the workers stopped).
    """
    import multiprocessing

    check_workers(search, workers, threads)
    if search.storage_arg is not None and not isinstance(search.storage_arg, str):
        raise SearchError(
            "Several workers need the storage as a URL or path (each process opens it), "
            "not as a storage object."
        )
    from stagetune.search._callbacks import check_picklable

    check_picklable(search.callbacks)
    if devices is not None and len(devices) != workers:
        raise SearchError(f"{len(devices)} devices for {workers} workers.")
    search.prepare()  # creates the schema once, checks the plan, before any worker starts
    search.start_clock()  # the workers share one deadline
    context = multiprocessing.get_context("spawn")
    processes = []
    for index in range(workers):
        device = devices[index] if devices is not None else None
        spec = WorkerSpec(search.for_worker(), threads, index, device)
        process = context.Process(target=_worker_main, args=(spec,), name=f"stagetune-{index}")
        process.start()
        processes.append(process)
    interrupted: Interrupted | None = None
    try:
        while any(p.is_alive() for p in processes):
            try:
                with critical():
                    if on_poll is not None:
                        on_poll()
                _join_any(processes, poll_interval)
            except Interrupted as error:
                interrupted = error
                break
    finally:
        if interrupted is not None or any(p.is_alive() for p in processes):
            _stop(processes, interrupted.signum if interrupted else signal.SIGTERM)
    exits = [WorkerExit(i, p.pid or 0, p.exitcode or 0) for i, p in enumerate(processes)]
    if interrupted is not None:
        raise interrupted
    return search.result(), exits


def _join_any(processes: list[Any], timeout: float) -> None:
    from multiprocessing.connection import wait

    alive = [p.sentinel for p in processes if p.is_alive()]
    if alive:
        wait(alive, timeout=timeout)


def _stop(processes: list[Any], signum: int) -> None:
    """Pass the signal on, wait for the workers to fail their trials; kill what hangs."""
    for process in processes:
        if process.is_alive() and process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM if signum != signal.SIGINT else signum)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(timeout=10)
