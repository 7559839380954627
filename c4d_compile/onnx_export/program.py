"""The step program as data: which variant each step of a generation runs, with the forecast weights it reads.

Schedules that decide from the step and the full steps so far (interval, budget, spread, calibrated,
explicit) decide the same for every generation of a given length, so the program is computed once
here, by asking the schedule as the Runtime does, and written to ``plan.json``: a runtime in any
language replays it without the policy's code. Each step also records the full steps its forecast
weights assume, so a runner that finds another history refuses the call instead of forecasting
from the wrong values. Not exported (yet): signal-driven schedules (their decision needs the PROBE
and a host rule), token subsets (their rows are per-call host inputs), and the timestep as the
forecast variable (its weights depend on the sampler's timesteps).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NotExportableError
from ..passes.variants import WEIGHTS
from ..plan import CachePlan
from ..policies.config import Policy
from ..policies.forecasters.base import slot_weights
from ..policies.variable import Variable
from ..step_program import StepInfo, VariantKind

EXPORTED_KINDS = (VariantKind.FULL, VariantKind.CACHED)


@dataclass(frozen=True)
class ProgramStep:
    variant: VariantKind
    weights: tuple[float, ...] | None  # the variant's forecast weights input, when it reads one
    history: tuple[int, ...]  # the full steps the weights are over, newest first

    def to_json(self) -> dict:
        return {"variant": self.variant.value, "weights": None if self.weights is None else list(self.weights),
                "history": list(self.history)}


def check_exportable(policy: Policy, plan: CachePlan) -> None:
    unsupported = [k.value for k in plan.variant_kinds if k not in EXPORTED_KINDS]
    if unsupported:
        what = "token subsets" if VariantKind.PARTIAL.value in unsupported else "signal-driven schedules"
        raise NotExportableError(
            f"policy {policy.name!r} needs the {', '.join(unsupported)} variant(s) ({what}), which export does not "
            f"write yet; exported: fixed, budget, spread, calibrated and explicit schedules (variants "
            f"{', '.join(k.value for k in EXPORTED_KINDS)}) over the output, stack and branch regions")
    if policy.variable is not Variable.STEP:
        raise NotExportableError(f"variable={policy.variable.value!r}: exported forecast weights are per step "
                                 "index; export with variable='step'")


def step_program(policy: Policy, plan: CachePlan, num_steps: int, reads_weights: set[VariantKind]) -> list[ProgramStep]:
    """The variant and forecast weights of each step of a ``num_steps`` generation of one context."""
    check_exportable(policy, plan)
    kept = max(plan.num_slots, 2)  # as the Runtime keeps them
    full_steps: list[int] = []
    program = []
    for step in range(num_steps):
        kind = policy.schedule.decide(StepInfo(step, num_steps, tuple(full_steps)))
        history = tuple(reversed(full_steps[-plan.num_slots:]))
        weights = None
        if kind in reads_weights:
            weights = slot_weights(policy.forecaster, float(step), [float(s) for s in history], plan.num_slots)
        program.append(ProgramStep(kind, weights, history if weights is not None else ()))
        if kind is VariantKind.FULL:
            full_steps = [*full_steps, step][-kept:]
    return program


def weights_readers(variants: dict) -> set[VariantKind]:
    return {kind for kind, v in variants.items() if WEIGHTS in v.inputs}
