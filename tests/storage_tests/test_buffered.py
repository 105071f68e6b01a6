from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from stagetune.storage import BufferedStorage, open_storage
from tests.conftest import StorageSupplier


def _fresh_view(url: str, study: str) -> optuna.Study:
    """The study as another process sees it: a new, unbuffered RDB storage."""
    return optuna.load_study(study_name=study, storage=optuna.storages.RDBStorage(url))


def test_reports_wait_in_memory_until_the_trial_ends(
    storage_supplier: StorageSupplier,
) -> None:
    url = storage_supplier.url()
    storage = open_storage(url, flush_interval=3600, heartbeat_interval=None)
    assert isinstance(storage, BufferedStorage)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    trial = study.ask()
    for step, value in enumerate([0.1, math.inf, -math.inf, math.nan, 0.5]):
        trial.report(value, step)
    trial.set_user_attr("config", {"lr": 0.1})
    # This process sees the held reports at once; the database has none yet.
    seen = storage.get_trial(trial._trial_id)
    assert seen.intermediate_values[4] == 0.5
    assert seen.user_attrs == {"config": {"lr": 0.1}}
    other = _fresh_view(url, "s").trials[0]
    assert other.state == TrialState.RUNNING
    assert other.intermediate_values == {0: 0.1}  # the first report goes out at once
    assert other.user_attrs == {}
    study.tell(trial, 0.5)
    # The end of the trial commits everything, before its state.
    done = _fresh_view(url, "s").trials[0]
    assert done.state == TrialState.COMPLETE
    values = done.intermediate_values
    assert (values[0], values[1], values[2], values[4]) == (0.1, math.inf, -math.inf, 0.5)
    assert math.isnan(values[3])
    assert done.user_attrs == {"config": {"lr": 0.1}}


