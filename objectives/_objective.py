"""The Optuna objective of one stage: suggest, train, report every epoch, prune."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stagetune.objectives._config import TrainConfig
from stagetune.objectives._diagnosis import diagnose_fit, diagnose_lr, initial_loss
from stagetune.objectives._tasks import load_splits
from stagetune.objectives._train import (
    EVAL_BATCH,
    EpochStats,
    NonFiniteLossError,
    TrainResult,
    default_device,
    free_device_memory,
    train,
)
from stagetune.storage import TrialAttr, TrialSystemAttr

if TYPE_CHECKING:
    import optuna
    import torch

    from stagetune.objectives._checkpoint import CheckpointPolicy, TrialCheckpoint
    from stagetune.objectives._tasks import Task
    from stagetune.spaces import Param


def suggest(trial: optuna.Trial, param: Param) -> Any:
    """Ask the trial for one parameter of a stage's search space."""
    from stagetune.spaces import CategoricalParam, IntParam

    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(param.name, list(param.choices))
    if isinstance(param, IntParam):
        return trial.suggest_int(param.name, param.low, param.high, log=param.log)
    return trial.suggest_float(param.name, param.low, param.high, log=param.log)


@dataclass
class StageObjective:
    """Train one trial of a stage and return its final validation metric.

    Args:
        task: What to train.
        searched: The stage's own parameters, sampled by the stage's sampler.
        carried: Parameters fixed by earlier stages, with the ranges they were
            searched in; the stage's sampler must fix them (``PartialFixedSampler``)
            so that they appear in every trial's ``params``.
        defaults: Values of every other parameter (the plan's defaults).
        epochs: Epochs per trial.
        device: Where to train; CUDA when available by default.
        seed: Trial ``n`` trains with torch seed ``seed + n``.
        lr_reference_batch: When set, ``lr`` is the LR at this batch size and each
            trial trains with it scaled linearly to its ``batch_size`` (the guide's
            linear scaling rule; a stage that searches batch size sets it).
        checkpoints: Where and how often a trial saves its training state; a retried
            trial resumes from its original's last checkpoint (``None``: no checkpoints).
        time_limit: Seconds of training after which a trial is pruned at the end of
            its epoch, with the reason in ``prune_reason`` (``None``: no limit). The
            epochs a retry restored from a checkpoint count.
    """

    task: Task
    searched: tuple[Param, ...]
    carried: tuple[Param, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 20
    device: torch.device | None = None
    seed: int = 0
    lr_reference_batch: int | None = None
    checkpoints: CheckpointPolicy | None = None
    time_limit: float | None = None

    def __post_init__(self) -> None:
        limit = self.time_limit
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0
        ):
            raise ValueError(f"time_limit must be a positive number of seconds, got {limit!r}.")

    def trial_seed(self, trial: optuna.Trial) -> int:
        """The torch seed of ``trial``: ``seed`` plus the number of the trial it retries
        (its own number when it is no retry), so that a retry trains the same model."""
        original = trial.storage.get_trial_system_attrs(trial._trial_id).get(
            TrialSystemAttr.FAILED_TRIAL
        )
        return self.seed + (original if isinstance(original, int) else trial.number)

    def params_for(self, trial: optuna.Trial) -> dict[str, Any]:
        params = dict(self.defaults)
        for param in (*self.carried, *self.searched):
            params[param.name] = suggest(trial, param)
        return scale_for_batch(params, self.lr_reference_batch)

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        params = self.params_for(trial)
        config = TrainConfig.from_params(params)
        trial.set_user_attr(TrialAttr.CONFIG, _jsonable(params))

        history: list[EpochStats] = []
        reported: set[int] = set()
        device = self.device or default_device()
        trial.set_user_attr(TrialAttr.DEVICE, str(device))
        seed = self.trial_seed(trial)
        start = initial_loss(self.task, load_splits(self.task), config, device=device, seed=seed)
        diverged = False
        clock = TrialClock(self.time_limit)

        def on_resume(restored: list[EpochStats]) -> None:
            replay(trial, restored, history, reported)
            clock.restored(restored)

        def on_epoch(stats: EpochStats) -> None:
            if not (math.isfinite(stats.val_loss) and math.isfinite(stats.val_metric)):
                raise NonFiniteLossError(stats.epoch, -1, stats.val_loss)
            # a retry after running out of memory repeats the same epochs
            history[stats.epoch - 1 :] = [stats]
            if stats.epoch in reported:
                return
            reported.add(stats.epoch)
            trial.report(stats.val_metric, stats.epoch)
            if trial.should_prune():
                trial.set_user_attr(TrialAttr.PRUNED_AT_EPOCH, stats.epoch)
                raise optuna.TrialPruned(f"pruned at epoch {stats.epoch}")
            clock.check(trial, stats.epoch)

        checkpoint = self.checkpoints.for_trial(trial) if self.checkpoints else None
        try:
            with discard_when_finished(checkpoint):
                result = self._train(trial, config, on_epoch, checkpoint, on_resume)
        except NonFiniteLossError as error:
            # The search goes on: the trial ends as pruned, so that samplers rank it
            # below every trial that trained, and the reason is on the trial.
            diverged = True
            trial.set_user_attr(TrialAttr.PRUNE_REASON, str(error))
            raise optuna.TrialPruned(str(error)) from None
        finally:
            record_curves(trial, history, initial=start, diverged=diverged)
        if result.stopped_early:
            trial.set_user_attr(TrialAttr.STOPPED_EARLY_AT_EPOCH, result.final.epoch)
        if config.early_stopping_patience is not None:
            trial.set_user_attr(TrialAttr.BEST_EPOCH, result.best_epoch)
            return result.best_val_metric
        return result.final.val_metric

    def _train(
        self,
        trial: optuna.Trial,
        config: TrainConfig,
        on_epoch: Callable[[EpochStats], None],
        checkpoint: TrialCheckpoint | None = None,
        on_resume: Callable[[list[EpochStats]], None] | None = None,
    ) -> TrainResult:
        """Train; on CUDA out-of-memory, free memory and retry once at half the micro-batch.

        The retry keeps the effective batch (twice the accumulation) and the seed,
        so it trains the same model. A second out-of-memory error ends the trial
        as pruned, with the reason in its ``prune_reason`` user attribute.
        """
        import optuna
        import torch

        device = self.device or default_device()
        eval_batch = EVAL_BATCH
        for attempt in (1, 2):
            try:
                return train(
                    self.task,
                    load_splits(self.task),
                    config,
                    epochs=self.epochs,
                    device=device,
                    seed=self.trial_seed(trial),
                    on_epoch=on_epoch,
                    eval_batch_size=eval_batch,
                    checkpoint=checkpoint,
                    on_resume=on_resume,
                )
            except torch.cuda.OutOfMemoryError as error:
                reason = _oom_reason(error, config)
            # Out of the except block: the traceback, and the tensors its frames
            # held, are gone, so the memory can be returned.
            free_device_memory(device)
            smaller = config.with_half_micro_batch() if attempt == 1 else None
            if smaller is None:
                trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
                raise optuna.TrialPruned(reason)
            trial.set_user_attr(TrialAttr.OOM, reason)
            trial.set_user_attr(
                TrialAttr.OOM_RETRY,
                {
                    "micro_batch_size": smaller.micro_batch_size,
                    "accumulation_steps": smaller.accumulation_steps,
                },
            )
            config = smaller
            eval_batch = min(eval_batch, smaller.micro_batch_size)
        raise AssertionError("unreachable: the second attempt returns or raises")


