"""An explicit set of full steps: ``full_steps=(0, 4, 9, ...)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import InvalidValueError
from .base import StepSetSchedule


@dataclass(frozen=True)
class ExplicitSchedule(StepSetSchedule):
    full_steps: tuple[int, ...] = (0,)
    kind: ClassVar[str] = "explicit"

    def __post_init__(self) -> None:
        steps = self.full_steps
        if isinstance(steps, (list, range)):
            object.__setattr__(self, "full_steps", steps := tuple(steps))
        valid = "a sorted tuple of distinct step indices >= 0 that starts with step 0"
        integers = isinstance(steps, tuple) and all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
        if not integers or not steps:
            raise InvalidValueError("full_steps", steps, valid)
        if steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])):
            raise InvalidValueError("full_steps", steps, valid)

    def planned(self, num_steps: int) -> tuple[int, ...]:
        if self.full_steps[-1] >= num_steps:
            raise InvalidValueError(
                "full_steps", self.full_steps, f"steps below the generation's step count ({num_steps})"
            )
        return self.full_steps

    def describe(self) -> str:
        return f"explicit {list(self.full_steps)}"
