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
from functools import partial

from ..compiler.plan import CachePlan
from ..errors import NotExportableError
from ..policies.config import Policy
from ..policies.variable import Variable
from ..runtime.interpreter import NeedsSignalError, StepCall, StepInterpreter, TimeAxis
from ..runtime.step_program import StepInfo, VariantKind

EXPORTED_KINDS = (VariantKind.FULL, VariantKind.CACHED, VariantKind.PROBE, VariantKind.DECIDE, VariantKind.PARTIAL)

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
                 timesteps: Sequence[float] | None = None) -> list[StepCall]:
    """What each step of a ``num_steps`` generation of one context runs, as the Runtime runs it (the same
    interpreter, asked step by step with the history it would have); ``timesteps``: the sampler's, one per step
    (needed with ``variable="timestep"``). Token subsets: the rows of each partial step are drawn here, in step
    order, by the seeded picker the Runtime uses, which draws in call order: with one context the exported rows
    are the compiled model's."""
    check_exportable(policy, plan, timesteps)
    interpreter = StepInterpreter(policy, plan, variants)
    full_steps: list[int] = []
    program = []
    for step in range(num_steps):
        info = StepInfo(step, num_steps, tuple(full_steps))
        try:
            call = interpreter.step(info, None, partial(_sampler_axis, timesteps, step, full_steps, plan.num_slots))
        except NeedsSignalError as error:  # check_exportable refuses host decisions: a schedule that hides one
            raise NotExportableError(str(error)) from None
        program.append(call)
        if call.variant is VariantKind.FULL:
            interpreter.keep_full(full_steps, step)
    return program


def _sampler_axis(timesteps: Sequence[float], step: int, full_steps: Sequence[int], num_slots: int) -> TimeAxis:
    """The time axis of ``step`` on the sampler's grid, the generation starting at its step 0."""
    history = reversed(full_steps[-num_slots:])
    return TimeAxis(float(timesteps[step]), 0, float(timesteps[0]), tuple(float(timesteps[s]) for s in history))
