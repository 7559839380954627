"""Guidance contexts and generations: from the caller when it says, from the timestep otherwise."""

import threading

import pytest
import torch

from c4d_compile import InvalidValueError, c4d_backend
from c4d_compile.zoo.tiny_diffusers import first_output, get_tiny_model


@pytest.fixture(scope="module")
def flux():
    spec = get_tiny_model("flux")
    return spec, spec.build()


def step(call, spec, inputs, t):
    with torch.no_grad():
        return first_output(call(**{**inputs, spec.timestep_key: t}))


def computed(backend, context):
    return backend.stats().last.contexts[context].computed


def test_context_names_must_be_strings_and_nesting_the_same_name_is_a_no_op(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    with pytest.raises(InvalidValueError, match="non-empty string"):
        with backend.cache_context(3):
            pass
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs()
    with backend.cache_context("cond"):
        with backend.cache_context("cond"):
            for t in spec.timesteps(4):
                step(cm, spec, inputs, t)
        with backend.cache_context("uncond"):  # another name switches for the inner block only
            for t in spec.timesteps(2):
                step(cm, spec, inputs, t)
    assert set(backend.stats().contexts) == {"cond", "uncond"}
    assert backend.stats().contexts["cond"].steps == 4 and backend.stats().contexts["uncond"].steps == 2


def test_an_explicit_context_counts_every_call_so_heun_gets_a_clock_tick_per_call(flux):
    spec, model = flux
    ts = spec.timesteps(5)
    heun = [ts[0]] + [t for t in ts[1:] for _ in range(2)]  # t0, t1, t1, t2, t2, ...: 9 calls
    backend = c4d_backend("taylorseer", lowering="eager", budget=4)
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs()
    backend.begin_generation(heun)
    with backend.cache_context("cond"):
        outs = [step(cm, spec, inputs, t) for t in heun]
    assert computed(backend, "cond") == [0, 3, 5, 8]  # the budget over 9 calls, the last one full
    reference = [step(model, spec, inputs, t) for t in heun]
    assert torch.equal(outs[-1], reference[-1])  # a full step is the model itself


def test_without_a_context_a_repeated_timestep_is_the_next_guidance_branch(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs()
    for t in spec.timesteps(4):
        step(cm, spec, inputs, t)
        step(cm, spec, inputs, t)
    assert {k: v.steps for k, v in backend.stats().contexts.items()} == {"branch0": 4, "branch1": 4}


def test_the_pipelines_step_index_and_step_count_are_used_as_given(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", budget=3)
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs()
    ts = spec.timesteps(10)
    for i in range(5, 10):  # a second expert that takes over at step 5 (Wan 2.2)
        with backend.cache_context("cond", step_index=i, num_steps=10):
            step(cm, spec, inputs, ts[i])
    # no history at step 5, so it computes; then the budget's set (0, 4, 9) decides
    assert computed(backend, "cond") == [5, 9]


def test_reset_in_the_middle_of_a_generation_starts_over_at_step_zero(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", interval=3)
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs()
    ts = spec.timesteps(6)
    for t in ts[:2]:
        step(cm, spec, inputs, t)
    backend.reset()
    out = step(cm, spec, inputs, ts[2])  # step 0 of a new generation: computed
    assert torch.equal(out, step(model, spec, inputs, ts[2]))
    assert backend.stats().last.contexts["branch0"].kinds == ["full"]


def test_per_sample_timesteps_run_uncached_and_correct(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs(batch=2)
    mixed = torch.tensor([0.9, 0.4])
    assert torch.equal(step(cm, spec, inputs, mixed), step(model, spec, inputs, mixed))
    assert backend.stats().uncached_calls == 1 and backend.stats().steps == 0


def test_two_threads_with_two_contexts_never_mix(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs()
    step(cm, spec, inputs, spec.timesteps(1)[0])  # compile once before the threads start
    backend.reset(stats=True)
    barrier, results = threading.Barrier(2), {}

    def drive(name, scale):
        outs = []
        with backend.cache_context(name):
            for t in spec.timesteps(6):
                barrier.wait()  # the two threads' calls interleave step by step
                outs.append(step(cm, spec, {**inputs, spec.latent_key: inputs[spec.latent_key] * scale}, t))
        results[name] = outs

    threads = [threading.Thread(target=drive, args=(n, s)) for n, s in (("a", 1.0), ("b", 0.5))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for name, scale in (("a", 1.0), ("b", 0.5)):
        alone = c4d_backend("taylorseer", lowering="eager", interval=2)
        ca = torch.compile(model, backend=alone)
        expected = [step(ca, spec, {**inputs, spec.latent_key: inputs[spec.latent_key] * scale}, t)
                    for t in spec.timesteps(6)]
        assert all(torch.equal(x, y) for x, y in zip(results[name], expected)), name
    assert {k: v.steps for k, v in backend.stats().contexts.items()} == {"a": 6, "b": 6}


def test_without_a_context_heun_repeats_stay_in_their_guidance_branch(flux):
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    cm = torch.compile(model, backend=backend)
    inputs = spec.make_inputs()
    ts = spec.timesteps(4)
    heun = [ts[0]] + [t for t in ts[1:] for _ in range(2)]  # t0, t1, t1, t2, t2, t3, t3
    for t in heun:
        step(cm, spec, inputs, t)  # cond
        step(cm, spec, inputs, t)  # uncond, at the same timestep
    # two branches (learned at the first step), seven calls each: the Heun repeats are not new branches
    assert {k: v.steps for k, v in backend.stats().contexts.items()} == {"branch0": 7, "branch1": 7}


def test_a_context_first_seen_mid_generation_joins_at_its_timesteps_step():
    from c4d_compile.runtime.contexts import new_generation

    generation = new_generation(4, (1000.0, 750.0, 500.0, 1.0))
    assert generation.step_of(500.0) == 2  # as the sampler lists it
    assert generation.step_of(0.75) == 1  # divided by 1000, as flow-matching pipelines pass it
    assert generation.step_of(1.0) == 0  # 1000 / 1000 or the last one as given: not one place
    assert generation.step_of(123.0) == 0  # not a timestep of this generation
    assert new_generation(4).step_of(500.0) == 0  # no timesteps given


def test_a_graph_compiled_mid_generation_continues_the_generations_steps(flux):
    """What a model whose stack is made whole after its first steps sees: its first cached call is at step 2."""
    spec, model = flux
    backend = c4d_backend("taylorseer", lowering="eager")
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    inputs = spec.make_inputs()
    timesteps = spec.timesteps(6)
    backend.begin_generation(torch.stack([t.reshape(()) for t in timesteps]))
    for t in timesteps[2:]:
        step(compiled, spec, inputs, t)
    (ctx,) = backend.stats().last.contexts.values()
    assert ctx.computed[0] == 2 and ctx.computed[-1] == 5  # the last step of the generation computes
