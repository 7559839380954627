"""Real diffusers pipelines, cached through ``enable_cache``: their own ``__call__``, schedulers, guidance
code and ``cache_context`` calls (tiny random-weight components, prompt embeddings passed in).

Per pipeline: ``interval=1`` equals the uncompiled pipeline bit-exactly (eager lowering); the default
preset caches at least one step per guidance context; a second call with another seed and step count
equals the same call after ``backend.reset()``.
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"), pytest.mark.usefixtures("one_thread")]

from support.pipelines import PIPELINES, run  # noqa: E402

from c4d_compile import C4DWarning, enable_cache  # noqa: E402

# Cache contexts each guidance kind needs with guidance on: named by the pipeline ("cond" / "uncond",
# "cond_uncond") or, for a pipeline that does not name them, told apart by the timestep ("branch0" / ...).
CONTEXTS = {"none": 1, "batched": 1, "separate": 2}
# Graph breaks inside every block: Mochi's attention takes torch.nonzero of its mask, HiDream's
# mixture-of-experts loops in Python over per-expert token counts. The backend calls the breaking module
# opaquely and retraces, so the first generation's first two steps run split, uncached.
SPLIT = {"mochi": "MochiAttention", "hidream": "MOEFeedForwardSwiGLU"}


@pytest.fixture(params=sorted(PIPELINES))
def case(request):
    torch._dynamo.reset()
    return PIPELINES[request.param]


def test_interval_one_is_the_uncompiled_pipeline(case):
    reference = run(case.build(), case, steps=3, seed=0)
    pipe = case.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C4DWarning)
        backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
        got = run(pipe, case, steps=3, seed=0)
    assert torch.equal(got, reference)
    stats = backend.stats()  # bit-exact because the compiled FULL variant served, not an uncached fallback
    assert stats.cached_steps == 0 and stats.full_steps >= 1


def test_default_preset_caches_every_context_and_a_second_call_is_independent(case):
    pipe = case.build()
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, case, steps=8, seed=0)
    warned = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert not warned, warned
    if case.name in SPLIT:
        assert list(backend.splits.opaque) == [SPLIT[case.name]] and backend.stats().uncached_calls > 0
    contexts = backend.stats().last.contexts
    assert len({name.split("[")[0] for name in contexts}) == CONTEXTS[case.guidance], contexts
    for name, ctx in contexts.items():
        assert ctx.cached_steps >= 1, (name, ctx)
    if len(case.transformers) == 1:
        for ctx in contexts.values():
            assert ctx.computed[-1] == 7  # the pipeline told the step count: the last step is full
    second = run(pipe, case, steps=6, seed=1)
    backend.reset()
    assert torch.equal(second, run(pipe, case, steps=6, seed=1))


def test_two_experts_on_one_backend_keep_their_own_caches():
    """Wan 2.2's experts share one compiled graph (weights are graph inputs); one backend must still give
    the result of one backend per expert: each expert forecasts only from its own full steps."""
    case = PIPELINES["wan2.2"]
    torch._dynamo.reset()
    shared = case.build()
    enable_cache(shared, "taylorseer", lowering="eager", interval=2)
    got = run(shared, case, steps=8, seed=0)
    torch._dynamo.reset()
    apart = case.build()
    for name in case.transformers:
        enable_cache(apart, "taylorseer", lowering="eager", interval=2, denoisers=(name,))
    expected = run(apart, case, steps=8, seed=0)
    assert torch.equal(got, expected)


def test_a_sampler_that_calls_the_model_twice_per_step_gets_a_schedule_over_its_calls():
    from diffusers import FlowMatchHeunDiscreteScheduler

    case = PIPELINES["sd3"]

    def heun_pipe():
        pipe = case.build()
        pipe.scheduler = FlowMatchHeunDiscreteScheduler.from_config(pipe.scheduler.config)
        return pipe

    torch._dynamo.reset()
    reference = run(heun_pipe(), case, steps=4, seed=0)
    pipe = heun_pipe()
    exact = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    assert torch.equal(run(pipe, case, steps=4, seed=0), reference)
    assert exact.stats().steps == 7  # t0, t1, t1, t2, t2, t3, t3: one context, a clock tick per call
    torch._dynamo.reset()
    pipe = heun_pipe()
    backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=3)
    run(pipe, case, steps=4, seed=0)
    (ctx,) = backend.stats().last.contexts.values()
    assert ctx.computed == [0, 3, 6] and ctx.cached_steps == 4  # the budget over 7 calls, last call full


def test_the_pipeline_tells_the_step_count_for_every_call():
    case = PIPELINES["flux"]
    torch._dynamo.reset()
    pipe = case.build()
    backend = enable_cache(pipe, "taylorseer", lowering="eager", budget=3)
    for steps, planned in ((8, [0, 4, 7]), (5, [0, 2, 4])):  # two step counts in a row, no num_steps given
        run(pipe, case, steps=steps, seed=0)
        (ctx,) = backend.stats().last.contexts.values()
        assert ctx.computed == planned and ctx.steps == steps


def test_a_signal_preset_at_threshold_zero_is_the_uncompiled_pipeline(case):
    """The probe's split (PROBE, then FULL from its values) computes exactly the original forward, in every
    pipeline's own loop; the signal of each call is recorded."""
    steps = 4 if case.name in SPLIT else 3  # a split model is one graph from its third step on
    reference = run(case.build(), case, steps=steps, seed=0)
    pipe = case.build()
    backend = enable_cache(pipe, "teacache", lowering="eager", threshold=0.0)
    assert torch.equal(run(pipe, case, steps=steps, seed=0), reference)
    measured = []
    for ctx in backend.stats().last.contexts.values():  # a fresh state (first call, new graph) has no signal
        assert ctx.kinds == ["full"] * ctx.steps and ctx.signals[0] is None and len(ctx.signals) == ctx.steps
        measured += [s for s in ctx.signals if s is not None]
    assert measured and min(measured) > 0  # the probe reads the latent: it moves every step


