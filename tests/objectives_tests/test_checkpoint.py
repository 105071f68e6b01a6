"""Checkpoints inside a trial: an interrupted run resumes and ends exactly as an
uninterrupted one; a crash never leaves a checkpoint that is loaded half-written."""

from __future__ import annotations

import io
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import optuna
import pytest
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from stagetune.objectives import (
    CHECKPOINT_ATTR,
    CheckpointPolicy,
    FinalObjective,
    StageObjective,
    Task,
    TrainConfig,
    get_task,
    load_splits,
    train,
)
from stagetune.objectives._checkpoint import TrialCheckpoint
from stagetune.objectives._train import TrainResult
from stagetune.spaces import FloatParam
from stagetune.storage import fail_and_retry

CPU = torch.device("cpu")
#: Dropout and a cosine schedule: the resumed run must restore the RNG and the schedule.
PARAMS = {"lr": 3e-2, "dropout": 0.2, "scheduler": "cosine", "warmup_fraction": 0.1}
EPOCHS = 6


class _Stop(KeyboardInterrupt):
    """Stands for the SIGTERM that interrupts a worker."""


def _capturing(task: Task, models: list[torch.nn.Module]) -> Task:
    def build(params: Any) -> torch.nn.Module:
        model = task.build_model(params)
        models.append(model)
        return model

    return replace(task, build_model=build)


def _run(
    checkpoint: TrialCheckpoint | None, stop_at: int | None = None
) -> tuple[TrainResult, torch.nn.Module]:
    task = get_task("digits-mlp")
    models: list[torch.nn.Module] = []

    def on_epoch(stats: Any) -> None:
        if stats.epoch == stop_at:
            raise _Stop

    result = train(
        _capturing(task, models),
        load_splits(task),
        TrainConfig.from_params(PARAMS),
        epochs=EPOCHS,
        device=CPU,
        seed=3,
        on_epoch=on_epoch,
        checkpoint=checkpoint,
        keep_best=True,
    )
    return result, models[-1]


def _trial(tmp_path: Path) -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    return study, study.ask()


def _store(tmp_path: Path) -> FileSystemArtifactStore:
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    return FileSystemArtifactStore(tmp_path / "artifacts")


def test_a_run_killed_at_a_random_epoch_resumes_to_the_same_weights_and_metrics(
    tmp_path: Path,
) -> None:
    expected, expected_model = _run(None)
    stop_at = random.Random().randint(2, EPOCHS)  # the checkpoint before it: epoch stop_at - 1
    store = _store(tmp_path)
    _, trial = _trial(tmp_path)
    with pytest.raises(_Stop):
        _run(TrialCheckpoint(store, trial, every=0.0), stop_at=stop_at)
    pointer = trial.storage.get_trial_system_attrs(trial._trial_id)[CHECKPOINT_ATTR]
    assert pointer["epoch"] == stop_at - 1, stop_at

    resumed, model = _run(TrialCheckpoint(store, trial, every=0.0))

    assert resumed.resumed_from_epoch == stop_at - 1
    assert resumed.history == expected.history  # every epoch's losses, metric and LR
    assert resumed.step_losses == expected.step_losses
    assert (resumed.best_epoch, resumed.best_val_metric) == (
        expected.best_epoch,
        expected.best_val_metric,
    )
    for key, value in expected_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert resumed.best_state is not None and expected.best_state is not None
    for key, value in expected.best_state.items():
        assert torch.equal(resumed.best_state[key], value), key


