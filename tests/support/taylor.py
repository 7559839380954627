"""TaylorSeer's factors as the reference code keeps them, for the hooked references in the tests."""

from __future__ import annotations

import math

import torch


def updated_factors(old: dict[int, torch.Tensor], value: torch.Tensor, order: int, spacing: int) -> dict:
    """At a full step: D0 = the value, D(i+1) = (Di - old Di) / steps since the previous full step."""
    new = {0: value}
    for i in range(order):
        if i not in old:
            break
        new[i + 1] = (new[i] - old[i]) / spacing
    return new


def taylor_forecast(factors: dict[int, torch.Tensor], k: int) -> torch.Tensor:
    """The forecast k steps after the last full step."""
    return sum(d * (k**i / math.factorial(i)) for i, d in factors.items())
