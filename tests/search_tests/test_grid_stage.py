"""A grid stage tries every point of its grid once (the default is not queued twice)."""

from __future__ import annotations

from pathlib import Path

import optuna

from stagetune.search import StagedSearch
from stagetune.spaces import plan_from_toml


def test_a_grid_stage_tries_each_point_once(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'grid.db'}"
    # The mlp profile's batch_size stage: a grid of 32, 64, 128, 256 with 4 trials; the
    # plan's default batch (64) is one of them.
    plan = plan_from_toml('profile = "mlp"\n[[stages]]\nname = "batch_size"\n')
    search = StagedSearch(plan, "digits-mlp", storage=storage, name="g", epochs=1, progress=None)
    search.run()
    study = optuna.load_study(study_name="g/batch_size", storage=storage)
    assert sorted(t.params["batch_size"] for t in study.trials) == [32, 64, 128, 256]
