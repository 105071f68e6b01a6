"""How many workers one search can take: cheap trials, 1 to 64 processes, PostgreSQL and SQLite.

By hand, not in CI (a few minutes; needs a PostgreSQL server for the postgres rows):

    eval "$(STAGETUNE_PG_PORT=54337 STAGETUNE_PG_DATA=/tmp/pg-scale bash .ci/postgres.sh)"
    .venv/bin/python benchmarks/scale.py --json benchmarks/results/scale.json
    .venv/bin/python benchmarks/scale.py --workers 1,4 --backends sqlite   # quick look

Every run is a fresh search of ``--stages`` stages on a fresh database, driven by the
real stage barrier (``stagetune.search._barrier``: open, claim under the search lock,
run, wait, close), with a trial that sleeps ``--trial-seconds`` instead of training, so
that what is measured is what the workers cost the database and each other, not the two
CPUs. Each stage's budget is ``--trials-per-worker`` x workers (at least 8), so every
worker claims several trials per stage.

Workers are forked from a parent that has imported optuna and SQLAlchemy but not torch,
so that 64 of them fit in memory (each reports its peak RSS and PSS).

Per run it records:

- ``trials_per_s``: finished trials / (last trial's end - first trial's start), stage
  barriers included; ``ideal`` is workers / trial-seconds.
- ``lock_wait_s`` / ``lock_hold_s``: mean per claim, time to get the search lock and
  time holding it (failing orphans, counting, sampling, creating the trial);
  ``claims_per_s_max``: 1 / mean hold, the most claims the lock can serve.
- ``barrier_s``: per worker, time in the barrier neither claiming nor running a trial
  (waiting for the stage's last trials, polling the storage), and ``polls`` per worker.
- ``connections``: most connections to the database at once (PostgreSQL, sampled every
  0.1 s from ``pg_stat_activity``), and the server's ``max_connections``.
- ``errors``: workers that raised or exited non-zero (first message kept), FAIL
  trials, trials left RUNNING; ``exact``: every stage ended with exactly its budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Imported before the fork: the workers share these modules' pages.
import optuna
import sqlalchemy
from optuna.trial import TrialState

from stagetune.search import _barrier
from stagetune.storage import StageLineage, open_storage, study_name

optuna.logging.set_verbosity(optuna.logging.WARNING)

POSTGRES_URL_ENV = "STAGETUNE_TEST_POSTGRES_URL"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class WorkerStats:
    """What one worker process measured about itself."""

    trials: int = 0
    claims: int = 0
    lock_wait_s: float = 0.0
    lock_hold_s: float = 0.0
    claim_s: float = 0.0
    trial_s: float = 0.0
    stage_s: float = 0.0
    polls: int = 0
    max_rss_mb: float = 0.0
    pss_mb: float = 0.0
    error: str | None = None


# -- one worker ------------------------------------------------------------------------


def _timed_lock(stats: WorkerStats, lock: Callable[..., Any]) -> Callable[..., Any]:
    @contextlib.contextmanager
    def timed(*args: Any, **kwargs: Any) -> Iterator[None]:
        asked = time.perf_counter()
        with lock(*args, **kwargs):
            got = time.perf_counter()
            stats.lock_wait_s += got - asked
            try:
                yield
            finally:
                stats.lock_hold_s += time.perf_counter() - got

    return timed


def _instrument(stats: WorkerStats) -> None:
    """Wrap the barrier's steps in this (forked) process so that they time themselves."""
    claim, count, lock = _barrier.claim_slot, _barrier.count_trials, _barrier.search_lock

    def claim_slot(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return claim(*args, **kwargs)
        finally:
            stats.claims += 1
            stats.claim_s += time.perf_counter() - started

    def count_trials(*args: Any, **kwargs: Any) -> Any:
        stats.polls += 1
        return count(*args, **kwargs)

    _barrier.claim_slot = claim_slot  # type: ignore[assignment]
    _barrier.count_trials = count_trials  # type: ignore[assignment]
    _barrier.search_lock = _timed_lock(stats, lock)  # type: ignore[assignment]


def _memory(stats: WorkerStats) -> None:
    stats.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with contextlib.suppress(OSError), open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                stats.pss_mb = int(line.split()[1]) / 1024


def _run_stage(storage: Any, index: int, args: Any, budget: int, stats: WorkerStats) -> None:
    name = study_name("scale", f"stage{index}")
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=optuna.samplers.TPESampler(seed=index)
        if args.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=index),
        load_if_exists=True,
    )
    lineage = StageLineage(
        search="scale", stage=f"stage{index}", index=index, n_stages=args.stages,
        searches={"x": {}}, carried={}, budget=budget, plan="scale-benchmark",
    )  # fmt: skip
    stored = _barrier.open_stage(study, lineage, check=lambda _: None, first_trial={"x": 0.5})
    if stored.done:
        return

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        started = time.perf_counter()
        time.sleep(args.trial_seconds)
        stats.trials += 1
        stats.trial_s += time.perf_counter() - started
        return (x - 0.3) ** 2

    if not _barrier.run_trials(
        study, budget=budget, objective=objective, max_age=timedelta(seconds=30)
    ):
        raise RuntimeError(f"stage {index} did not reach its budget")

    def done(stored: StageLineage) -> StageLineage:
        best = study.best_trial
        return StageLineage(**{**asdict(stored), "done": True, "best_params": best.params,
                               "best_value": best.value})  # fmt: skip

    _barrier.close_stage(study, done)


