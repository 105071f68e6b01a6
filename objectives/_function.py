"""Your own training loop as a trial: a function ``fn(params, ctx) -> float``.

A :class:`TrainFunction` stands where a :class:`~stagetune.objectives.Task` stands
in a staged search. Each trial calls the function with the trial's parameters and
a :class:`TrialContext`; the function trains with its own code and calls
``ctx.report(epoch, metric, train_loss=..., val_loss=...)`` after every epoch:

1. the metric goes to Optuna (``trial.report``), so the stage's pruner sees it;
2. the losses are kept, and written on the trial when it ends as the same curves
   and diagnoses (wrong LR, over/underfitting) a Task's trial records;
3. when the pruner says so, ``report`` raises ``optuna.TrialPruned``: the trial
   ends as PRUNED, the Optuna way (let it propagate).

The guide's pieces are one call each from the loop, built from ``params``
(:class:`LoopTools`): ``ctx.optimizer(model)``, ``ctx.scheduler(optimizer,
total_steps)``, ``ctx.clip(model)`` and ``ctx.micro_batches(batch)``.

The LR range test drives a loop of yours through :class:`RangeTestLoop`; a
function without one runs a plan without its range-test stage
(:meth:`TrainFunction.adapt_plan`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from stagetune.objectives._config import TrainConfig
from stagetune.objectives._diagnosis import diagnose_fit, diagnose_lr
from stagetune.objectives._objective import _jsonable, scale_for_batch, suggest
from stagetune.objectives._optim import build_optimizer, build_scheduler, steps_per_epoch_only
from stagetune.objectives._range_test import RangeTestObjective, RangeTestResult, sweep
from stagetune.objectives._tasks import TaskError
from stagetune.objectives._train import default_device
from stagetune.storage import TrialAttr

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

    from stagetune.spaces import FloatParam, Param, Plan, RangeTestSpec

#: Trial user attribute with every epoch reported so far: ``[[epoch, metric,
#: train_loss, val_loss], ...]`` (``None`` for a loss not reported).
REPORTS_ATTR = TrialAttr.REPORTS

#: The note a stage gets when the plan's LR range test was left out.
NO_RANGE_TEST = (
    "The plan's LR range test (step 2) was skipped: the train function supplies no "
    "range-test loop (stagetune.objectives.RangeTestLoop), so this stage searches "
    "the guide's whole LR range."
)


class Reported(NamedTuple):
    """One epoch as the training loop reported it."""

    epoch: int
    metric: float
    train_loss: float | None
    val_loss: float | None


class EarlyStop(Exception):
    """``report`` ends a final run whose patience ran out (caught by the objective)."""


class NonFiniteMetricError(ArithmeticError):
    """A reported metric or loss is NaN or infinite: the trial diverged."""


# -- the guide's pieces ------------------------------------------------------------


class Schedule:
    """An LR schedule that a loop steps the same way whichever kind ``params`` chose.

    Call :meth:`step` after every optimizer step and :meth:`end_epoch` after every
    epoch; ReduceLROnPlateau (``scheduler="plateau"``) steps only at the end of an
    epoch, on the validation loss, the others only per optimizer step, and
    ``"constant"`` never.
    """

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._per_epoch = scheduler is not None and steps_per_epoch_only(scheduler)

    def step(self) -> None:
        """After each optimizer step."""
        if self.scheduler is not None and not self._per_epoch:
            self.scheduler.step()

    def end_epoch(self, val_loss: float | None = None) -> None:
        """After each epoch; ReduceLROnPlateau needs ``val_loss``."""
        if self._per_epoch:
            if val_loss is None:
                raise ValueError(
                    "scheduler 'plateau' steps on the validation loss: call "
                    "end_epoch(val_loss) after each epoch."
                )
            self.scheduler.step(val_loss)


class LoopTools:
    """The guide's training-loop pieces, built from one trial's ``params``.

    Args:
        params: The trial's parameters (``lr``, ``weight_decay``, ``optimizer``,
            ``scheduler``, ``grad_clip``, ``accumulation_steps``, ...); see
            :class:`~stagetune.objectives.TrainConfig`.

    Example:
        >>> import torch
        >>> tools = LoopTools({"lr": 1e-3, "weight_decay": 0.1, "batch_size": 8,
        ...                    "accumulation_steps": 2})
        >>> model = torch.nn.Linear(3, 1)
        >>> [g["weight_decay"] for g in tools.optimizer(model).param_groups]
        [0.1, 0.0]
        >>> [len(part) for part, _ in tools.micro_batches(torch.zeros(8, 3))]
        [4, 4]
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        self.config = TrainConfig.from_params(self.params)

    @property
    def model_params(self) -> dict[str, Any]:
        """What a model builder needs: every non-loop parameter, and ``dropout``."""
        return self.config.model_params

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """``params``' optimizer (AdamW by default: decoupled weight decay) over two
        groups: weights decay, biases and norm weights (fewer than 2 dims) do not."""
        return build_optimizer(model, self.config)

    def scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Schedule:
        """``params``' LR schedule over ``total_steps`` optimizer steps (with the
        warmup of ``warmup_fraction`` / ``warmup_steps`` for ``cosine_warmup``)."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, but got {total_steps!r}.")
        return Schedule(build_scheduler(optimizer, self.config, total_steps))

    def clip(self, model: nn.Module) -> float | None:
        """Clip the global gradient norm to ``grad_clip``; returns the norm before
        clipping, or ``None`` when ``params`` does not clip."""
        import torch

        if self.config.grad_clip is None:
            return None
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip))

    def micro_batches(self, batch: Any) -> Iterator[tuple[Any, float]]:
        """Split a batch for gradient accumulation: ``(part, weight)`` pairs.

        Multiply each part's (mean) loss by its weight, its share of the batch, and
        call ``backward()`` on it; the gradients then sum to the whole batch's, and
        the optimizer steps once after the last part. A batch is a tensor, or a
        tuple, list or dict of them (split along the first dimension; other values
        are passed to every part). With ``accumulation_steps`` 1 it yields the batch
        itself, weight 1.
        """
        rows = _rows(batch)
        size = self.config.micro_batch_size
        if rows is None or rows <= size:
            yield batch, 1.0
            return
        for start in range(0, rows, size):
            stop = min(rows, start + size)
            yield _slice(batch, start, stop), (stop - start) / rows


def _rows(batch: Any) -> int | None:
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    values: Iterable[Any] = ()
    if isinstance(batch, Mapping):
        values = batch.values()
    elif isinstance(batch, (tuple, list)):
        values = batch
    for value in values:
        rows = _rows(value)
        if rows is not None:
            return rows
    return None


def _slice(batch: Any, start: int, stop: int) -> Any:
    import torch

    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.dim() else batch
    if isinstance(batch, Mapping):
        return {k: _slice(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_slice(v, start, stop) for v in batch)
    if isinstance(batch, list):
        return [_slice(v, start, stop) for v in batch]
    return batch


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (a tensor, or a tuple, list or dict of them) on ``device``."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(to_device(v, device) for v in batch)
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    return batch


# -- one trial -----------------------------------------------------------------------


class TrialContext(LoopTools):
    """What a train function gets besides ``params``: the trial's seed and device, the
    epochs to train, ``report``, and the guide's pieces of :class:`LoopTools`.

    Attributes:
        seed: The trial's seed (torch is already seeded with it when the function starts).
        device: Where to train.
        epochs: Epochs to train (the stage's; the final stage may train longer).
        number: The trial's number in its stage's study.
        trial: The Optuna trial, for anything else (``trial.set_user_attr``).
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        trial: optuna.Trial,
        seed: int,
        device: torch.device,
        epochs: int,
        direction: str,
        early_stopping_patience: int | None = None,
    ) -> None:
        super().__init__(params)
        self.trial = trial
        self.number = trial.number
        self.seed = seed
        self.device = device
        self.epochs = epochs
        self._direction = direction
        self._patience = early_stopping_patience
        self.reports: list[Reported] = []
        self.initial_loss: float | None = None

    def report(
        self,
        epoch: int,
        metric: float,
        *,
        train_loss: float | None = None,
        val_loss: float | None = None,
    ) -> None:
        """Report one epoch; raises ``optuna.TrialPruned`` when the pruner stops the trial.

        Args:
            epoch: The epoch, counting from 1. ``report(0, ...)`` before training
                gives the untrained model's ``val_loss`` (or ``train_loss``), which
                the wrong-LR diagnosis compares against; it is not sent to Optuna.
            metric: The validation metric of this epoch (what the search optimizes).
            train_loss: Mean training loss of the epoch (for the wrong-LR and fit
                diagnoses).
            val_loss: Validation loss (for the fit diagnosis).
        """
        checked = check_report(epoch, metric, train_loss, val_loss)
        reported = checked.entry
        if epoch == 0:
            self.initial_loss = val_loss if val_loss is not None else train_loss
            return
        if self.reports and epoch <= self.reports[-1].epoch:
            raise ValueError(
                f"epochs must be reported in increasing order, but got {epoch} after "
                f"{self.reports[-1].epoch}."
            )
        self.reports.append(reported)
        if not checked.finite:
            raise NonFiniteMetricError(
                f"non-finite value reported at epoch {epoch}: metric={metric}, "
                f"train_loss={train_loss}, val_loss={val_loss}"
            )
        if report_and_should_prune(self.trial, reported):
            raise _pruned(self.trial, epoch)
        if self._patience is not None:
            best = self.best()
            if best is not None and epoch - best.epoch >= self._patience:
                raise EarlyStop

    def best(self) -> Reported | None:
        """The best epoch reported so far (the first of ties)."""
        best: Reported | None = None
        for reported in self.reports:
            if best is None or _better(reported.metric, best.metric, self._direction):
                best = reported
        return best


