"""The backend end to end on tiny diffusers models (eager lowering)."""

import warnings

import pytest
import torch
from support.cli_factories import PlainMLP
from support.sampling import sample

from c4d_compile import C4DCompileError, C4DWarning, MissingStepCountError, NotCacheableError, c4d_backend
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


@pytest.fixture(scope="module")
def flux():
    spec = get_tiny_model("flux")
    return spec, spec.build()


def compiled(model, backend):
    return torch.compile(model, backend=backend, fullgraph=True)


def test_cached_run_counts_steps_and_skips_work(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer-lite", lowering="eager", schedule="paper")
    sample(compiled(model, backend), spec, num_steps=13)
    stats = backend.stats()
    # W=3, N=5 over 13 steps: full at 0, 1, 2, 7, 12
    assert (stats.steps, stats.full_steps, stats.cached_steps) == (13, 5, 8)
    assert stats.last.contexts["branch0"].computed == [0, 1, 2, 7, 12]
    assert stats.ideal_speedup > 2.0
    assert stats.cache_bytes == backend.plan.state_bytes > 0  # three full steps fill the order-2 history


def test_default_preset_spreads_its_full_steps_when_it_knows_the_step_count(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=20)
    sample(compiled(model, backend), spec, num_steps=20)
    assert backend.stats().last.contexts["branch0"].computed == [0, 6, 13, 19]  # 4 = 20 / 5, first and last
    assert "spread" in backend.stats().schedule


def test_default_preset_without_a_step_count_warns_once_and_says_what_it_runs(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample(compiled(model, backend), spec, num_steps=12)
    messages = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert len(messages) == 1 and "num_steps" in messages[0] and "enable_cache" in messages[0]
    assert backend.stats().last.contexts["branch0"].computed == [0, 5, 10]


def test_budget_without_a_step_count_is_a_typed_error_at_the_first_call(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", budget=4)
    with pytest.raises(MissingStepCountError, match="begin_generation"):
        sample(compiled(model, backend), spec, num_steps=6)
    backend.begin_generation(num_steps=6)
    sample(compiled(model, backend), spec, num_steps=6)
    assert backend.stats().last.contexts["branch0"].computed == [0, 2, 3, 5]


def test_interval_one_is_bit_exact(flux):
    spec, model = flux
    reference, _ = sample(model, spec, num_steps=6)
    for policy in ("taylorseer-lite", "stack-reuse"):
        torch._dynamo.reset()
        backend = c4d_backend(policy, lowering="eager", interval=1)
        got, _ = sample(compiled(model, backend), spec, num_steps=6)
        assert torch.equal(got, reference), policy
        assert backend.stats().cached_steps == 0


def test_cached_steps_change_the_result_but_stay_close(flux):
    spec, model = flux
    reference, _ = sample(model, spec, num_steps=10)
    backend = c4d_backend("stack-reuse", lowering="eager", interval=2, warmup=1)
    got, _ = sample(compiled(model, backend), spec, num_steps=10)
    assert not torch.equal(got, reference)
    assert torch.allclose(got, reference, atol=0.05 * reference.abs().max().item())


def test_separate_cfg_calls_keep_two_caches(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer-lite", lowering="eager", schedule="paper")
    sample(compiled(model, backend), spec, num_steps=8, guidance_calls=2)
    contexts = backend.stats().contexts
    assert set(contexts) == {"branch0", "branch1"}
    assert all(c.steps == 8 and c.full_steps == 4 for c in contexts.values())  # full at 0,1,2,7
    assert len(backend.session.states.states) == 2


def test_explicit_cache_context_names_the_cache(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer-lite", lowering="eager")
    cm = compiled(model, backend)
    with backend.cache_context("cond"):
        sample(cm, spec, num_steps=4)
    assert set(backend.stats().contexts) == {"cond"}


def test_a_new_generation_resets_the_cache(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer-lite", lowering="eager", schedule="paper")
    cm = compiled(model, backend)
    sample(cm, spec, num_steps=6)
    sample(cm, spec, num_steps=6)  # timesteps jump back up: new generation
    ctx = backend.stats().contexts["branch0"]
    assert ctx.steps == 12 and ctx.full_steps == 6  # W=3, N=5: steps 0, 1, 2 of each run
    # the second run equals a fresh backend's run
    torch._dynamo.reset()
    fresh = c4d_backend("taylorseer-lite", lowering="eager", schedule="paper")
    a, _ = sample(compiled(model, fresh), spec, num_steps=6)
    b, _ = sample(cm, spec, num_steps=6)
    assert torch.equal(a, b)


def test_reset_clears_caches_and_stats(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer-lite", lowering="eager")
    cm = compiled(model, backend)
    sample(cm, spec, num_steps=4)
    backend.reset()
    assert not backend.session.states.states
    assert backend.stats().steps == 4  # stats survive a cache reset unless asked
    backend.reset(stats=True)
    assert backend.stats().steps == 0 and backend.stats().cache_bytes == 0


def test_two_backends_never_share_state(flux):
    spec, model = flux
    a = c4d_backend("taylorseer-lite", lowering="eager", schedule="paper")
    b = c4d_backend("taylorseer-lite", lowering="eager", interval=1)
    ca, cb = compiled(model, a), compiled(model, b)
    inputs = spec.make_inputs()
    for t in spec.timesteps(6):
        with torch.no_grad():
            ca(**{**inputs, spec.timestep_key: t})
            cb(**{**inputs, spec.timestep_key: t})
    assert a.stats().cached_steps == 3 and b.stats().cached_steps == 0
    assert a.stats().contexts.keys() == b.stats().contexts.keys() == {"branch0"}


def test_batched_cfg_is_one_context(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer-lite", lowering="eager", interval=1)
    reference, _ = sample(model, spec, num_steps=5, batch=2)
    got, _ = sample(compiled(model, backend), spec, num_steps=5, batch=2)
    assert torch.equal(got, reference)
    assert set(backend.stats().contexts) == {"branch0"}


def test_resolution_and_batch_changes_recompile_and_never_reuse_old_cache():
    spec = get_tiny_model("dit")
    model = spec.build()
    backend = c4d_backend("taylorseer-lite", lowering="eager")
    cm = torch.compile(model, backend=backend)
    small = spec.make_inputs()
    latent = small[spec.latent_key]
    big = {**small, spec.latent_key: torch.randn(*latent.shape[:2], latent.shape[2] * 2, latent.shape[3] * 2)}
    runs = [(small, 1), (big, 1), (small, 1), (spec.make_inputs(batch=3), 3)]
    for inputs, batch in runs:
        reference, _ = sample(model, spec, num_steps=7, inputs=inputs, batch=batch)
        fresh_backend = c4d_backend("taylorseer-lite", lowering="eager")
        fresh, _ = sample(torch.compile(model, backend=fresh_backend), spec, num_steps=7, inputs=inputs, batch=batch)
        got, _ = sample(cm, spec, num_steps=7, inputs=inputs, batch=batch)
        assert got.shape == reference.shape
        assert torch.equal(got, fresh)  # same as a backend that never saw another shape
    assert backend.stats().cached_steps > 0


def test_bf16_inputs_keep_bf16_caches(flux):
    spec, model = flux
    model_bf16 = spec.build().to(torch.bfloat16)
    backend = c4d_backend("taylorseer-lite", lowering="eager")
    out, _ = sample(compiled(model_bf16, backend), spec, num_steps=6, dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16
    tensors = next(iter(backend.session.states.states.values())).tensors
    assert tensors and all(t.dtype == torch.bfloat16 for t in tensors.values())


def test_graph_without_block_stack_runs_uncached_with_one_warning():
    model = PlainMLP()
    backend = c4d_backend("taylorseer-lite", lowering="eager")
    cm = torch.compile(model, backend=backend)
    x, t = torch.randn(2, 8), torch.rand(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            out = cm(x, t)
    messages = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert len(messages) == 1 and "no block stack" in messages[0] and "ModuleList" in messages[0]
    torch.testing.assert_close(out, model(x, t), rtol=0, atol=0)
    assert backend.stats().uncached_calls == 3


def test_a_failing_stage_costs_the_cache_not_the_model(flux, monkeypatch):
    import c4d_compile.compiler.backend as backend_module

    def broken(*args):
        raise RuntimeError("a bug in a rewrite pass")

    spec, model = flux
    monkeypatch.setattr(backend_module, "build_variants", broken)
    reference, _ = sample(model, spec, num_steps=5)
    backend = c4d_backend("taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, _ = sample(compiled(model, backend), spec, num_steps=5)
    assert torch.equal(got, reference) and backend.stats().uncached_calls == 5
    text = " ".join(str(w.message) for w in caught if issubclass(w.category, C4DWarning))
    assert "rewrite failed" in text and "a bug in a rewrite pass" in text
    torch._dynamo.reset()
    with pytest.raises(Exception) as err:
        sample(compiled(model, c4d_backend("taylorseer", lowering="eager", strict=True)), spec, num_steps=2)
    inner = getattr(err.value, "inner_exception", err.value)
    assert isinstance(inner, C4DCompileError) and "rewrite" in str(inner)


def test_strict_raises_when_nothing_can_be_cached():
    backend = c4d_backend("taylorseer-lite", lowering="eager", strict=True)
    with pytest.raises(Exception) as err:
        torch.compile(PlainMLP(), backend=backend)(torch.randn(2, 8), torch.rand(2))
    # Dynamo wraps what a backend raises in BackendCompilerFailed and keeps it as inner_exception
    inner = getattr(err.value, "inner_exception", err.value)
    assert isinstance(inner, NotCacheableError) and "no block stack" in str(inner)


def test_graph_break_inside_the_stack_is_correct_uncached_and_warned(flux, monkeypatch):
    spec, model = flux
    block = model.transformer_blocks[1]
    original_forward = block.forward

    def breaking_forward(*args, **kwargs):
        torch._dynamo.graph_break()
        return original_forward(*args, **kwargs)

    monkeypatch.setattr(block, "forward", breaking_forward)
    reference, _ = sample(model, spec, num_steps=8)
    backend = c4d_backend("taylorseer-lite", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got, _ = sample(torch.compile(model, backend=backend), spec, num_steps=8)
    assert torch.equal(got, reference)
    assert backend.stats().cached_steps == 0
    text = " ".join(str(w.message) for w in caught if issubclass(w.category, C4DWarning))
    assert "split" in text and "fullgraph=True" in text


def test_the_registered_backend_is_c4d_backend_under_its_name(flux):
    from c4d_compile import backend_of

    spec, model = flux
    options = {"lowering": "eager", "interval": 2}
    outs, stats = [], []
    for by_name in (True, False):
        torch._dynamo.reset()
        if by_name:
            cm = torch.compile(model, backend="c4d", options={"policy": "taylorseer-lite", **options})
        else:
            cm = torch.compile(model, backend=c4d_backend("taylorseer-lite", **options))
        outs.append(sample(cm, spec, num_steps=6)[0])
        stats.append(backend_of(cm).stats().last.contexts["branch0"].computed)
    assert torch.equal(*outs)
    assert stats[0] == stats[1] and len(stats[0]) < 6  # the same steps cached through either name


def test_backend_of_names_what_it_takes(flux):
    from c4d_compile import InvalidValueError, backend_of

    spec, model = flux
    with pytest.raises(InvalidValueError, match="backend='c4d'"):
        backend_of(torch.compile(model, backend="eager"))
    with pytest.raises(InvalidValueError):
        backend_of(model)
    backend = c4d_backend("taylorseer-lite", lowering="eager")
    in_place = spec.build()
    in_place.compile(backend=backend)
    assert backend_of(in_place) is backend


def test_retarget_serves_another_schedule_and_forecaster_from_the_graphs_compiled(flux):
    spec, model = flux
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer-lite", lowering="eager", num_steps=8)  # order 2: three history slots
    call = compiled(model, backend)
    sample(call, spec, num_steps=8)
    graphs = len(backend.runtimes)
    policy = backend.retarget(order=1, full_steps=(0, 3, 7))
    assert policy.forecaster.order == 1 and backend.policy is policy
    retargeted, _ = sample(call, spec, num_steps=8)
    assert len(backend.runtimes) == graphs  # nothing recompiled
    assert backend.stats().last.contexts["branch0"].computed == [0, 3, 7]
    torch._dynamo.reset()
    fresh, _ = sample(compiled(model, c4d_backend("taylorseer-lite", lowering="eager", num_steps=8, order=1,
                                                  full_steps=(0, 3, 7))), spec, num_steps=8)
    assert torch.equal(retargeted, fresh)  # the extra compiled slot weighs zero


def test_retarget_refuses_what_would_change_the_graphs(flux):
    from c4d_compile import ConfigError, InvalidValueError

    spec, model = flux
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=8)  # order 1: two history slots
    sample(compiled(model, backend), spec, num_steps=8)
    with pytest.raises(ConfigError, match="region"):
        backend.retarget(region="output")
    with pytest.raises(ConfigError, match="signal"):
        backend.retarget(threshold=0.1)
    with pytest.raises(InvalidValueError, match="2 history slot"):
        backend.retarget(order=2)
    assert backend.policy.forecaster.order == 1  # a refused retarget changes nothing
