"""Offloading under the cache, on the CPU (onload and offload device both the CPU: the hooks run, nothing moves).

What is checked: diffusers' ``enable_model_cpu_offload`` (accelerate's ``cpu_offload_with_hook``, one hook per whole
model; it takes ``device="cpu"``) is cached and ``interval=1`` is the uncompiled pipeline bit for bit, whether it is
turned on before or after ``enable_cache``, also with a ControlNet; accelerate hooks that only move inputs (a
``device_map`` that keeps every weight resident) are cached too. Group offloading (block and leaf level, on the model
or the whole pipeline) and weights on the meta device (accelerate's sequential offload) keep the block stack out of
one graph: ``enable_cache`` refuses them with a ``ConfigError`` saying what to use instead, and so does the first
call when they are turned on after it. On a GPU the hooks also move weights; that is not run here (docs/stacks.md).
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*FluxPosEmbed.*:FutureWarning"),
              pytest.mark.usefixtures("one_thread")]

from support import controlnet  # noqa: E402
from support.pipelines import PIPELINES, run  # noqa: E402

from c4d_compile import C4DWarning, ConfigError, enable_cache  # noqa: E402

CASE = PIPELINES["flux"]
CPU = torch.device("cpu")


def _cached(pipe, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = enable_cache(pipe, "taylorseer", lowering="eager", **options)
    return backend, caught


@pytest.mark.parametrize("order", ["before", "after"])
def test_model_cpu_offload_is_cached_and_exact(order):
    reference = run(CASE.build(), CASE, steps=3, seed=0)
    for interval in (1, None):
        torch._dynamo.reset()
        pipe = CASE.build()
        if order == "before":
            pipe.enable_model_cpu_offload(device="cpu")
        backend, caught = _cached(pipe, **({"interval": interval} if interval else {}))
        if order == "after":
            pipe.enable_model_cpu_offload(device="cpu")
        assert type(pipe.transformer._hf_hook).__name__ == "CpuOffload"  # accelerate's hook is on the model
        with warnings.catch_warnings(record=True) as more:
            warnings.simplefilter("always")
            got = run(pipe, CASE, steps=3 if interval else 8, seed=0)
        assert not [w for w in [*caught, *more] if issubclass(w.category, C4DWarning)]
        (ctx,) = backend.stats().last.contexts.values()
        assert len(backend.runtimes) == 1
        if interval:
            assert torch.equal(got, reference) and ctx.computed == [0, 1, 2]
        else:
            assert ctx.computed == [0, 7] and ctx.cached_steps == 6


def test_model_cpu_offload_with_a_controlnet_caches_both():
    """Flux's ControlNet pipeline leaves its ControlNet out of the offload sequence: it gets a hook of its own."""
    name = "flux-controlnet"
    pipe = controlnet.build(name)
    pipe.enable_model_cpu_offload(device="cpu")
    backend, _ = _cached(pipe)
    controlnet.run(pipe, name, steps=8, seed=0)
    contexts = backend.stats().last.contexts
    assert sorted(contexts) == ["branch0", "branch0[controlnet]"]
    assert all(ctx.computed == [0, 7] for ctx in contexts.values())


def test_hooks_that_only_move_inputs_are_cached():
    """accelerate's hooks on every layer with the weights resident (what a ``device_map`` over several devices
    installs): Dynamo traces them into the graph."""
    from accelerate.hooks import attach_align_device_hook

    reference = run(CASE.build(), CASE, steps=3, seed=0)
    pipe = CASE.build()
    attach_align_device_hook(pipe.transformer, execution_device=CPU, offload=False)
    backend, caught = _cached(pipe, interval=1)
    assert torch.equal(run(pipe, CASE, steps=3, seed=0), reference)
    assert not [w for w in caught if issubclass(w.category, C4DWarning)] and len(backend.runtimes) == 1


GROUP = {
    "block level": lambda pipe: pipe.transformer.enable_group_offload(
        onload_device=CPU, offload_device=CPU, offload_type="block_level", num_blocks_per_group=1),
    "leaf level": lambda pipe: pipe.transformer.enable_group_offload(
        onload_device=CPU, offload_device=CPU, offload_type="leaf_level"),
    "pipeline": lambda pipe: pipe.enable_group_offload(
        onload_device=CPU, offload_device=CPU, offload_type="block_level", num_blocks_per_group=1),
}


@pytest.mark.parametrize("kind", sorted(GROUP))
def test_group_offloading_is_refused_with_what_to_do(kind):
    """Its hooks move each group's weights in compiler-disabled calls: Dynamo breaks the graph at every group (9
    graphs at block level; at leaf level 46, and no warning at all without the refusal)."""
    pipe = CASE.build()
    GROUP[kind](pipe)
    with pytest.raises(ConfigError, match=r"pipe\.transformer: it has group offloading.*enable_model_cpu_offload"):
        enable_cache(pipe, "taylorseer", lowering="eager")


def test_group_offloading_turned_on_after_enable_cache_is_refused_at_the_first_call():
    pipe = CASE.build()
    enable_cache(pipe, "taylorseer", lowering="eager")
    GROUP["leaf level"](pipe)
    with pytest.raises(ConfigError, match="group offloading.*turned on after enable_cache"):
        run(pipe, CASE, steps=2, seed=0)


def test_weights_on_the_meta_device_are_refused_with_what_to_do():
    """accelerate's ``cpu_offload``, what ``enable_sequential_cpu_offload`` does to each model (the pipeline method
    itself fails on this CPU with accelerate 1.16, uncompiled): the weights wait on the meta device and each layer's
    are loaded in its forward, in compiler-disabled calls."""
    import accelerate

    pipe = CASE.build()
    accelerate.cpu_offload(pipe.transformer, execution_device=CPU)
    assert next(pipe.transformer.parameters()).device.type == "meta"
    with pytest.raises(ConfigError, match="meta device.*enable_sequential_cpu_offload.*enable_model_cpu_offload"):
        enable_cache(pipe, "taylorseer", lowering="eager")
