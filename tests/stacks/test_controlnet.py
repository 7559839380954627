"""ControlNet pipelines under the cache: Flux (one ControlNet and a multi-ControlNet of two) and SD3.

``enable_cache`` compiles the pipeline's ``controlnet`` with the transformer's backend (each net of a multi-ControlNet
apart), so on a cached step its blocks are forecast too, on the same schedule, with caches of its own. What is
checked: ``interval=1`` is the uncompiled pipeline bit for bit; the default preset caches every context of both
models, with the last step full, and a second call equals the same call after ``reset()``; a cached ControlNet call
costs a small part of a full one; ``denoisers=("transformer",)`` leaves the ControlNet uncompiled; a conditioning
scale that changes within a generation (``control_guidance_end``) drops the ControlNet's cached features only where
they hold the scale (the ``output`` region). Tiny random-weight models (``support.controlnet``), eager lowering.
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*FluxPosEmbed.*:FutureWarning"),
              pytest.mark.usefixtures("one_thread")]

from support.controlnet import CONTROLNET, build, run  # noqa: E402

from c4d_compile import C4DWarning, enable_cache  # noqa: E402
from c4d_compile.runtime.executor import VariantKind  # noqa: E402

# the ControlNets' names in stats: each one's contexts are "<context>[<name>]"
NETS = {"flux-controlnet": ("controlnet",), "flux-multi-controlnet": ("controlnet.0", "controlnet.1"),
        "sd3-controlnet": ("controlnet",)}


def _models(contexts) -> dict[str, list]:
    """Stats contexts by model: "transformer" or the ControlNet's name."""
    by: dict[str, list] = {}
    for name, ctx in contexts.items():
        model = name.partition("[")[2].rstrip("]") or "transformer"
        by.setdefault(model, []).append(ctx)
    return by


