"""Policies: forecasters, schedules and the named presets (importing a method module registers it)."""

from . import adams_bashforth, foca, hermite, reuse, taylor  # noqa: F401  (registers presets)
from .config import FixedSchedule, Policy, Region
from .registry import get_policy, list_policies, register

__all__ = ["FixedSchedule", "Policy", "Region", "get_policy", "list_policies", "register"]
