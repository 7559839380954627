"""split_at_probe on the three-block graph: the PROBE runs the prefix only, the continuations never recompute it,
and a probed call (PROBE, then FULL) computes what the original graph computes — and what a plan without a probe
gets: no split at all."""

from __future__ import annotations

import torch
from support.three_blocks import Model, example_inputs

from c4d_compile import get_policy
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.passes.rewrite import build_variants
from c4d_compile.compiler.plan import make_plan
from c4d_compile.inspect_model import trace
from c4d_compile.runtime.step_program import VariantKind


def _split(policy: str):
    torch.manual_seed(0)
    ((gm, args),) = trace(Model().eval(), example_inputs())
    plan = make_plan(gm, analyze(gm), get_policy(policy, num_steps=8))
    return gm, args, plan, build_variants(gm, plan).variants


def _ops(gm) -> set[str]:
    return {n.name for n in gm.graph.nodes if n.op not in ("placeholder", "output", "get_attr")}


def test_the_probe_runs_the_prefix_and_the_continuations_start_after_it():
    gm, _, plan, variants = _split("fbcache")
    probe, full, cached = (variants[k] for k in (VariantKind.PROBE, VariantKind.FULL, VariantKind.CACHED))
    nodes = list(gm.graph.nodes)
    later = {n.name for b in analyze(gm).stack.blocks[1:] for n in nodes[b.start: b.end + 1]}
    assert not _ops(probe.gm) & later  # blocks 1 and 2 do not run in the probe
    # beyond the prefix, only the signal: (value.float() - base.float()).contiguous() per probed value
    assert len(_ops(probe.gm) - plan.probe.prefix) == 4 * len(plan.probe.values)
    for continuation in (full, cached):
        handed = set(continuation.inputs) & plan.probe.prefix
        assert handed and handed <= set(probe.outputs)  # what it reads of the prefix, the probe hands it
        computed = _ops(continuation.gm) & plan.probe.prefix
        assert all("getitem" in n or "size" in n for n in computed)  # only scalar glue is recomputed
    assert "signal.0" in probe.outputs


def test_a_probed_full_call_computes_what_the_original_graph_computes():
    gm, args, _, variants = _split("fbcache")
    probe, full = variants[VariantKind.PROBE], variants[VariantKind.FULL]
    with torch.no_grad():
        want = gm(*args)
        values = dict(zip(probe.outputs, probe.gm(*args)))
        got = full.gm(*args, *(values.get(name) for name in full.inputs))
    assert torch.equal(got[0], want[0])


def test_a_plan_without_a_probe_is_not_split():
    _, _, plan, variants = _split("taylorseer")
    assert plan.probe is None and set(variants) == {VariantKind.FULL, VariantKind.CACHED}
