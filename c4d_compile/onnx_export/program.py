"""The step program as data: which variants each step of a generation runs, with the host inputs they read.

Schedules that decide from the step and the full steps so far (interval, budget, spread, calibrated,
explicit, magnitude) decide the same for every generation of a given length, so the program is computed
once here, by asking the schedule as the Runtime does, and written to ``plan.json``: a runtime in any
language replays it without the policy's code. Each step also records the full steps its forecast
weights assume, so a runner that finds another history refuses the call instead of forecasting from
the wrong values.

Signal-driven schedules export with ``decision="device"``: the probe, the rule and both continuations
are one DECIDE graph, exported as an ONNX ``If``, so what the host replays is still fixed per step (the
first call runs the PROBE then FULL; every later one runs DECIDE, told whether the step is forced to be
full). The host path (a PROBE file and the rule in the host) is not exported: the rule would have to be
written again in every runtime. Token subsets: the rows (or the draws that pick each cluster's row) of
every partial step are drawn here and written into the program. With the timestep as the forecast variable
the weights depend on the sampler's timesteps: export is given them, and each step records the timestep its
weights were computed for (the runner refuses another). Not exported (yet): SpeCa's verification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import NotExportableError
from ..passes.variants import FORCE, WEIGHTS
from ..plan import CachePlan
from ..policies.config import Policy
from ..policies.forecasters.base import slot_weights
from ..policies.variable import Variable, coordinates
from ..step_program import StepInfo, VariantKind
from ..token_picker import TokenPicker

EXPORTED_KINDS = (VariantKind.FULL, VariantKind.CACHED, VariantKind.PROBE, VariantKind.DECIDE, VariantKind.PARTIAL)


@dataclass(frozen=True)
class ProgramStep:
    variant: VariantKind  # the variant whose model outputs the call returns
    weights: tuple[float, ...] | None  # its forecast weights input, when it reads one
    history: tuple[int, ...]  # the full steps the weights are over, newest first
    prelude: tuple[VariantKind, ...] = ()  # run first in the same call; ``variant`` reads their named outputs
    force: bool | None = None  # DECIDE's input: true where the schedule computes whatever the signal says
    tokens: Mapping[str, tuple] = field(default_factory=dict)  # a partial call's host inputs: rows, or draws
    timestep: float | None = None  # variable="timestep": the timestep the weights were computed for

    def to_json(self) -> dict:
        return {"variant": self.variant.value, "weights": None if self.weights is None else list(self.weights),
                "history": list(self.history), "prelude": [k.value for k in self.prelude], "force": self.force,
                "tokens": {name: list(values) for name, values in self.tokens.items()}, "timestep": self.timestep}


def check_exportable(policy: Policy, plan: CachePlan, timesteps: Sequence[float] | None = None) -> None:
    unsupported = [k.value for k in plan.variant_kinds if k not in EXPORTED_KINDS]
    if unsupported:
        raise NotExportableError(
            f"policy {policy.name!r} needs the {', '.join(unsupported)} variant(s) (speculative verification), which "
            f"export does not write yet; exported: fixed, budget, spread, calibrated, explicit and magnitude schedules "
            f"over the output, stack and branch regions, token subsets, and signal schedules with decision='device'")
    if plan.probe is not None and not plan.decided_on_device:
        raise NotExportableError(f"policy {policy.name!r} decides on the host from a probe's signal: export it with "
                                 "decision='device', which compiles the probe, the rule and both continuations into "
                                 "one graph (an ONNX If)")
    if policy.variable is not Variable.STEP and timesteps is None:
        raise NotExportableError(f"variable={policy.variable.value!r}: the forecast weights depend on the sampler's "
                                 "timesteps; pass them: export(..., timesteps=scheduler.timesteps)")


def step_program(policy: Policy, plan: CachePlan, num_steps: int, variants: Mapping,
                 timesteps: Sequence[float] | None = None) -> list[ProgramStep]:
    """What each step of a ``num_steps`` generation of one context runs, as the Runtime would run it;
    ``timesteps``: the sampler's, one per step (needed with ``variable="timestep"``)."""
    check_exportable(policy, plan, timesteps)
    by_time = policy.variable is not Variable.STEP
    schedule = policy.schedule
    early = getattr(schedule, "early", None) if plan.prelude else None
    state = {e.name for e in plan.state}
    produced = {name for kind in plan.prelude for name in variants[kind].outputs} - state  # call values
    kept = max(plan.num_slots, 2)  # as the Runtime keeps them
    # token subsets: the rows of each partial step drawn here, in step order, by the seeded picker the Runtime
    # uses; the Runtime draws in call order, so with one context the exported rows are the compiled model's
    picker = TokenPicker(policy.tokens, plan.token_rows) if VariantKind.PARTIAL in plan.variant_kinds else None
    full_steps: list[int] = []
    program = []
    for step in range(num_steps):
        info = StepInfo(step, num_steps, tuple(full_steps))
        kind = early(info) if early is not None else schedule.decide(info)
        if kind is None:  # a host decision after the probe: check_exportable refused it
            raise NotExportableError("the schedule decides from a measured signal on the host")
        if picker is not None:
            kind = policy.tokens.refine(kind, info)
        inputs = variants[kind].inputs
        prelude = plan.prelude if any(name in produced for name in inputs) else ()
        history = tuple(reversed(full_steps[-plan.num_slots:]))
        weights, time = None, None
        if WEIGHTS in inputs:
            target, coords = float(step), [float(s) for s in history]
            if by_time:
                time = float(timesteps[step])
                target, coords = coordinates(policy.variable, step, time, 0, float(timesteps[0]), history,
                                             [float(timesteps[s]) for s in history])
            weights = slot_weights(policy.forecaster, target, coords, plan.num_slots)
        force = schedule.forced(info) if FORCE in inputs else None
        tokens = {name: tuple(picker.make(name, "cpu").tolist()) for name in inputs if name in picker.inputs} \
            if picker is not None else {}
        program.append(ProgramStep(kind, weights, history if weights is not None else (), prelude, force, tokens,
                                   time))
        if kind is VariantKind.FULL:
            full_steps = [*full_steps, step][-kept:]
    return program
