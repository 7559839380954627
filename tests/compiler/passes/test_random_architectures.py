"""Model-agnostic means: the passes work on generated DiT-like architectures they have never seen
(single/dual stream, cat-and-slice joint blocks, gated or not, either add order, casts, odd names,
pruned last block, refiner lists, interleaved lists, long skips).

Each architecture is traced by Dynamo once; every preset's backend is then applied to that graph
directly, and its Runtime is stepped like a sampler would, against the traced graph itself."""

import pytest
import torch
from support.presets import interval_one_presets
from support.random_dit import random_dit
from support.variants import ROUNDING, capture_graph, random_rows, run_full, run_with_full_history

from c4d_compile import c4d_backend
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.runtime.step_program import VariantKind

SEEDS = range(24)
STEPS = 4


@pytest.fixture(scope="module", params=SEEDS)
def traced(request):
    model, make_inputs, spec = random_dit(request.param)
    inputs = make_inputs()
    gm, example_inputs = capture_graph(model, **inputs)
    with torch.no_grad():
        (traced_out,) = gm.forward(*example_inputs)
        assert torch.equal(traced_out, model(**inputs))
    return gm, example_inputs, spec


def drive(fn, gm, example_inputs, runtime_like):
    """Step ``fn`` through a small denoising loop; returns the outputs of every step."""
    t_pos = runtime_like.signature.timesteps[0]
    x_pos = runtime_like.signature.device
    args = list(example_inputs)
    outs = []
    with torch.no_grad():
        for t in torch.linspace(0.9, 0.1, STEPS):
            args[t_pos] = t.repeat(args[t_pos].shape[0])
            out = fn(*args)[0]
            outs.append(out)
            args[x_pos] = args[x_pos] - 0.1 * out
    return outs


@pytest.mark.parametrize("policy", sorted(interval_one_presets()))  # one preset per graph (support/presets.py)
def test_every_preset_is_bit_exact_with_interval_one(traced, policy):
    gm, example_inputs, spec = traced
    backend = c4d_backend(policy, lowering="eager", interval=1)
    runtime = backend(gm, example_inputs)
    got = drive(runtime, gm, example_inputs, runtime)
    expected = drive(gm.forward, gm, example_inputs, runtime)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert backend.stats().full_steps == STEPS


def test_analysis_matches_the_generated_architecture(traced):
    gm, _, spec = traced
    analysis = analyze(gm)
    assert analysis.cacheable, analysis.problems
    assert len(analysis.stack.blocks) == spec.num_blocks
    assert {name.split(".")[-1] for name in analysis.stack.lists} == set(spec.list_names)
    per_list = sorted(sum(b.list_name == name for b in analysis.stack.blocks) for name in analysis.stack.lists)
    assert per_list == sorted(spec.blocks_per_list)
    assert [t.name for t in analysis.timesteps] == ["l_timestep_"]
    assert analysis.stream.outputs and all(partner for _, partner in analysis.stream.pairs)
    assert [len(bb.branches) for bb in analysis.branches] == list(spec.branches_per_block)
    assert all(bb.proven for bb in analysis.branches), [bb.reason for bb in analysis.branches]


def test_branch_caching_skips_every_branch(traced):
    gm, example_inputs, spec = traced
    backend = c4d_backend("taylorseer", lowering="eager", interval=2, warmup=1)
    runtime = backend(gm, example_inputs)
    drive(runtime, gm, example_inputs, runtime)
    stats = backend.stats()
    assert stats.cached_steps == 2  # 4 steps, W=1, N=2: full at 0 and 2
    assert runtime.variants["cached"].flops.value < 0.5 * runtime.variants["full"].flops.value
    assert len(backend.plan.features) == sum(spec.branches_per_block)


@pytest.mark.parametrize("preset,cached", [("fbcache", STEPS - 1), ("teacache", STEPS - 2)])
def test_a_probed_plan_is_exact_at_threshold_zero_and_the_device_skips_the_rest(traced, preset, cached):
    """The probe's cut on every generated architecture: at threshold 0 (probe, then FULL from its values) the
    traced graph's outputs bit-exactly; with an unreachable threshold, one graph deciding on the device caches
    every call after the first (teacache also computes the last step)."""
    gm, example_inputs, spec = traced
    backend = c4d_backend(preset, lowering="eager", threshold=0.0, num_steps=STEPS)
    runtime = backend(gm, example_inputs)
    got = drive(runtime, gm, example_inputs, runtime)
    expected = drive(gm.forward, gm, example_inputs, runtime)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert backend.stats().full_steps == STEPS
    device = c4d_backend(preset, lowering="eager", threshold=1e9, num_steps=STEPS, decision="device")
    runtime = device(gm, example_inputs)
    drive(runtime, gm, example_inputs, runtime)
    assert device.stats().cached_steps == cached


def test_partial_calls_recompute_the_full_rows_of_every_token_local_branch(traced):
    gm, example_inputs, spec = traced
    backend = c4d_backend("taylorseer", lowering="eager", token_ratio=0.5)
    backend(gm, example_inputs)
    plan = backend.plan
    if not plan.partial:  # attention and MLP in parallel, one branch: nothing is token-local
        assert set(spec.block_kinds) <= {"parallel", "joint"} and plan.notes
        assert VariantKind.PARTIAL not in backend.rewrite.variants
        return
    model_out, full_values = run_full(backend, example_inputs)
    outs, written = run_with_full_history(backend, VariantKind.PARTIAL, example_inputs, full_values,
                                          random_rows(plan.token_rows))
    torch.testing.assert_close(outs[0], model_out[0], **ROUNDING)
    for t in plan.partial:
        torch.testing.assert_close(written[f"{t.feature}.refreshed"], full_values[f"{t.feature}@0"], **ROUNDING)
