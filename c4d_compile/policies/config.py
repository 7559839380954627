"""Policy = region + forecaster + scheduler, as frozen dataclasses.

Every field that changes the compiled variants or the schedule is explicit here. Overrides are
flat keyword arguments (``interval=4, order=2``) routed to the one sub-config that owns the field;
an unknown name is rejected with the list of valid ones, never dropped.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidValueError, UnknownOptionError


class Region(str, enum.Enum):
    """What a policy caches (design.md §2)."""

    OUTPUT = "output"  # the model output (TaylorSeer-Lite)
    STACK = "stack"  # the residual of the whole block stack
    BRANCH = "branch"  # every residual branch F of every block (TaylorSeer, FoCa, ...)

    @classmethod
    def parse(cls, value: Region | str) -> Region:
        try:
            return cls(value)
        except ValueError:
            raise InvalidValueError("region", value, f"one of {[r.value for r in cls]}") from None


def check_int(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(field, value, f"an integer >= {minimum}")


@dataclass(frozen=True)
class FixedSchedule:
    """Compute on the first ``warmup`` steps, then once every ``interval`` steps (methods.md §0.2).

    ``last_step_full`` also computes the final step; it needs ``num_steps`` because a compiled
    transformer cannot know where the sampler will stop.
    """

    interval: int = 1
    warmup: int = 0
    last_step_full: bool = False
    num_steps: int | None = None

    def __post_init__(self) -> None:
        check_int("interval", self.interval, 1)
        check_int("warmup", self.warmup, 0)
        if not isinstance(self.last_step_full, bool):
            raise InvalidValueError("last_step_full", self.last_step_full, "True or False")
        if self.num_steps is not None:
            check_int("num_steps", self.num_steps, 1)
        if self.last_step_full and self.num_steps is None:
            raise InvalidValueError("num_steps", None, "an integer >= 1 when last_step_full=True")

    def is_full(self, step: int, last_full_step: int | None) -> bool:
        """Host-side decision; ``last_full_step`` is None while nothing is cached yet."""
        if last_full_step is None or step < self.warmup:
            return True
        if self.last_step_full and step == self.num_steps - 1:
            return True
        # Equivalent to the reference counter form: full when N-1 cached steps have passed.
        return step - last_full_step >= self.interval

    def full_steps(self, num_steps: int) -> int:
        """How many steps of a ``num_steps`` run this schedule computes in full."""
        last, count = None, 0
        for step in range(num_steps):
            if self.is_full(step, last):
                last, count = step, count + 1
        return count


@dataclass(frozen=True)
class Policy:
    """A named, complete caching configuration. Presets are instances of this class."""

    name: str
    region: Region
    forecaster: Any  # a frozen forecaster config from policies.forecasters
    schedule: FixedSchedule
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "region", Region.parse(self.region))

    def options(self) -> dict[str, Any]:
        """Every overridable option and its current value."""
        opts: dict[str, Any] = {"region": self.region.value}
        for part in (self.forecaster, self.schedule):
            opts.update({f.name: getattr(part, f.name) for f in dataclasses.fields(part)})
        return opts

    def with_overrides(self, **overrides: Any) -> Policy:
        if not overrides:
            return self
        valid = self.options()
        for key in overrides:
            if key not in valid:
                raise UnknownOptionError(key, valid)
        changes: dict[str, Any] = {}
        if "region" in overrides:
            changes["region"] = Region.parse(overrides["region"])
        for attr in ("forecaster", "schedule"):
            part = getattr(self, attr)
            names = {f.name for f in dataclasses.fields(part)}
            mine = {k: v for k, v in overrides.items() if k in names}
            if mine:
                changes[attr] = dataclasses.replace(part, **mine)
        return dataclasses.replace(self, **changes)
