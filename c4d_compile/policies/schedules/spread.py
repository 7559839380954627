"""One full computation per ``interval`` steps on average, spread over the run with the first and the
last step full (``placement.spread`` with a budget of ceil(T / interval)).

The presets' default: the speed of an interval, the placement of a budget. It needs the step count;
without one (a bare loop that never said it) it computes the first step and then one in
``interval`` — the decision it can still take — and the backend says so once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ...runtime.step_program import StepInfo, VariantKind
from ..validate import check_int
from .base import StepSetSchedule
from .placement import spread_evenly


@dataclass(frozen=True)
class SpreadSchedule(StepSetSchedule):
    interval: int = 5
    kind: ClassVar[str] = "spread"
    without_step_count: ClassVar[str | None] = "the first step full, then one in every `interval` (warm-up 1)"

    def __post_init__(self) -> None:
        check_int("interval", self.interval, 1)

    def budget(self, num_steps: int) -> int:
        return min(num_steps, max(2, math.ceil(num_steps / self.interval)))

    def planned(self, num_steps: int) -> tuple[int, ...]:
        return spread_evenly(self.budget(num_steps), num_steps)

    def decide(self, info: StepInfo) -> VariantKind:
        if info.num_steps is None:  # first step full, then one in `interval`
            if not info.full_steps or info.step - info.full_steps[-1] >= self.interval:
                return VariantKind.FULL
            return VariantKind.CACHED
        return super().decide(info)

    def describe(self) -> str:
        return f"spread, one full step per {self.interval} on average, first and last step full"
