"""FBCache, DBCache, TeaCache: the PROBE's values against a reference, before the decision, as a relative L1.

The reference is the last full step's values, or the previous call's (``reference="previous"``). The only
signal the device path compiles (``compiler/passes/rewrite_decide.py``): one formula, ``relative_l1``, for both.
"""

from __future__ import annotations

from ...policies.schedules.signal import Reference, Signal
from ...runtime.step_program import VariantKind
from .base import SignalHandler, change
from .registry import register_signal


@register_signal(Signal.FIRST_BLOCKS, Signal.MODULATED_INPUT)
class ProbeChange(SignalHandler):
    on_device = True

    def reference_writer(self, plan):
        return VariantKind.PROBE if self.rule.reference is Reference.PREVIOUS else VariantKind.FULL

    def before(self, plan, values, state, reduce=None):
        return change(plan, values, state, reduce)
