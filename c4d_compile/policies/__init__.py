"""Policies: forecasters, schedules, the forecast variable and the named presets (a registry)."""

from . import presets  # noqa: F401  (registers the presets)
from .config import Policy, Region, forecaster_spec
from .registry import get_policy, list_policies, register
from .schedules import (
    BudgetSchedule,
    CalibratedSchedule,
    ExplicitSchedule,
    IntervalSchedule,
    MissingStepCountError,
    SpreadSchedule,
)
from .variable import Variable

__all__ = [
    "BudgetSchedule", "CalibratedSchedule", "ExplicitSchedule", "IntervalSchedule", "MissingStepCountError",
    "Policy", "Region", "SpreadSchedule", "Variable", "forecaster_spec", "get_policy", "list_policies", "register",
]