def _worker(url: str, args: Any, budget: int, out: Any) -> None:
    stats = WorkerStats()
    try:
        _instrument(stats)
        storage = open_storage(url)
        started = time.perf_counter()
        for index in range(args.stages):
            _run_stage(storage, index, args, budget, stats)
        stats.stage_s = time.perf_counter() - started
    except BaseException as error:
        stats.error = "".join(traceback.format_exception_only(error)).strip()[-500:]
    _memory(stats)
    out.put(asdict(stats))


# -- one run ---------------------------------------------------------------------------


def _fresh_postgres(base: str, name: str) -> str:
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sqlalchemy.make_url(base).set(database=name).render_as_string(hide_password=False)


class ConnectionSampler:
    """Samples the connections to one PostgreSQL database every 0.1 s in a thread."""

    def __init__(self, url: str) -> None:
        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with self._engine.connect() as connection:
            self.max_connections = int(
                connection.execute(sqlalchemy.text("SHOW max_connections")).scalar() or 0
            )
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def _sample(self) -> None:
        query = sqlalchemy.text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with self._engine.connect() as connection:
            while not self._stop.wait(0.1):
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                    self.most = max(self.most, int(connection.execute(query).scalar() or 0))
                    connection.commit()


def _read_trials(url: str, stages: int) -> dict[str, list[Any]]:
    storage = optuna.storages.RDBStorage(url)
    found = {s.study_name for s in storage.get_all_studies()}
    trials = {
        name: optuna.load_study(study_name=name, storage=storage).trials
        for name in (study_name("scale", f"stage{i}") for i in range(stages))
        if name in found
    }
    storage.engine.dispose()
    return trials