def test_reports_are_committed_after_the_flush_interval(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url, flush_interval=0, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(1.0, 1)
    trial.set_user_attr("a", 2)
    other = _fresh_view(sqlite_url, "s").trials[0]
    assert other.intermediate_values == {1: 1.0}
    assert other.user_attrs == {"a": 2}
    trial.report(3.0, 2)  # a later report replaces nothing it should not
    trial.set_user_attr("a", 4)
    other = _fresh_view(sqlite_url, "s").trials[0]
    assert other.intermediate_values == {1: 1.0, 2: 3.0}
    assert other.user_attrs == {"a": 4}


def test_a_search_leaves_every_finished_trial_whole(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    study = optuna.create_study(
        storage=open_storage(url), study_name="s", pruner=optuna.pruners.MedianPruner(0, 0)
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1, 1)
        for step in range(5):
            trial.report(x * x + step, step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at", step)
                raise optuna.TrialPruned()
        trial.set_user_attr("last", x)
        return x * x

    study.optimize(objective, n_trials=8)
    mine = study.get_trials()
    theirs = _fresh_view(url, "s").get_trials()
    assert {t.state for t in theirs} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert [(t.state, t.value, t.params, t.intermediate_values, t.user_attrs) for t in theirs] == [
        (t.state, t.value, t.params, t.intermediate_values, t.user_attrs) for t in mine
    ]


def test_a_trial_finished_elsewhere_is_seen_at_once(storage_supplier: StorageSupplier) -> None:
    url = storage_supplier.url()
    first = optuna.create_study(storage=open_storage(url, heartbeat_interval=None), study_name="s")
    second = optuna.load_study(storage=open_storage(url, heartbeat_interval=None), study_name="s")
    first.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(second.get_trials(states=(TrialState.COMPLETE,))) == 2
    running = first.ask()
    assert len(second.get_trials(states=(TrialState.COMPLETE,))) == 2  # cached, confirmed
    first.tell(running, 0.3)
    complete = second.get_trials(states=(TrialState.COMPLETE,))
    assert [t.value for t in complete][-1] == 0.3
    failed = first.ask()
    second.tell(failed.number, state=TrialState.FAIL)
    assert [t.number for t in first.get_trials(states=(TrialState.FAIL,))] == [failed.number]


def test_held_reports_of_a_trial_failed_elsewhere_raise_once_and_are_dropped(
    sqlite_url: str,
) -> None:
    """A worker whose trial was failed as orphaned (it hung) cannot write it any more:
    the first flush says so, and what it held is dropped, never written later."""
    storage = open_storage(sqlite_url, flush_interval=3600, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(1.0, 1)
    trial.report(2.0, 2)  # held
    other = optuna.load_study(study_name="s", storage=sqlite_url)
    other.tell(trial.number, state=TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.flush()
    assert isinstance(storage, BufferedStorage)
    assert storage.get_trial(trial._trial_id).intermediate_values == {1: 1.0}  # as stored
    storage.flush()  # nothing held any more: no error at the next flush (or at exit)
    failed = _fresh_view(sqlite_url, "s").trials[0]
    assert (failed.state, failed.intermediate_values) == (TrialState.FAIL, {1: 1.0})


def test_held_values_must_be_json(sqlite_url: str) -> None:
    study = optuna.create_study(
        storage=open_storage(sqlite_url, heartbeat_interval=None), study_name="s"
    )
    trial = study.ask()
    with pytest.raises(TypeError, match="not JSON serializable"):
        trial.set_user_attr("f", object())


def test_reports_held_at_exit_are_written(sqlite_url: str) -> None:
    code = f"""
import optuna
from stagetune.storage import open_storage
storage = open_storage({sqlite_url!r}, flush_interval=3600, heartbeat_interval=None)
study = optuna.create_study(storage=storage, study_name="s")
trial = study.ask()
trial.report(0.5, 6)
trial.report(0.25, 7)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert _fresh_view(sqlite_url, "s").trials[0].intermediate_values == {6: 0.5, 7: 0.25}


def test_a_flush_waits_for_a_busy_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.storage_tests.test_retry import hold_write_lock

    db = tmp_path / "busy.db"
    storage = open_storage(f"sqlite:///{db}", busy_timeout=0.1, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(1.0, 1)
    trial.report(2.0, 2)  # held
    holder = hold_write_lock(db, 1.5)  # 15x the busy timeout
    study.tell(trial, 2.0)  # flushes, then sets the state
    returned = time.monotonic()
    holder.join()
    assert returned >= holder.releasing  # it waited for the lock
    done = _fresh_view(f"sqlite:///{db}", "s").trials[0]
    assert (done.state, done.intermediate_values) == (TrialState.COMPLETE, {1: 1.0, 2: 2.0})
    assert "database is busy (locked) during flush; retrying" in caplog.text


def test_it_behaves_like_the_rdb_storage_it_wraps(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    assert isinstance(storage, BufferedStorage)
    assert storage.url == sqlite_url
    assert storage.engine is storage.backend.engine
    assert storage.get_heartbeat_interval() == storage.backend.heartbeat_interval
    assert storage.skip_compatibility_check is False  # forwarded to the RDB storage
    assert not isinstance(open_storage(sqlite_url, read_only=True), BufferedStorage)


def test_reading_finished_trials_costs_no_query_while_nothing_was_committed(
    sqlite_url: str,
) -> None:
    import sqlalchemy

    storage = open_storage(sqlite_url, heartbeat_interval=None)
    assert isinstance(storage, BufferedStorage)
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    running = study.ask()
    running.report(0.5, 1)
    statements: list[str] = []
    sqlalchemy.event.listen(
        storage.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    complete = (TrialState.COMPLETE,)
    assert len(study.get_trials(states=complete)) == 3
    statements.clear()
    for _ in range(10):  # what a pruner does every epoch
        assert len(study.get_trials(deepcopy=False, states=complete)) == 3
    assert statements == []
    # Another worker completes a trial: the next read sees it.
    other = optuna.load_study(study_name="s", storage=open_storage(sqlite_url))
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(study.get_trials(deepcopy=False, states=complete)) == 4
    assert statements != []
    study.tell(running, 0.5)


def test_writes_to_a_missing_or_finished_trial_fail_at_the_call(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url, flush_interval=3600, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(1.0, 1)
    study.tell(trial, 1.0)
    finished, missing = trial._trial_id, trial._trial_id + 1
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_intermediate_value(finished, 2, 0.5)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(finished, "k", 1)
    with pytest.raises(KeyError):
        storage.set_trial_intermediate_value(missing, 1, 0.5)
    with pytest.raises(KeyError):
        storage.set_trial_user_attr(missing, "k", 1)
    # A trial that another storage (another worker) runs is written at once, not held.
    other = optuna.load_study(
        study_name="s", storage=open_storage(sqlite_url, heartbeat_interval=None)
    )
    running = other.ask()
    storage.set_trial_user_attr(running._trial_id, "k", 2)
    assert _fresh_view(sqlite_url, "s").trials[1].user_attrs == {"k": 2}
