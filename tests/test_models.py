"""Every bundled tiny diffusers model: analysis finds its stack, and interval=1 is bit-exact."""

import pytest
import torch
from support.presets import interval_one_presets
from support.sampling import sample

from c4d_compile import c4d_backend
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.inspect_model import trace_graphs
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

# model -> (blocks per list in graph order, number of stream tensors after the first block)
EXPECTED = {
    "flux": ({"transformer_blocks": 2, "single_transformer_blocks": 2}, 2),
    "sd3": ({"transformer_blocks": 3}, 2),
    "pixart": ({"transformer_blocks": 2}, 1),
    "dit": ({"transformer_blocks": 2}, 1),
    "wan": ({"blocks": 2}, 1),
    "hunyuanvideo": (
        {"context_embedder.token_refiner.refiner_blocks": 2, "transformer_blocks": 2, "single_transformer_blocks": 2},
        1,
    ),
    "qwenimage": ({"transformer_blocks": 2}, 2),
    "cogvideox": ({"transformer_blocks": 2}, 2),
    "ltxvideo": ({"transformer_blocks": 2}, 1),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def model(request):
    spec = get_tiny_model(request.param)
    return spec, spec.build()


def test_analysis_finds_the_stack(model):
    spec, module = model
    graphs = trace_graphs(module, spec.make_inputs())
    assert len(graphs) == 1
    analysis = analyze(graphs[0])
    lists, first_stream = EXPECTED[spec.name]
    found = {name: sum(b.list_name == name for b in analysis.stack.blocks) for name in analysis.stack.lists}
    assert found == lists
    assert analysis.cacheable, analysis.problems
    # models with an embedded guidance scale have a second sinusoidal input
    assert any("timestep" in t.name for t in analysis.timesteps)
    # stream tensors after the first block: 1 (single stream) or 2 (image + text)
    assert len(analysis.stream.boundaries[0]) == first_stream
    # the image stream leaves the stack as a residual against the embedded latent
    assert analysis.stream.outputs and all(partner for _, partner in analysis.stream.pairs)


@pytest.mark.parametrize("policy", sorted(interval_one_presets()))
def test_interval_one_is_bit_exact(model, policy):
    spec, module = model
    reference, _ = sample(module, spec, num_steps=4)
    backend = c4d_backend(policy, lowering="eager", interval=1)
    got, _ = sample(torch.compile(module, backend=backend, fullgraph=True), spec, num_steps=4)
    assert torch.equal(got, reference)
    assert backend.stats().full_steps == 4


def test_cached_variant_drops_every_block(model):
    spec, module = model
    backend = c4d_backend("taylorseer-lite", lowering="eager", schedule="paper")
    sample(torch.compile(module, backend=backend, fullgraph=True), spec, num_steps=5)
    cached_gm = backend.rewrite.variants["cached"].gm
    from c4d_compile.compiler.passes.graph_utils import is_matmul

    assert not any(is_matmul(n) for n in cached_gm.graph.nodes)  # Lite: no block, no projection runs
    # W=3: steps 3 and 4 are cached, and a cached step costs almost nothing
    assert backend.stats().cached_steps == 2 and backend.stats().ideal_speedup > 1.5


@pytest.mark.parametrize("representative, members", sorted(interval_one_presets().items()))
def test_presets_of_one_group_build_the_same_full_graph(representative, members):
    spec = get_tiny_model("dit")
    codes = []
    for name in members:
        backend = c4d_backend(name, lowering="eager", interval=1)
        sample(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, num_steps=1)
        codes.append(backend.rewrite.variants["full"].gm.code)
    assert all(code == codes[0] for code in codes), members
