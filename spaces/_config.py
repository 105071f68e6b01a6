"""Plan files: a plan in TOML, read with ``load_plan`` and written with ``plan_to_toml``.

A plan file starts from a profile (its step-1 defaults and its stage templates)
and changes what it names::

    profile = "mlp"          # the base: defaults and stage templates (default: "mlp")
    budget = 30              # trial-equivalents of trained epochs, split by the stages'
                             # shares (default: the profile's, DEFAULT_BUDGET)
    # trials = 8             # or: count this many trials in every search stage instead

    [defaults]               # training hyperparameters, over the profile's
    lr = 3e-3
    grad_clip = "none"       # "none" stands for no value (Python None)

    [model]                  # anything else the task's model builder reads
    hidden = 256

    [[stages]]               # the stages, in order (default: the profile's five steps)
    name = "lr_range_test"   # a profile stage by name, as is

    [[stages]]
    name = "lr"
    share = 0.5              # fields given replace the template's
    [stages.params.lr]
    type = "float"
    low = 1e-4
    high = 1e-2
    log = true

    [[stages]]
    name = "batch"
    template = "batch_size"  # a profile stage under another name

Every unknown key and every bad value fails here, before any training, with one
message that names the key and what is allowed. ``plan_to_toml`` writes a
complete file (``inherit = false``): loading it gives back the same ``Plan``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from stagetune.spaces._params import Param, SpaceError, param_from_dict
from stagetune.spaces._plan import STAGE_KINDS, Plan, PrunerSpec, SamplerSpec, Stage
from stagetune.spaces._profiles import DEFAULT_BUDGET, PROFILES, get_profile
from stagetune.spaces._range import RangeTestSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The training hyperparameters a ``[defaults]`` table may set
#: (``stagetune.objectives.TrainConfig``'s fields; a test keeps the two in step). Anything
#: else goes under ``[model]``.
TRAINING_PARAMS: tuple[str, ...] = (
    "optimizer",
    "lr",
    "weight_decay",
    "batch_size",
    "scheduler",
    "warmup_fraction",
    "warmup_steps",
    "grad_clip",
    "dropout",
    "eta_min",
    "momentum",
    "nesterov",
    "beta1",
    "beta2",
    "milestones",
    "gamma",
    "plateau_patience",
    "plateau_factor",
    "max_micro_batch",
    "accumulation_steps",
    "early_stopping_patience",
    "amp",
    "compile",
)

#: Written for ``None`` (TOML has no null).
NONE = "none"

_TOP_KEYS = ("profile", "inherit", "budget", "trials", "defaults", "model", "stages")
_STAGE_KEYS = (
    "name",
    "template",
    "kind",
    "n_trials",
    "share",
    "why",
    "params",
    "pruner",
    "sampler",
    "range_test",
    "epochs",
    "early_stopping_patience",
    "incumbent",
)
_CUSTOM = "custom"


class PlanFileError(SpaceError):
    """A plan file that cannot be read; the message names the file and the key."""


def load_plan(path: str | Path) -> Plan:
    """Read a plan file (TOML).

    Args:
        path: The file.

    Returns:
        The plan.

    Raises:
        PlanFileError: The file is missing, not TOML, or has an unknown key or a bad
            value; the message names it and what is allowed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PlanFileError(f"Cannot read plan file {str(path)!r}: {error.strerror}.") from None
    try:
        return plan_from_toml(text)
    except PlanFileError as error:
        raise PlanFileError(f"{path}: {error}") from None


