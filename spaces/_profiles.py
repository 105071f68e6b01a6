"""Profiles: a model family x regime -> step-1 defaults and the plan's stages.

Every profile runs the guide's five-step strategy ("Practical Tuning Strategy")
by default: ``lr_range_test`` -> ``lr`` -> ``weight_decay`` -> ``regularization``
-> ``final``. A profile also knows more stages (``batch_size``, ``warmup``,
``scheduler``, ``grad_clip``) that a plan file can add by name. The four recipes
of "Quick Reference: Common Recipes" are profiles too, whose defaults are the
recipe's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from stagetune.spaces._guide import (
    BATCH_SIZE,
    CNN_WARMUP,
    DROPOUT,
    DROPOUT_SEARCH_HIGH,
    EARLY_STOPPING_PATIENCE,
    GRAD_CLIP,
    LEARNING_RATE,
    PRETRAIN_LEARNING_RATE,
    RECIPES,
    SCHEDULER_SHORTCUT,
    SGD_MOMENTUM,
    SGD_NESTEROV,
    STEP_ONE,
    WARMUP,
    WEIGHT_DECAY,
    WEIGHT_DECAY_GRID_SOURCE,
    LearningRateRow,
    WeightDecayRow,
    weight_decay_range,
)
from stagetune.spaces._params import CategoricalParam, FloatParam, SpaceError
from stagetune.spaces._plan import Plan, PrunerSpec, SamplerSpec, Stage
from stagetune.spaces._range import RangeTestSpec

#: The guide's five steps, as stage names: the default plan of every profile.
FIVE_STEPS: tuple[str, ...] = ("lr_range_test", "lr", "weight_decay", "regularization", "final")
#: The three search stages of the five (what a plan without stage 0 and 5 runs).
CORE_STAGES: tuple[str, ...] = ("lr", "weight_decay", "regularization")

#: A profile plan's compute: trial-equivalents of trained epochs over its search stages
#: (``stagetune run --budget`` changes it). 22 = the 10 + 6 + 6 trials these stages ran
#: when budgets counted trials; now pruning's savings buy more trials within it.
DEFAULT_BUDGET = 22
#: Each search stage's share of the budget, in the guide's priority order: the learning
#: rate, "the single most important hyperparameter", with the widest range (orders of
#: magnitude), gets the most; weight decay and regularization, each one parameter in a
#: range narrowed by the guide, equal parts (the 10:6:6 split of the trial counts before;
#: the benchmark has not measured another split). The warmup stage, which a plan file can
#: add, gets a part in the same proportion as its 4 trials had.
STAGE_SHARES: dict[str, float] = {
    "lr": 0.45,
    "weight_decay": 0.275,
    "regularization": 0.275,
    "warmup": 0.18,
}

#: Why each stage exists, in the guide's words.
STAGE_WHY: dict[str, str] = {
    "lr_range_test": "Step 2 - Find the LR: 'Run LR range test' (Learning Rate / The LR Range "
    "Test): one sweep from 1e-7 to 10 suggests the LR and narrows the LR stage's range.",
    "lr": "Learning rate first: 'the single most important hyperparameter' (The Priority Order).",
    "batch_size": "Batch size second: 'tightly coupled with LR'; the LR scales linearly with it.",
    "weight_decay": "Weight decay next: 'second most impactful hyperparameter after LR'.",
    "warmup": "Warmup: 'non-negotiable for transformers' (Warmup Steps).",
    "scheduler": "Scheduler: 'defines the entire LR trajectory' (Scheduler Choice).",
    "grad_clip": "Gradient clip: 'Only tune this value if you're seeing persistent instability'.",
    "regularization": "Regularization last: 'Tune this last. Fix your LR, weight decay, and "
    "schedule first' (Dropout Rate); step 4 reads over/underfitting and searches that way.",
    "final": "Step 5 - Full run: 'Final training with tuned hyperparameters, correct epoch "
    "count, and early stopping'.",
}

ProfileKind = Literal["profile", "recipe"]


@dataclass(frozen=True)
class Profile:
    """A model family x regime: its step-1 defaults and the stages it can run.

    Args:
        name: Profile name, as given to ``--profile``.
        description: One line for ``stagetune profiles``.
        suits: The model family the profile is for, as ``stagetune profiles`` says it.
        defaults: The guide's step-1 values for every parameter a trial needs.
        templates: Every stage the profile knows, by name (a plan file picks from them).
        order: The stages of the profile's default plan.
        kind: ``"profile"`` (family x regime) or ``"recipe"`` (a guide recipe).
        based_on: The profile a recipe takes its stages from.

    Example:
        >>> PROFILES["mlp"].plan().stages[0].name
        'lr_range_test'
    """

    name: str
    description: str
    defaults: Mapping[str, Any]
    templates: Mapping[str, Stage]
    order: tuple[str, ...] = FIVE_STEPS
    kind: ProfileKind = "profile"
    based_on: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    suits: str = ""

    def __post_init__(self) -> None:
        missing = [n for n in self.order if n not in self.templates]
        if missing:
            raise SpaceError(f"profile {self.name!r}: no stage templates for {missing}.")

    def plan(self, n_trials: int | None = None, *, budget: int | None = None) -> Plan:
        """The profile's default plan: ``DEFAULT_BUDGET`` trial-equivalents of epochs
        split by the stages' shares; ``budget`` sets another, ``n_trials`` counts that
        many trials in every search stage instead."""
        return _budgeted(
            Plan(
                tuple(self.templates[n] for n in self.order),
                dict(self.defaults),
                profile=self.name,
            ),
            n_trials=n_trials,
            budget=budget,
        )


def _budgeted(plan: Plan, *, n_trials: int | None, budget: int | None) -> Plan:
    if n_trials is not None and budget is not None:
        raise SpaceError(
            f"Give a budget in trial-equivalents or trials per stage, not both "
            f"(got budget={budget!r} and n_trials={n_trials!r})."
        )
    if n_trials is not None:
        return plan.with_trials(n_trials)
    return plan.with_budget(DEFAULT_BUDGET if budget is None else budget)


# --- stage templates ------------------------------------------------------------------


def _lr_param(row: LearningRateRow) -> FloatParam:
    return FloatParam("lr", row.search_low, row.search_high, log=True, source=row.source)


def _templates(
    *,
    lr: LearningRateRow,
    wd: WeightDecayRow | None,
    regularizers: tuple[FloatParam, ...],
    batch_sizes: tuple[int, ...],
    final_epochs: int | None = None,
) -> dict[str, Stage]:
    wd_low, wd_high = weight_decay_range(wd)
    wd_source = WEIGHT_DECAY_GRID_SOURCE + ("" if wd is None else f"; {wd.source}: {wd.setting}")
    late = PrunerSpec("median", n_startup_trials=3, warmup_fraction=0.5)
    once = PrunerSpec("none")
    warmup = WARMUP["bert_finetune"]
    assert warmup.fraction is not None
    rnn_clip = GRAD_CLIP["rnn"]
    return {
        "lr_range_test": Stage(
            "lr_range_test",
            (_lr_param(lr),),
            n_trials=1,
            kind="lr_range_test",
            range_test=RangeTestSpec(),
            pruner=once,
            why=STAGE_WHY["lr_range_test"],
        ),
        "lr": Stage(
            "lr",
            (_lr_param(lr),),
            n_trials=10,
            share=STAGE_SHARES["lr"],
            pruner=PrunerSpec("median", n_startup_trials=3, warmup_fraction=0.25),
            why=STAGE_WHY["lr"],
        ),
        "batch_size": Stage(
            "batch_size",
            (
                CategoricalParam(
                    "batch_size", batch_sizes, source=BATCH_SIZE["single_gpu_16gb"].source
                ),
            ),
            n_trials=len(batch_sizes),
            sampler=SamplerSpec("grid"),
            pruner=PrunerSpec("median", n_startup_trials=2, warmup_fraction=0.25),
            why=STAGE_WHY["batch_size"],
        ),
        "weight_decay": Stage(
            "weight_decay",
            (FloatParam("weight_decay", wd_low, wd_high, log=True, source=wd_source),),
            n_trials=6,
            share=STAGE_SHARES["weight_decay"],
            pruner=late,
            why=STAGE_WHY["weight_decay"],
        ),
        "warmup": Stage(
            "warmup",
            (FloatParam("warmup_fraction", 0.0, warmup.fraction[1], source=warmup.source),),
            n_trials=4,
            share=STAGE_SHARES["warmup"],
            pruner=late,
            why=STAGE_WHY["warmup"],
        ),
        "scheduler": Stage(
            "scheduler",
            (
                CategoricalParam(
                    "scheduler", ("cosine", "cosine_warmup", "onecycle"), source="Scheduler Choice"
                ),
            ),
            n_trials=3,
            sampler=SamplerSpec("grid"),
            pruner=once,
            why=STAGE_WHY["scheduler"],
        ),
        "grad_clip": Stage(
            "grad_clip",
            (
                CategoricalParam(
                    "grad_clip", (None, rnn_clip.low, rnn_clip.high), source=rnn_clip.source
                ),
            ),
            n_trials=3,
            sampler=SamplerSpec("grid"),
            pruner=once,
            why=STAGE_WHY["grad_clip"],
        ),
        "regularization": Stage(
            "regularization",
            regularizers,
            n_trials=6,
            share=STAGE_SHARES["regularization"],
            kind="regularization",
            pruner=late,
            why=STAGE_WHY["regularization"],
        ),
        "final": Stage(
            "final",
            (),
            n_trials=1,
            kind="final",
            epochs=final_epochs,
            early_stopping_patience=EARLY_STOPPING_PATIENCE[0],
            pruner=once,
            why=STAGE_WHY["final"],
        ),
    }


def _dropout(row: str) -> FloatParam:
    name = "drop_path" if row == "drop_path" else "dropout"
    return FloatParam(name, 0.0, DROPOUT_SEARCH_HIGH[row], source=DROPOUT[row].source)


#: Batch sizes of the "Single GPU (16GB)" row (32 - 256), in powers of two.
_BATCHES_16GB = (32, 64, 128, 256)
#: ... and of the "Single GPU (40GB+)" row (64 - 512).
_BATCHES_40GB = (64, 128, 256, 512)


# --- profiles --------------------------------------------------------------------------


def _mlp() -> Profile:
    step1 = STEP_ONE["adamw"]
    lr = LEARNING_RATE["adamw_scratch"]
    return Profile(
        "mlp",
        "MLP / tabular, trained from scratch with AdamW",
        {
            "optimizer": step1.optimizer,
            "lr": lr.default,
            "weight_decay": step1.weight_decay,
            "batch_size": 64,
            "scheduler": step1.scheduler,
            "warmup_fraction": 0.0,
            "grad_clip": step1.grad_clip,
            "dropout": DROPOUT["fc"].low,
        },
        _templates(lr=lr, wd=None, regularizers=(_dropout("fc"),), batch_sizes=_BATCHES_16GB),
        suits="MLPs and tabular models; any model no other profile fits (step 1's defaults)",
        notes=(
            "lr: the AdamW-from-scratch search range (LEARNING_RATE['adamw_scratch']).",
            "weight_decay: the step-3 grid's span [1e-5, 1e-2], log scale.",
            "dropout: FC layers 0.3-0.5, searched from 0 (step 4 may decrease it); 0.3 first.",
            "batch 64: inside 'Single GPU (16GB)' 32-256; the digits task has 1078 rows.",
        ),
    )


def _cnn_scratch() -> Profile:
    step1 = STEP_ONE["sgd_cnn"]
    return Profile(
        "cnn-scratch",
        "CNN (vision) from scratch: SGD + momentum 0.9 + Nesterov, CosineAnnealingLR",
        {
            "optimizer": step1.optimizer,
            "lr": LEARNING_RATE["sgd"].default,
            "momentum": SGD_MOMENTUM,
            "nesterov": SGD_NESTEROV,
            "weight_decay": WEIGHT_DECAY["sgd_cnn"].low,
            "batch_size": 128,
            "scheduler": SCHEDULER_SHORTCUT["cnn_fixed_epochs"],
            "warmup_fraction": CNN_WARMUP,
            "grad_clip": GRAD_CLIP["cnn"].low,
            "dropout": DROPOUT["cnn"].low,
        },
        _templates(
            lr=LEARNING_RATE["sgd"],
            wd=WEIGHT_DECAY["sgd_cnn"],
            regularizers=(_dropout("cnn"),),
            batch_sizes=_BATCHES_16GB,
        ),
        suits="CNNs (vision) trained from scratch",
        notes=(
            "Optimizer Choice: 'CNN (vision, from scratch): SGD + Momentum (0.9) + Nesterov'.",
            "Scheduler: 'CNN, fixed epochs -> CosineAnnealingLR', eta_min=1e-6; no warmup.",
            "weight_decay: 'SGD + CNN (ImageNet)' 1e-4; clip: 'CNNs: Not usually needed'.",
            "dropout: 'CNN feature layers' 0.1-0.2, searched from 0.",
        ),
    )


def _transformer_finetune() -> Profile:
    lr = LEARNING_RATE["adamw_finetune"]
    warmup = WARMUP["bert_finetune"]
    assert warmup.fraction is not None
    return Profile(
        "transformer-finetune",
        "Transformer fine-tuning: AdamW, cosine + 6% warmup, clip 1.0",
        {
            "optimizer": "adamw",
            "lr": lr.default,
            "weight_decay": WEIGHT_DECAY["adamw_transformer_finetune"].low,
            "batch_size": 32,
            "scheduler": SCHEDULER_SHORTCUT["transformer"],
            "warmup_fraction": warmup.fraction[0],
            "grad_clip": GRAD_CLIP["transformer"].low,
            "dropout": DROPOUT["transformer"].low,
        },
        _templates(
            lr=lr,
            wd=WEIGHT_DECAY["adamw_transformer_finetune"],
            regularizers=(_dropout("transformer"),),
            batch_sizes=_BATCHES_16GB,
        ),
        suits="fine-tuning any pretrained model (BERT, ViT, ...)",
        notes=(
            "lr: 'AdamW (fine-tuning)' 1e-5 - 5e-4, default 2e-5 (the BERT recipe's).",
            "Scheduler: 'Transformer -> Cosine + Warmup' (6% of steps, 'BERT fine-tuning').",
            "weight_decay 0.01 ('AdamW + Transformer (fine-tuning)'); grad_clip 1.0.",
        ),
    )


def _transformer_scratch() -> Profile:
    step1 = STEP_ONE["transformer"]
    lr = LEARNING_RATE["adamw_scratch"]
    return Profile(
        "transformer-scratch",
        "Small transformer trained from scratch: AdamW, cosine + 6% warmup, clip 1.0",
        {
            "optimizer": step1.optimizer,
            "lr": step1.lr,
            "weight_decay": step1.weight_decay,
            "batch_size": 64,
            "scheduler": step1.scheduler,
            "warmup_fraction": 0.06,
            "grad_clip": step1.grad_clip,
            "dropout": DROPOUT["transformer"].low,
        },
        _templates(
            lr=lr, wd=None, regularizers=(_dropout("transformer"),), batch_sizes=_BATCHES_16GB
        ),
        suits="transformers trained from scratch, small models and short runs",
        notes=(
            "Step 1's transformer defaults: AdamW, lr 1e-3, weight decay 1e-4, Cosine+Warmup, "
            "grad_clip 1.0 ('non-negotiable for transformers').",
            "Warmup 6% of the steps ('Cosine + Warmup: num_warmup_steps=6-10%'): the 'Small "
            "model / short training' row's 500-1,000 steps would be most of a short run.",
            "lr: the AdamW-from-scratch search range; dropout: 'Transformer' 0.1, in 0-0.2.",
        ),
    )


def _transformer_pretrain() -> Profile:
    lr = PRETRAIN_LEARNING_RATE
    warmup = WARMUP["gpt_pretrain"]
    assert warmup.steps is not None
    return Profile(
        "transformer-pretrain",
        "Transformer pretraining: AdamW betas (0.9, 0.95), 2,000 warmup steps, clip 1.0",
        {
            "optimizer": "adamw",
            "lr": lr.default,
            "beta1": 0.9,
            "beta2": 0.95,
            "weight_decay": WEIGHT_DECAY["adamw_transformer_pretrain"].low,
            "batch_size": 512,
            "scheduler": SCHEDULER_SHORTCUT["transformer"],
            "warmup_steps": warmup.steps[0],
            "grad_clip": GRAD_CLIP["transformer"].low,
            "dropout": DROPOUT["transformer"].low,
        },
        _templates(
            lr=lr,
            wd=WEIGHT_DECAY["adamw_transformer_pretrain"],
            regularizers=(_dropout("transformer"),),
            batch_sizes=_BATCHES_40GB,
        ),
        suits="pretraining a language model (GPT-style transformers)",
        notes=(
            "lr: no guide row; [1e-4, 1e-3] with the GPT recipe's 3e-4 first.",
            "weight_decay 0.1 ('AdamW + Transformer (pretraining)'); warmup 'GPT pretraining' "
            "2,000 steps (at most 10% of the run).",
        ),
    )


def _vit_scratch() -> Profile:
    lr = LEARNING_RATE["adamw_scratch"]
    warmup = WARMUP["vit_scratch"]
    assert warmup.steps is not None
    return Profile(
        "vit-scratch",
        "ViT from scratch: AdamW, weight decay 0.05-0.3, DropPath, 10k warmup steps",
        {
            "optimizer": "adamw",
            "lr": lr.default,
            "weight_decay": RECIPES["vit-imagenet"].values["weight_decay"],
            "batch_size": 256,
            "scheduler": SCHEDULER_SHORTCUT["transformer"],
            "warmup_steps": warmup.steps[0],
            "grad_clip": GRAD_CLIP["transformer"].low,
            "dropout": DROPOUT["transformer"].low,
            "drop_path": DROPOUT["drop_path"].low,
        },
        _templates(
            lr=lr,
            wd=WEIGHT_DECAY["adamw_vit"],
            regularizers=(_dropout("transformer"), _dropout("drop_path")),
            batch_sizes=_BATCHES_40GB,
        ),
        suits="vision transformers (ViT, Swin) trained from scratch",
        notes=(
            "weight_decay: 'AdamW + ViT' 0.05-0.3, 0.1 first (the ViT recipe's).",
            "regularization searches dropout (0-0.2) and drop_path (0-0.3, 'DropPath').",
            "batch 256: inside 'Single GPU (40GB+)' 64-512 (the recipe's 1024 is multi-GPU).",
        ),
    )


def _rnn() -> Profile:
    step1 = STEP_ONE["adamw"]
    lr = LEARNING_RATE["adamw_scratch"]
    clip = GRAD_CLIP["rnn"]
    templates = _templates(
        lr=lr, wd=None, regularizers=(_dropout("fc"),), batch_sizes=_BATCHES_16GB
    )
    # Searched only when a plan adds this stage ("Only tune this value if you're seeing
    # persistent instability"): the row's two ends, never off.
    templates["grad_clip"] = replace(
        templates["grad_clip"],
        params=(CategoricalParam("grad_clip", (clip.low, clip.high), source=clip.source),),
        n_trials=2,
    )
    return Profile(
        "rnn",
        "RNN / LSTM / GRU from scratch: AdamW, CosineAnnealingLR, gradient clip 1.0",
        {
            "optimizer": step1.optimizer,
            "lr": lr.default,
            "weight_decay": step1.weight_decay,
            "batch_size": 64,
            "scheduler": step1.scheduler,
            "warmup_fraction": 0.0,
            "grad_clip": clip.low,
            "dropout": DROPOUT["fc"].low,
        },
        templates,
        suits="recurrent models: RNNs, LSTMs, GRUs",
        notes=(
            "Optimizer Choice has no recurrent row: step 1's 'optimizer = AdamW', with the "
            "AdamW-from-scratch LR range (LEARNING_RATE['adamw_scratch']), lr 1e-3 first.",
            "grad_clip 1.0, on: 'RNNs / LSTMs 1.0 - 5.0' (Gradient Clip Value), the row's "
            "lower end, the tightest bound, as the guide clips every other model it clips; "
            "fixed, since 'Only tune this value if you're seeing persistent instability'. "
            "A plan file's 'grad_clip' stage searches the row's ends, 1.0 and 5.0.",
            "Scheduler: step 1's CosineAnnealingLR, no warmup ('non-negotiable' only for "
            "transformers); weight_decay 1e-4 (step 1), searched over the step-3 grid.",
            "dropout: the 'FC layers' row 0.3 - 0.5 (dropout between recurrent layers and "
            "on their outputs acts on dense features), searched from 0; 0.3 first.",
        ),
    )


def _recipe(name: str, base: Profile) -> Profile:
    recipe = RECIPES[name]
    defaults = {**base.defaults, **recipe.values}
    templates = dict(base.templates)
    templates["final"] = replace(templates["final"], epochs=recipe.epochs)
    return Profile(
        name,
        f"recipe '{recipe.title}' (guide, Common Recipes), stages of {base.name}",
        defaults,
        templates,
        kind="recipe",
        based_on=base.name,
        suits=recipe.title,
        notes=(recipe.text, *((recipe.decision,) if recipe.decision else ())),
    )


def _all_profiles() -> dict[str, Profile]:
    base = [
        _mlp(),
        _cnn_scratch(),
        _rnn(),
        _transformer_scratch(),
        _transformer_finetune(),
        _transformer_pretrain(),
        _vit_scratch(),
    ]
    profiles = {p.name: p for p in base}
    for recipe, family in (
        ("resnet50-imagenet", "cnn-scratch"),
        ("bert-finetune", "transformer-finetune"),
        ("vit-imagenet", "vit-scratch"),
        ("gpt-pretrain", "transformer-pretrain"),
    ):
        profiles[recipe] = _recipe(recipe, profiles[family])
    return profiles


#: Every profile and recipe by name. Decisions are in each profile's ``notes`` and
#: next to the tables in spaces/_guide.py; tests/spaces_tests/test_profiles.py checks
#: each default against the guide.
PROFILES: dict[str, Profile] = _all_profiles()


def get_profile(name: str) -> Profile:
    """A profile or recipe by name.

    Example:
        >>> get_profile("bert-finetune").defaults["lr"]
        2e-05
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise SpaceError(
            f"Unknown profile {name!r}; available: {sorted(PROFILES)} (`stagetune profiles`)."
        ) from None


