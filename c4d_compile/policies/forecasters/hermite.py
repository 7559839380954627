"""HiCache: TaylorSeer's factors with a scaled-Hermite basis (arXiv 2508.16984).

    F^(u_a + k) = D^0 + sum_{i=1..O} (D^i / i!) * sigma^i * H_i(sigma * k)
    H_0 = 1, H_1(x) = 2x, H_{n+1}(x) = 2x H_n(x) - 2n H_{n-1}(x)      (physicists' Hermite)

The factors D^i are TaylorSeer's. The forecast is evaluated at +k with forward-in-time distances,
as the official code does (a port that evaluated at -k forecast worse than reuse). With
sigma = 1/sqrt(2) the order-1 term equals Taylor's D^1 k exactly. k is in units of sampler steps
(the basis is not scale-free, which is why the timestep variable is rescaled to steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import InvalidValueError
from ..validate import check_int
from .base import combine, taylor_factors


def hermite(n: int, x: float) -> float:
    """Physicists' Hermite polynomial H_n(x) by the three-term recurrence."""
    h_prev, h = 1.0, 2 * x
    if n == 0:
        return h_prev
    for i in range(1, n):
        h_prev, h = h, 2 * x * h - 2 * i * h_prev
    return h


@dataclass(frozen=True)
class Hermite:
    order: int = 2
    sigma: float = 0.5

    def __post_init__(self) -> None:
        check_int("order", self.order, 0)
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not 0 < self.sigma <= 1:
            raise InvalidValueError("sigma", self.sigma, "a number in (0, 1]")

    @property
    def num_slots(self) -> int:
        return self.order + 1

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        factors = taylor_factors(history, self.order)
        x = self.sigma * (target - history[0])
        return combine(factors, [self.sigma**i * hermite(i, x) / math.factorial(i) for i in range(len(factors))])