class _Checked(NamedTuple):
    entry: Reported
    finite: bool


def check_report(epoch: Any, metric: Any, train_loss: Any, val_loss: Any) -> _Checked:
    """Validate one report; returns it with whether all its numbers are finite.

    Raises:
        ValueError: ``epoch`` is not an integer >= 0, or a value is not a number.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, but got {epoch!r}.")
    values = {"metric": metric, "train_loss": train_loss, "val_loss": val_loss}
    for name, value in values.items():
        if value is None and name != "metric":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)  # a 0-d tensor or a numpy scalar
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, but got {value!r}.") from None
        values[name] = float(value)
    entry = Reported(epoch, values["metric"], values["train_loss"], values["val_loss"])
    finite = all(v is None or math.isfinite(v) for v in entry[1:])
    return _Checked(entry, finite)


def report_and_should_prune(trial: optuna.Trial, reported: Reported) -> bool:
    """Send one epoch's metric to Optuna and ask the stage's pruner."""
    trial.report(reported.metric, reported.epoch)
    return bool(trial.should_prune())


def _pruned(trial: optuna.Trial, epoch: int) -> BaseException:
    import optuna

    trial.set_user_attr(TrialAttr.PRUNED_AT_EPOCH, epoch)
    return optuna.TrialPruned(f"pruned at epoch {epoch}")


def _better(value: float, than: float, direction: str) -> bool:
    return value > than if direction == "maximize" else value < than


def record_reports(
    trial: optuna.Trial,
    reports: Sequence[Reported],
    *,
    initial: float | None = None,
    diverged: bool = False,
) -> None:
    """Write the curves and diagnoses a Task's trial records (``record_curves``), from
    what the loop reported; a curve the loop did not report is left out, and so is
    the diagnosis that needs it."""
    trial.set_user_attr(REPORTS_ATTR, [list(r) for r in reports])
    if initial is not None:
        trial.set_user_attr(TrialAttr.INITIAL_LOSS, initial)
    train = [r.train_loss for r in reports]
    val = [r.val_loss for r in reports]
    has_train = bool(reports) and None not in train
    if has_train or diverged:
        curve = [float(v) for v in train if v is not None] if has_train else []
        lr_diagnosis = diagnose_lr(curve, initial_loss=initial, diverged=diverged)
        for key, value in lr_diagnosis.to_attrs().items():
            trial.set_user_attr(key, value)
    if not reports:
        return
    last = reports[-1]
    trial.set_user_attr(TrialAttr.EPOCHS_RUN, last.epoch)
    trial.set_user_attr(TrialAttr.VAL_METRIC, last.metric)
    trial.set_user_attr(TrialAttr.VAL_METRIC_CURVE, [r.metric for r in reports])
    if has_train:
        trial.set_user_attr(TrialAttr.TRAIN_LOSS, last.train_loss)
        trial.set_user_attr(TrialAttr.TRAIN_LOSS_CURVE, train)
    if None not in val:
        trial.set_user_attr(TrialAttr.VAL_LOSS, last.val_loss)
        trial.set_user_attr(TrialAttr.VAL_LOSS_CURVE, val)
        if has_train:
            fit = diagnose_fit(
                [float(v) for v in train if v is not None],
                [float(v) for v in val if v is not None],
                initial_loss=initial,
            )
            trial.set_user_attr(TrialAttr.FIT_DIAGNOSIS, fit.label)


class ReportLog:
    """The epochs of a trial trained outside this process (ask/tell), kept on the trial
    so that each report may come from another process.

    Args:
        trial: The running trial.
        user_attrs: Its user attributes as stored (the epochs reported so far).
    """

    def __init__(self, trial: optuna.Trial, user_attrs: Mapping[str, Any]) -> None:
        self.trial = trial
        self.reports = [Reported(*entry) for entry in user_attrs.get(REPORTS_ATTR, [])]
        self.initial: float | None = user_attrs.get(TrialAttr.INITIAL_LOSS)

    def add(
        self,
        epoch: int,
        metric: float,
        *,
        train_loss: float | None = None,
        val_loss: float | None = None,
    ) -> bool:
        """Record one epoch (as :meth:`TrialContext.report` does) and ask the pruner.

        Returns:
            ``True`` when the trial must stop: the pruner says so (``pruned_at_epoch``
            is set) or a value is not finite (``prune_reason``); the caller then
            ends it as PRUNED. An epoch reported again changes nothing.

        Raises:
            ValueError: A bad value, or an epoch before the last one reported.
        """
        checked = check_report(epoch, metric, train_loss, val_loss)
        entry = checked.entry
        if epoch == 0:
            initial = entry.val_loss if entry.val_loss is not None else entry.train_loss
            if initial is not None:
                self.trial.set_user_attr(TrialAttr.INITIAL_LOSS, initial)
            return False
        if any(r.epoch == epoch for r in self.reports):
            return False
        if self.reports and epoch < self.reports[-1].epoch:
            raise ValueError(
                f"epochs must be reported in increasing order, but got {epoch} after "
                f"{self.reports[-1].epoch}."
            )
        self.reports.append(entry)
        if not checked.finite:
            self.trial.set_user_attr(
                TrialAttr.PRUNE_REASON, f"non-finite value reported at epoch {epoch}"
            )
            record_reports(self.trial, self.reports, initial=self.initial, diverged=True)
            return True
        stop = report_and_should_prune(self.trial, entry)
        record_reports(self.trial, self.reports, initial=self.initial)
        if stop:
            self.trial.set_user_attr(TrialAttr.PRUNED_AT_EPOCH, epoch)
        return stop

    def last_metric(self) -> float | None:
        """The metric of the last epoch reported."""
        return self.reports[-1].metric if self.reports else None

    def best_epoch(self, direction: str) -> int | None:
        """The epoch with the best metric in ``direction`` (the first of ties)."""
        best: Reported | None = None
        for reported in self.reports:
            if best is None or _better(reported.metric, best.metric, direction):
                best = reported
        return None if best is None else best.epoch


# -- what stands where a Task stands --------------------------------------------------


@dataclass(frozen=True)
class RangeTestLoop:
    """How the LR range test (stage 0) drives your loop: give ``step``, or ``model``,
    ``batches`` and ``loss`` (and optionally ``optimizer``).

    Args:
        step: ``step(params, ctx)`` builds a fresh model and optimizer for the trial's
            ``params`` and returns ``one_step(lr) -> float``, which sets the
            optimizer's LR to ``lr``, trains one optimizer step on the next batch and
            returns the batch's loss. The sweep calls it up to ``num_iter`` times.
        model: ``model(params)`` returns a fresh ``nn.Module`` (moved to the device).
        batches: ``batches(params)`` returns an iterable of training batches (tensors,
            or tuples/dicts of them; moved to the device); it is iterated again when
            it runs out.
        loss: ``loss(model, batch)`` returns the batch's mean loss (a scalar tensor).
        optimizer: ``optimizer(model, ctx)`` returns the optimizer; default:
            ``ctx.optimizer(model)``, the guide's from ``params``.

    The built-in step (``model`` + ``batches`` + ``loss``) accumulates gradients over
    ``ctx.micro_batches`` and clips with ``ctx.clip``, as the trials do.
    """

    step: Callable[[dict[str, Any], LoopTools], Callable[[float], float]] | None = None
    model: Callable[[dict[str, Any]], nn.Module] | None = None
    batches: Callable[[dict[str, Any]], Iterable[Any]] | None = None
    loss: Callable[[nn.Module, Any], torch.Tensor] | None = None
    optimizer: Callable[[nn.Module, LoopTools], torch.optim.Optimizer] | None = None

    def __post_init__(self) -> None:
        parts = {"model": self.model, "batches": self.batches, "loss": self.loss}
        given = [name for name, value in parts.items() if value is not None]
        if self.step is not None and (given or self.optimizer is not None):
            raise TaskError(
                "RangeTestLoop: give either step, or model + batches + loss, not both."
            )
        if self.step is None and len(given) != 3:
            missing = sorted(set(parts) - set(given))
            raise TaskError(
                f"RangeTestLoop: give step, or model + batches + loss; missing {missing}."
            )
        for name, value in (*parts.items(), ("step", self.step), ("optimizer", self.optimizer)):
            if value is not None and not callable(value):
                raise TaskError(f"RangeTestLoop: {name} must be callable, but got {value!r}.")

    def make_step(
        self, params: dict[str, Any], tools: LoopTools, device: torch.device
    ) -> Callable[[float], float]:
        """The ``one_step(lr)`` of one sweep."""
        if self.step is not None:
            return self.step(params, tools)
        assert self.model is not None and self.batches is not None and self.loss is not None
        model = self.model(params).to(device)
        model.train()
        optimizer = (
            self.optimizer(model, tools) if self.optimizer is not None else tools.optimizer(model)
        )
        stream = _endless(self.batches, params)
        loss_fn = self.loss

        def one_step(lr: float) -> float:
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            batch = to_device(next(stream), device)
            total = 0.0
            for part, weight in tools.micro_batches(batch):
                loss = loss_fn(model, part) * weight
                loss.backward()
                total += float(loss.detach())
            tools.clip(model)
            optimizer.step()
            return total

        return one_step


def _endless(
    batches: Callable[[dict[str, Any]], Iterable[Any]], params: dict[str, Any]
) -> Iterator[Any]:
    while True:
        empty = True
        for batch in batches(params):
            empty = False
            yield batch
        if empty:
            raise TaskError("RangeTestLoop: batches(params) yielded no batch.")


@dataclass(frozen=True)
class TrainFunction:
    """Your own training loop, where a staged search takes a Task.

    Args:
        fn: ``fn(params, ctx) -> float`` trains one trial with ``params`` and returns
            its final validation metric (``None``: the last reported one); it calls
            ``ctx.report(epoch, metric, train_loss=..., val_loss=...)`` after every
            epoch (:class:`TrialContext`). ``None`` for a search whose trials run
            outside the process (ask/tell). With several worker processes it must
            be picklable: a function defined at a module's top level.
        name: Name of the search's trainee (default: ``fn.__name__``).
        metric_name: Name of the metric, e.g. ``"accuracy"``.
        direction: ``"minimize"`` (Optuna's default: a loss) or ``"maximize"``.
        profile: The profile whose plan suits the model (``stagetune profiles``).
        epochs: Epochs per trial unless the search says otherwise.
        range_test: How the LR range test drives your loop; ``None``: the plan's
            range-test stage is skipped (the LR stage's note says so).

    Example:
        >>> def fit(params, ctx):
        ...     for epoch in range(1, ctx.epochs + 1):
        ...         ctx.report(epoch, 1.0 / (epoch * params["lr"]))
        ...     return 1.0 / (ctx.epochs * params["lr"])
        >>> TrainFunction(fit).name
        'fit'
    """

    fn: Callable[[dict[str, Any], TrialContext], float | None] | None
    name: str = ""
    metric_name: str = "metric"
    direction: Literal["maximize", "minimize"] = "minimize"
    profile: str = "mlp"
    epochs: int = 20
    range_test: RangeTestLoop | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.fn is not None and not callable(self.fn):
            raise TaskError(f"train must be a function fn(params, ctx), but got {self.fn!r}.")
        if not self.name:
            name = getattr(self.fn, "__name__", "") if self.fn is not None else ""
            if not name or name == "<lambda>":
                raise TaskError("A train function needs a name: TrainFunction(fn, name=...).")
            object.__setattr__(self, "name", name)
        if not isinstance(self.name, str) or not self.name.strip():
            raise TaskError(f"A train function needs a non-empty name, but got {self.name!r}.")
        if self.direction not in ("maximize", "minimize"):
            raise TaskError(
                f"train function {self.name!r}: direction must be 'maximize' or 'minimize', "
                f"but got {self.direction!r}."
            )
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise TaskError(
                f"train function {self.name!r}: epochs must be >= 1, but got {self.epochs!r}."
            )
        if self.range_test is not None and not isinstance(self.range_test, RangeTestLoop):
            raise TaskError(
                f"train function {self.name!r}: range_test must be a RangeTestLoop, but got "
                f"{self.range_test!r}."
            )

    @classmethod
    def of(cls, train: Any) -> TrainFunction:
        """``train`` as a train function (a bare function gets the defaults)."""
        return train if isinstance(train, TrainFunction) else cls(train)

    def better(self, value: float, than: float) -> bool:
        """Whether metric ``value`` is strictly better than ``than`` in this direction."""
        return _better(value, than, self.direction)

    def adapt_plan(self, plan: Plan) -> Plan:
        """``plan`` without its range-test stage when there is no range-test loop; the
        stage after it says why in its note."""
        if self.range_test is not None:
            return plan
        return skip_range_test(plan, NO_RANGE_TEST)


def skip_range_test(plan: Plan, reason: str) -> Plan:
    """``plan`` without ``lr_range_test`` stages; the stage after each says ``reason``."""
    stages = list(plan.stages)
    kept = []
    skipped = False
    for stage in stages:
        if stage.kind == "lr_range_test":
            skipped = True
            continue
        if skipped:
            stage = replace(stage, why=f"{stage.why} {reason}".strip())
            skipped = False
        kept.append(stage)
    if len(kept) == len(stages):
        return plan
    if not kept:
        raise TaskError(f"The plan has only the LR range test, and it was skipped: {reason}")
    return replace(plan, stages=tuple(kept))


@dataclass
class FunctionObjective:
    """One trial of a stage with your loop: suggest, call ``fn``, record, return.

    Args:
        function: The train function.
        searched, carried, defaults, epochs, device, seed, lr_reference_batch: As
            :class:`~stagetune.objectives.StageObjective`.
        early_stopping_patience: A final stage's patience: ``report`` ends the run
            when the metric has not improved for this many epochs, and the trial's
            value is the best epoch's (``None``: the function's return value).
        final: This is the final run (its value is the best reported epoch's when the
            function returns ``None``, and ``best_epoch`` is recorded).
    """

    function: TrainFunction
    searched: tuple[Param, ...]
    carried: tuple[Param, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 20
    device: torch.device | None = None
    seed: int = 0
    lr_reference_batch: int | None = None
    early_stopping_patience: int | None = None
    final: bool = False

    def params_for(self, trial: optuna.Trial) -> dict[str, Any]:
        params = dict(self.defaults)
        for param in (*self.carried, *self.searched):
            params[param.name] = suggest(trial, param)
        return scale_for_batch(params, self.lr_reference_batch)

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna
        import torch

        if self.function.fn is None:
            raise TaskError(
                f"{self.function.name!r} has no train function: its trials run through "
                "ask/tell (stagetune ask / stagetune tell)."
            )
        params = self.params_for(trial)
        trial.set_user_attr(TrialAttr.CONFIG, _jsonable(params))
        seed = self.seed + trial.number
        ctx = TrialContext(
            params,
            trial=trial,
            seed=seed,
            device=self.device or default_device(),
            epochs=self.epochs,
            direction=self.function.direction,
            early_stopping_patience=self.early_stopping_patience,
        )
        torch.manual_seed(seed)
        stopped_early = diverged = False
        value: float | None = None
        try:
            value = self.function.fn(dict(params), ctx)
        except EarlyStop:
            stopped_early = True
        except NonFiniteMetricError as error:
            diverged = True
            trial.set_user_attr(TrialAttr.PRUNE_REASON, str(error))
            raise optuna.TrialPruned(str(error)) from None
        finally:
            record_reports(trial, ctx.reports, initial=ctx.initial_loss, diverged=diverged)
        best = ctx.best()
        if self.final and best is not None:
            trial.set_user_attr(TrialAttr.BEST_EPOCH, best.epoch)
            trial.set_user_attr(TrialAttr.STOPPED_EARLY, stopped_early)
        if stopped_early or (value is None and self.final):
            value = None if best is None else best.metric
        elif value is None:
            value = ctx.reports[-1].metric if ctx.reports else None
        return self._checked(trial, value)

    def _checked(self, trial: optuna.Trial, value: Any) -> float:
        import optuna

        if value is None:
            raise TaskError(
                f"train function {self.function.name!r} returned None and reported no "
                "epoch: return the validation metric, or call ctx.report(epoch, metric)."
            )
        number = check_report(1, value, None, None)
        if not number.finite:
            reason = f"the train function returned a non-finite value {value!r}"
            trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)
        return number.entry.metric


@dataclass
class FunctionRangeTestObjective(RangeTestObjective):
    """Stage 0 with your loop: the sweep drives :class:`RangeTestLoop`'s step."""

    loop: RangeTestLoop | None = None

    @classmethod
    def of(
        cls,
        function: TrainFunction,
        *,
        clip: FloatParam,
        spec: RangeTestSpec,
        carried: tuple[Param, ...],
        defaults: Mapping[str, Any],
        device: torch.device | None,
        seed: int,
    ) -> FunctionRangeTestObjective:
        """The range-test objective of a train function (it must have a range-test loop)."""
        if function.range_test is None:
            raise TaskError(
                f"train function {function.name!r} has no range_test loop; its plan skips "
                "the LR range test."
            )
        return cls(
            task=None,  # type: ignore[arg-type]  # measure() does not use it
            clip=clip,
            spec=spec,
            carried=carried,
            defaults=defaults,
            device=device,
            seed=seed,
            loop=function.range_test,
        )

    def measure(
        self, params: Mapping[str, Any], config: TrainConfig, *, device: torch.device, seed: int
    ) -> RangeTestResult:
        import torch

        assert self.loop is not None
        torch.manual_seed(seed)
        tools = LoopTools(params)
        return sweep(self.loop.make_step(dict(params), tools, device), self.spec)
