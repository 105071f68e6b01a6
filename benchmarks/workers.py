"""Trials per minute with 1 and 2 worker processes on one SQLite file (not run in CI).

    .venv/bin/python benchmarks/workers.py                 # 1 and 2 workers, ~1 s trials
    .venv/bin/python benchmarks/workers.py --workers 1,2,4 --trials 12 --epochs 60

Each run is a fresh search of the digits-mlp task with the mlp profile's three
stages, pruning off (every trial trains all its epochs, so runs are comparable),
``--trials`` per stage, on a fresh SQLite file, through ``stagetune.search.run_workers``
(what ``stagetune run --workers N`` runs), one torch thread per worker.

Throughput is counted in steady state, read from storage: from the moment every
worker finished its first trial (the first trial of a process also pays one-off
imports) to the last trial's end, the trials started in that window per minute.
It includes everything a trial costs besides training (claiming a slot under the
lock, heartbeats, per-epoch reports, telling) and the waits at the stage barriers;
``busy`` is the share of that window the workers spent inside trials, which other
load on the machine does not change much (it slows the trials, not the waits).
Errors are FAIL trials, trials left RUNNING, and workers that did not exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def plan(trials: int) -> Any:
    from stagetune.spaces import PrunerSpec, core_plan

    # The three search stages: the range test and the final run are one trial each,
    # which one worker runs while the others wait; they say nothing about throughput.
    base = core_plan("mlp", n_trials=trials)
    return replace(base, stages=tuple(replace(s, pruner=PrunerSpec("none")) for s in base.stages))


def run(workers: int, trials: int, epochs: int, directory: Path) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from stagetune.search import StagedSearch, run_workers
    from stagetune.storage import WORKER_ATTR, open_storage

    url = f"sqlite:///{directory / f'bench-{workers}.db'}"
    search = StagedSearch(plan(trials), "digits-mlp", storage=url, name="bench", epochs=epochs,
                          progress=None)  # fmt: skip
    started = time.perf_counter()
    result, exits = run_workers(search, workers, threads=1)
    wall = time.perf_counter() - started

    storage = open_storage(url, read_only=True)
    trials_all = [
        t
        for s in storage.get_all_studies()
        for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
    ]
    finished = [t for t in trials_all if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    first_end: dict[int, Any] = {}
    for t in sorted(finished, key=lambda t: t.datetime_start):
        first_end.setdefault(t.system_attrs[WORKER_ATTR]["pid"], t.datetime_complete)
    t0 = max(first_end.values())
    end = max(t.datetime_complete for t in finished)
    steady = [t for t in finished if t.datetime_start >= t0]
    window = (end - t0).total_seconds()
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in steady]
    errors = (
        sum(t.state == TrialState.FAIL for t in trials_all)
        + sum(t.state == TrialState.RUNNING for t in trials_all)
        + sum(e.exitcode != 0 for e in exits)
        + (result is None)
    )
    return {
        "workers": workers,
        "trials": len(finished),
        "steady_trials": len(steady),
        "steady_window_s": round(window, 2),
        "trials_per_minute": round(60 * len(steady) / window, 1),
        "mean_trial_s": round(sum(durations) / len(durations), 3),
        # Share of the window the workers spent inside trials (the rest: claiming,
        # waiting at stage barriers); independent of how fast the CPU trains.
        "busy": round(sum(durations) / (workers * window), 3),
        "wall_s": round(wall, 1),
        "errors": int(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--trials", type=int, default=12, help="trials per stage (3 stages)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs per trial (~1 s at 60)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as directory:
        for workers in (int(n) for n in args.workers.split(",")):
            results.append(run(workers, args.trials, args.epochs, Path(directory)))
            print(json.dumps(results[-1]), flush=True)
    base = results[0]["trials_per_minute"]
    print(f"\n{os.cpu_count()} CPUs; {args.trials} trials x 3 stages, {args.epochs} epochs")
    print("workers  trials/min  speed-up  mean trial  busy  errors")
    for r in results:
        print(
            f"{r['workers']:>7}  {r['trials_per_minute']:>10.1f}  "
            f"{r['trials_per_minute'] / base:>7.2f}x  {r['mean_trial_s']:>9.2f}s  "
            f"{r['busy']:>4.0%}  {r['errors']:>6}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
