"""LoRA adapters (PEFT, as diffusers loads them) under the cache, on the tiny Flux pipeline and in a loop of one's own.

Adapters are built in code (``LoraConfig`` + ``add_adapter``) with seeded nonzero ``lora_A`` / ``lora_B`` weights,
so each one moves the output and two builds give the same weights. What is checked: ``interval=1`` with an adapter
is the uncompiled pipeline bit for bit; the default preset caches with one; after any change of adapter, scale or
fusion between generations, the next generation equals the same generation run after ``backend.reset()`` (nothing
computed under the old weights is reused) — whether the change recompiles (a new adapter set, fuse, disable: PEFT
reads them in Python, so Dynamo guards on them) or not (a scale is a graph input once it has changed once).
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"), pytest.mark.usefixtures("one_thread")]

from peft.utils import get_peft_model_state_dict  # noqa: E402
from support.pipelines import PIPELINES, run  # noqa: E402
from support.sampling import loop, sample  # noqa: E402
from support.stacks import add_adapters  # noqa: E402

from c4d_compile import C4DWarning, c4d_backend, enable_cache  # noqa: E402
from c4d_compile.zoo.tiny_diffusers import get_tiny_model  # noqa: E402

CASE = PIPELINES["flux"]


def lora_pipe():
    pipe = CASE.build()
    add_adapters(pipe.transformer)
    pipe.transformer.set_adapters("a")
    return pipe


def test_interval_one_with_an_adapter_is_the_uncompiled_pipeline():
    reference = run(lora_pipe(), CASE, steps=3, seed=0)
    assert (reference - run(CASE.build(), CASE, steps=3, seed=0)).abs().max() > 1e-2  # the adapter is in effect
    pipe = lora_pipe()
    backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    assert torch.equal(run(pipe, CASE, steps=3, seed=0), reference)
    stats = backend.stats()
    assert stats.cached_steps == 0 and stats.full_steps == 3


def test_the_default_preset_caches_with_an_adapter():
    pipe = lora_pipe()
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, CASE, steps=8, seed=0)
    assert not [w for w in caught if issubclass(w.category, C4DWarning)]
    (ctx,) = backend.stats().last.contexts.values()
    assert ctx.cached_steps >= 1 and ctx.computed[-1] == 7


# What changes between the two generations, through the transformer's own LoRA methods (PeftAdapterMixin); the
# pipeline's reach it too (test_the_pipelines_lora_methods_reach_the_cached_transformer).
CHANGES = {
    "scale": lambda t: t.set_adapters("a", 0.5),
    "other adapter": lambda t: t.set_adapters("b"),
    "two adapters": lambda t: t.set_adapters(["a", "b"], [1.0, 0.5]),
    "fused": lambda t: t.fuse_lora(lora_scale=0.5, adapter_names=["a"]),
    "unfused": lambda t: t.unfuse_lora(),
    "disabled": lambda t: t.disable_lora(),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_of_weights_between_generations_reuses_nothing(change):
    pipe = lora_pipe()
    if change == "unfused":  # the first generation runs fused
        pipe.fuse_lora(adapter_names=["a"])
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    run(pipe, CASE, steps=8, seed=0)
    CHANGES[change](pipe.transformer)
    second = run(pipe, CASE, steps=6, seed=1)
    # every one of these changes is read by PEFT in Python: Dynamo guards on it and compiles a second graph
    assert len(backend.runtimes) == 2
    (ctx,) = backend.stats().last.contexts.values()
    assert ctx.cached_steps >= 1
    backend.reset()
    assert torch.equal(second, run(pipe, CASE, steps=6, seed=1))


def test_a_scale_is_a_graph_input_after_it_first_changes_and_each_scale_stays_exact():
    """The user's own loop, no enable_cache: PEFT's scale is a Python float that Dynamo specialises on first
    and turns into an input when it changes (automatic dynamic): one recompile, then none for any other scale."""
    spec = get_tiny_model("flux")
    model = add_adapters(spec.build())
    backend = c4d_backend("taylorseer", lowering="eager", interval=1, num_steps=3)
    compiled = torch.compile(model, backend=backend)
    graphs = []
    for scale in (1.0, 0.5, 0.7, 0.0, 2.0):
        model.set_adapters("a", scale)
        reference, _ = sample(model, spec, num_steps=3)
        got, _ = sample(compiled, spec, num_steps=3)
        assert torch.equal(got, reference), scale
        graphs.append(len(backend.runtimes))
    assert graphs == [1, 2, 2, 2, 2]
    assert backend.stats().cached_steps == 0


def test_a_scale_change_between_generations_of_ones_own_loop_starts_a_fresh_cache():
    """No begin_generation: the timestep jumping back up begins the next generation. Once the scale is a graph
    input, the same graph serves the new scale, so only the new generation keeps the old features out."""
    spec = get_tiny_model("flux")
    model = add_adapters(spec.build())
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=8)
    compiled = torch.compile(model, backend=backend)
    for scale in (1.0, 0.5, 0.7):  # 0.5 recompiles, 0.7 does not
        model.set_adapters("a", scale)
        got, _ = sample(compiled, spec, num_steps=8, seed=1)
        (ctx,) = backend.stats().last.contexts.values()
        assert ctx.computed == [0, 7], scale
        backend.reset()
        again, _ = sample(compiled, spec, num_steps=8, seed=1)
        assert torch.equal(got, again), scale
    assert len(backend.runtimes) == 2


def test_load_lora_weights_after_enable_cache_is_the_uncompiled_pipeline_with_it():
    """``pipe.load_lora_weights`` (a diffusers-format state dict, as from a file) into a pipeline already cached."""
    donor = add_adapters(CASE.build().transformer, names=("b",))
    state = {f"transformer.{k}": v for k, v in get_peft_model_state_dict(donor, adapter_name="b").items()}
    reference_pipe = CASE.build()
    reference_pipe.load_lora_weights(dict(state), adapter_name="c")
    reference = run(reference_pipe, CASE, steps=3, seed=0)
    pipe = CASE.build()
    backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    plain = run(pipe, CASE, steps=3, seed=0)
    pipe.load_lora_weights(dict(state), adapter_name="c")
    got = run(pipe, CASE, steps=3, seed=0)
    assert torch.equal(got, reference) and not torch.equal(got, plain)
    assert len(backend.runtimes) == 2  # the LoRA layers are new modules: a second graph


def test_the_pipelines_lora_methods_reach_the_cached_transformer():
    pipe = lora_pipe()
    enable_cache(pipe, "taylorseer", lowering="eager")
    pipe.fuse_lora(adapter_names=["a"])
    layer = pipe.transformer.transformer_blocks[0].attn.to_q
    assert layer.merged
    pipe.unfuse_lora()
    pipe.set_adapters("a", 0.5)
    assert layer.scaling["a"] == 0.5


def test_invalidate_after_a_change_in_the_middle_of_a_generation_computes_the_next_step_in_full():
    """Once a scale is a graph input, a change mid-generation reuses the graph, and without ``invalidate`` the
    cache would forecast across the change; with it, the next call is a full step and the clock goes on."""
    spec = get_tiny_model("flux")
    model = add_adapters(spec.build())
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=8, interval=4)
    compiled = torch.compile(model, backend=backend)
    for scale in (1.0, 0.5):  # the second generation makes the scale a graph input
        model.set_adapters("a", scale)
        sample(compiled, spec, num_steps=8)

    def run_changing_at_step_2(invalidate: bool) -> list[int]:
        step = iter(range(8))
        model.set_adapters("a", 0.5)

        def call(**inputs):
            if next(step) == 2:
                model.set_adapters("a", 0.7)
                if invalidate:
                    backend.invalidate()
            return compiled(**inputs)

        loop(call, spec, steps=8)
        (ctx,) = backend.stats().last.contexts.values()
        return ctx.computed

    kept, invalidated = run_changing_at_step_2(invalidate=False), run_changing_at_step_2(invalidate=True)
    assert 2 not in kept and 2 in invalidated, (kept, invalidated)  # forecast across the change, or not
    assert len(backend.runtimes) == 2


def test_a_model_that_dynamo_stops_compiling_is_named_not_silently_uncached():
    """Past Dynamo's recompile limit (each adapter set is a graph of its own), the model runs uncompiled, so
    uncached; the backend says so when generations go by without a call. Within the limit it says nothing."""
    pipe = lora_pipe()
    with torch._dynamo.config.patch(recompile_limit=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enable_cache(pipe, "taylorseer", lowering="eager")
        run(pipe, CASE, steps=4, seed=0)
        assert not [w for w in caught if issubclass(w.category, C4DWarning)]
        pipe.set_adapters("b")  # a second graph: over the limit
        for seed in (1, 2):
            run(pipe, CASE, steps=4, seed=seed)
    warned = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert any("recompile limit" in message for message in warned), warned
