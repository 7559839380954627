"""The FULL and CACHED rewrites on a three-block graph, against the model written out by hand: FULL is the model
plus the newest cached values; CACHED replaces each cached value by its weighted history and drops the work only it
needed; a plan with nothing more to cache leaves the graph's computation as it was."""

from __future__ import annotations

import torch
from support.three_blocks import Model, example_inputs
from support.variants import capture_graph

from c4d_compile import get_policy
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.passes.rewrite import build_variants
from c4d_compile.compiler.plan import make_plan
from c4d_compile.runtime.step_program import VariantKind


def _variants(policy, **overrides):
    torch.manual_seed(0)
    model, inputs = Model(), example_inputs()
    gm, examples = capture_graph(model, **inputs)
    plan = make_plan(gm, analyze(gm), get_policy(policy, num_steps=8, **overrides))
    return model, inputs, examples, plan, build_variants(gm, plan).variants


def _by_hand(model, inputs, branches=None):
    """The model's forward, each block's branch ``f2(relu(f1(s)))`` replaced by ``branches[i]`` when given."""
    temb = model.t(torch.sin(inputs["timestep"][:, None] * torch.arange(8.0)))
    s, computed = model.embed(inputs["x"]), []
    for i, block in enumerate(model.blocks):
        branch = block.f2(torch.relu(block.f1(s))) if branches is None else branches[i]
        computed.append(branch)
        s = s + temb[:, None] * branch
    return model.out(s), computed


def _linears(variant) -> int:
    return sum(n.op == "call_function" and "linear" in str(n.target) for n in variant.gm.graph.nodes)


@torch.no_grad()
def test_full_is_the_model_plus_the_newest_value_of_each_branch():
    model, inputs, examples, plan, variants = _variants("foca")
    full = variants[VariantKind.FULL]
    outs = full.gm(*examples)
    expected, branches = _by_hand(model, inputs)
    assert full.outputs == tuple(f"{f.name}@0" for f in plan.features) and full.num_outputs == 1
    torch.testing.assert_close(outs[0], expected, rtol=0, atol=1e-6)
    for value, branch in zip(outs[1:], branches, strict=True):
        torch.testing.assert_close(value, branch, rtol=0, atol=1e-6)
    assert _linears(full) == 3 + 2 * 3  # embed, t, out and every block's two


@torch.no_grad()
def test_cached_reads_each_branch_as_its_weighted_history_and_drops_the_blocks_work():
    model, inputs, examples, plan, variants = _variants("foca")
    cached = variants[VariantKind.CACHED]
    gen = torch.Generator().manual_seed(1)
    history = {f.name: [torch.randn(f.shape, generator=gen) for _ in range(plan.num_slots)] for f in plan.features}
    weights = torch.tensor([0.25, 0.75, -0.5])
    named = {f"{name}@{j}": value for name, values in history.items() for j, value in enumerate(values)}
    named["weights"] = weights
    (out,) = cached.gm(*examples, *(named[name] for name in cached.inputs))[:1]
    forecast = [sum(w * h for w, h in zip(weights, history[f.name])) for f in plan.features]
    expected, _ = _by_hand(model, inputs, forecast)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert _linears(cached) == 3  # the blocks' f1 and f2 fed only their branch: gone


@torch.no_grad()
def test_the_output_region_forecasts_the_output_and_computes_nothing_else():
    _, _, examples, plan, variants = _variants("taylorseer-lite")
    cached = variants[VariantKind.CACHED]
    (feature,) = plan.features
    history = [torch.full(feature.shape, float(j + 1)) for j in range(plan.num_slots)]
    weights = torch.tensor([3.0, -3.0, 1.0])
    named = {**{f"{feature.name}@{j}": h for j, h in enumerate(history)}, "weights": weights}
    (out,) = cached.gm(*examples, *(named[name] for name in cached.inputs))[:1]
    torch.testing.assert_close(out, torch.full(feature.shape, 3.0 - 6.0 + 3.0))
    assert _linears(cached) == 0


@torch.no_grad()
def test_the_weights_are_a_row_per_batch_row_and_one_row_serves_every_row():
    """A batch of requests forecasts each row at its own distance from its full steps: weights ``[batch, slots]``
    weigh each row's history with its own row; ``[1, slots]`` and ``[slots]`` weigh every row the same."""
    _, _, examples, plan, variants = _variants("taylorseer-lite")
    cached = variants[VariantKind.CACHED]
    (feature,) = plan.features
    assert feature.shape[0] == 2  # the batch
    history = [torch.full(feature.shape, float(j + 1)) for j in range(plan.num_slots)]

    def run(weights):
        named = {**{f"{feature.name}@{j}": h for j, h in enumerate(history)}, "weights": weights}
        return cached.gm(*examples, *(named[name] for name in cached.inputs))[0]

    out = run(torch.tensor([[3.0, -3.0, 1.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(out[0], torch.full(feature.shape[1:], 3.0 - 6.0 + 3.0))
    torch.testing.assert_close(out[1], torch.full(feature.shape[1:], 1.0))
    torch.testing.assert_close(run(torch.tensor([[1.0, 0.5, 0.0]])), torch.full(feature.shape, 2.0))
    torch.testing.assert_close(run(torch.tensor([1.0, 0.5, 0.0])), torch.full(feature.shape, 2.0))


@torch.no_grad()
def test_full_computes_what_the_original_graph_computes():
    """The case where a rewrite must change nothing: FULL keeps every node of the graph in order and adds only
    what feeds the new state outputs (a contiguous copy of each), so an always-full schedule is the uncached
    model, bit for bit."""
    model, inputs, examples, _, variants = _variants("taylorseer-lite")
    gm, _ = capture_graph(model, **inputs)
    full = variants[VariantKind.FULL]
    original = [(n.op, n.target) for n in gm.graph.nodes if n.op != "output"]
    kept = [n for n in full.gm.graph.nodes if n.op != "output"]
    added = [n for n in kept if n.name not in {m.name for m in gm.graph.nodes}]
    assert [(n.op, n.target) for n in kept if n not in added] == original
    assert all(user.op == "output" for n in added for user in n.users) and len(added) <= len(full.outputs)
    assert torch.equal(full.gm(*examples)[0], gm(*examples)[0])
