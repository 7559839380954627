"""FoCa — forecast then calibrate (methods.md §5, arXiv 2508.16211).

The paper treats a layer's feature along the sampling trajectory as a feature-ODE and, per step
(h = 1 sampling step), forecasts with BDF2 and calibrates with Heun:

    (7) F^_{k+1} = 4/3 F_k - 1/3 F_{k-1} + 2h/3 F'(x_k)
    (6) F'(x_{k+1}) = (3 F^_{k+1} - 4 F_k + F_{k-1}) / 2h
    (8) F_{k+1} = F_k + h/2 [F'(x_{k-N}) + F'(x_{k+1})]          x_{k-N}: the last full step

Equations as transcribed from the paper by third parties; no official code is public, and the
paper leaves open how F' is estimated and which values F_k, F_{k-1} are. Our reading, stated so it
can be checked:
* F_k, F_{k-1} are the last two values of the trajectory (computed or forecast), stepping one
  sampling step at a time (recursive, h = 1 step);
* F'(x_k) = F_k - F_{k-1}; then (7) is 2 F_k - F_{k-1} and (6) gives F'(x_{k+1}) = F_k - F_{k-1};
* F'(x_{k-N}) = d, the slope between the last two full steps: (F_a - F_{a-1}) / gap.
So each cached step moves by s_{j+1} = (d + s_j) / 2: the step size relaxes geometrically from s_0,
the last one-step difference into the full step, to the full-step slope d. In closed form
    F^(s_a + k) = F_a + k d + (1 - 2^-k) (s_0 - d)
which needs no state update on cached steps. s_0 = F_a - (the trajectory's value one step before
s_a) is formed in the FULL variant from the previous window's own forecast at k = gap - 1.
Unlike a Taylor series of order 2 the correction saturates, which keeps long intervals stable.
Defaults: FLUX rows were published at N = 5 (4.16x FLOPs) and N = 8; warm-up 3 matches their ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .config import FixedSchedule, Policy, Region
from .registry import register


@dataclass(frozen=True)
class FoCa:
    num_slots = 3  # F_a, d (full-step slope), s_0 (last one-step difference)
    update_scalar_names = ("gap", "have")
    predict_scalar_names = ("offset",)

    def update_scalars(self, full_steps: Sequence[int]) -> dict[str, float]:
        previous = len(full_steps) - 1
        gap = full_steps[-1] - full_steps[-2] if previous else 1
        return {"gap": float(gap), "have": float(min(previous, 1))}

    @staticmethod
    def _forecast(value, slope, step0, k):
        return value + k * slope + (1 - 0.5**k) * (step0 - slope)

    def update(self, feature: Any, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> list:
        value, slope, step0 = (s.float() for s in slots)
        gap, valid = scalars["gap"], scalars["have"] > 0
        new = feature.float()
        before = self._forecast(value, slope, step0, gap - 1)  # the trajectory one step before this one
        return [feature, ((new - value) / gap * valid).to(dtype), ((new - before) * valid).to(dtype)]

    def predict_scalars(self, step: int, full_steps: Sequence[int]) -> dict[str, float]:
        return {"offset": float(step - full_steps[-1])}

    def predict(self, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> Any:
        value, slope, step0 = (s.float() for s in slots)
        return self._forecast(value, slope, step0, scalars["offset"]).to(dtype)


FOCA = register(
    Policy(
        name="foca",
        region=Region.BRANCH,
        forecaster=FoCa(),
        schedule=FixedSchedule(interval=5, warmup=3),
        description="forecast-then-calibrate (BDF2 + Heun) of every residual branch",
        source="FoCa, arXiv 2508.16211 (FLUX.1-dev N=5: 4.16x FLOPs)",
    )
)