class TrialClock:
    """A trial's training time against its limit; the epochs a retry restored count."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self._started = time.monotonic()
        self._restored = 0.0

    def restored(self, history: list[EpochStats]) -> None:
        self._restored = sum(stats.seconds for stats in history)

    @property
    def elapsed(self) -> float:
        return self._restored + time.monotonic() - self._started

    def check(self, trial: optuna.Trial, epoch: int) -> None:
        """Prune ``trial`` (reason in ``prune_reason``) when it is over its time limit."""
        import optuna

        if self.limit is None or self.elapsed <= self.limit:
            return
        reason = (
            f"over the trial time limit: {self.elapsed:.1f} s > {self.limit:g} s "
            f"after epoch {epoch}"
        )
        trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
        trial.set_user_attr(TrialAttr.PRUNED_AT_EPOCH, epoch)
        raise optuna.TrialPruned(reason)


def replay(
    trial: optuna.Trial, restored: list[EpochStats], history: list[EpochStats], reported: set[int]
) -> None:
    """Report again, on a retried trial, the epochs its checkpoint restored (no pruning
    decision: those were taken when the epochs ran)."""
    history[:] = list(restored)
    for stats in restored:
        if stats.epoch not in reported:
            reported.add(stats.epoch)
            trial.report(stats.val_metric, stats.epoch)
    if restored:
        trial.set_user_attr(TrialAttr.RESUMED_FROM_EPOCH, restored[-1].epoch)


@contextlib.contextmanager
def discard_when_finished(checkpoint: TrialCheckpoint | None) -> Iterator[None]:
    """Remove the trial's checkpoint when training ends, unless a signal interrupted it
    (``KeyboardInterrupt``: the trial is queued to run again and resumes from it)."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        if checkpoint is not None:
            checkpoint.discard()
        raise
    if checkpoint is not None:
        checkpoint.discard()


