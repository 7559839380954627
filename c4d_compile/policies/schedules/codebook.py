"""AdaCache's schedule (arXiv 2411.02397): each full step sets how many steps the next cached span lasts,
from how far one block's residual moved since the previous full step.

At a full step ``s`` (the previous one ``p``), FULL measures the residual ``r`` of a block on the latent
stream (the middle one unless ``block`` names another) and the distance

    c = (|r_s - r_p|_1 / |r_p|_1) / (s - p)          # normalised by the previous caching rate

looks up the codebook: the first bound (times ``threshold``) above ``c`` gives the interval to the next
full step; a ``c`` above every bound takes the last interval. The warm-up and the last
``last_steps_full`` steps are full; a full step with nothing to compare with (the first) is followed by
a full step. The decision is a pure function of the last two full steps and the distance measured at
the last one, taken on the host before the call: no probe, no extra read on a cached call.

``threshold`` scales the codebook's bounds (1: the codebook as given; 2: the same distance caches about
twice as long; 0: always compute). Defaults: the Open-Sora 100-step codebook of the reference code,
which lightx2v also uses at 50 steps. The MoReg motion regulariser of the paper (video, frame-to-frame
residual change) is not built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import ConfigError, InvalidValueError
from ...runtime.step_program import StepInfo, VariantKind
from ..validate import check_int, check_number, is_number
from .base import ScheduleBase
from .signal import Signal

OPEN_SORA_100 = ((0.03, 12), (0.05, 10), (0.07, 8), (0.09, 6), (0.11, 4), (1.0, 3))


@dataclass(frozen=True)
class CodebookSchedule(ScheduleBase):
    threshold: float = 1.0
    codebook: tuple[tuple[float, int], ...] = OPEN_SORA_100
    block: int | None = None  # index of the measured block among those on the latent stream; None: the middle one
    warmup: int = 1
    last_steps_full: int = 2
    kind: ClassVar[str] = "codebook"
    signal: ClassVar[Signal] = Signal.BLOCK_RESIDUAL

    def __post_init__(self) -> None:
        check_number("threshold", self.threshold, 0, note="scales the codebook's bounds; 0: always compute")
        entries = tuple(tuple(e) for e in self.codebook) if isinstance(self.codebook, (tuple, list)) else None
        if (not entries or any(len(e) != 2 or not is_number(e[0]) or e[0] <= 0 or isinstance(e[1], bool)
                               or not isinstance(e[1], int) or e[1] < 1 for e in entries)
                or [e[0] for e in entries] != sorted(e[0] for e in entries)):
            raise InvalidValueError("codebook", self.codebook, "a non-empty sequence of (distance bound > 0, interval "
                                    "in steps >= 1), bounds ascending, e.g. ((0.03, 12), (0.05, 10), (1.0, 3))")
        object.__setattr__(self, "codebook", tuple((float(b), int(i)) for b, i in entries))
        if self.block is not None:
            check_int("block", self.block, 0)
        check_int("warmup", self.warmup, 1)
        check_int("last_steps_full", self.last_steps_full, 0)

    def interval(self, distance: float) -> int:
        """Steps from a full step to the next one, for the normalised distance measured there."""
        if self.threshold == 0:
            return 1
        for bound, steps in self.codebook:
            if distance < bound * self.threshold:
                return steps
        return self.codebook[-1][1]

    def normalised(self, info: StepInfo) -> float | None:
        """The last full step's distance over the steps since the one before it; None before there is one."""
        if not info.signals or info.signals[0] is None or len(info.full_steps) < 2:
            return None
        return info.signals[0] / (info.full_steps[-1] - info.full_steps[-2])

    @property
    def without_step_count(self) -> str | None:
        return "the codebook without forcing the last steps full" if self.last_steps_full else None

    def decide(self, info: StepInfo) -> VariantKind:
        if not info.full_steps or info.step < self.warmup:
            return VariantKind.FULL
        if self.last_steps_full and info.num_steps is not None and info.step >= info.num_steps - self.last_steps_full:
            return VariantKind.FULL
        distance = self.normalised(info)
        if distance is None:
            return VariantKind.FULL
        return VariantKind.FULL if info.step >= info.full_steps[-1] + self.interval(distance) else VariantKind.CACHED

    def planned(self, num_steps: int) -> tuple[int, ...]:
        raise ConfigError("a codebook schedule has no full steps known in advance: they depend on the distance "
                          "measured at each full step (run it and read backend.stats().last)")

    def describe(self) -> str:
        where = "the middle block" if self.block is None else f"block {self.block}"
        book = ", ".join(f"<{b * self.threshold:g}: {i}" for b, i in self.codebook)
        parts = [f"codebook on the residual change of {where} per step since the last full step ({book})",
                 f"warm-up {self.warmup}"]
        if self.last_steps_full:
            parts.append(f"last {self.last_steps_full} full")
        return ", ".join(parts)
