"""SpeCa's schedule (arXiv 2509.11628): forecast drafts, verified by computing the last block exactly on
the draft's own input; a draft whose error exceeds a decaying threshold makes the next step full.

After a full step every call is a draft (the forecast of every branch). From the ``min_drafts``-th draft
since the last full step on, a draft is *verified*: the VERIFY variant also runs the last block's
branches on the input the draft gave it and measures ``e = mean(|f - y| / (|y| + 1e-10))`` between the
forecast ``f`` and the true ``y`` (read on the host: one scalar per verified call). With ``n`` drafts
since the last full step, a call computes in full when

    no history yet, or step < warmup, or n >= max_drafts,
    or n >= min_drafts and the previous draft's error > tau(s) = max(threshold * decay^(s / T), min_threshold)

as in the reference code (Shenyi-Z/Cache4Diffusion ``cal_type.py``), which also keeps a rejected draft's
output rather than recomputing it: the step after it is full. ``threshold=0`` always computes. Defaults:
the reference's FLUX settings (order 2, 3 warm-up steps, tau0 7, decay 0.3, tau_min 0.1, 2 to 8 drafts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import ConfigError
from ...runtime.step_program import StepInfo, VariantKind
from ..validate import check_int, check_number
from .base import MissingStepCountError, ScheduleBase
from .signal import Signal


@dataclass(frozen=True)
class SpeculativeSchedule(ScheduleBase):
    threshold: float = 7.0
    decay: float = 0.3
    min_threshold: float = 0.1
    warmup: int = 3
    min_drafts: int = 2
    max_drafts: int = 8
    kind: ClassVar[str] = "speculative"
    signal: ClassVar[Signal] = Signal.VERIFICATION

    def __post_init__(self) -> None:
        check_number("threshold", self.threshold, 0, note="tau0 of the decaying acceptance threshold; 0: full")
        check_number("decay", self.decay, 0, 1, note="beta: tau(s) = threshold * decay^(s/T)")
        check_number("min_threshold", self.min_threshold, 0)
        check_int("warmup", self.warmup, 1)
        check_int("min_drafts", self.min_drafts, 1)
        check_int("max_drafts", self.max_drafts, 1)
        if self.min_drafts > self.max_drafts:
            raise ConfigError(f"min_drafts={self.min_drafts} > max_drafts={self.max_drafts}: verification would never "
                              "start; choose min_drafts <= max_drafts")

    def tau(self, step: int, num_steps: int) -> float:
        return max(self.threshold * self.decay ** (step / num_steps), self.min_threshold)

    def decide(self, info: StepInfo) -> VariantKind:
        if self.threshold == 0 or not info.full_steps or info.step < self.warmup:
            return VariantKind.FULL
        if info.num_steps is None:
            raise MissingStepCountError(self.kind)
        drafts = info.step - info.full_steps[-1] - 1
        if drafts >= self.max_drafts:
            return VariantKind.FULL
        if drafts >= self.min_drafts and info.signals and info.signals[-1] > self.tau(info.step, info.num_steps):
            return VariantKind.FULL
        return VariantKind.VERIFY if drafts + 1 >= self.min_drafts else VariantKind.CACHED

    def planned(self, num_steps: int) -> tuple[int, ...]:
        raise ConfigError("a speculative schedule has no full steps known in advance: they depend on the verified "
                          "errors (run it and read backend.stats().last)")

    def describe(self) -> str:
        return (f"speculative: drafts verified on the last block from the {self.min_drafts}th on, full when the "
                f"error > max({self.threshold:g} * {self.decay:g}^(s/T), {self.min_threshold:g}) or after "
                f"{self.max_drafts} drafts, warm-up {self.warmup}")