@pytest.mark.parametrize("name", sorted(CONTROLNET))
def test_interval_one_is_the_uncompiled_pipeline(name):
    reference = run(build(name), name, steps=3, seed=0)
    unscaled = run(build(name), name, steps=3, seed=0, scale=0.0)
    assert (reference - unscaled).abs().max() > 1e-2  # the ControlNet moves the result
    pipe = build(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    assert torch.equal(run(pipe, name, steps=3, seed=0), reference)
    stats = backend.stats()  # bit-exact because the compiled FULL variants served, the ControlNet's too
    assert stats.cached_steps == 0 and stats.uncached_calls == 0
    assert sorted(_models(stats.last.contexts)) == sorted(("transformer", *NETS[name]))
    for ctxs in _models(stats.last.contexts).values():
        assert [ctx.computed for ctx in ctxs] == [[0, 1, 2]]


@pytest.mark.parametrize("name", sorted(CONTROLNET))
def test_the_default_preset_caches_the_transformer_and_the_controlnet(name):
    pipe = build(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, name, steps=8, seed=0)
    warned = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert not warned, warned
    models = _models(backend.stats().last.contexts)
    assert sorted(models) == sorted(("transformer", *NETS[name]))
    for model, ctxs in models.items():
        for ctx in ctxs:  # the same schedule in every model: full at the first and the last step
            assert ctx.steps == 8 and ctx.computed == [0, 7] and ctx.cached_steps == 6, (model, ctx)
    # two ControlNets of one kind share one compiled graph (their weights are its inputs), each with its own caches
    assert len(backend.runtimes) == 2
    second = run(pipe, name, steps=6, seed=1)
    backend.reset()
    assert torch.equal(second, run(pipe, name, steps=6, seed=1))


def test_a_cached_controlnet_call_costs_a_small_part_of_a_full_one():
    """On a cached step the ControlNet's blocks are forecast (branch region): what is left are its embedders and its
    per-block output projections. The ideal speedup of the whole pipeline counts both models."""
    name = "flux-controlnet"
    pipe = build(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    run(pipe, name, steps=8, seed=0)
    controlnet, transformer = backend.runtimes  # the ControlNet runs first in each step
    for runtime in (controlnet, transformer):
        full, cached = runtime.flops[VariantKind.FULL].value, runtime.flops[VariantKind.CACHED].value
        assert 0 < cached < 0.15 * full
    # 2 of 8 steps computed in both models: close to 4x, the cached steps' leftovers aside
    assert 3.0 < backend.stats().last.ideal_speedup < 4.0


def test_denoisers_can_leave_the_controlnet_uncompiled():
    name = "flux-controlnet"
    reference = run(build(name), name, steps=3, seed=0)
    pipe = build(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1, denoisers=("transformer",))
    assert pipe.controlnet._compiled_call_impl is None and pipe.transformer._compiled_call_impl is not None
    assert torch.equal(run(pipe, name, steps=3, seed=0), reference)
    assert list(backend.stats().last.contexts) == ["branch0"] and len(backend.runtimes) == 1


@pytest.mark.parametrize("preset,computed", [("taylorseer-lite", [0, 4, 7]), ("taylorseer", [0, 7])])
def test_a_conditioning_scale_that_changes_within_a_generation(preset, computed):
    """``control_guidance_end=0.5``: the ControlNet's scale is 0.7 for steps 0-3, then 0. The first change compiles
    a second ControlNet graph, in which the scale is an input (Dynamo's automatic dynamic), so from the second
    generation on, one graph serves both scales. The ``output`` region forecasts the scaled outputs: the change
    drops the ControlNet's cached features and its step computes. The ``branch`` region forecasts values before
    the scale: nothing to drop. Only the ControlNet is cached here, so the transformer reads every forecast."""
    name = "flux-controlnet"
    pipe = build(name)
    backend = enable_cache(pipe, preset, lowering="eager", denoisers=("controlnet",))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, name, steps=8, seed=0, control_guidance_end=0.5)
    assert not [w for w in caught if issubclass(w.category, C4DWarning)]
    assert len(backend.runtimes) == 2  # the scale as a constant, then as an input: both cached
    assert backend.stats().last.ideal_speedup > 1  # FLOPs are counted in the graph that reads the scale
    run(pipe, name, steps=8, seed=0, control_guidance_end=0.5)
    (ctx,) = backend.stats().last.contexts.values()
    assert ctx.computed == computed and len(backend.runtimes) == 2


def test_a_schedule_fitted_to_the_transformer_leaves_the_controlnet_uncached_and_says_so(tmp_path):
    """Magnitude ratios recorded through ``calibrate`` (which compiles the denoisers alone) belong to the
    transformer's graph and would refuse the ControlNet's: it runs uncompiled, with a warning naming it."""
    import c4d_compile

    name = "flux-controlnet"
    ratios = tmp_path / "ratios.json"
    c4d_compile.calibrate(build(name), lambda pipe: run(pipe, name, steps=8, seed=0), "magcache", out=str(ratios))
    torch._dynamo.reset()
    pipe = build(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = enable_cache(pipe, "magcache", ratios=str(ratios), lowering="eager")
        run(pipe, name, steps=8, seed=0)
    (warned,) = [w for w in caught if issubclass(w.category, C4DWarning)]
    assert "pipe.controlnet runs uncompiled and uncached" in str(warned.message) and warned.filename == __file__
    assert pipe.controlnet._compiled_call_impl is None
    (ctx,) = backend.stats().last.contexts.values()
    assert ctx.cached_steps >= 1


def test_the_measuring_script_writes_flops_and_fidelity_of_both_ways(tmp_path):
    """examples/controlnet_cache.py (docs/results/controlnet-cpu/) on one preset, 4 steps, one seed."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "controlnet_cache.py"
    loaded = importlib.util.spec_from_file_location("controlnet_cache", path)
    script = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(script)
    out = tmp_path / "controlnet.json"
    argv = ["--policies", "taylorseer", "--steps", "4", "--seeds", "1", "--threads", "0", "--out", str(out)]
    assert script.main(argv) == 0
    written = json.loads(out.read_text())
    assert written["meta"]["command"] == "python examples/controlnet_cache.py " + " ".join(argv)
    alone, both = written["rows"]
    assert (alone["cached"], both["cached"]) == ("transformer", "transformer + controlnet")
    assert alone["flops_full_step"] == both["flops_full_step"]  # the uncompiled ControlNet counted as compiled
    assert both["flops_cached_step"] < 0.2 * alone["flops_cached_step"]
    assert both["ideal_speedup"] > alone["ideal_speedup"] > 1
    assert 20 < both["psnr_db_mean"] < alone["psnr_db_mean"] < 200
    assert "| `taylorseer` | transformer + controlnet |" in out.with_suffix(".md").read_text()
