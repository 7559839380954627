"""HiCache: TaylorSeer's factors with a scaled-Hermite basis (methods.md §8, arXiv 2508.16984).

    F^(s_a + k) = D^0 + sum_{i=1..O} (D^i / i!) * sigma^i * H_i(sigma * k)
    H_0 = 1, H_1(x) = 2x, H_{n+1}(x) = 2x H_n(x) - 2n H_{n-1}(x)      (physicists' Hermite)

The factors D^i are TaylorSeer's, so the update is inherited. The forecast is evaluated at +k with
forward-in-time differences, as the official code does (a port that evaluated at -k forecast worse
than reuse). With sigma = 1/sqrt(2) the order-1 term equals Taylor's D^1 k exactly.
Defaults (paper, FLUX.1-dev): interval 7, order 2, sigma 0.5, warm-up 3 (5.55x FLOPs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidValueError
from .config import FixedSchedule, Policy, Region
from .registry import register
from .taylor import Taylor


@dataclass(frozen=True)
class Hermite(Taylor):
    order: int = 2
    sigma: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not 0 < self.sigma <= 1:
            raise InvalidValueError("sigma", self.sigma, "a number in (0, 1]")

    def predict(self, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> Any:
        x = scalars["offset"] * self.sigma
        out = slots[0].float()
        h_prev, h = 1.0, 2 * x  # H_0, H_1
        for i in range(1, self.order + 1):
            out = out + slots[i].float() * (h * (self.sigma**i / math.factorial(i)))
            h_prev, h = h, 2 * x * h - 2 * i * h_prev
        return out.to(dtype)


HICACHE = register(
    Policy(
        name="hicache",
        region=Region.BRANCH,
        forecaster=Hermite(order=2, sigma=0.5),
        schedule=FixedSchedule(interval=7, warmup=3),
        description="scaled-Hermite forecast of every residual branch",
        source="HiCache, arXiv 2508.16984 (FLUX.1-dev: N=7, O=2, sigma=0.5)",
    )
)