@pytest.mark.parametrize("name,preset", [("qwenimage", "fbcache"), ("wan2.2", "teacache"), ("sd3", "customcache")])
def test_a_signal_preset_caches_each_context_of_a_real_pipeline(name, preset):
    case = PIPELINES[name]
    pipe = case.build()
    backend = enable_cache(pipe, preset, lowering="eager", threshold=100.0)  # every call after the first caches
    run(pipe, case, steps=8, seed=0)
    contexts = backend.stats().last.contexts
    assert len(contexts) == CONTEXTS[case.guidance] * len(case.transformers)
    for ctx in contexts.values():
        assert ctx.kinds[0] == "full" and ctx.cached_steps >= 1, ctx
        assert len(ctx.signals) == len(ctx.kinds) and ctx.signals[0] is None
    if preset != "fbcache":  # TeaCache's decision computes the last step of the pipeline
        assert any(ctx.computed and ctx.computed[-1] == 7 for ctx in contexts.values())


@pytest.mark.parametrize("name", ["qwenimage", "wan2.2"])
def test_the_device_decides_like_the_host_in_a_real_pipeline(name):
    """Per guidance context and per expert, the graph's torch.cond takes the host's decisions."""
    case = PIPELINES[name]
    runs = {}
    for decision in ("host", "device"):
        torch._dynamo.reset()
        pipe = case.build()
        backend = enable_cache(pipe, "teacache", lowering="eager", threshold=0.3, decision=decision)
        latents = run(pipe, case, steps=6, seed=0)
        runs[decision] = latents, {name: ctx.kinds for name, ctx in backend.stats().last.contexts.items()}
    assert runs["device"][1] == runs["host"][1]
    assert any("cached" in kinds for kinds in runs["host"][1].values())
    assert torch.equal(runs["device"][0], runs["host"][0])


@pytest.mark.parametrize("name,preset", [("sd3", "clusca"), ("wan2.2", "duca"), ("flux-true-cfg", "clusca")])
def test_token_subsets_run_in_every_context_of_a_real_pipeline(name, preset):
    """Batched guidance (SD3), two experts with separate guidance calls (Wan 2.2), separate true CFG (Flux)."""
    case = PIPELINES[name]
    pipe = case.build()
    backend = enable_cache(pipe, preset, lowering="eager", interval=3)
    got = run(pipe, case, steps=9, seed=0)
    contexts = backend.stats().last.contexts
    assert len(contexts) == CONTEXTS[case.guidance] * len(case.transformers)
    for ctx in contexts.values():
        assert ctx.kinds[0] == "full" and "partial" in ctx.kinds, ctx
    assert backend.plan.partial and torch.isfinite(got).all()
