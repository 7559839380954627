"""Quantized weights (torchao) under the cache: the analysis, the FLOP count, ``enable_cache`` on the tiny Flux.

torchao swaps each Linear's weight for a tensor subclass (``Int8Tensor``, ``Float8Tensor``): the Dynamo graph keeps
its ``linear`` calls, so the analysis sees the same blocks and branches; AOTAutograd desugars the subclass when a
graph is lowered. Configs run here, on the CPU: int8 weight-only and int8 dynamic (activations quantized per call;
CPU ``aten._int_mm``), float8 weight-only (dequantized matmul on the CPU). Float8 dynamic activation needs a GPU of
compute capability >= 8.9 and is not run (docs/stacks.md). diffusers' own ``TorchAoConfig`` is checked through a
``save_pretrained`` / ``from_pretrained`` round trip in a temporary folder (no download).
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("torchao")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*_stable_hash_for_caching:UserWarning"),
              pytest.mark.usefixtures("one_thread")]

from support.pipelines import PIPELINES, run  # noqa: E402
from torchao.quantization import (  # noqa: E402
    Float8WeightOnlyConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
    quantize_,
)

from c4d_compile import C4DWarning, enable_cache  # noqa: E402
from c4d_compile.compiler.flops import count_flops  # noqa: E402
from c4d_compile.compiler.passes.analyze import analyze  # noqa: E402
from c4d_compile.inspect_model import trace  # noqa: E402
from c4d_compile.runtime.step_program import VariantKind  # noqa: E402
from c4d_compile.zoo.tiny_diffusers import get_tiny_model  # noqa: E402

CASE = PIPELINES["flux"]
CONFIGS = {
    "int8-weight-only": Int8WeightOnlyConfig,
    "int8-dynamic": Int8DynamicActivationInt8WeightConfig,
    "float8-weight-only": Float8WeightOnlyConfig,
}


def quantized(model: torch.nn.Module, name: str) -> torch.nn.Module:
    quantize_(model, CONFIGS[name]())
    weight = model.transformer_blocks[0].attn.to_q.weight
    assert type(weight) is not torch.nn.Parameter and "Tensor" in type(weight).__name__  # a torchao subclass
    return model


def quantized_pipe(name: str):
    pipe = CASE.build()
    quantized(pipe.transformer, name)
    return pipe


def _traced(model):
    spec = get_tiny_model("flux")
    (graph,) = trace(model, spec.make_inputs())
    return graph


@pytest.fixture(scope="module")
def float_graph():
    return _traced(get_tiny_model("flux").build())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_analysis_finds_the_same_blocks_and_branches(name, float_graph):
    gm, _ = _traced(quantized(get_tiny_model("flux").build(), name))
    got, want = analyze(gm), analyze(float_graph[0])
    assert got.cacheable and not got.problems
    assert [(b.name, b.matmuls) for b in got.stack.blocks] == [(b.name, b.matmuls) for b in want.stack.blocks]
    branches = [(bb.block, bb.proven, [br.feature for br in bb.branches]) for bb in got.branches]
    assert branches == [(bb.block, bb.proven, [br.feature for br in bb.branches]) for bb in want.branches]
    assert all(proven for _, proven, _ in branches) and sum(len(f) for *_, f in branches) == 10  # 4 + 4 + 1 + 1
    assert [t.name for t in got.timesteps] == [t.name for t in want.timesteps]


@pytest.mark.parametrize("name", [
    "int8-weight-only",
    "float8-weight-only",
    "int8-dynamic",  # aten._int_mm: a formula of c4d's own (compiler/flops.py)
])
def test_flops_count_the_quantized_matmuls_as_the_float_ones(name, float_graph):
    gm, examples = _traced(quantized(get_tiny_model("flux").build(), name))
    assert count_flops(gm, examples) == count_flops(*float_graph) > 0


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_interval_one_is_the_uncompiled_quantized_pipeline(name):
    """Bit for bit with eager lowering: the rewritten graph calls the same subclass ops in the same order."""
    reference = run(quantized_pipe(name), CASE, steps=3, seed=0)
    assert (reference - run(CASE.build(), CASE, steps=3, seed=0)).abs().max() > 1e-3  # quantization is in effect
    pipe = quantized_pipe(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    assert torch.equal(run(pipe, CASE, steps=3, seed=0), reference)
    stats = backend.stats()
    assert stats.cached_steps == 0 and stats.full_steps == 3


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_default_preset_caches_a_quantized_pipeline(name):
    pipe = quantized_pipe(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, CASE, steps=8, seed=0)
    assert not [w for w in caught if issubclass(w.category, C4DWarning)]
    stats = backend.stats()
    (ctx,) = stats.last.contexts.values()
    assert ctx.computed == [0, 7] and ctx.cached_steps == 6
    assert stats.ideal_speedup > 2 and stats.cache_bytes > 0
    # a subclass weight may not support ``narrow``: its projections stay whole (compiler/passes/narrow_projections.py)
    assert backend.rewrite.narrowed[VariantKind.CACHED].projections == 0


def test_diffusers_torchao_config_loads_a_model_the_cache_runs_exactly(tmp_path):
    """``from_pretrained(..., quantization_config=TorchAoConfig(Int8WeightOnlyConfig()))``: the same weights as
    ``quantize_`` on the built model; interval=1 is it bit for bit, the default preset caches."""
    from diffusers import FluxTransformer2DModel, TorchAoConfig

    CASE.build().transformer.save_pretrained(tmp_path)

    def loaded_pipe():
        pipe = CASE.build()
        config = TorchAoConfig(Int8WeightOnlyConfig())
        # float32 as the pipeline runs (diffusers warns that torchao's int8 wants bfloat16; it runs in float32)
        pipe.transformer = FluxTransformer2DModel.from_pretrained(
            tmp_path, quantization_config=config, torch_dtype=torch.float32).eval()
        assert "Int8Tensor" in type(pipe.transformer.transformer_blocks[0].attn.to_q.weight).__name__
        return pipe

    reference = run(loaded_pipe(), CASE, steps=3, seed=0)
    assert torch.equal(reference, run(quantized_pipe("int8-weight-only"), CASE, steps=3, seed=0))
    pipe = loaded_pipe()
    enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    assert torch.equal(run(pipe, CASE, steps=3, seed=0), reference)
    pipe = loaded_pipe()
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    run(pipe, CASE, steps=8, seed=0)
    assert backend.stats().cached_steps == 6


def test_the_speed_script_writes_rows_and_how_they_were_made(tmp_path, monkeypatch):
    """examples/quantized_speed.py's whole path at a tiny size: the tiny SD3 config in place of flux-bench, eager."""
    import importlib.util
    import json
    from pathlib import Path

    loaded = importlib.util.spec_from_file_location(
        "quantized_speed", Path(__file__).resolve().parents[2] / "examples" / "quantized_speed.py")
    script = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(script)
    monkeypatch.setattr(script, "MODEL", "sd3")
    out = tmp_path / "speed.json"
    argv = ["--quant", "int8-dynamic", "--lowering", "eager", "--steps", "4", "--repeats", "1", "--out", str(out)]
    assert script.main(argv) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["command"] == "python examples/quantized_speed.py " + " ".join(argv)
    assert data["meta"]["quantization"] == {"int8-dynamic": {"config": "Int8DynamicActivationInt8WeightConfig",
                                                             "lowering": "eager"}}
    assert "torchao" in data["meta"]["versions"] and data["meta"]["notes"] == []  # no int8-weight-only row
    rows = {row["family"]: row for row in data["rows"]}
    assert rows["uncached"]["model"] == rows["c4d"]["model"] == "sd3 (int8-dynamic)"
    assert rows["c4d"]["computations"] < 4 and rows["c4d"]["measured_speedup"] > 0
    assert out.with_suffix(".md").read_text().startswith("### sd3 (int8-dynamic)")
