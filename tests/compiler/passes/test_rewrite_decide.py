"""build_decide on the three-block graph: one DECIDE call against the host path written out — the PROBE, the
relative L1 against the reference, the schedule's own ``decide`` on the signals since the last full step, then
FULL or CACHED — for a plain threshold (FBCache) and an accumulated, rescaled one with a cap on cached calls in a
row and a forced last step (TeaCache); the continuations run only inside the cond; and a plan decided on the host
gets no DECIDE at all."""

from __future__ import annotations

import pytest
import torch
from support.three_blocks import Model, example_inputs

from c4d_compile import get_policy
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.passes.graph_utils import is_matmul
from c4d_compile.compiler.passes.rewrite import build_variants
from c4d_compile.compiler.passes.rewrite_decide import build_decide
from c4d_compile.compiler.plan import make_plan
from c4d_compile.inspect_model import trace
from c4d_compile.runtime.state_names import FORCE, SIGNAL_FULL, SIGNAL_VALUE, WEIGHTS
from c4d_compile.runtime.step_program import StepInfo, VariantKind

STEPS = 8
POLICIES = {
    "fbcache": ("fbcache", {}),  # threshold 0.08 on the last signal, reference: the last full step
    # threshold 0.1 on the sum of (signal - 0.05) since the last full step, at most 2 cached in a row, last step full
    "teacache": ("teacache", {"rescale": (1.0, -0.05), "max_cached_in_row": 2}),
}


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    ((gm, args),) = trace(Model().eval(), example_inputs())
    return gm, args, analyze(gm)


@pytest.fixture(scope="module")
def built(graph):
    """Per policy, built once: the plan, its PROBE / FULL / CACHED, and build_decide's variant over them."""
    gm, args, analysis = graph
    cache = {}

    def get(policy: str):
        if policy not in cache:
            name, options = POLICIES[policy]
            plan = make_plan(gm, analysis, get_policy(name, num_steps=STEPS, decision="device", **options))
            split = {k: v for k, v in build_variants(gm, plan).variants.items() if k is not VariantKind.DECIDE}
            cache[policy] = gm, args, plan, split, build_decide(gm, plan, split)
        return cache[policy]

    return get


def _host(plan, split, args, history, ref, previous: list[float], step: int):
    """The host path of one call: PROBE, the signal read as a float, the schedule's decision, the continuation."""
    probe, rule = split[VariantKind.PROBE], plan.signal.rule
    values = dict(zip(probe.outputs, probe.gm(*args)))
    now = values["signal.0"]
    signal = float((now - ref).abs().sum() / ref.abs().sum())
    kind = rule.decide(StepInfo(step, STEPS, (0,), [*previous, signal]))
    named = {**values, plan.features[0].name + "@0": history, WEIGHTS: torch.tensor([1.0])}
    variant = split[kind]
    return kind, signal, now, variant.gm(*args, *(named[name] for name in variant.inputs))


# (policy, the reference against this call's probed value, signals since the last full step, step, what runs)
CALLS = [
    ("fbcache", 1.001, [0.01], 3, VariantKind.CACHED),  # relative L1 0.001
    ("fbcache", 1.5, [0.01], 3, VariantKind.FULL),  # relative L1 0.33
    ("teacache", 1.001, [0.1], 3, VariantKind.CACHED),  # 0.05 + (0.001 - 0.05) = 0.001
    ("teacache", 1.001, [0.2], 3, VariantKind.FULL),  # 0.15 + (0.001 - 0.05) = 0.101: the accumulator decides
    ("teacache", 1.001, [0.0, 0.0], 3, VariantKind.FULL),  # two cached calls in a row already
    ("teacache", 1.001, [0.1], STEPS - 1, VariantKind.FULL),  # the last step is forced
]


@pytest.mark.parametrize("policy,scale,previous,step,want", CALLS)
def test_a_decide_call_does_what_the_host_path_does(built, policy, scale, previous, step, want):
    gm, args, plan, split, decide = built(policy)
    rule = plan.signal.rule
    with torch.no_grad():
        now = dict(zip(split[VariantKind.PROBE].outputs, split[VariantKind.PROBE].gm(*args)))["signal.0"]
        history, ref = torch.randn(now.shape, generator=torch.Generator().manual_seed(1)), now * scale
        kind, signal, now, host = _host(plan, split, args, history, ref, previous, step)
        acc = sum(rule.rescaled(s) for s in previous) if rule.accumulate else 0.0
        info = StepInfo(step, STEPS, (0,), previous)
        state = {plan.features[0].name + "@0": history, "signal.ref.0": ref, "signal.acc": torch.tensor(acc).double(),
                 "signal.in_row": torch.tensor(float(len(previous))), FORCE: torch.tensor(rule.forced(info))}
        outs = decide.gm(*args, *(state[name] for name in decide.inputs))
    assert kind is want
    got = dict(zip(decide.outputs, outs[decide.num_outputs:]))
    assert torch.equal(outs[0], host[0])  # the model's output: the continuation the host would have run
    full = kind is VariantKind.FULL
    assert torch.equal(got[plan.features[0].name + "@0"], host[1] if full else history)
    reference_moves = full or plan.probe_written_by is VariantKind.PROBE  # TeaCache compares with the previous call
    assert torch.equal(got["signal.ref.0"], now if reference_moves else ref)
    score = acc + rule.rescaled(signal) if rule.accumulate and not full else 0.0
    assert got["signal.acc"].dtype == torch.float64 and got["signal.acc"].item() == pytest.approx(score, abs=1e-6)
    assert got["signal.in_row"].item() == (0.0 if full else len(previous) + 1.0)
    assert got[SIGNAL_VALUE].item() == pytest.approx(signal, rel=1e-6) and got[SIGNAL_FULL].item() is full


def _matmuls(gm) -> int:
    return sum(map(is_matmul, gm.graph.nodes))


@pytest.mark.parametrize("policy", list(POLICIES))
def test_the_continuations_run_only_inside_the_cond_and_the_probe_only_outside(built, policy):
    gm, _, plan, split, decide = built(policy)
    (cond,) = [n for n in decide.gm.graph.nodes if n.target is torch.ops.higher_order.cond]
    full_branch, cached_branch = (getattr(decide.gm, n.target) for n in cond.args[1:3])
    probe, full, cached = (split[k] for k in (VariantKind.PROBE, VariantKind.FULL, VariantKind.CACHED))
    assert _matmuls(decide.gm) == _matmuls(probe.gm) >= 1  # outside the cond: the prefix, once
    assert _matmuls(full_branch) == _matmuls(full.gm) and _matmuls(cached_branch) == _matmuls(cached.gm)
    assert _matmuls(probe.gm) + _matmuls(full.gm) == _matmuls(gm) > _matmuls(probe.gm) + _matmuls(cached.gm)
    assert decide.inputs == (plan.features[0].name + "@0", "signal.ref.0", "signal.acc", "signal.in_row", FORCE)


def test_a_plan_decided_on_the_host_gets_no_decide_variant(graph):
    gm, _, analysis = graph
    plan = make_plan(gm, analysis, get_policy("fbcache", num_steps=STEPS))
    assert not plan.decided_on_device and set(build_variants(gm, plan).variants) == {
        VariantKind.PROBE, VariantKind.FULL, VariantKind.CACHED}
