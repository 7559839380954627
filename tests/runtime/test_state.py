"""Cache state belongs to a model, a context and a shape; nothing else keeps tensors alive."""

import copy

import torch

from c4d_compile import c4d_backend
from c4d_compile.zoo.tiny_diffusers import first_output, get_tiny_model


def run(call, spec, inputs, steps):
    outs = []
    with torch.no_grad():
        for t in spec.timesteps(steps):
            outs.append(first_output(call(**{**inputs, spec.timestep_key: t})))
    return outs


def test_one_backend_on_two_models_keeps_two_states():
    spec = get_tiny_model("wan")
    high = spec.build()
    low = copy.deepcopy(high)
    with torch.no_grad():
        for p in low.parameters():
            p.mul_(0.9)  # another expert: same graph, other weights
    inputs = spec.make_inputs()
    backend = c4d_backend("taylorseer", lowering="eager", interval=3)
    ch, cl = torch.compile(high, backend=backend), torch.compile(low, backend=backend)
    got_high, got_low = [], []
    with torch.no_grad():
        for t in spec.timesteps(7):  # interleaved, as two experts or two pipelines would call them
            got_high.append(first_output(ch(**{**inputs, spec.timestep_key: t})))
            got_low.append(first_output(cl(**{**inputs, spec.timestep_key: t})))
    for model, got in ((high, got_high), (low, got_low)):
        alone = c4d_backend("taylorseer", lowering="eager", interval=3)
        expected = run(torch.compile(model, backend=alone), spec, inputs, 7)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert len(backend.session.states.states) == 2


def test_a_state_of_another_shape_is_freed_not_kept():
    spec = get_tiny_model("dit")
    model = spec.build()
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    cm = torch.compile(model, backend=backend)
    small = spec.make_inputs()
    latent = small[spec.latent_key]
    big = {**small, spec.latent_key: torch.randn(*latent.shape[:2], latent.shape[2] * 2, latent.shape[3] * 2)}
    run(cm, spec, small, 4)
    small_bytes = backend.stats().cache_bytes
    run(cm, spec, big, 4)
    assert len(backend.session.states.states) == 1  # the small state is gone
    assert backend.stats().cache_bytes > small_bytes
    run(cm, spec, small, 4)
    assert backend.stats().cache_bytes == small_bytes


def test_nothing_real_is_kept_for_flop_counting():
    from torch._subclasses.fake_tensor import FakeTensor

    spec = get_tiny_model("flux")
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    run(torch.compile(spec.build(), backend=backend), spec, spec.make_inputs(), 3)
    for runtime in backend.runtimes:
        for variant in runtime.variants.values():
            tensors = [x for x in variant.flops._examples if isinstance(x, torch.Tensor)]
            assert tensors and all(isinstance(x, FakeTensor) for x in tensors)
    assert backend.stats().ideal_speedup > 1.0


def test_stats_give_the_last_generation_apart_from_the_totals():
    spec = get_tiny_model("flux")
    backend = c4d_backend("taylorseer", lowering="eager", interval=2)
    cm = torch.compile(spec.build(), backend=backend)
    run(cm, spec, spec.make_inputs(), 5)
    run(cm, spec, spec.make_inputs(seed=1), 3)
    stats = backend.stats()
    assert stats.steps == 8 and stats.last.steps == 3
    assert stats.last.contexts["branch0"].kinds == ["full", "cached", "full"]
    assert stats.last.contexts["branch0"].computed == [0, 2]
