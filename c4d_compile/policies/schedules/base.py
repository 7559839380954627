"""What every schedule is: frozen data plus a decision per step call.

A schedule decides which variant a step call runs. The fixed kinds here (interval, explicit,
budget, spread, calibrated) decide from the step index, the step count and the history alone, on
the host, with no device sync; signal-driven kinds will also read ``StepInfo.signal``.
Every kind computes a step that has no history yet (nothing to forecast from).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Protocol

from ...errors import C4DError
from ...runtime.step_program import StepInfo, VariantKind


class MissingStepCountError(C4DError):
    """A schedule needs the number of steps and nothing said it."""

    def __init__(self, kind: str):
        super().__init__(
            f"the {kind!r} schedule needs the number of sampler steps: pass num_steps=N to c4d_backend, call "
            "backend.begin_generation(timesteps) before sampling, or set the pipeline up with "
            "c4d_compile.enable_cache(pipe, ...), which learns it from the pipeline's scheduler"
        )


class RunFacts(NamedTuple):
    """What the first full call of a run (one generation of one context at one size) tells its schedule: a
    schedule read from a calibration file checks that the file was made for such a run."""

    num_steps: int | None  # step calls of this generation per context, when known
    timesteps: tuple[float, ...]  # the sampler's timesteps of this generation, when the caller gave them
    shapes: tuple[tuple[int, ...], ...]  # of each cached feature as this call computed it, batch dim excluded
    graph: str = ""  # the fingerprint of the graph that serves it (``plan.graph_fingerprint``)
    shards: dict | None = None  # under context parallelism: the features this rank holds a shard of (the same)


class Schedule(Protocol):
    kind: ClassVar[str]
    # What the schedule does when no step count is known, if it can still decide (None: it raises).
    without_step_count: ClassVar[str | None]

    def decide(self, info: StepInfo) -> VariantKind: ...

    def early(self, info: StepInfo) -> VariantKind | None:
        """The decision before the call's signal is measured, where a plan has a probe (None: measure, then
        ``decide``)."""

    def forced(self, info: StepInfo) -> bool:
        """Whether a step is full whatever a signal says (the input of a decision made on the device)."""

    def planned(self, num_steps: int) -> tuple[int, ...]:
        """The steps a generation of ``num_steps`` computes in full when nothing resets on the way."""

    def check_plan(self, fingerprint: dict) -> None:
        """Raise a typed error if the schedule was made for another model (calibrated files)."""

    def check_ready(self) -> None:
        """Raise a typed error if the schedule cannot run at all yet (a fitted policy with no calibration file)."""

    def check_run(self, run: RunFacts) -> None:
        """Raise a typed error if the schedule was made for other runs than this one (another step count, sampler
        grid or size than a calibration file was recorded on), or adapt to it; called at the first full call of
        every run, so also at a size a dynamic-shape graph serves without being compiled again."""

    def describe(self) -> str: ...


class ScheduleBase:
    """Defaults of the optional parts of the protocol."""

    kind: ClassVar[str] = "schedule"
    signal: ClassVar = None  # the Signal a signal-driven schedule reads (its handler: compiler/signals/)
    decision: ClassVar = None  # where a signal schedule decides (Decision); None: on the host
    without_step_count: ClassVar[str | None] = None

    def early(self, info: StepInfo) -> VariantKind | None:
        return None

    def compiled_part(self) -> object:
        """What the compiled graphs and the plan take from this schedule: two schedules with equal parts serve
        the same graphs (a request's own threshold or budget, ``backend.begin_request``). A schedule deciding from
        the step alone gives the graphs nothing; one with a signal, by default, all of itself."""
        return self if self.signal is not None else None

    def forced(self, info: StepInfo) -> bool:
        return False

    def check_plan(self, fingerprint: dict) -> None:
        return None

    def check_ready(self) -> None:
        return None

    def check_run(self, run: RunFacts) -> None:
        return None


class StepSetSchedule(ScheduleBase):
    """A schedule that is a set of full steps for a given step count (explicit, budget, calibrated)."""

    kind: ClassVar[str] = "step set"

    def planned(self, num_steps: int) -> tuple[int, ...]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def decide(self, info: StepInfo) -> VariantKind:
        if info.num_steps is None:
            raise MissingStepCountError(self.kind)
        if not info.full_steps:
            return VariantKind.FULL
        return VariantKind.FULL if info.step in _planned_set(self, info.num_steps) else VariantKind.CACHED


_SETS: dict[tuple, frozenset[int]] = {}


def _planned_set(schedule: StepSetSchedule, num_steps: int) -> frozenset[int]:
    """``planned`` as a set, memoised: the decision is a set lookup per call."""
    key = (schedule, num_steps)
    found = _SETS.get(key)
    if found is None:
        if len(_SETS) > 1024:
            _SETS.clear()
        found = _SETS[key] = frozenset(schedule.planned(num_steps))
    return found
