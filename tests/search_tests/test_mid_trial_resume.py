"""A worker killed mid-trial: the retry resumes from the trial's last checkpoint and ends
with the metrics of an uninterrupted run; time limits stop trials and searches cleanly."""

from __future__ import annotations

import os
import random
import signal
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.objectives import CHECKPOINT_ATTR
from stagetune.search import SearchError, SearchTimeout, StagedSearch
from stagetune.search._cli import main
from stagetune.spaces import core_plan
from stagetune.storage import open_storage
from tests.search_tests.nothing_lost import (
    assert_nothing_lost,
    finish,
    stagetune,
    start,
    studies,
    wait_until,
)

EPOCHS = 30


def _checkpointed_epoch(url: str) -> int:
    """The epoch of the first stage's trial 0's checkpoint (0 while there is none)."""
    try:
        study = studies(url, "c", ("lr",))["lr"]
    except Exception:  # not created yet
        return 0
    trials = study.get_trials(deepcopy=False)
    if not trials or trials[0].state != TrialState.RUNNING:
        return 0
    return int((trials[0].system_attrs.get(CHECKPOINT_ATTR) or {}).get("epoch") or 0)


def test_sigkill_mid_trial_resumes_from_the_checkpoint_with_the_same_result(
    tmp_path: Path,
) -> None:
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    code, _, err = finish(
        start(stagetune(reference, "c", "--checkpoint-every", "off", trials=2, epochs=EPOCHS))
    )
    assert code == 0, err
    expected = studies(reference, "c", ("lr",))["lr"].trials[0]

    url = f"sqlite:///{tmp_path / 'killed.db'}"
    argv = stagetune(url, "c", "--checkpoint-every", "0", trials=2, epochs=EPOCHS)
    at = random.Random().randint(2, EPOCHS // 2)
    process = start(argv)
    wait_until(lambda: _checkpointed_epoch(url) >= at, process=process, what=f"epoch {at}")
    os.kill(process.pid, signal.SIGKILL)
    finish(process, timeout=60)
    saved = _checkpointed_epoch(url)
    assert saved >= at, f"killed at epoch {at}, saved {saved}"

    code, _, err = finish(start(argv))  # the same command again
    assert code == 0, err
    assert_nothing_lost(url, "c", budget=2, epochs=EPOCHS)
    lr = studies(url, "c", ("lr",))["lr"]
    assert lr.trials[0].state == TrialState.FAIL
    (retry,) = [t for t in lr.trials if t.system_attrs.get("failed_trial") == 0]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs["resumed_from_epoch"] == saved
    assert retry.value == expected.value
    assert retry.intermediate_values == expected.intermediate_values
    assert retry.user_attrs["val_loss_curve"] == expected.user_attrs["val_loss_curve"]
    # every trial finished: no checkpoint is left (the final run's model is)
    left = [p.name for p in (tmp_path / "killed-artifacts").iterdir()]
    assert [name for name in left if name.startswith("stagetune-checkpoint-")] == []
    assert len(left) == 1


def test_a_search_timeout_stops_cleanly_and_the_same_search_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    plan = core_plan("mlp", n_trials=3)

    def search(timeout: float) -> StagedSearch:
        return StagedSearch(
            plan, "digits-mlp", storage=url, name="t", epochs=2, progress=None, timeout=timeout
        )

    timed = search(1e-6)
    with pytest.raises(SearchTimeout, match="run it again to resume"):
        timed.run()
    trials = [t for s in studies(url, "t", ("lr",)).values() for t in s.trials]
    assert [t.state for t in trials] == [TrialState.WAITING]  # nothing started, nothing lost
    timed.timeout = 3600.0  # each run starts its clock anew: the old deadline is gone
    timed.run()
    assert_nothing_lost(url, "t", budget=3, epochs=2)


def test_the_cli_timeout_exits_3_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    argv = ["run", "--storage", url, "--name", "t", "--trials", "2", "--epochs", "2", "--quiet"]
    assert main([*argv, "--timeout", "0.000001"]) == 3
    assert "stopped after its timeout" in capsys.readouterr().err
    assert main(argv) == 0


def test_the_timeout_stops_every_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    argv = ["run", "--storage", url, "--name", "w", "--trials", "2", "--epochs", "2", "--quiet"]
    assert main([*argv, "--workers", "2", "--threads", "1", "--timeout", "0.000001"]) == 3
    err = capsys.readouterr().err
    assert "stopped after its timeout" in err and "warning" not in err


def test_a_trial_timeout_prunes_search_trials_with_the_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    plan = core_plan("mlp", n_trials=2)
    plan = replace(plan, stages=plan.stages[:1])
    search = StagedSearch(
        plan, "digits-mlp", storage=url, name="p", epochs=50, progress=None, trial_timeout=0.05
    )
    with pytest.raises(SearchError, match="without a complete trial"):
        search.run()
    study = optuna.load_study(study_name="p/lr", storage=open_storage(url))
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    for trial in study.trials:
        assert trial.user_attrs["prune_reason"].startswith("over the trial time limit")
        assert trial.user_attrs["epochs_run"] < 50
