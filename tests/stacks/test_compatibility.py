"""The compatibility table: each stack users run (``support.stacks``) with each kind of caching, one test per cell.

Every test here carries ``pytest.mark.compat(stack, feature, case)``; ``examples/compatibility_check.py`` runs the
marked tests (here and in the other stack modules) and writes their outcomes to the results file the README's
table is rendered from, so a cell says what its test did. A pipeline cell runs the pipeline with the stack on,
8 steps, through ``enable_cache``: no C4D warning, at least one cached step in every compiled model, and the final
latents within 30 dB PSNR of the uncompiled pipeline's (a broken rewrite lands far below; these random-weight
models score 60-90 dB when caching works). The export cells export the transformer with the stack on and run the
exported files along a sampling trajectory against the torch backend; the context-parallel cells run two CPU ranks.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("peft")
pytest.importorskip("torchao")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile.*:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*_stable_hash_for_caching:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*FluxPosEmbed.*:FutureWarning"),
              pytest.mark.usefixtures("one_thread")]

from support.stacks import STACKS, restore_attention_backend  # noqa: E402

from c4d_compile import C4DWarning, ConfigError, enable_cache  # noqa: E402

STEPS = 8
MIN_PSNR = 30.0
# column -> case -> (preset, options): the region kinds, a signal-driven preset, a token-subset preset
PIPELINE_CELLS = {
    "regions": {"branch": ("taylorseer", {}), "stack": ("stack-reuse", {}), "output": ("taylorseer-lite", {})},
    "signal": {"fbcache": ("fbcache", {"threshold": 0.5})},  # threshold: random weights move the signal a lot
    "tokens": {"toca": ("toca", {})},
}


def _cells(stacks) -> list:
    return [pytest.param(stack, preset, options, id=f"{stack}-{case}", marks=pytest.mark.compat(stack, feature, case))
            for stack in stacks for feature, cases in PIPELINE_CELLS.items()
            for case, (preset, options) in cases.items()]


@pytest.fixture(autouse=True)
def _attention_backend():
    restore = restore_attention_backend()
    yield
    restore()


@functools.cache
def _uncompiled(stack: str) -> torch.Tensor:
    case = STACKS[stack]
    return case.run(case.build(), STEPS)


def _psnr(got: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float((got.float() - reference.float()).pow(2).mean())
    peak = float(reference.float().abs().max())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak * peak / mse)).item()


@pytest.mark.parametrize("stack,preset,options", _cells(STACKS))
def test_a_stack_caches_with_each_kind_of_preset(stack, preset, options):
    case = STACKS[stack]
    reference = _uncompiled(stack)
    pipe = case.build()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = enable_cache(pipe, preset, lowering="eager", **options)
        got = case.run(pipe, STEPS)
    warned = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert not warned, warned
    cached: dict[str, int] = {}
    for name, ctx in backend.stats().contexts.items():  # "cond", or "cond[controlnet]" for the ControlNet's
        model = name.partition("[")[2].rstrip("]") or "transformer"
        cached[model] = cached.get(model, 0) + ctx.cached_steps
    assert sorted(cached) == sorted(case.modules) and all(cached.values()), cached
    assert _psnr(got, reference) > MIN_PSNR


def _group_offloaded():
    from support.pipelines import PIPELINES

    pipe = PIPELINES["flux"].build()
    pipe.transformer.enable_group_offload(onload_device=torch.device("cpu"), offload_type="leaf_level")
    return pipe


@pytest.mark.parametrize("preset,options", [
    pytest.param(preset, options, id=case,
                 marks=pytest.mark.compat("group-offload", feature, case, refused="ConfigError"))
    for feature, cases in PIPELINE_CELLS.items() for case, (preset, options) in cases.items()])
def test_group_offloading_is_refused_whatever_the_preset(preset, options):
    with pytest.raises(ConfigError, match="group offloading.*enable_model_cpu_offload"):
        enable_cache(_group_offloaded(), preset, lowering="eager", **options)


def _on_model(stacks: list[str], feature: str, case: str, **refused) -> list:
    return [pytest.param(s, id=s, marks=pytest.mark.compat(s, feature, case, **refused)) for s in stacks]


EXPORT_STEPS = 6


@pytest.mark.parametrize("stack", _on_model(["lora", "int8"], "export", "onnx"))
def test_the_transformer_with_the_stack_exports_and_runs_as_the_backend_along_a_trajectory(stack, tmp_path):
    pytest.importorskip("onnxruntime")
    from c4d_compile import c4d_backend
    from c4d_compile.onnx_export import export, load_exported
    from c4d_compile.onnx_export.compare import trajectory
    from c4d_compile.zoo.tiny_diffusers import get_tiny_model

    spec = get_tiny_model("flux")
    model, inputs = STACKS[stack].on_model(spec.build()), spec.make_inputs()
    export(model, inputs, "taylorseer-lite", tmp_path, num_steps=EXPORT_STEPS, progress=False, budget=2)
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer-lite", lowering="eager", num_steps=EXPORT_STEPS, budget=2)
    final, reference = trajectory(torch.compile(model, backend=backend, fullgraph=True), spec, inputs, EXPORT_STEPS)
    exported = load_exported(tmp_path)
    exported_final, outs = trajectory(exported, spec, inputs, EXPORT_STEPS)
    assert exported.calls.get("cached", 0) == EXPORT_STEPS - 2
    assert max(float((a - b).abs().max()) for a, b in zip(reference, outs)) < 1e-4
    assert float((final - exported_final).abs().max()) < 1e-4


@pytest.mark.parametrize("stack", _on_model(["flex-attention"], "export", "onnx", refused="NotExportableError"))
def test_flex_attention_is_refused_by_the_export_before_writing_with_what_to_do(stack, tmp_path):
    from c4d_compile.errors import NotExportableError
    from c4d_compile.onnx_export import export
    from c4d_compile.zoo.tiny_diffusers import get_tiny_model

    spec = get_tiny_model("flux")
    with pytest.raises(NotExportableError, match=r"flex_attention.*set_attention_backend\('native'\)"):
        export(STACKS[stack].on_model(spec.build()), spec.make_inputs(), "taylorseer", tmp_path / "out", num_steps=4,
               progress=False)
    assert not (tmp_path / "out").exists()


CP_STEPS = 8
CP_STACKS = ["lora", "int8"]


def _ranks_with_stacks(rank, world, out, stacks):
    """Per stack, on each rank: the uncached and the cached (taylorseer) predictions of an 8-step loop under
    Ulysses context parallelism."""
    from support.sampling import loop

    from c4d_compile import c4d_backend
    from c4d_compile.zoo.context_parallel import enable_cpu_context_parallel
    from c4d_compile.zoo.tiny_diffusers import get_tiny_model

    spec, results = get_tiny_model("flux"), {}
    for stack in stacks:
        model = STACKS[stack].on_model(spec.build())
        enable_cpu_context_parallel(model, world)
        plain = loop(model, spec, CP_STEPS)
        torch._dynamo.reset()
        backend = c4d_backend("taylorseer", lowering="eager", num_steps=CP_STEPS)
        cached = loop(torch.compile(model, backend=backend, fullgraph=True), spec, CP_STEPS)
        results[stack] = {"plain": plain, "cached": cached, "kinds": backend.stats().last.contexts["branch0"].kinds}
    torch.save(results, out / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    from support.ranks import run_ranks

    return run_ranks(_ranks_with_stacks, 2, tmp_path_factory.mktemp("ranks"), CP_STACKS, timeout=300)


@pytest.mark.parametrize("stack", _on_model(CP_STACKS, "context-parallel", "ulysses, 2 ranks"))
def test_the_stack_caches_under_context_parallelism_alike_on_every_rank_and_like_one_process(stack, two_ranks):
    from support.sampling import loop

    from c4d_compile import c4d_backend
    from c4d_compile.zoo.tiny_diffusers import get_tiny_model

    mine, theirs = (rank[stack] for rank in two_ranks)
    assert all(torch.equal(a, b) for a, b in zip(mine["cached"], theirs["cached"]))  # the ranks agree bit for bit
    assert "cached" in mine["kinds"] and mine["kinds"] == theirs["kinds"]
    spec = get_tiny_model("flux")
    model = STACKS[stack].on_model(spec.build())
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=CP_STEPS)
    single = loop(torch.compile(model, backend=backend, fullgraph=True), spec, CP_STEPS)
    assert backend.stats().last.contexts["branch0"].kinds == mine["kinds"]
    for a, b in zip(mine["cached"], single):  # the cache under CP is the cache of one process
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(mine["plain"], loop(model, spec, CP_STEPS)):  # and CP itself holds with the stack on
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
