"""Warm-up + interval: the papers' schedule (TaylorSeer arXiv 2503.06923, FORA 2407.01425, FoCa, HiCache).

The first ``warmup`` steps compute, then one step in ``interval``: full when ``interval - 1``
cached steps have passed since the last full step (the reference code's counter). It needs no step
count. ``last_step_full`` also computes the final step, which needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...runtime.step_program import StepInfo, VariantKind
from ..validate import check_bool, check_int
from .base import MissingStepCountError, ScheduleBase

_FULL, _CACHED = VariantKind.FULL, VariantKind.CACHED  # read once: decide runs every call (a member costs ~0.2 µs)


@dataclass(frozen=True)
class IntervalSchedule(ScheduleBase):
    interval: int = 1
    warmup: int = 0
    last_step_full: bool = False
    kind: ClassVar[str] = "interval"

    def __post_init__(self) -> None:
        check_int("interval", self.interval, 1)
        check_int("warmup", self.warmup, 0)
        check_bool("last_step_full", self.last_step_full)

    def is_full(self, step: int, last_full: int | None, num_steps: int | None) -> bool:
        if last_full is None or step < self.warmup:
            return True
        if self.last_step_full:
            if num_steps is None:
                raise MissingStepCountError("interval with last_step_full")
            if step == num_steps - 1:
                return True
        return step - last_full >= self.interval

    def decide(self, info: StepInfo) -> VariantKind:
        last = info.full_steps[-1] if info.full_steps else None
        return _FULL if self.is_full(info.step, last, info.num_steps) else _CACHED

    def planned(self, num_steps: int) -> tuple[int, ...]:
        full: list[int] = []
        for step in range(num_steps):
            if self.is_full(step, full[-1] if full else None, num_steps):
                full.append(step)
        return tuple(full)

    def describe(self) -> str:
        last = ", last step full" if self.last_step_full else ""
        return f"interval {self.interval}, warm-up {self.warmup}{last}"
