"""The Runtime on hand-written variants: what it hands each variant, what it stores, when it runs uncached —
independent of any rewrite or lowering. FULL doubles the latent and writes it as the feature; CACHED returns the
weighted history plus 100, so an output says which variant ran and what state it read."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from c4d_compile import get_policy
from c4d_compile.compiler.features import CachedFeature
from c4d_compile.compiler.plan import CachePlan
from c4d_compile.policies.config import Region
from c4d_compile.runtime.executor import CallSignature, LoweredVariant, Runtime
from c4d_compile.runtime.session import Session
from c4d_compile.runtime.step_program import VariantKind

FEATURE = CachedFeature("h", (1, 2), torch.float32, kind="output")


class Variants:
    """FULL and CACHED as plain functions that log the named inputs each call got."""

    def __init__(self):
        self.log: list[tuple[str, tuple]] = []

    def full(self, x, t, *named):
        self.log.append(("full", named))
        return (x * 2, x * 2)  # (the output, the feature "h@0")

    def cached(self, x, t, history, weights):
        self.log.append(("cached", (history, weights)))
        return (history * weights[:, 0:1] + 100,)

    def lowered(self) -> dict:
        flops = SimpleNamespace(value=1)
        return {VariantKind.FULL: LoweredVariant(VariantKind.FULL, self.full, 1, (), ("h@0",), flops),
                VariantKind.CACHED: LoweredVariant(VariantKind.CACHED, self.cached, 1, ("h@0", "weights"), (), flops)}


def _runtime(carried: bool = False):
    variants = Variants()
    plan = CachePlan(Region.OUTPUT, (FEATURE,), 1, {"graph": "stub", "features": []})
    signature = CallSignature(timesteps=() if carried else (1,), carried=carried, parameter=None, sized=(),
                              sizes=(), device=0)
    session = Session(warn=lambda key, message: None)
    session.step_records = []
    policy = get_policy("fora", full_steps=(0, 2), num_steps=4)
    return Runtime(session, policy, plan, variants.lowered(), signature), variants


def _x(value: float) -> torch.Tensor:
    return torch.full((1, 2), value)


def test_a_cached_call_reads_what_the_last_full_call_stored_with_the_host_weights():
    runtime, variants = _runtime()
    outs = [runtime(_x(step + 1.0), torch.tensor([1000.0 - step]))[0] for step in range(4)]
    assert [kind for kind, _ in variants.log] == ["full", "cached", "full", "cached"]
    assert [float(o[0, 0]) for o in outs] == [2.0, 102.0, 6.0, 106.0]  # step 1 forecasts step 0's 2, step 3 step 2's 6
    (history, weights) = variants.log[1][1]
    assert torch.equal(weights, torch.tensor([[1.0]])) and float(history[0, 0]) == 2.0  # a row per batch row
    assert variants.log[3][1][1] is weights  # the host value moved to the device once, then reused
    assert [call.variant for _, call in runtime.session.step_records] == [VariantKind.FULL, VariantKind.CACHED] * 2


def test_a_batch_of_several_timesteps_runs_full_and_leaves_the_clock_and_state_alone():
    runtime, variants = _runtime()
    runtime(_x(1.0), torch.tensor([1000.0]))  # step 0: full
    out = runtime(torch.cat([_x(5.0), _x(6.0)]), torch.tensor([999.0, 500.0]))[0]
    assert torch.equal(out, torch.cat([_x(10.0), _x(12.0)]))  # computed, not forecast
    assert runtime.session.uncached_calls == 1 and variants.log[-1] == ("full", ())
    assert float(runtime(_x(3.0), torch.tensor([999.0]))[0][0, 0]) == 102.0  # step 1 still forecasts step 0


def test_a_disabled_runtime_or_a_stack_graph_without_its_prologue_computes_without_a_cache():
    runtime, variants = _runtime()
    runtime.enabled = False
    assert float(runtime(_x(1.0), torch.tensor([1000.0]))[0][0, 0]) == 2.0
    carried, _ = _runtime(carried=True)  # the timestep comes from a prologue graph, which did not run
    assert float(carried(_x(2.0), torch.tensor([0.0]))[0][0, 0]) == 4.0
    for each in (runtime, carried):
        assert each.session.uncached_calls == 1 and each.session.step_records == []


def test_a_carried_timestep_is_used_once_then_cleared():
    runtime, variants = _runtime(carried=True)
    for step in range(2):
        runtime.session.carrier.set((1000.0 - step,))  # what the prologue graph of the forward lends
        runtime(_x(1.0), torch.tensor([0.0]))  # a stack graph: its inputs hold no timestep
    assert [kind for kind, _ in variants.log] == ["full", "cached"] and runtime.session.carrier.get() is None
