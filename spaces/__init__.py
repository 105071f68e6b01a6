"""The guide as data: ranges, defaults, profiles and staged plans."""

from spaces._params import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    SpaceError,
    param_from_dict,
)
from spaces._plan import Plan, PrunerSpec, SamplerSpec, Stage
from spaces._profiles import PROFILES, Profile, default_plan

__all__ = [
    "PROFILES",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "Param",
    "Plan",
    "Profile",
    "PrunerSpec",
    "SamplerSpec",
    "SpaceError",
    "Stage",
    "default_plan",
    "param_from_dict",
]