def plan_from_toml(text: str) -> Plan:
    """A plan from the text of a plan file (see :func:`load_plan`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PlanFileError(f"not a valid TOML file: {error}.") from None
    return plan_from_dict(data)


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """A plan from the parsed form of a plan file.

    Example:
        >>> plan_from_dict({"profile": "mlp", "stages": [{"name": "lr"}]}).stages[0].name
        'lr'
    """
    _check_keys("", data, _TOP_KEYS)
    inherit = data.get("inherit", True)
    if not isinstance(inherit, bool):
        raise PlanFileError(f"inherit: must be true or false, but got {inherit!r}.")
    profile_name = data.get("profile", "mlp" if inherit else _CUSTOM)
    if not isinstance(profile_name, str):
        raise PlanFileError(f"profile: must be a string, but got {profile_name!r}.")
    profile = None
    if inherit or profile_name in PROFILES:
        if profile_name not in PROFILES:
            raise PlanFileError(
                f"profile: unknown profile {profile_name!r}; allowed: {sorted(PROFILES)}."
            )
        profile = get_profile(profile_name)
    templates: Mapping[str, Stage] = profile.templates if profile is not None else {}

    defaults: dict[str, Any] = dict(profile.defaults) if (profile and inherit) else {}
    defaults.update(_defaults("defaults", data.get("defaults", {}), known_only=True))
    defaults.update(_defaults("model", data.get("model", {}), known_only=False))

    if "stages" in data:
        raw = data["stages"]
        if not isinstance(raw, list) or not raw:
            raise PlanFileError("stages: must be a non-empty array of tables ([[stages]]).")
        stages = tuple(
            _stage(f"stages[{i}]", entry, templates, inherit) for i, entry in enumerate(raw)
        )
    elif profile is not None and inherit:
        stages = tuple(profile.templates[name] for name in profile.order)
    else:
        raise PlanFileError("stages: a plan with inherit = false must list its [[stages]].")

    try:
        plan = Plan(stages, defaults, profile=profile_name)
    except SpaceError as error:
        raise PlanFileError(f"stages: {error}") from None
    return _with_budget(plan, data, inherit)


def _with_budget(plan: Plan, data: Mapping[str, Any], inherit: bool) -> Plan:
    """The plan with the file's ``budget`` or ``trials`` (a profile's default budget
    when an inheriting file gives neither)."""
    trials, budget = data.get("trials"), data.get("budget")
    if trials is not None and budget is not None:
        raise PlanFileError(
            "budget, trials: give one: budget (trial-equivalents of epochs, split by the "
            "stages' shares) or trials (per search stage)."
        )
    for key, value in (("trials", trials), ("budget", budget)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise PlanFileError(f"{key}: must be an integer >= 1, but got {value!r}.")
    if trials is not None:
        return plan.with_trials(trials)
    if budget is None and not inherit:
        return plan  # a complete file without a budget counts each stage's n_trials
    if budget is None and not any(s.share is not None for s in plan.stages):
        return plan  # no stage takes a share: trials, as listed
    try:
        return plan.with_budget(DEFAULT_BUDGET if budget is None else budget)
    except SpaceError as error:
        raise PlanFileError(str(error)) from None


def _check_keys(where: str, table: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(table, Mapping):
        raise PlanFileError(f"{where or 'the file'}: must be a table, but got {table!r}.")
    for key in table:
        if key not in allowed:
            path = f"{where}.{key}" if where else key
            raise PlanFileError(f"{path}: unknown key; allowed: {', '.join(allowed)}.")


def _from_toml_value(value: Any) -> Any:
    if value == NONE:
        return None
    if isinstance(value, list):
        return [_from_toml_value(v) for v in value]
    return value


def _defaults(where: str, table: Any, *, known_only: bool) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise PlanFileError(f"{where}: must be a table, but got {table!r}.")
    out = {}
    for key, value in table.items():
        if known_only and key not in TRAINING_PARAMS:
            raise PlanFileError(
                f"{where}.{key}: unknown training hyperparameter; allowed: "
                f"{', '.join(TRAINING_PARAMS)} (parameters of your model go under [model])."
            )
        if not known_only and key in TRAINING_PARAMS:
            raise PlanFileError(
                f"model.{key}: a training hyperparameter; put it under [defaults]."
            )
        if isinstance(value, Mapping):
            raise PlanFileError(f"{where}.{key}: must be a value, not a table.")
        out[key] = _from_toml_value(value)
    return out


def _stage(where: str, entry: Any, templates: Mapping[str, Stage], inherit: bool) -> Stage:
    if not isinstance(entry, Mapping):
        raise PlanFileError(f"{where}: must be a table ([[stages]]), but got {entry!r}.")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise PlanFileError(f"{where}.name: every stage needs a name (a string).")
    where = f"{where} ({name!r})"
    _check_keys(where, entry, _STAGE_KEYS)
    # A complete file (inherit = false) takes a template only when it names one.
    implicit = name if inherit and name in templates else None
    template_name = entry.get("template", implicit)
    if template_name is not None and template_name not in templates:
        raise PlanFileError(
            f"{where}.template: unknown stage template {template_name!r}; allowed: "
            f"{', '.join(templates) or '(none: set profile)'}."
        )
    base = templates[template_name] if template_name is not None else None
    if base is None and "params" not in entry and entry.get("kind") != "final":
        known = ", ".join(templates) or "(none)"
        raise PlanFileError(
            f"{where}: not a stage of the profile ({known}); give it template = one of "
            f"those, or kind and [stages.params]."
        )
    try:
        return _build_stage(where, name, entry, base)
    except PlanFileError:
        raise
    except SpaceError as error:
        raise PlanFileError(f"{where}: {error}") from None


def _build_stage(where: str, name: str, entry: Mapping[str, Any], base: Stage | None) -> Stage:
    kind = entry.get("kind", base.kind if base else "search")
    if kind not in STAGE_KINDS:
        raise PlanFileError(
            f"{where}.kind: unknown kind {kind!r}; allowed: {', '.join(STAGE_KINDS)}."
        )
    if "params" in entry:
        params = _params(f"{where}.params", entry["params"])
    else:
        params = base.params if base else ()
    options: dict[str, Any] = {
        "n_trials": entry.get("n_trials", base.n_trials if base else 1),
        "share": entry.get("share", base.share if base and base.kind == kind else None),
        "why": entry.get("why", base.why if base else ""),
        "incumbent": entry.get(
            "incumbent", base.incumbent if base and base.kind == kind else "retrain"
        ),
        "kind": kind,
        "pruner": _spec(f"{where}.pruner", PrunerSpec, entry.get("pruner"), base and base.pruner),
        "sampler": _spec(
            f"{where}.sampler", SamplerSpec, entry.get("sampler"), base and base.sampler
        ),
    }
    if kind == "lr_range_test":
        base_spec = base.range_test if base and base.range_test else RangeTestSpec()
        options["range_test"] = _spec(
            f"{where}.range_test", RangeTestSpec, entry.get("range_test"), base_spec
        )
    elif "range_test" in entry:
        raise PlanFileError(f"{where}.range_test: only a stage of kind 'lr_range_test' has one.")
    for option in ("epochs", "early_stopping_patience"):
        inherited = getattr(base, option) if base is not None and base.kind == kind else None
        value = entry.get(option, inherited)
        if value is not None:
            options[option] = value
    if not isinstance(options["why"], str):
        raise PlanFileError(f"{where}.why: must be a string, but got {options['why']!r}.")
    return Stage(name, params, **options)


def _params(where: str, table: Any) -> tuple[Param, ...]:
    if not isinstance(table, Mapping):
        raise PlanFileError(f"{where}: must be a table of parameters, but got {table!r}.")
    params = []
    for name, spec in table.items():
        if not isinstance(spec, Mapping):
            raise PlanFileError(
                f"{where}.{name}: must be a table such as "
                f'{{ type = "float", low = 1e-4, high = 1e-2, log = true }}.'
            )
        spec = dict(spec)
        source = spec.pop("source", "")
        if "choices" in spec:
            spec["choices"] = _from_toml_value(spec["choices"])
        try:
            params.append(param_from_dict(name, spec, source=source))
        except SpaceError as error:
            raise PlanFileError(f"{where}.{name}: {error}") from None
    return tuple(params)


def _spec(where: str, cls: type[Any], table: Any, base: Any) -> Any:
    if table is None:
        return base if base else cls()
    names = tuple(f.name for f in fields(cls))
    _check_keys(where, table, names)
    values = dict(table)
    try:
        return replace(base, **values) if base else cls(**values)
    except SpaceError as error:
        raise PlanFileError(f"{where}: {error}") from None


# --- writing ------------------------------------------------------------------------


def plan_to_toml(plan: Plan) -> str:
    """The complete plan file of ``plan``: ``load_plan`` of it gives ``plan`` back.

    Example:
        >>> from spaces import default_plan
        >>> plan = default_plan("mlp")
        >>> plan_from_toml(plan_to_toml(plan)) == plan
        True
    """
    lines = [
        "# stagetune plan (stagetune run --config FILE); written complete: inherit = false",
        f"profile = {_value(plan.profile)}",
        "inherit = false",
    ]
    if plan.budget is not None:
        lines.append(f"budget = {plan.budget}")
    lines.append("")
    training = {k: v for k, v in plan.defaults.items() if k in TRAINING_PARAMS}
    model = {k: v for k, v in plan.defaults.items() if k not in TRAINING_PARAMS}
    for title, table in (("defaults", training), ("model", model)):
        if table:
            lines.append(f"[{title}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in sorted(table.items())]
            lines.append("")
    for stage in plan.stages:
        lines += _stage_lines(stage)
    return "\n".join(lines).rstrip() + "\n"


def _stage_lines(stage: Stage) -> list[str]:
    lines = [
        "[[stages]]",
        f"name = {_value(stage.name)}",
        f"kind = {_value(stage.kind)}",
        f"n_trials = {stage.n_trials}",
    ]
    if stage.why:
        lines.append(f"why = {_value(stage.why)}")
    for option in ("share", "epochs", "early_stopping_patience"):
        value = getattr(stage, option)
        if value is not None:
            lines.append(f"{option} = {_value(value)}")
    lines.append(f"incumbent = {_value(stage.incumbent)}")
    lines.append("")
    if not stage.params:
        lines += ["[stages.params]", ""]
    for param in stage.params:
        lines.append(f"[stages.params.{_key(param.name)}]")
        spec = param.to_dict()
        if param.source:
            spec["source"] = param.source
        lines += [f"{_key(k)} = {_value(v)}" for k, v in spec.items()]
        lines.append("")
    tables: list[tuple[str, Mapping[str, Any]]] = [
        ("pruner", stage.pruner.to_dict()),
        ("sampler", stage.sampler.to_dict()),
    ]
    if stage.range_test is not None:
        tables.append(("range_test", stage.range_test.to_dict()))
    for title, table in tables:
        lines.append(f"[stages.{title}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None]
        lines.append("")
    return lines


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise SpaceError(f"Cannot write {value!r} ({type(value).__name__}) to a plan file.")
