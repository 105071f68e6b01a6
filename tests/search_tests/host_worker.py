"""One search worker with a short heartbeat, for the tests that stand in for other machines.

    python -m tests.search_tests.host_worker URL NAME --trials 3 --epochs 200

A worker on another machine is found dead only by its heartbeat (the other workers
cannot see its process), after the storage's grace period: 30 s by default, a few
seconds here so that a test can wait for it. Every worker of such a test runs this
(the grace period is read by the workers that look for stale trials).
"""

from __future__ import annotations

import argparse
import sys

#: Seconds between heartbeats, and without one before a trial is failed and retried.
HEARTBEAT = 1
GRACE = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("name")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args(argv)

    import torch

    from stagetune.search import StagedSearch
    from stagetune.search._workers import quiet_optuna
    from stagetune.spaces import core_plan
    from stagetune.storage import open_storage

    torch.set_num_threads(1)
    quiet_optuna()
    storage = open_storage(args.url, heartbeat_interval=HEARTBEAT, grace_period=GRACE)
    search = StagedSearch(
        core_plan("mlp", n_trials=args.trials),
        "digits-mlp",
        storage=storage,
        name=args.name,
        epochs=args.epochs,
        progress=None,
    )
    result = search.run()
    print(f"done: {[s.finished for s in result.stages]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
