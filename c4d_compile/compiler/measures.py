"""What a signal-driven plan measures, when, and from which state: one rule per kind of signal.

A signal is a host float per call (or per full step) that a schedule reads. Three rules cover the
methods built here; each says which variant yields its values, which state tensors it keeps, and how
the float is computed, so the Runtime and the plan never branch on the method:

* :class:`ProbeChange` (FBCache, DBCache, TeaCache): the PROBE's values against a reference (the last
  full step's or the previous call's), before the decision, as a relative L1. The only rule the
  device path compiles (``compiler/passes/rewrite_decide.py``): one formula, :func:`relative_l1`, for both.
* :class:`FullStepChange` (AdaCache, arXiv 2411.02397): a block's residual measured by FULL itself
  against the previous full step's, after it ran: the distance that sets the next cached span. No
  PROBE, no extra work.
* :class:`Verification` (SpeCa, arXiv 2509.11628): the VERIFY variant's error of the draft on the last
  block, one host read per verified call.
* :class:`TransformationRate` (EasyCache, arXiv 2507.02860): the PROBE is the model's latent input;
  a full step measures the rate ``k = |v_s - v_p| / |x_s - x_p|`` between the last two full steps'
  outputs ``v`` and inputs ``x``, and every later call estimates the relative change of the output
  from the change of the input, ``k |x - x_prev| / |v_p|`` (L1 norms; the reference code's means over
  the same number of elements give the same ratios).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from ..policies.schedules.signal import Reference, Signal
from ..runtime.step_program import StateTensor, VariantKind

if TYPE_CHECKING:
    from ..runtime.state import ContextState
    from .plan import CachePlan

VERIFY_ERROR = "signal.verify"  # Verification: the VERIFY variant's error of the forecast on the last block
OUTPUT = "signal.output"  # TransformationRate: FULL's model output in float32, kept until the next full step
INPUT_AT_FULL = "signal.input_at_full"  # TransformationRate: the latent input of the last full step


def l1_sums(values, references):
    """``(sum |v - ref|, sum |ref|)`` over all the values together: tensors on the host path, graph proxies
    in the DECIDE variant, one formula for both."""
    num = den = None
    for value, ref in zip(values, references):
        a, b = (value - ref).abs().sum(), ref.abs().sum()
        num, den = (a, b) if num is None else (num + a, den + b)
    return num, den


def relative_l1(values, references, reduce=None):
    """``sum |v - ref| / sum |ref|``: the signal of a probe. ``reduce`` adds both sums over the ranks first
    (context parallelism: each rank holds a shard of the tokens)."""
    num, den = l1_sums(values, references)
    if reduce is not None:
        num, den = reduce(torch.stack([num, den]))
    return num / den.clamp_min(1e-30)


def _ratio(num: torch.Tensor, den: torch.Tensor, reduce) -> float:
    """``num / den`` read on the host; under context parallelism both sums are first added over the ranks
    (``reduce``), so every rank divides the same totals and takes the same decision."""
    if reduce is not None:
        num, den = reduce(torch.stack([num, den]))
    return float(num / den.clamp_min(1e-30))


def _change(plan: CachePlan, values: dict, state: ContextState, reduce) -> float | None:
    """The probed values against their references (relative L1); None before the first reference."""
    refs = [state.tensors.get(name) for name in plan.reference_names]
    if any(ref is None for ref in refs):
        return None
    return _ratio(*l1_sums([values[name] for name in plan.signal_names], refs), reduce)


class Measure:
    """The base rule: the probed values are ``signal.i``, each with a reference ``signal.ref.i``."""

    at: ClassVar[VariantKind] = VariantKind.PROBE  # the variant whose outputs carry the probed values
    measures_after: ClassVar[bool] = False  # ``after`` does something: the Runtime calls it after the variant
    on_device: ClassVar[bool] = False  # compiled into the DECIDE variant (decision='device')

    def reference_writer(self, plan: CachePlan) -> VariantKind:
        return VariantKind.FULL

    def full_outputs(self, plan: CachePlan) -> tuple[tuple[str, str, str | None], ...]:
        """Values FULL outputs for the measure, as (name, graph value, base it is a residual of): float32."""
        return ()

    def state(self, plan: CachePlan) -> list[StateTensor]:
        decide = (VariantKind.DECIDE,) if plan.decided_on_device else ()
        return [StateTensor(ref, shape, torch.float32, "signal", written_by=(self.reference_writer(plan), *decide),
                            read_by=decide, source=name)
                for shape, name, ref in zip(plan.probe_shapes, plan.signal_names, plan.reference_names)]

    def before(self, plan: CachePlan, values: dict, state: ContextState, reduce=None) -> float | None:
        """The signal of a call, before the decision (None: nothing to compare with yet). ``reduce`` sums a
        tensor over the ranks of a context-parallel group (None: one process)."""
        return None

    def after(self, plan: CachePlan, kind: VariantKind, values: dict, state: ContextState,
              reduce=None) -> float | None:
        """After a call ran ``kind``, before its state is stored: a signal measured by that call, if any."""
        return None


class ProbeChange(Measure):
    on_device = True

    def reference_writer(self, plan: CachePlan) -> VariantKind:
        return VariantKind.PROBE if plan.signal_rule.reference is Reference.PREVIOUS else VariantKind.FULL

    def before(self, plan, values, state, reduce=None):
        return _change(plan, values, state, reduce)


class FullStepChange(Measure):
    at = VariantKind.FULL
    measures_after = True

    def full_outputs(self, plan):
        return tuple((name, value, base) for name, (value, base) in zip(plan.signal_names, plan.probe.values))

    def after(self, plan, kind, values, state, reduce=None):
        return _change(plan, values, state, reduce) if kind is VariantKind.FULL else None


class Verification(Measure):
    at = VariantKind.VERIFY
    measures_after = True

    def state(self, plan):
        return []

    def after(self, plan, kind, values, state, reduce=None):
        if kind is not VariantKind.VERIFY:
            return None
        total, count = values[VERIFY_ERROR]  # the sum of the elementwise errors and their count
        return _ratio(total, count, reduce)


class TransformationRate(Measure):
    measures_after = True  # the rate, after a full call
    def reference_writer(self, plan):
        return VariantKind.PROBE  # the previous call's input

    def full_outputs(self, plan):
        return ((OUTPUT, plan.measured_output, None),)

    def state(self, plan):
        (shape,), (name,) = plan.probe_shapes, plan.signal_names
        output_shape = next(f.shape for f in plan.features if f.name == plan.measured_output)
        return [*super().state(plan),
                StateTensor(INPUT_AT_FULL, shape, torch.float32, "signal", (VariantKind.FULL,), (), source=name),
                StateTensor(OUTPUT, output_shape, torch.float32, "signal", (VariantKind.FULL,), ())]

    # the latent input and the gathered output are the same on every rank: nothing to reduce
    def before(self, plan, values, state, reduce=None):
        (ref,) = (state.tensors.get(name) for name in plan.reference_names)
        rate, norm = state.scalars.get("rate"), state.scalars.get("output_norm")
        if ref is None or rate is None:
            return None
        (now,) = (values[name] for name in plan.signal_names)
        return rate * float((now - ref).abs().sum()) / max(norm, 1e-30)

    def after(self, plan, kind, values, state, reduce=None):
        if kind is not VariantKind.FULL:
            return None
        (now,) = (values[name] for name in plan.signal_names)
        output, tensors = values[OUTPUT], state.tensors
        if OUTPUT in tensors:  # one read: the output's and the input's change since the last full step, the norm
            moved, changed, norm = torch.stack([(output - tensors[OUTPUT]).abs().sum(),
                                                (now - tensors[INPUT_AT_FULL]).abs().sum(),
                                                output.abs().sum()]).tolist()
            if changed > 0:
                state.scalars["rate"] = moved / changed
        else:
            norm = float(output.abs().sum())
        state.scalars["output_norm"] = norm
        return None


MEASURES: dict[Signal, Measure] = {
    Signal.FIRST_BLOCKS: ProbeChange(),
    Signal.MODULATED_INPUT: ProbeChange(),
    Signal.BLOCK_RESIDUAL: FullStepChange(),
    Signal.MODEL_INPUT: TransformationRate(),
    Signal.VERIFICATION: Verification(),
}
