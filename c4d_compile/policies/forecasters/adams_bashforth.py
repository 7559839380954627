"""AB-Cache: extrapolation from the last k computed outputs (arXiv 2504.10540).

The paper reads the sampler as an Adams–Bashforth method and derives an approximately linear
relation between consecutive outputs; its code (as quoted by third parties) keeps the last k
computed outputs f_0 (newest), f_1, ... and forecasts every skipped step of a window as

    f^ = sum_{i=1..k} (-1)^(i+1) C(k, i) f_{i-1}        k=2: 2 f_0 - f_1;  k=3: 3 f_0 - 3 f_1 + f_2

whatever the distance to the last computed step (``binomial=True``, the paper's form). Those are
the weights of the degree-(k-1) polynomial through k equally spaced points evaluated one spacing
ahead, so the form that follows the sampler (``binomial=False``, the default) evaluates the
polynomial through the actual history coordinates at the actual target: on an even grid, one
spacing ahead, the two agree. With fewer than k outputs so far the order drops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..validate import check_bool, check_int
from .base import lagrange_weights


@dataclass(frozen=True)
class AdamsBashforth:
    order: int = 2
    binomial: bool = False

    def __post_init__(self) -> None:
        check_int("order", self.order, 1)
        check_bool("binomial", self.binomial)

    @property
    def num_slots(self) -> int:
        return self.order

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        if self.binomial:
            k = len(history)
            return tuple(float((-1) ** i * math.comb(k, i + 1)) for i in range(k))
        return lagrange_weights(target, history)
