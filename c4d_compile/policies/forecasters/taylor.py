"""TaylorSeer's forecast (arXiv 2503.06923): a Taylor series from backward-difference factors.

At a cached step at distance ``k = u - u_a`` from the newest full step ``u_a``:

    F^(u) = sum_{i=0..O} D^i * k^i / i!

with TaylorSeer's factors (``taylor_factors``). A factor of order i+1 exists once a previous D^i
did; until then it is zero and the forecast falls back to the lower orders. (The FLUX reference
code additionally refuses to form derivatives while ``s <= W - 2``; its HunyuanVideo code does not.
We follow the latter: the rule depends only on the history, not on a warm-up constant.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..validate import check_int
from .base import combine, taylor_factors


@dataclass(frozen=True)
class Taylor:
    order: int = 1

    def __post_init__(self) -> None:
        check_int("order", self.order, 0)

    @property
    def num_slots(self) -> int:
        return self.order + 1

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        factors = taylor_factors(history, self.order)
        k = target - history[0]
        return combine(factors, [k**i / math.factorial(i) for i in range(len(factors))])
