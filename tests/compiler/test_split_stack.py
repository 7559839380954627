"""A block stack split by graph breaks inside its blocks is made whole: the breaking part of each block is
called opaquely and the forward retraced, with plain ``torch.compile``; breaks elsewhere are left alone."""

from __future__ import annotations

import warnings

import pytest
import torch
from support.routed import Checked, Labelled, Plain, build, denoise

from c4d_compile import C4DWarning, c4d_backend
from c4d_compile.compiler.flops import flop_counter
from c4d_compile.compiler.opaque_calls import is_opaque, make_opaque
from c4d_compile.runtime.step_program import VariantKind


def _compiled(model, **options):
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=6, **options)
    return torch.compile(model, backend=backend), backend


def _opaque_calls(gm) -> int:
    return sum(str(n.target).startswith("c4d.opaque_call") for n in gm.graph.nodes)


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call(*args, **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]


def test_a_break_inside_every_block_is_called_opaquely_and_the_stack_cached():
    model = build()
    expected = denoise(model)
    compiled, backend = _compiled(build(), interval=1)
    got, warned = _quiet(denoise, compiled)
    assert not warned, warned
    assert all(torch.equal(a, b) for a, b in zip(got, expected))  # the routing runs as written: bit-exact
    assert backend.splits.opaque == backend.stats().opaque_modules == {"Routed": 3}
    assert "called opaquely (graph breaks split the stack): Routed x3" in str(backend.stats())
    assert _opaque_calls(backend.rewrite.variants[VariantKind.FULL].gm) == 3  # one node per block

    compiled, backend = _compiled(build())
    _quiet(denoise, compiled, backend=backend)  # the first generation starts split, then runs one graph
    (ctx,) = backend.stats().last.contexts.values()
    assert 1 <= ctx.computed[0] <= 2 and ctx.steps == 6 - ctx.computed[0]  # it joins at its timestep's step
    assert ctx.computed[-1] == 5 and ctx.cached_steps >= 1
    assert _opaque_calls(backend.rewrite.variants[VariantKind.CACHED].gm) == 0  # skipped with its branch
    backend.reset()
    again = denoise(compiled)  # a whole generation on the one graph, as a model that never broke
    fresh = build()
    for block in fresh.blocks:
        make_opaque(block.ff)
    reference, reference_backend = _compiled(fresh)
    assert all(torch.equal(a, b) for a, b in zip(again, denoise(reference)))
    assert reference_backend.splits.opaque == {}  # nothing broke: nothing to repair


def test_the_opaque_calls_count_their_flops():
    compiled, backend = _compiled(build(), interval=1)
    _quiet(denoise, compiled)
    counter = flop_counter()
    x = torch.zeros(1, 16, 8)
    with counter, torch.no_grad():
        build()(x, torch.tensor([500.0]))
    runtime = backend.runtimes[-1]
    assert runtime.flops[VariantKind.FULL].value == counter.get_total_flops()  # the experts' matmuls included


def test_a_break_in_the_models_own_loop_is_left_alone():
    model = build(ff=Plain, break_in_forward=True)
    expected = denoise(model)
    compiled, backend = _compiled(build(ff=Plain, break_in_forward=True))
    got, warned = _quiet(denoise, compiled)  # hiding the model's own code would hide the blocks
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert backend.splits.opaque == {} and backend.stats().cached_steps == 0
    assert len(warned) == 1 and "without cache" in warned[0]  # Dynamo compiled the blocks one by one


def test_a_part_returning_a_dict_is_called_opaquely_too():
    model = build(ff=Labelled)
    expected = denoise(model)
    compiled, backend = _compiled(build(ff=Labelled), interval=1)
    got, warned = _quiet(denoise, compiled)
    assert not warned and backend.splits.opaque == {"Labelled": 3}
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert _opaque_calls(backend.rewrite.variants[VariantKind.FULL].gm) == 3


def test_opting_out_keeps_the_split_and_says_so():
    compiled, backend = _compiled(build(), opaque_calls=False)
    _, warned = _quiet(denoise, compiled)
    assert backend.splits.opaque == {} and backend.stats().cached_steps == 0
    assert len(warned) == 1 and "split this model" in warned[0]


def test_a_part_that_cannot_be_called_opaquely_breaks_the_graph_at_the_call_instead():
    model = build(ff=Checked)
    expected = denoise(model)
    compiled, backend = _compiled(build(ff=Checked))
    got, warned = _quiet(denoise, compiled)  # its shapes cannot be learnt on zeros: still split, still right
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert backend.splits.opaque == {"Checked": 3} and backend.stats().cached_steps == 0
    assert len(warned) == 1 and "split this model" in warned[0]


def test_an_opaque_module_called_eagerly_runs_its_own_forward():
    model = build()
    x = torch.randn(1, 16, 8)
    t = torch.tensor([10.0])
    before = model(x, t)
    for block in model.blocks:
        make_opaque(block.ff)
        make_opaque(block.ff)  # twice is once
    assert all(is_opaque(block.ff) for block in model.blocks) and not is_opaque(model)
    assert torch.equal(model(x, t), before)


def test_the_setting_is_checked():
    with pytest.raises(Exception, match="opaque_calls"):
        c4d_backend("taylorseer", opaque_calls="yes")


class _Chunks(torch.nn.Module):
    """Returns views of one tensor (as AdaLayerNormZero's modulations: ``emb.chunk(6, dim=1)`` at batch 1), and
    its input as it came."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 16)

    def forward(self, x: torch.Tensor):
        shift, scale = self.proj(x).chunk(2, dim=0)
        return shift, scale, x


def test_a_part_returning_views_of_one_tensor_or_its_input_is_called_opaquely():
    """An op's outputs may alias neither its inputs nor each other: torch checks, and the call would fail."""
    part = _Chunks()
    x = torch.randn(2, 8)
    expected = part(x)
    make_opaque(part)
    torch._dynamo.reset()
    got = torch.compile(lambda x: part(x), backend="eager", fullgraph=True)(x)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
