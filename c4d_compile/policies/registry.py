"""Name -> preset registry. A new method registers its presets from its own module in ``presets/``."""

from __future__ import annotations

from typing import Any

from ..errors import UnknownPolicyError
from .config import Policy

_PRESETS: dict[str, Policy] = {}


def register(policy: Policy) -> Policy:
    if policy.name in _PRESETS:
        raise ValueError(f"preset {policy.name!r} registered twice")
    _PRESETS[policy.name] = policy
    return policy


def list_policies(*, fitted: bool = True) -> list[str]:
    """Every policy name; ``fitted=False`` leaves out those that run only from a calibration file (``auto``)."""
    return sorted(name for name, policy in _PRESETS.items() if fitted or not policy.fitted)


def get_policy(policy: str | Policy, **overrides: Any) -> Policy:
    """Resolve a preset name (or a Policy) and apply flat overrides."""
    if isinstance(policy, Policy):
        base = policy
    elif isinstance(policy, str) and policy in _PRESETS:
        base = _PRESETS[policy]
    else:
        raise UnknownPolicyError(str(policy), _PRESETS)
    return base.with_overrides(**overrides)
