"""The stage barrier with several workers (threads of this process, each its own storage)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from stagetune.objectives import Task, get_task
from stagetune.objectives._tasks import accuracy
from stagetune.search import StagedSearch
from stagetune.search._barrier import claim_slot, count_trials
from stagetune.search._budget import StageBudget
from stagetune.spaces import default_plan
from stagetune.storage import INTERRUPTED_ATTR, WORKER_ATTR, open_storage
from tests.conftest import StorageSupplier
from tests.search_tests.nothing_lost import assert_nothing_lost, studies, wait_until

DIGITS = get_task("digits-mlp")


def slow_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    time.sleep(0.04)  # every epoch takes a while: workers overlap
    return accuracy(logits, targets)


SLOW = Task(
    name="digits-slow",
    load=DIGITS.load,
    build_model=DIGITS.build_model,
    metric=slow_accuracy,
    epochs=4,
)


def run_in_thread(url: str, name: str, errors: list[BaseException]) -> threading.Thread:
    search = StagedSearch(
        default_plan("mlp", n_trials=4), SLOW, storage=url, name="b", epochs=4, progress=None
    )

    def target() -> None:
        try:
            search.run()
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def test_workers_share_stages_and_a_late_worker_joins_the_current_one(
    storage_supplier: StorageSupplier,
) -> None:
    url = storage_supplier.url()
    errors: list[BaseException] = []
    early = [run_in_thread(url, f"early-{i}", errors) for i in range(2)]
    try:
        wait_until(lambda: "weight_decay" in studies(url, "b"), what="stage 2 to start")
    finally:
        late = run_in_thread(url, "late", errors)
    for thread in [*early, late]:
        thread.join(timeout=300)
    assert not errors, errors

    assert_nothing_lost(url, "b", budget=4, epochs=4)
    by_stage = {
        stage: {t.system_attrs[WORKER_ATTR]["thread"] for t in study.trials}
        for stage, study in studies(url, "b").items()
    }
    assert "late" not in by_stage["lr"]  # the finished stage is not run again
    assert "late" in by_stage["weight_decay"] | by_stage["regularization"]
    assert by_stage["lr"] == {"early-0", "early-1"}


def test_claims_never_exceed_the_budget(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    study = optuna.create_study(storage=open_storage(url), study_name="c")
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer() -> None:
        own = optuna.load_study(study_name="c", storage=open_storage(url))
        for _ in range(20):
            trial = claim_slot(own, StageBudget.trials(7, 4), None)
            if trial is not None:
                with lock:
                    claimed.append(trial.number)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(claimed) == list(range(7))
    assert count_trials(study) == (0, 7)
    assert {t.state for t in study.trials} == {TrialState.RUNNING}


def test_a_failed_trial_frees_its_slot_for_its_retry(sqlite_url: str) -> None:
    study = optuna.create_study(storage=open_storage(sqlite_url), study_name="c")
    first = claim_slot(study, StageBudget.trials(1, 4), None)
    assert first is not None
    assert claim_slot(study, StageBudget.trials(1, 4), None) is None  # the only slot is taken

    from stagetune.storage import fail_and_retry

    assert fail_and_retry(study, first._trial_id)
    retry: Any = claim_slot(study, StageBudget.trials(1, 4), None)
    assert retry is not None
    assert retry.number == 1
    assert study.trials[1].system_attrs["failed_trial"] == 0


def test_a_signal_while_claiming_fails_the_claimed_trial_with_its_name(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM arrives inside the claim (a critical block): the trial just claimed is
    failed, marked with the signal, and queued again, as one stopped mid-training is."""
    from stagetune.search import _barrier
    from stagetune.search._signals import Interrupted, install_signal_handlers

    study = optuna.create_study(storage=open_storage(sqlite_url), study_name="s")
    claim = _barrier.claim_slot

    def claim_then_signal(*args: Any) -> Any:
        trial = claim(*args)
        os.kill(os.getpid(), signal.SIGTERM)  # deferred to the end of the critical block
        return trial

    monkeypatch.setattr(_barrier, "claim_slot", claim_then_signal)
    restore = install_signal_handlers()
    try:
        with pytest.raises(Interrupted):
            _barrier.run_trials(
                study, budget=StageBudget.trials(2, 4), objective=lambda t: 0.0, max_age=None
            )
    finally:
        restore()
    stopped, retry = study.trials
    assert stopped.state == TrialState.FAIL
    assert stopped.system_attrs[INTERRUPTED_ATTR] == "SIGTERM"
    assert (retry.state, retry.system_attrs["failed_trial"]) == (TrialState.WAITING, 0)
