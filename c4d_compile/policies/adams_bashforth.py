"""AB-Cache: Adams–Bashforth extrapolation of the model output (methods.md §17, arXiv 2504.10540).

The paper derives, from the sampler's Adams–Bashforth form, an approximately linear relation
between consecutive outputs and extrapolates the output of a skipped step as a linear combination
of the last k computed ones, with O(h^k) truncation error. The authors' code (as quoted by third
parties; the paper's method pages were not available) caches the final model output and uses
binomial weights over the last k full-step outputs f_0 (newest), f_1, ...:

    f^ = sum_{i=1..k} (-1)^(i+1) C(k, i) f_{i-1}        k=2: 2 f_0 - f_1;  k=3: 3 f_0 - 3 f_1 + f_2

independent of the distance to the last full step. With fewer than k outputs so far the order drops.
Their FLUX schedule computes steps 0-4 and then every sixth step; the fixed schedule here computes
warm-up 5 then every 6 (same rate, the first window shifted by one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .config import FixedSchedule, Policy, Region, check_int
from .registry import register


@dataclass(frozen=True)
class AdamsBashforth:
    order: int = 2
    update_scalar_names = ()

    def __post_init__(self) -> None:
        check_int("order", self.order, 1)

    @property
    def num_slots(self) -> int:
        return self.order

    @property
    def predict_scalar_names(self) -> tuple[str, ...]:
        return tuple(f"w{i}" for i in range(self.order))

    def update_scalars(self, full_steps: Sequence[int]) -> dict[str, float]:
        return {}

    def update(self, feature: Any, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> list:
        return [feature, *slots[: self.order - 1]]  # newest first

    def predict_scalars(self, step: int, full_steps: Sequence[int]) -> dict[str, float]:
        k = min(len(full_steps), self.order)
        weights = [(-1) ** i * math.comb(k, i + 1) for i in range(k)] + [0] * (self.order - k)
        return {f"w{i}": float(w) for i, w in enumerate(weights)}

    def predict(self, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> Any:
        out = slots[0].float() * scalars["w0"]
        for i in range(1, self.order):
            out = out + slots[i].float() * scalars[f"w{i}"]
        return out.to(dtype)


ABCACHE = register(
    Policy(
        name="abcache",
        region=Region.OUTPUT,
        forecaster=AdamsBashforth(order=2),
        schedule=FixedSchedule(interval=6, warmup=5),
        description="Adams–Bashforth (binomial) extrapolation of the model output",
        source="AB-Cache, arXiv 2504.10540 (FLUX.1-dev: full on steps 0-4, then every 6th)",
    )
)