def _oom_reason(error: BaseException, config: TrainConfig) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else "no details"
    return (
        f"CUDA out of memory at micro-batch {config.micro_batch_size} (batch "
        f"{config.batch_size}, accumulation {config.accumulation_steps}): {first_line}"
    )


def scale_for_batch(params: dict[str, Any], reference_batch: int | None) -> dict[str, Any]:
    """``params`` with ``lr`` scaled from ``reference_batch`` to ``params["batch_size"]``."""
    if reference_batch is None or "lr" not in params or "batch_size" not in params:
        return params
    from stagetune.spaces import scale_lr

    scaled = scale_lr(params["lr"], params["batch_size"], reference_batch)
    if scaled.beyond_limit:
        warnings.warn(scaled.warning(params["batch_size"]), UserWarning, stacklevel=2)
    return {**params, "lr": scaled.lr}


def record_curves(
    trial: optuna.Trial,
    history: list[EpochStats],
    *,
    initial: float | None = None,
    diverged: bool = False,
) -> None:
    """The last epoch's numbers, the per-epoch curves and the two diagnoses, written
    once when the trial ends (not every epoch)."""
    train_curve = [s.train_loss for s in history]
    lr_diagnosis = diagnose_lr(train_curve, initial_loss=initial, diverged=diverged)
    for key, value in lr_diagnosis.to_attrs().items():
        trial.set_user_attr(key, value)
    if initial is not None:
        trial.set_user_attr(TrialAttr.INITIAL_LOSS, initial)
    if not history:
        return
    stats = history[-1]
    trial.set_user_attr(TrialAttr.EPOCHS_RUN, stats.epoch)
    trial.set_user_attr(TrialAttr.TRAIN_LOSS, stats.train_loss)
    trial.set_user_attr(TrialAttr.VAL_LOSS, stats.val_loss)
    trial.set_user_attr(TrialAttr.VAL_METRIC, stats.val_metric)
    trial.set_user_attr(TrialAttr.TRAIN_LOSS_CURVE, train_curve)
    trial.set_user_attr(TrialAttr.VAL_LOSS_CURVE, [s.val_loss for s in history])
    trial.set_user_attr(TrialAttr.VAL_METRIC_CURVE, [s.val_metric for s in history])
    fit = diagnose_fit(train_curve, [s.val_loss for s in history], initial_loss=initial)
    trial.set_user_attr(TrialAttr.FIT_DIAGNOSIS, fit.label)


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(params.items())}
