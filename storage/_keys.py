"""Every name stagetune stores on a study or a trial, in one place.

A search is its database: these attribute names are what ``stagetune status``,
``report``, ``export``, the dashboard notes, a resumed search and your notebook read
back, so they are part of the stored format: renaming one strands the searches
already stored. Stage studies carry :class:`StudyAttr`; trials carry
:class:`TrialAttr` (user attributes, what the training wrote) and :class:`TrialSystemAttr`
(system attributes, who ran the trial and why it stopped).

Example:
    >>> StudyAttr.RANGE_TEST, TrialAttr.LR_DIAGNOSIS
    ('stagetune_lr_range_test', 'lr_diagnosis')
"""

from __future__ import annotations

from typing import Final


class StudyAttr:
    """User attributes of a stage study."""

    # The stage's lineage (stagetune.storage.StageLineage), on every stage study.
    SEARCH: Final = "stagetune_search"
    STAGE: Final = "stagetune_stage"
    STAGE_INDEX: Final = "stagetune_stage_index"
    N_STAGES: Final = "stagetune_n_stages"
    SEARCHES: Final = "stagetune_searches"
    CARRIED: Final = "stagetune_carried"
    BUDGET: Final = "stagetune_budget"
    #: What ``BUDGET`` counts: ``"trials"`` (finished trials) or ``"epochs"`` (trained epochs).
    BUDGET_UNIT: Final = "stagetune_budget_unit"
    PLAN: Final = "stagetune_plan"
    DONE: Final = "stagetune_done"
    BEST_PARAMS: Final = "stagetune_best_params"
    BEST_VALUE: Final = "stagetune_best_value"
    # What the search was started with (stagetune.storage.SearchSettings), on the first
    # stage's study.
    TASK: Final = "stagetune_task"
    EPOCHS: Final = "stagetune_epochs"
    PLAN_SPEC: Final = "stagetune_plan_spec"
    # What a stage kind found, written when the stage resolves or ends.
    RANGE_TEST: Final = "stagetune_lr_range_test"
    LR_WINDOW: Final = "stagetune_lr_window"
    FIT_DIAGNOSIS: Final = "stagetune_fit_diagnosis"
    LR_DIAGNOSES: Final = "stagetune_lr_diagnoses"
    #: A search stage's best values at an end of their range: ``{name: {"value", "low",
    #: "high", "side"}}`` (``stagetune.spaces.range_edge``).
    RANGE_EDGES: Final = "stagetune_range_edges"
    FINAL: Final = "stagetune_final"


class StudySystemAttr:
    """System attributes of a stage study."""

    #: The machine (``host/boot-id``) whose workers run a search on a storage whose
    #: search lock works on one machine only (MySQL, ...): another one is refused.
    LOCK_MACHINE: Final = "stagetune:lock_machine"


class TrialAttr:
    """User attributes of a trial: what its training wrote."""

    CONFIG: Final = "config"
    # the last epoch's numbers and the per-epoch curves
    EPOCHS_RUN: Final = "epochs_run"
    TRAIN_LOSS: Final = "train_loss"
    VAL_LOSS: Final = "val_loss"
    VAL_METRIC: Final = "val_metric"
    TRAIN_LOSS_CURVE: Final = "train_loss_curve"
    VAL_LOSS_CURVE: Final = "val_loss_curve"
    VAL_METRIC_CURVE: Final = "val_metric_curve"
    INITIAL_LOSS: Final = "initial_loss"
    # diagnoses of the curves
    FIT_DIAGNOSIS: Final = "fit_diagnosis"
    LR_DIAGNOSIS: Final = "lr_diagnosis"
    LR_DIAGNOSIS_FIX: Final = "lr_diagnosis_fix"
    LR_DIAGNOSIS_REASON: Final = "lr_diagnosis_reason"
    # how it stopped
    PRUNED_AT_EPOCH: Final = "pruned_at_epoch"
    PRUNE_REASON: Final = "prune_reason"
    STOPPED_EARLY_AT_EPOCH: Final = "stopped_early_at_epoch"
    BEST_EPOCH: Final = "best_epoch"
    OOM: Final = "oom"
    OOM_RETRY: Final = "oom_retry"
    # the LR range test's one trial: its curve and suggestion
    RANGE_TEST: Final = "lr_range_test"
    # the final run
    FINAL_ERROR: Final = "final_error"
    STOPPED_EARLY: Final = "stopped_early"
    TEST_LOSS: Final = "test_loss"
    TEST_METRIC: Final = "test_metric"
    #: The artifact id of the final run's trained model (``model.pt``).
    MODEL_ARTIFACT: Final = "model_artifact"
    # where and how it ran
    DEVICE: Final = "device"
    RESUMED_FROM_EPOCH: Final = "resumed_from_epoch"
    #: Every epoch a train function or an ask/tell client reported: ``[[epoch, metric,
    #: train_loss, val_loss], ...]`` (``None`` for a loss not reported).
    REPORTS: Final = "stagetune_reports"
    #: Why an ask/tell client failed the trial (``stagetune tell --failed REASON``).
    FAIL_REASON: Final = "fail_reason"


class TrialSystemAttr:
    """System attributes of a trial."""

    #: The process that runs the trial: host, boot id, PID namespace, pid, start time, thread.
    WORKER: Final = "stagetune:worker"
    #: The signal that stopped the trial (``"SIGTERM"``, ``"SIGINT"``).
    INTERRUPTED: Final = "stagetune:interrupted"
    #: The trial's latest checkpoint: ``{"id": artifact id, "epoch": n}``, plus the ids a save
    #: in progress may leave behind (``pending``, ``previous``); a retry inherits it.
    CHECKPOINT: Final = "stagetune:checkpoint"
    #: The trial was handed out by ask/tell; ``WORKER`` names the process that owns it.
    ASKED: Final = "stagetune:asked"
    #: Written by Optuna's ``RetryFailedTrialCallback`` on a retry: the trial it re-runs,
    #: and the numbers of every trial before it in the chain.
    FAILED_TRIAL: Final = "failed_trial"
    RETRY_HISTORY: Final = "retry_history"
    #: The most epochs a trial claimed under an epoch budget may train; set under the
    #: search lock when the trial is claimed (``stagetune.search._budget``).
    EPOCH_CAP: Final = "stagetune_epoch_cap"
    #: A stage's first trial recorded, not trained (``Stage.incumbent = "reuse"``): the
    #: trial it repeats, ``{"study": name, "number": n}``; it trained 0 of the stage's epochs.
    REUSED: Final = "stagetune:reused"
