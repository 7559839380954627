"""SpeCa (arXiv 2509.11628): the VERIFY variant's error of the draft on the last block, one host read per
verified call. Its "probe" is the forecast of the last block's cached branches, checked by verified drafts."""

from __future__ import annotations

from ...errors import ConfigError, NotCacheableError
from ...policies.config import Region
from ...policies.schedules.signal import Signal
from ...runtime.step_program import VariantKind
from ..passes.find_probe import ProbeSite
from .base import SignalHandler, ratio
from .registry import register_signal

VERIFY_ERROR = "signal.verify"  # the VERIFY variant's output: the error of the forecast on the last block


@register_signal(Signal.VERIFICATION)
class Verification(SignalHandler):
    at = VariantKind.VERIFY
    measures_after = True
    per_row = False  # the draft's error is summed over the whole batch in the graph

    def find(self, gm, analysis, policy, features):
        if policy.region is not Region.BRANCH:
            raise ConfigError(f"a speculative schedule verifies the forecast of the last block's branches: use it "
                              f"with region='branch' (speca), not {policy.region.value!r}")
        last = analysis.stack.blocks[-1]
        inside = {n.name for n in list(gm.graph.nodes)[last.start : last.end + 1]}
        values = tuple((f.name, None) for f in features if f.name in inside)
        if not values:
            raise NotCacheableError(f"nothing cached in the last block {last.name}: no forecast to verify")
        description = (f"the forecast of {last.name}'s cached branches, checked by verified drafts: "
                       f"{[v for v, _ in values]}")
        return ProbeSite(values, frozenset(), None, description), features

    def state(self, plan):
        return []

    def after(self, plan, kind, values, state, reduce=None):
        if kind is not VariantKind.VERIFY:
            return None
        total, count = values[VERIFY_ERROR]  # the sum of the elementwise errors and their count
        return ratio(total, count, reduce)
