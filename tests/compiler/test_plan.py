"""make_plan on a three-block model whose graph can be read: what each region caches, the state that holds its
history, what a probe and token subsets add — and what the plan refuses or leaves alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from support.three_blocks import Model, example_inputs

from c4d_compile import ConfigError, Policy, get_policy
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.plan import make_plan
from c4d_compile.inspect_model import trace_graphs
from c4d_compile.policies.forecasters import Taylor
from c4d_compile.runtime.step_program import VariantKind


def _plan(policy, model=None, **overrides):
    torch.manual_seed(0)
    (gm,) = trace_graphs(model or Model(), example_inputs())
    resolved = policy if isinstance(policy, Policy) else get_policy(policy, num_steps=8, **overrides)
    return make_plan(gm, analyze(gm), resolved)


def test_the_output_region_caches_the_models_output_with_the_forecasters_history():
    plan = _plan("taylorseer-lite")  # order 2: three history slots
    (feature,) = plan.features
    assert (feature.kind, feature.shape, feature.residual_of) == ("output", (2, 5, 4), None)
    assert plan.num_slots == 3 and plan.variant_kinds == (VariantKind.FULL, VariantKind.CACHED)
    assert [e.name for e in plan.state] == [f"{feature.name}@{i}" for i in range(3)]
    newest, *older = plan.state
    assert newest.written_by == (VariantKind.FULL,) and all(e.shifts_from for e in older)
    assert sum(e.nbytes for e in plan.state) == 3 * 2 * 5 * 4 * 4  # float32
    assert plan.prelude == () and plan.probe is None and plan.notes == ()


def test_the_branch_region_caches_one_residual_branch_per_block():
    plan = _plan("foca")
    assert [f.kind for f in plan.features] == ["branch"] * 3
    assert all(f.shape == (2, 5, 8) for f in plan.features)


def test_a_first_block_probe_runs_before_the_decision_and_the_stack_residual_starts_after_it():
    plan = _plan("fbcache")
    assert plan.prelude == (VariantKind.PROBE,) and plan.probe.after_block == 0
    (feature,) = plan.features
    assert feature.kind == "stack" and feature.residual_of is not None  # the stream after block 0, not the input
    assert feature.residual_of in plan.probe.prefix
    assert "signal.ref.0" in {e.name for e in plan.state}


def test_a_device_decision_with_a_forecast_that_depends_on_the_full_steps_is_refused():
    with pytest.raises(ConfigError, match="decision='device'"):
        _plan(dataclasses.replace(get_policy("fbcache", decision="device"), forecaster=Taylor(order=1)))
    assert _plan("fbcache", decision="device").variant_kinds[-1] is VariantKind.DECIDE  # reuse: allowed


def test_token_subsets_add_a_partial_step_only_where_branches_are_token_local():
    local = _plan("duca")
    assert VariantKind.PARTIAL in local.variant_kinds and local.token_rows == ((5, 1),) and not local.notes
    mixed = _plan("duca", Model(mix_tokens=True))  # each branch reads the mean over the tokens
    assert VariantKind.PARTIAL not in mixed.variant_kinds and mixed.token_rows == ()
    assert "contracts it" in mixed.notes[0]
    assert [f.name for f in mixed.features] == [f.name for f in local.features]  # cached as without subsets