def test_only_the_latest_checkpoint_is_kept(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _, trial = _trial(tmp_path)
    with pytest.raises(_Stop):
        _run(TrialCheckpoint(store, trial, every=0.0), stop_at=EPOCHS)
    files = list((tmp_path / "artifacts").iterdir())
    pointer = trial.storage.get_trial_system_attrs(trial._trial_id)[CHECKPOINT_ATTR]
    assert [f.name for f in files] == [pointer["id"]]


def test_no_checkpoint_before_its_interval(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _, trial = _trial(tmp_path)
    checkpoint = TrialCheckpoint(store, trial, every=3600.0)
    _run(checkpoint)
    assert checkpoint.saves == 0
    assert list((tmp_path / "artifacts").iterdir()) == []


class _CrashingStore(FileSystemArtifactStore):
    """Writes half of a checkpoint, then dies (the process was killed mid-write)."""

    crash = False

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if not self.crash:
            super().write(artifact_id, content_body)
            return
        data = content_body.read()
        super().write(artifact_id, io.BytesIO(data[: len(data) // 2]))
        raise _Stop


def test_a_crash_while_writing_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    store = _CrashingStore(tmp_path / "artifacts")
    _, trial = _trial(tmp_path)
    checkpoint = TrialCheckpoint(store, trial, every=0.0)
    checkpoint.save({"epoch": 1, "value": torch.arange(1000)})
    store.crash = True
    with pytest.raises(_Stop):
        checkpoint.save({"epoch": 2, "value": torch.arange(1000) * 2})
    state = TrialCheckpoint(store, trial, every=0.0).load()
    assert state is not None and state["epoch"] == 1
    assert torch.equal(state["value"], torch.arange(1000))


class _DyingStore(FileSystemArtifactStore):
    """Counts what a save does to the store and the trial's storage, and dies (a SIGKILL)
    after the ``dies_after``-th of those steps."""

    def __init__(self, root: Path, trial: optuna.Trial, dies_after: int | None) -> None:
        super().__init__(root)
        self.dies_after = dies_after
        self.steps = 0
        storage = trial.storage
        set_attr = storage.set_trial_system_attr

        def set_trial_system_attr(trial_id: int, key: str, value: Any) -> None:
            set_attr(trial_id, key, value)
            self._step()

        storage.set_trial_system_attr = set_trial_system_attr  # type: ignore[method-assign]

    def _step(self) -> None:
        self.steps += 1
        if self.dies_after is not None and self.steps == self.dies_after:
            raise _Stop

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        super().write(artifact_id, content_body)
        self._step()

    def remove(self, artifact_id: str) -> None:
        super().remove(artifact_id)
        self._step()


@pytest.mark.parametrize("dies_after", [1, 2, 3, 4])
def test_a_kill_at_any_step_of_a_save_leaves_no_file_behind(
    tmp_path: Path, dies_after: int
) -> None:
    """Killed after announcing, writing, pointing or removing: the retry resumes from the
    last whole checkpoint and, once it finishes, no file is left."""
    study, trial = _trial(tmp_path)
    (tmp_path / "artifacts").mkdir()
    store = _DyingStore(tmp_path / "artifacts", trial, dies_after=None)
    checkpoint = TrialCheckpoint(store, trial, every=0.0)
    checkpoint.save({"epoch": 1})
    store.steps, store.dies_after = 0, dies_after
    with pytest.raises(_Stop):
        checkpoint.save({"epoch": 2})
    assert fail_and_retry(study, trial._trial_id)

    retry = TrialCheckpoint(_store(tmp_path), study.ask(), every=0.0)
    state = retry.load()
    assert state is not None and state["epoch"] == (2 if dies_after >= 3 else 1)
    assert len(list((tmp_path / "artifacts").iterdir())) == 1  # the one it loaded
    retry.save({"epoch": 3})
    assert len(list((tmp_path / "artifacts").iterdir())) == 1
    retry.discard()  # the retry finished
    assert list((tmp_path / "artifacts").iterdir()) == []


def test_a_kill_during_the_first_save_leaves_no_file_behind(tmp_path: Path) -> None:
    study, trial = _trial(tmp_path)
    (tmp_path / "artifacts").mkdir()
    store = _DyingStore(tmp_path / "artifacts", trial, dies_after=2)  # written, not pointed at
    with pytest.raises(_Stop):
        TrialCheckpoint(store, trial, every=0.0).save({"epoch": 1})
    assert fail_and_retry(study, trial._trial_id)
    retry = TrialCheckpoint(_store(tmp_path), study.ask(), every=0.0)
    assert retry.load() is None  # trains from epoch 1
    assert list((tmp_path / "artifacts").iterdir()) == []


def test_a_trial_failed_by_another_worker_keeps_the_checkpoint_its_retry_resumes_from(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    study, trial = _trial(tmp_path)
    checkpoint = TrialCheckpoint(store, trial, every=0.0)
    checkpoint.save({"epoch": 1})
    fail_and_retry(study, trial._trial_id)  # its heartbeat was late
    checkpoint.save({"epoch": 2})  # the late worker goes on: refused, nothing removed
    checkpoint.discard()
    retry = study.ask()
    state = TrialCheckpoint(store, retry, every=0.0).load()
    assert state is not None and state["epoch"] == 1
    assert len(list((tmp_path / "artifacts").iterdir())) == 1


def _interrupting(task: Task, after_steps: int) -> Task:
    """``task`` whose training raises (a SIGTERM) after ``after_steps`` loss calls."""
    calls = [0]

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            calls[0] += 1
            if calls[0] > after_steps:
                raise _Stop
        return task.loss(output, target)

    return replace(task, loss=loss)


@pytest.mark.parametrize("kind", ["stage", "final"])
def test_a_retried_trial_resumes_keeps_its_reports_and_ends_as_an_uninterrupted_one(
    tmp_path: Path, kind: str
) -> None:
    task = get_task("digits-mlp")
    steps_per_epoch = -(-len(load_splits(task).train[1]) // 64)
    stop_epoch = random.Random().randint(2, EPOCHS)  # interrupted inside this epoch
    store = _store(tmp_path)
    lr = FloatParam("lr", 1e-2, 1e-1, log=True)
    options: dict[str, Any] = {
        "searched": (lr,),
        "defaults": {**PARAMS, "batch_size": 64},
        "epochs": EPOCHS,
        "device": CPU,
        "seed": 7,
    }
    cls = FinalObjective if kind == "final" else StageObjective
    if kind == "final":
        options["early_stopping_patience"] = 3

    plain = optuna.create_study(direction="maximize")
    plain.enqueue_trial({"lr": 3e-2})
    plain.optimize(cls(task=task, **options), n_trials=1)
    expected = plain.trials[0]

    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'db.sqlite'}", direction="maximize"
    )
    study.enqueue_trial({"lr": 3e-2})
    policy = CheckpointPolicy(store, every=0.0)
    first = study.ask()
    interrupted = cls(
        task=_interrupting(task, steps_per_epoch * (stop_epoch - 1) + 1),
        checkpoints=policy,
        **options,
    )
    with pytest.raises(_Stop):
        interrupted(first)
    fail_and_retry(study, first._trial_id)
    retry = study.ask()
    assert retry.number == 1
    value = cls(task=task, checkpoints=policy, **options)(retry)
    study.tell(retry, value)

    done = study.trials[1]
    assert done.state == TrialState.COMPLETE
    assert done.user_attrs["resumed_from_epoch"] == stop_epoch - 1, stop_epoch
    assert done.value == expected.value
    assert done.intermediate_values == expected.intermediate_values  # the earlier reports kept
    for key in ("val_metric_curve", "train_loss_curve", "val_loss_curve", "best_epoch"):
        assert done.user_attrs.get(key) == expected.user_attrs.get(key), key
    assert list((tmp_path / "artifacts").iterdir()) == []  # finished: checkpoint removed


def test_a_checkpoint_interval_must_not_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint interval"):
        CheckpointPolicy(_store(tmp_path), every=-1.0)


def test_a_trial_over_its_time_limit_is_pruned_with_the_reason() -> None:
    study = optuna.create_study(direction="maximize")
    objective = StageObjective(
        task=get_task("digits-mlp"),
        searched=(),
        defaults=PARAMS,
        epochs=50,
        device=CPU,
        time_limit=1e-3,  # over after the first epoch
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["prune_reason"].startswith("over the trial time limit")
    assert trial.user_attrs["pruned_at_epoch"] == 1
    assert trial.user_attrs["epochs_run"] == 1


def test_a_time_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_limit must be a positive"):
        StageObjective(task=get_task("digits-mlp"), searched=(), time_limit=0)
