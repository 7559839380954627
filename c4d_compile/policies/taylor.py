"""TaylorSeer's forecast (methods.md §3) and the TaylorSeer-Lite preset (§4).

At a full step ``s_a`` with previous full step ``s_{a-1}``:
    D^0 <- F;   D^{i+1} <- (D^i_new - D^i_prev) / (s_a - s_{a-1})     for i < O
and at a cached step ``s`` with ``k = s - s_a``:   F^(s) = sum_i D^i k^i / i!.

The variable is the integer step index, as in every reference implementation (§0.3). A factor of
order i+1 is formed only once a previous D^i exists; until then it is zero, which makes the
forecast fall back to the lower orders. (The FLUX/Qwen reference code additionally refuses to
form derivatives while ``s <= W - 2``; the HunyuanVideo code does not. We follow the latter: the
rule depends only on the history, not on a warm-up constant.)
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
class Taylor:
    order: int = 1

    update_scalar_names = ("gap", "have")
    predict_scalar_names = ("offset",)

    def __post_init__(self) -> None:
        check_int("order", self.order, 0)

    @property
    def num_slots(self) -> int:
        return self.order + 1

    def update_scalars(self, full_steps: Sequence[int]) -> dict[str, float]:
        previous = len(full_steps) - 1
        gap = full_steps[-1] - full_steps[-2] if previous else 1
        return {"gap": float(gap), "have": float(min(previous, self.order))}

    def update(self, feature: Any, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> list:
        factors = [feature]
        for i in range(self.order):
            # (have > i) masks a derivative whose previous factor does not exist yet.
            diff = (factors[i].float() - slots[i].float()) / scalars["gap"]
            factors.append((diff * (scalars["have"] > i)).to(dtype))
        return factors

    def predict_scalars(self, step: int, full_steps: Sequence[int]) -> dict[str, float]:
        return {"offset": float(step - full_steps[-1])}

    def predict(self, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> Any:
        k = scalars["offset"]
        out = slots[0].float()
        power = None
        for i in range(1, self.order + 1):
            power = k if power is None else power * k
            out = out + slots[i].float() * (power / math.factorial(i))
        return out.to(dtype)


TAYLORSEER = register(
    Policy(
        name="taylorseer",
        region=Region.BRANCH,
        forecaster=Taylor(order=1),
        schedule=FixedSchedule(interval=6, warmup=3),
        description="Taylor forecast of every residual branch (attention / MLP outputs, pre-gate)",
        source="TaylorSeer, arXiv 2503.06923 (FLUX.1-dev reference: N=6, O=1, W=3, 4.99x FLOPs)",
    )
)

TAYLORSEER_LITE = register(
    Policy(
        name="taylorseer-lite",
        region=Region.OUTPUT,
        forecaster=Taylor(order=2),
        schedule=FixedSchedule(interval=5, warmup=3),
        description="Taylor forecast of the model output; every block skipped on cached steps",
        source="TaylorSeer-Lite, Cache4Diffusion HunyuanImage-2.1 'fast' mode (arXiv 2503.06923)",
    )
)
