"""A budget: ``budget=n`` full computations per generation, placed by ``placement.spread``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..validate import check_int
from .base import StepSetSchedule
from .placement import spread_evenly


@dataclass(frozen=True)
class BudgetSchedule(StepSetSchedule):
    budget: int = 2
    kind: ClassVar[str] = "budget"

    def __post_init__(self) -> None:
        check_int("budget", self.budget, 2)

    def planned(self, num_steps: int) -> tuple[int, ...]:
        return spread_evenly(self.budget, num_steps)

    def describe(self) -> str:
        return f"budget {self.budget}, first and last step full, the rest spread evenly"
