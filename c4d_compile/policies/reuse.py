"""Reuse: a cached step returns the value of the last full step (FORA, TeaCache-style residual
reuse; methods.md §13). Registers FORA and the stack-residual reuse preset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .config import FixedSchedule, Policy, Region
from .registry import register


@dataclass(frozen=True)
class Reuse:
    num_slots = 1
    update_scalar_names = ()
    predict_scalar_names = ()

    def update_scalars(self, full_steps: Sequence[int]) -> dict[str, float]:
        return {}

    def update(self, feature: Any, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> list:
        return [feature]

    def predict_scalars(self, step: int, full_steps: Sequence[int]) -> dict[str, float]:
        return {}

    def predict(self, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> Any:
        return slots[0]


FORA = register(
    Policy(
        name="fora",
        region=Region.BRANCH,
        forecaster=Reuse(),
        schedule=FixedSchedule(interval=3, warmup=1),
        description="reuse every residual branch (attention / MLP outputs); fixed interval",
        source="FORA, arXiv 2407.01425 (N=3; first step full)",
    )
)

STACK_REUSE = register(
    Policy(
        name="stack-reuse",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=FixedSchedule(interval=3, warmup=1),
        description="reuse the residual of the whole block stack; fixed interval",
        source="TeaCache/MagCache cache region (arXiv 2411.19108, 2506.09045) on FORA's fixed schedule "
        "(arXiv 2407.01425)",
    )
)
