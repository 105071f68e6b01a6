"""The tables of the practical tuning guide, as data.

Every entry names the guide section it comes from (``source``). Where the guide
is inconsistent or a range has to be widened to be searchable, the decision is
written next to the data as ``decision`` and tested in
``tests/spaces_tests/test_guide.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

GUIDE = "guide/hyperparameter-tuning-guide.md"

#: "The Priority Order": tune in this order, earlier ones matter more.
PRIORITY_ORDER: tuple[str, ...] = (
    "learning_rate",
    "batch_size",
    "weight_decay",
    "warmup_steps",
    "scheduler",
    "grad_clip",
    "dropout",
    "epochs",
    "optimizer",
    "architecture_depth",
)
PRIORITY_SOURCE = "The Priority Order"


@dataclass(frozen=True)
class LearningRateRow:
    """One row of "Learning Rate / Starting points by optimizer"."""

    optimizer: str
    typical_low: float
    typical_high: float
    common_defaults: tuple[float, ...]
    #: the range a stage searches (log scale)
    search_low: float
    search_high: float
    #: the value tried first
    default: float
    decision: str = ""
    source: str = "Learning Rate / Starting points by optimizer"


LEARNING_RATE: dict[str, LearningRateRow] = {
    "sgd": LearningRateRow(
        optimizer="SGD + Momentum",
        typical_low=1e-3,
        typical_high=0.1,
        common_defaults=(0.01, 0.1),
        search_low=1e-3,
        search_high=1.0,
        default=0.1,
        decision="Default 0.1, the step-1 value for SGD ('lr = ... 0.1 (SGD)'), tried first. "
        "The guide's range ends at that default, so the first trial sat on the edge and "
        "nothing above it could be searched; the search range keeps the guide's lower end "
        "and moves the upper end up by one of the guide's 'Multiply by 10' fixes, to 1.0 "
        "(the linear scaling rule alone takes 0.1 to 0.4 at four times the batch). "
        "Measured (benchmarks/sgd_range.py, the cnn-scratch defaults, 9 LRs x 8 seeds): on "
        "mnist1d-cnn LRs 0.18-0.56 beat 0.1 by 0.5-0.6 test points (paired), 1.0 by 0.3, "
        "1.8 is worse and 3.2 breaks training; the range test's min-loss LR / 10 was "
        "0.09-0.69 over 5 seeds, clipped to 0.1 before; and every staged and joint pick of "
        "the search benchmark sat at 0.085-0.1.",
    ),
    "adam": LearningRateRow(
        optimizer="Adam",
        typical_low=1e-4,
        typical_high=1e-3,
        common_defaults=(1e-3,),
        search_low=1e-4,
        search_high=1e-3,
        default=1e-3,
        decision="The guide's range as is; its default 1e-3 is the range's upper end, so "
        "the first trial sits on the edge and the LR range test decides which side to "
        "explore.",
    ),
    "adamw_finetune": LearningRateRow(
        optimizer="AdamW (fine-tuning)",
        typical_low=1e-5,
        typical_high=5e-4,
        common_defaults=(2e-5, 5e-5),
        search_low=1e-5,
        search_high=5e-4,
        default=2e-5,
        decision="The guide gives a default range 2e-5 to 5e-5; its lower end, as in the "
        "BERT fine-tuning recipe (lr=2e-5), is tried first.",
    ),
    "adamw_scratch": LearningRateRow(
        optimizer="AdamW (from scratch)",
        typical_low=1e-4,
        typical_high=3e-4,
        common_defaults=(1e-3,),
        search_low=1e-4,
        search_high=3e-2,
        default=1e-3,
        decision="The guide's range (1e-4 to 3e-4) excludes its own default (1e-3), which "
        "step 1 and the ViT recipe also use, and is meant for large models. The search "
        "range keeps the guide's lower end and moves the upper end up by two of the guide's "
        "'Multiply by 10' fixes, to 3e-2 (100x the guide's 3e-4); the default 1e-3 is tried "
        "first. Measured (benchmarks/lr_range_test.py, 13 LRs x 3 seeds, AdamW): the best LR "
        "is 1e-2 on digits-mlp and 1.8e-2 on a 1-D CNN on mnist1d, where 1e-2 scored 3 "
        "points lower; an upper end of 1e-2 cut that best LR off the range.",
    ),
}

#: Transformer pretraining has no row of its own. Decision: search from the
#: from-scratch row's lower end to its common default, [1e-4, 1e-3], whose log-centre
#: (3.2e-4) is the GPT recipe's lr=3e-4, tried first.
PRETRAIN_LEARNING_RATE = LearningRateRow(
    optimizer="AdamW (pretraining)",
    typical_low=1e-4,
    typical_high=3e-4,
    common_defaults=(1e-3,),
    search_low=1e-4,
    search_high=1e-3,
    default=3e-4,
    decision="No guide row: [AdamW from-scratch low, its default] = [1e-4, 1e-3]; the GPT "
    "recipe's 3e-4 first.",
    source="Learning Rate / Starting points by optimizer; Quick Reference / GPT-style",
)

#: Not a row of the guide: "Very large models (memory issue): Adafactor or Lion"
#: (Optimizer Choice) names Adafactor without an LR. ``torch.optim.Adafactor``'s own
#: default is 1e-2; the search range goes 10x either way (the guide's "Divide by 10"
#: / "Multiply by 10" fixes).
ADAFACTOR_LEARNING_RATE = LearningRateRow(
    optimizer="Adafactor",
    typical_low=1e-3,
    typical_high=1e-1,
    common_defaults=(1e-2,),
    search_low=1e-3,
    search_high=1e-1,
    default=1e-2,
    decision="No guide row: torch.optim.Adafactor's default 1e-2, searched 10x either way.",
    source="Optimizer Choice / Very large models (memory issue)",
)


#: Not a row of the guide's LR table: "Reinforcement learning: Adam or RMSProp"
#: (Optimizer Choice) names RMSProp beside Adam without an LR. Both divide each step by
#: a running root mean square of the gradients, so a parameter moves by about ``lr`` per
#: step with either: RMSProp takes Adam's row (1e-4 - 1e-3, 1e-3 first; Keras's RMSprop
#: default is 1e-3 too). ``torch.optim.RMSprop``'s own default, 1e-2, lies 10x above
#: that row's upper end; the LR range test still looks from 1e-7 to 10.
RMSPROP_LEARNING_RATE = LearningRateRow(
    optimizer="RMSProp",
    typical_low=LEARNING_RATE["adam"].typical_low,
    typical_high=LEARNING_RATE["adam"].typical_high,
    common_defaults=LEARNING_RATE["adam"].common_defaults,
    search_low=LEARNING_RATE["adam"].search_low,
    search_high=LEARNING_RATE["adam"].search_high,
    default=LEARNING_RATE["adam"].default,
    decision="No guide row: Adam's (1e-4 - 1e-3, 1e-3 first), the optimizer the guide names "
    "beside it; both scale each step by a running RMS of the gradients.",
    source="Optimizer Choice / Reinforcement learning; Learning Rate / Starting points by "
    "optimizer (Adam)",
)


@dataclass(frozen=True)
class BatchSizeRow:
    """One row of "Batch Size / Practical ranges" (``None``: the guide gives no number)."""

    hardware: str
    low: int | None
    high: int | None
    note: str = ""
    source: str = "Batch Size / Practical ranges"


BATCH_SIZE: dict[str, BatchSizeRow] = {
    "single_gpu_16gb": BatchSizeRow("Single GPU (16GB)", 32, 256),
    "single_gpu_40gb": BatchSizeRow("Single GPU (40GB+)", 64, 512),
    "multi_gpu": BatchSizeRow("Multi-GPU", None, None, note="Scale up with gradient accumulation"),
}

#: "Small batch sizes (<=16) act as implicit regularization due to gradient noise".
SMALL_BATCH_REGULARIZES = 16


@dataclass(frozen=True)
class LinearScalingRule:
    """ "Batch Size / Linear scaling rule": batch x k -> LR x k, up to ~4k-8k."""

    example_batch: int = 32
    example_lr: float = 0.01
    example_scaled_batch: int = 128
    example_scaled_lr: float = 0.04
    limit_low: int = 4096
    limit_high: int = 8192
    beyond_limit: str = "For very large batches, use LAMB or warmup to stabilize."
    decision: str = (
        "stagetune warns from the lower end of the limit (a batch above 4096), and still "
        "scales: the guide says the rule 'breaks down', not what to do instead, beyond "
        "LAMB or warmup."
    )
    source: str = "Batch Size / Linear scaling rule"


LINEAR_SCALING = LinearScalingRule()


@dataclass(frozen=True)
class WeightDecayRow:
    """One row of "Weight Decay Strength / Quick reference"."""

    setting: str
    low: float
    high: float
    source: str = "Weight Decay Strength / Quick reference"


WEIGHT_DECAY: dict[str, WeightDecayRow] = {
    "sgd_cnn": WeightDecayRow("SGD + CNN (ImageNet)", 1e-4, 1e-4),
    "adamw_transformer_finetune": WeightDecayRow("AdamW + Transformer (fine-tuning)", 0.01, 0.01),
    "adamw_transformer_pretrain": WeightDecayRow("AdamW + Transformer (pretraining)", 0.1, 0.1),
    "adamw_vit": WeightDecayRow("AdamW + ViT", 0.05, 0.3),
}

#: "Practical Tuning Strategy / Step 3": 2-3 short experiments with these values.
WEIGHT_DECAY_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-2)
WEIGHT_DECAY_GRID_SOURCE = "Practical Tuning Strategy / Step 3"

#: The guide's step-3 grid stops at 1e-2, below the table's values for transformer
#: pretraining (0.1) and ViT (0.05-0.3). Decision: a profile's weight-decay stage
#: searches, on a log scale, the smallest range that holds both the grid and the
#: profile's row ("widened by the profile"), see ``weight_decay_range``.
WEIGHT_DECAY_RANGE_DECISION = (
    "weight_decay stage range = [min(1e-5, row low), max(1e-2, row high)], log scale: "
    "the step-3 grid widened to hold the profile's row of the weight-decay table."
)


def weight_decay_range(row: WeightDecayRow | None) -> tuple[float, float]:
    """The weight-decay stage's log range for a profile whose setting is ``row``.

    Example:
        >>> weight_decay_range(WEIGHT_DECAY["adamw_vit"])
        (1e-05, 0.3)
    """
    low, high = min(WEIGHT_DECAY_GRID), max(WEIGHT_DECAY_GRID)
    if row is None:
        return low, high
    return min(low, row.low), max(high, row.high)


@dataclass(frozen=True)
class WarmupRow:
    """One row of "Warmup Steps / How much warmup": a fraction of the run or steps."""

    task: str
    fraction: tuple[float, float] | None = None
    steps: tuple[int, int] | None = None
    source: str = "Warmup Steps / How much warmup"


WARMUP: dict[str, WarmupRow] = {
    "bert_finetune": WarmupRow("BERT fine-tuning", fraction=(0.06, 0.10)),
    "bert_pretrain": WarmupRow("BERT pretraining", steps=(10_000, 10_000)),
    "gpt_pretrain": WarmupRow("GPT pretraining", steps=(2_000, 4_000)),
    "vit_scratch": WarmupRow("ViT from scratch", steps=(10_000, 10_000)),
    "small_model": WarmupRow("Small model / short training", steps=(500, 1_000)),
}

#: "For CNNs, warmup is optional ... Start without it".
CNN_WARMUP = 0.0

#: The loop warms up for ``warmup_fraction`` of the run, or for ``warmup_steps`` when
#: a recipe counts steps; a step count larger than 10% of the run is cut to 10% of the
#: run (``stagetune.objectives._optim.MAX_WARMUP_SHARE``, the upper end of "Cosine + Warmup:
#: num_warmup_steps=6-10%"): the guide's counts assume runs of 100k+ steps, and a warmup
#: that never ends leaves no decay.
WARMUP_DECISION = (
    "Fractions (BERT fine-tuning 6-10%) are used as fractions, the lower end (6%, as "
    "in the BERT recipe) first; step counts (GPT 2,000, ViT 10,000) are used as steps, "
    "at most 10% of the run (the upper end of 'num_warmup_steps=6-10%')."
)


@dataclass(frozen=True)
class SchedulerRow:
    """One row of "Scheduler Choice": the guide's scheduler and stagetune's name for it."""

    scheduler: str
    name: str
    when: str
    key_setting: str
    decision: str = ""
    source: str = "Scheduler Choice"


SCHEDULERS: dict[str, SchedulerRow] = {
    "cosine": SchedulerRow(
        "CosineAnnealingLR",
        "cosine",
        "CNNs, standard training",
        "T_max=num_epochs, eta_min=1e-6",
        decision="Stepped once per optimizer step with T_max = all steps of the run: the "
        "same curve as T_max=num_epochs stepped per epoch, without the staircase.",
    ),
    "onecycle": SchedulerRow(
        "OneCycleLR",
        "onecycle",
        "Fast training, SGD",
        "max_lr from LR range test",
        decision="max_lr is the plan's lr, which the LR range test (stage 0) sets or narrows.",
    ),
    "cosine_warmup": SchedulerRow(
        "Cosine + Warmup", "cosine_warmup", "Any transformer", "num_warmup_steps=6-10%"
    ),
    "plateau": SchedulerRow(
        "ReduceLROnPlateau",
        "plateau",
        "Unknown training duration, fine-tuning",
        "patience=5-10",
        decision="patience 5, the lower end: search trials are short; stepped per epoch on "
        "the validation loss.",
    ),
    "multistep": SchedulerRow(
        "StepLR / MultiStepLR",
        "multistep",
        "Replicating classic papers",
        "Match paper milestones",
        decision="Milestones are fractions of the run, so that short search trials keep a "
        "recipe's shape: ResNet-50's epochs 30, 60, 90 of 90 become 1/3, 2/3, 1.",
    ),
}

#: "Scheduler Choice / Decision shortcut".
SCHEDULER_SHORTCUT: dict[str, str] = {
    "transformer": "cosine_warmup",
    "cnn_fixed_epochs": "cosine",
    "cnn_fast_convergence": "onecycle",
    "finetune_unknown_duration": "plateau",
}


def _setting(row: SchedulerRow, name: str) -> str:
    """The value of ``name=...`` in a row's key setting, as the guide writes it.

    Example:
        >>> _setting(SCHEDULERS["plateau"], "patience")
        '5-10'
    """
    for part in row.key_setting.split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    raise KeyError(f"{row.scheduler}: no {name!r} in {row.key_setting!r}")


#: CosineAnnealingLR's final LR: 'eta_min=1e-6' in "Scheduler Choice".
SCHEDULER_ETA_MIN = float(_setting(SCHEDULERS["cosine"], "eta_min"))
#: ReduceLROnPlateau's patience in epochs: 'patience=5-10' in "Scheduler Choice".
_low, _high = _setting(SCHEDULERS["plateau"], "patience").split("-")
PLATEAU_PATIENCE: tuple[int, int] = (int(_low), int(_high))


@dataclass(frozen=True)
class DropoutRow:
    """One row of "Dropout Rate / Quick reference for tuning"."""

    architecture: str
    low: float
    high: float
    source: str = "Dropout Rate / Quick reference for tuning"


DROPOUT: dict[str, DropoutRow] = {
    "fc": DropoutRow("FC layers", 0.3, 0.5),
    "transformer": DropoutRow("Transformer (attention/FFN)", 0.1, 0.1),
    "cnn": DropoutRow("CNN feature layers (spatial dropout)", 0.1, 0.2),
    "drop_path": DropoutRow("DropPath (ViT/Swin), scaled with depth", 0.1, 0.3),
}


#: "DropPath (ViT/Swin) 0.1-0.3 (scaled with depth)": the rate of the last block;
#: blocks before it drop linearly less (the model builder's job).
DROP_PATH_DECISION = (
    "drop_path is the rate of the deepest block; a model scales it down linearly with depth."
)

#: "Dropout Rate": the regularization stage searches from 0 (step 4 may *decrease*
#: dropout) to the row's upper end, or 0.2 for the transformer row, whose single value
#: 0.1 would otherwise sit on the edge.
DROPOUT_SEARCH_HIGH: dict[str, float] = {
    "fc": 0.5,
    "transformer": 0.2,
    "cnn": 0.2,
    "drop_path": 0.3,
}


@dataclass(frozen=True)
class GradClipRow:
    """One row of "Gradient Clip Value / Standard values" (None: not used)."""

    model_type: str
    low: float | None
    high: float | None
    source: str = "Gradient Clip Value / Standard values"


GRAD_CLIP: dict[str, GradClipRow] = {
    "transformer": GradClipRow("Transformers (LLMs, BERT)", 1.0, 1.0),
    "rnn": GradClipRow("RNNs / LSTMs", 1.0, 5.0),
    "cnn": GradClipRow("CNNs", None, None),
    "diffusion": GradClipRow("Diffusion models", 1.0, 1.0),
}


@dataclass(frozen=True)
class EpochsRow:
    """One row of "Number of Epochs / Common reference points"."""

    task: str
    low: int
    high: int
    source: str = "Number of Epochs / Common reference points"


EPOCHS: dict[str, EpochsRow] = {
    "imagenet_resnet": EpochsRow("ImageNet (ResNet from scratch)", 90, 300),
    "cifar_scratch": EpochsRow("CIFAR-10/100 (from scratch)", 200, 200),
    "bert_finetune": EpochsRow("BERT fine-tuning", 3, 5),
    "vit_finetune": EpochsRow("ViT fine-tuning", 10, 30),
    "small_finetune": EpochsRow("Small dataset fine-tuning", 5, 20),
}

#: "For adaptive training: Use early stopping with patience=10-20".
EARLY_STOPPING_PATIENCE: tuple[int, int] = (10, 20)
EARLY_STOPPING_DECISION = (
    "The final run stops after 10 epochs without a better validation metric (the lower "
    "end), twice ReduceLROnPlateau's patience of 5, so that a plateau first lowers the LR."
)


@dataclass(frozen=True)
class OptimizerRow:
    """One row of "Optimizer Choice": the default optimizer(s) for a kind of model."""

    model: str
    optimizers: tuple[str, ...]
    available: tuple[str, ...]
    source: str = "Optimizer Choice"


#: ``optimizers``: the guide's choice(s); ``available``: those stagetune can train with
#: (Lion is not in torch).
OPTIMIZER_BY_MODEL: dict[str, OptimizerRow] = {
    "cnn_scratch": OptimizerRow("CNN (vision, from scratch)", ("sgd",), ("sgd",)),
    "transformer": OptimizerRow("Transformer (NLP, vision)", ("adamw",), ("adamw",)),
    "finetune": OptimizerRow("Fine-tuning any pretrained", ("adamw",), ("adamw",)),
    "rl": OptimizerRow("Reinforcement learning", ("adam", "rmsprop"), ("adam", "rmsprop")),
    "very_large": OptimizerRow(
        "Very large models (memory issue)", ("adafactor", "lion"), ("adafactor",)
    ),
}
#: "SGD + Momentum (0.9) + Nesterov".
SGD_MOMENTUM = 0.9
SGD_NESTEROV = True


@dataclass(frozen=True)
class LrSymptom:
    """One row of "Learning Rate / Signs you have the wrong LR"."""

    symptom: str
    diagnosis: str
    fix: str
    source: str = "Learning Rate / Signs you have the wrong LR"


#: Keyed by the class names ``stagetune.objectives.diagnose_lr`` gives a loss curve.
LR_SYMPTOMS: dict[str, LrSymptom] = {
    "explodes": LrSymptom("Loss explodes immediately", "LR too high", "Divide by 10"),
    "barely_moves": LrSymptom("Loss barely moves", "LR too low", "Multiply by 10"),
    "plateaus_early": LrSymptom(
        "Loss decreases then plateaus early", "LR too high (later)", "Use a schedule"
    ),
    "oscillates": LrSymptom(
        "Loss oscillates but trends down", "Slightly high", "Mild reduction or add schedule"
    ),
}


@dataclass(frozen=True)
class StepOneDefaults:
    """ "Practical Tuning Strategy / Step 1 - Set reasonable defaults"."""

    optimizer: str
    lr: float
    weight_decay: float
    scheduler: str
    grad_clip: float | None
    source: str = "Practical Tuning Strategy / Step 1"


#: Step 1, per kind of model: "optimizer = AdamW (or SGD+Momentum for CNNs)",
#: "lr = 1e-3 (Adam) or 0.1 (SGD)", "weight_decay = 1e-4",
#: "scheduler = CosineAnnealingLR or Cosine+Warmup",
#: "grad_clip = 1.0 (transformers) or off (CNNs)".
STEP_ONE: dict[str, StepOneDefaults] = {
    "adamw": StepOneDefaults("adamw", 1e-3, 1e-4, "cosine", None),
    "sgd_cnn": StepOneDefaults("sgd", 0.1, 1e-4, "cosine", None),
    "transformer": StepOneDefaults("adamw", 1e-3, 1e-4, "cosine_warmup", 1.0),
}


#: "Practical Tuning Strategy": the five steps, and the stage that runs each.
STRATEGY: tuple[tuple[str, str], ...] = (
    ("Step 1 - Set reasonable defaults", "(the plan's defaults)"),
    ("Step 2 - Find the LR", "lr_range_test, lr"),
    ("Step 3 - Tune weight decay", "weight_decay"),
    ("Step 4 - Adjust regularization", "regularization"),
    ("Step 5 - Full run", "final"),
)


@dataclass(frozen=True)
class Recipe:
    """One of "Quick Reference: Common Recipes", verbatim, and its values for stagetune.

    Attributes:
        title: The recipe's heading.
        text: The recipe as the guide prints it.
        values: The plan defaults it sets (stagetune's parameter names).
        epochs: Epochs of the full (final) run, ``None`` when the recipe gives none.
        decision: How the recipe was read where it is not literal.
    """

    title: str
    text: str
    values: dict[str, object]
    epochs: int | None
    decision: str = ""
    source: str = "Quick Reference: Common Recipes"


RECIPES: dict[str, Recipe] = {
    "resnet50-imagenet": Recipe(
        "ResNet-50 on ImageNet",
        "lr=0.1, momentum=0.9, weight_decay=1e-4, batch=256, epochs=90\n"
        "scheduler=MultiStepLR(milestones=[30,60,90], gamma=0.1)",
        {
            "optimizer": "sgd",
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "batch_size": 256,
            "scheduler": "multistep",
            "milestones": [30 / 90, 60 / 90, 90 / 90],
            "gamma": 0.1,
        },
        epochs=90,
        decision="Milestones as fractions of the run (30/90, 60/90, 90/90); the last one "
        "falls on the run's final step and changes nothing, as in the recipe at 90 epochs. "
        "SGD with Nesterov, the guide's CNN default.",
    ),
    "bert-finetune": Recipe(
        "BERT Fine-tuning",
        "lr=2e-5, weight_decay=0.01, warmup=6% of steps\n"
        "scheduler=Cosine+Warmup, batch=32, epochs=3–5, grad_clip=1.0",
        {
            "optimizer": "adamw",
            "lr": 2e-5,
            "weight_decay": 0.01,
            "warmup_fraction": 0.06,
            "scheduler": "cosine_warmup",
            "batch_size": 32,
            "grad_clip": 1.0,
        },
        epochs=5,
        decision="epochs=3-5: the final run takes 5 with early stopping ('set a high max "
        "and let it run').",
    ),
    "vit-imagenet": Recipe(
        "ViT from Scratch (ImageNet)",
        "lr=1e-3, weight_decay=0.1, warmup=10k steps, batch=1024, epochs=300\n"
        "scheduler=Cosine+Warmup, grad_clip=1.0, dropout=0.1, drop_path=0.1",
        {
            "optimizer": "adamw",
            "lr": 1e-3,
            "weight_decay": 0.1,
            "warmup_steps": 10_000,
            "batch_size": 1024,
            "scheduler": "cosine_warmup",
            "grad_clip": 1.0,
            "dropout": 0.1,
            "drop_path": 0.1,
        },
        epochs=300,
    ),
    "gpt-pretrain": Recipe(
        "GPT-style Pretraining",
        "lr=3e-4, weight_decay=0.1, betas=(0.9, 0.95), warmup=2000 steps\n"
        "scheduler=Cosine+Warmup, grad_clip=1.0, batch=512",
        {
            "optimizer": "adamw",
            "lr": 3e-4,
            "weight_decay": 0.1,
            "beta1": 0.9,
            "beta2": 0.95,
            "warmup_steps": 2_000,
            "scheduler": "cosine_warmup",
            "grad_clip": 1.0,
            "batch_size": 512,
        },
        epochs=None,
        decision="No epoch count in the recipe: the final run uses the task's.",
    ),
}

#: "Practical Tuning Strategy / Step 4 - Adjust regularization: If overfitting ->
#: increase dropout/weight decay. If underfitting -> decrease both." With "Small batch
#: sizes (<=16) act as implicit regularization" (Batch Size): +1 means a larger value
#: regularizes more, -1 a smaller one. A regularization stage moves only these.
REGULARIZERS: dict[str, int] = {
    "dropout": +1,
    "drop_path": +1,
    "weight_decay": +1,
    "batch_size": -1,
}
REGULARIZERS_SOURCE = "Practical Tuning Strategy / Step 4"
