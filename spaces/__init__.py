"""The guide as data: ranges, defaults, profiles, recipes and staged plans."""

from stagetune.spaces._config import (
    PlanFileError,
    load_plan,
    plan_from_dict,
    plan_from_toml,
    plan_to_toml,
)
from stagetune.spaces._direction import directed_param, range_edge
from stagetune.spaces._guide import (
    LEARNING_RATE,
    LR_SYMPTOMS,
    PLATEAU_PATIENCE,
    PRIORITY_ORDER,
    RECIPES,
    SCHEDULER_ETA_MIN,
)
from stagetune.spaces._params import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    SpaceError,
    param_from_dict,
)
from stagetune.spaces._plan import STAGE_KINDS, Plan, PrunerSpec, SamplerSpec, Stage
from stagetune.spaces._profiles import (
    DEFAULT_BUDGET,
    FIVE_STEPS,
    PROFILES,
    Profile,
    core_plan,
    default_plan,
    get_profile,
)
from stagetune.spaces._range import LrWindow, RangeTestSpec, narrow_lr_range
from stagetune.spaces._scaling import ScaledLr, micro_batching, scale_lr

__all__ = [
    "DEFAULT_BUDGET",
    "FIVE_STEPS",
    "LEARNING_RATE",
    "LR_SYMPTOMS",
    "PLATEAU_PATIENCE",
    "PRIORITY_ORDER",
    "PROFILES",
    "RECIPES",
    "SCHEDULER_ETA_MIN",
    "STAGE_KINDS",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "LrWindow",
    "Param",
    "Plan",
    "PlanFileError",
    "Profile",
    "PrunerSpec",
    "RangeTestSpec",
    "SamplerSpec",
    "ScaledLr",
    "SpaceError",
    "Stage",
    "core_plan",
    "default_plan",
    "directed_param",
    "get_profile",
    "load_plan",
    "micro_batching",
    "narrow_lr_range",
    "param_from_dict",
    "plan_from_dict",
    "plan_from_toml",
    "plan_to_toml",
    "range_edge",
    "scale_lr",
]
