"""AdaCache (arXiv 2411.02397): a block's residual measured by FULL itself against the previous full step's, after
it ran: the distance that sets the next cached span. No PROBE, no extra work."""

from __future__ import annotations

from ...policies.schedules.signal import Signal
from ...runtime.step_program import VariantKind
from .base import SignalHandler, change
from .registry import register_signal


@register_signal(Signal.BLOCK_RESIDUAL)
class FullStepChange(SignalHandler):
    at = VariantKind.FULL
    measures_after = True

    def full_outputs(self, plan):
        return tuple((name, value, base) for name, (value, base) in zip(plan.signal_names, plan.probe.values))

    def after(self, plan, kind, values, state, reduce=None):
        return change(plan, values, state, reduce) if kind is VariantKind.FULL else None