def run(backend: str, workers: int, args: Any, directory: Path) -> dict[str, Any]:
    budget = max(8, args.trials_per_worker * workers)
    if backend == "postgres":
        base = os.environ[POSTGRES_URL_ENV]
        url = _fresh_postgres(base, f"stagetune_scale_{workers}")
    else:
        url = f"sqlite:///{directory / f'scale-{workers}.db'}"
    open_storage(url).backend.engine.dispose()  # the schema, before the workers
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    sampler = ConnectionSampler(url) if backend == "postgres" else contextlib.nullcontext()
    started = time.perf_counter()
    with sampler:
        processes = [
            context.Process(target=_worker, args=(url, args, budget, out)) for _ in range(workers)
        ]
        for process in processes:
            process.start()
        stats = [WorkerStats(**out.get(timeout=args.timeout)) for _ in processes]
        for process in processes:
            process.join(timeout=60)
    wall = time.perf_counter() - started

    trials = _read_trials(url, args.stages)
    every = [t for stage in trials.values() for t in stage]
    finished = [t for t in every if t.state in FINISHED]
    span = (
        max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)
    ).total_seconds()
    claims = sum(s.claims for s in stats) or 1
    errors = [s.error for s in stats if s.error]
    errors += [f"exit code {p.exitcode}" for p in processes if p.exitcode]
    hold = sum(s.lock_hold_s for s in stats) / claims
    row = {
        "backend": backend,
        "workers": workers,
        "budget_per_stage": budget,
        "trials": len(finished),
        "trials_per_s": round(len(finished) / span, 2),
        "ideal_per_s": round(workers / args.trial_seconds, 2),
        "lock_wait_s": round(sum(s.lock_wait_s for s in stats) / claims, 4),
        "lock_hold_s": round(hold, 4),
        "claims_per_s_max": round(1 / hold, 1) if hold else None,
        "barrier_s": round(
            sum(s.stage_s - s.claim_s - s.trial_s for s in stats if not s.error) / workers, 2
        ),
        "polls": round(sum(s.polls for s in stats) / workers, 1),
        "connections": getattr(sampler, "most", None),
        "max_connections": getattr(sampler, "max_connections", None),
        "errors": len(errors)
        + sum(t.state == TrialState.FAIL for t in every)
        + sum(t.state == TrialState.RUNNING for t in every),
        "first_error": errors[0] if errors else None,
        "exact": len(trials) == args.stages
        and all(sum(t.state in FINISHED for t in s) == budget for s in trials.values()),
        "worker_rss_mb": round(max(s.max_rss_mb for s in stats), 1),
        "worker_pss_mb": round(max(s.pss_mb for s in stats), 1),
        "wall_s": round(wall, 1),
    }
    if backend == "postgres":
        admin = sqlalchemy.create_engine(
            os.environ[POSTGRES_URL_ENV], isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(
                sqlalchemy.text(
                    f'DROP DATABASE IF EXISTS "stagetune_scale_{workers}" WITH (FORCE)'
                )
            )
        admin.dispose()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4,16,32,64", help="comma-separated counts")
    parser.add_argument("--backends", default="postgres,sqlite", help="postgres and/or sqlite")
    parser.add_argument("--stages", type=int, default=2, help="stages per search")
    parser.add_argument("--trials-per-worker", type=int, default=3, help="per stage")
    parser.add_argument("--trial-seconds", type=float, default=0.5, help="one trial's sleep")
    parser.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    backends = args.backends.split(",")
    if "postgres" in backends and not os.environ.get(POSTGRES_URL_ENV):
        parser.error(f"{POSTGRES_URL_ENV} is not set: start PostgreSQL (see the docstring)")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for backend in backends:
            for workers in (int(n) for n in args.workers.split(",")):
                rows.append(run(backend, workers, args, Path(directory)))
                print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n{os.cpu_count()} CPUs; {args.stages} stages, {args.trials_per_worker} trials per "
        f"worker per stage, {args.trial_seconds} s trials, {args.sampler} sampler"
    )
    print("backend   workers  trials/s (ideal)  lock wait  hold    claims/s  barrier  "
          "conns/max  errors  exact")  # fmt: skip
    for r in rows:
        conns = f"{r['connections']}/{r['max_connections']}" if r["connections"] else "-"
        print(
            f"{r['backend']:<9} {r['workers']:>7}  {r['trials_per_s']:>8.2f} "
            f"({r['ideal_per_s']:>5.0f})  {r['lock_wait_s']:>8.3f}s {r['lock_hold_s']:>6.3f}s "
            f"{r['claims_per_s_max'] or 0:>8.1f}  {r['barrier_s']:>6.1f}s  {conns:>9}  "
            f"{r['errors']:>6}  {r['exact']!s:>5}"
        )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