def default_plan(
    profile: str = "mlp", *, n_trials: int | None = None, budget: int | None = None
) -> Plan:
    """The plan of a profile: the guide's five steps, ``lr_range_test`` -> ``lr`` ->
    ``weight_decay`` -> ``regularization`` -> ``final``.

    Args:
        profile: A name from ``PROFILES``.
        n_trials: If given, every search stage counts this many trials (the range test
            and the final run are one trial each) and the plan has no epoch budget.
        budget: Trial-equivalents of trained epochs over the search stages, split by
            their shares (default: ``DEFAULT_BUDGET``; not with ``n_trials``).

    Example:
        >>> [s.n_trials for s in default_plan("mlp", n_trials=4).stages]
        [1, 4, 4, 4, 1]
        >>> default_plan("mlp", budget=30).budget
        30
    """
    return get_profile(profile).plan(n_trials, budget=budget)


def core_plan(
    profile: str = "mlp", *, n_trials: int | None = None, budget: int | None = None
) -> Plan:
    """The three search stages of a profile's plan (``lr`` -> ``weight_decay`` ->
    ``regularization``), without the range test and the final run.

    Example:
        >>> [s.name for s in core_plan("mlp").stages]
        ['lr', 'weight_decay', 'regularization']
    """
    entry = get_profile(profile)
    plan = Plan(
        tuple(entry.templates[n] for n in CORE_STAGES), dict(entry.defaults), profile=entry.name
    )
    return _budgeted(plan, n_trials=n_trials, budget=budget)
