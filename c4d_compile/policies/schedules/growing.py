"""Warm-up + a growing interval: Spectrum's schedule (CVPR 2026, arXiv 2603.01623; code
github.com/hanjq17/Spectrum, ``src/pipelines/*_forward.py``; the paper's window N and alpha).

The first ``warmup`` steps compute. After them a step is full when ``floor(N)`` steps have passed since
the last full step (the code's counter: ``(cached_since_last + 1) % floor(N) == 0``), and each of those
full steps grows the window, N += ``growth``, from N = ``start``. The last step is not forced full.
With 50 steps, warm-up 5 and N from 2: growth 0.75 computes the 14 steps 0-4, 6, 8, 11, 15, 20, 25, 31,
38, 46 and growth 3 the 10 steps 0-4, 6, 11, 19, 30, 44 (the README's 14 and 10 network passes).

It needs no step count. The decision reads only the last full step: N after k growths is
start + k * growth (the code adds and rounds to 3 decimals; a product here, floored with a 1e-9
margin), and k is the number of growths the schedule itself would have made up to that step, so a
step computed for another reason does not reset the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ...runtime.step_program import StepInfo, VariantKind
from ..validate import check_int, check_number
from .base import ScheduleBase


@dataclass(frozen=True)
class GrowingIntervalSchedule(ScheduleBase):
    warmup: int = 5
    start: float = 2.0
    growth: float = 0.75
    kind: ClassVar[str] = "growing interval"

    def __post_init__(self) -> None:
        check_int("warmup", self.warmup, 1)
        check_number("start", self.start, 1, note="the first window N after the warm-up")
        check_number("growth", self.growth, 0, note="what each full step adds to the window")

    def width(self, growths: int) -> int:
        """floor(N) after ``growths`` full steps past the warm-up."""
        return math.floor(self.start + growths * self.growth + 1e-9)

    def is_full(self, step: int, last_full: int | None) -> bool:
        if last_full is None or step < self.warmup:
            return True
        growths, at = 0, self.warmup - 1  # the schedule's own full steps up to last_full
        while at + self.width(growths) <= last_full:
            at += self.width(growths)
            growths += 1
        return step - last_full >= self.width(growths)

    def decide(self, info: StepInfo) -> VariantKind:
        last = info.full_steps[-1] if info.full_steps else None
        return VariantKind.FULL if self.is_full(info.step, last) else VariantKind.CACHED

    def planned(self, num_steps: int) -> tuple[int, ...]:
        full: list[int] = []
        for step in range(num_steps):
            if self.is_full(step, full[-1] if full else None):
                full.append(step)
        return tuple(full)

    def describe(self) -> str:
        return (f"growing interval, warm-up {self.warmup}, then one step in floor(N), N = {self.start:g} "
                f"+ {self.growth:g} per full step")
