"""The projection narrowing pass: a ``linear`` split on its last dim with some pieces unread computes only the rows
that are read, equal to the full product's (to its rounding: a gemm of fewer rows may take another kernel); where
every piece is read, or the split is not of the kind it knows, nothing changes. And on a real block: a CACHED
variant of the tiny Flux or Qwen-Image computes only the gates of its adaLN modulations, FULL all of them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from support.variants import ROUNDING, capture_graph

from c4d_compile import c4d_backend, get_policy
from c4d_compile.bench.speed import generate
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.passes.narrow_projections import narrow_projections
from c4d_compile.compiler.passes.rewrite import build_variants
from c4d_compile.compiler.plan import make_plan
from c4d_compile.errors import InvalidValueError
from c4d_compile.runtime.step_program import VariantKind
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


class Modulation(torch.nn.Module):
    """``linear(silu(c))`` split six ways, as adaLN-Zero does; ``read`` picks the pieces the output uses."""

    def __init__(self, read, split=lambda e: e.chunk(6, dim=-1), out_features=48):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(8, out_features)
        self.read, self.split = read, split

    def forward(self, c, x):
        pieces = self.split(self.proj(F.silu(c)))
        return sum(x * pieces[i] for i in self.read)


def _narrowed(module, c, x):
    """The pass run on ``module``'s graph; the graph's output on the traced inputs; the linears left."""
    gm, examples = capture_graph(module, c=c, x=x)
    result = narrow_projections(gm)
    linears = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in (torch._C._nn.linear, F.linear)]
    return gm(*examples)[0], result, linears


def _inputs(batch=2):
    torch.manual_seed(1)
    return torch.randn(batch, 8), torch.randn(batch, 8)


def test_unread_chunks_are_not_computed_and_the_values_do_not_change():
    c, x = _inputs()
    for read, runs in (((2, 5), 2), ((2, 3, 5), 2), ((-1,), 1)):  # adjacent pieces share one product
        module = Modulation(read)
        out, result, linears = _narrowed(module, c, x)
        kept = 8 * len({i % 6 for i in read})
        assert (result.projections, result.rows_kept, result.rows_total) == (1, kept, 48)
        assert len(linears) == runs
        assert all(n.args[1].target == "narrow" for n in linears)  # over a view of the weight's rows
        torch.testing.assert_close(out, module(c, x), **ROUNDING)


def test_split_with_sizes_and_torch_chunk_are_narrowed():
    c, x = _inputs()
    by_sizes = Modulation((1,), split=lambda e: e.split([16, 8, 24], dim=-1))
    out, result, _ = _narrowed(by_sizes, c, x)
    assert (result.rows_kept, result.rows_total) == (8, 48)
    torch.testing.assert_close(out, by_sizes(c, x), **ROUNDING)
    uneven = Modulation((3,), split=lambda e: torch.chunk(e, 4, -1), out_features=30)  # pieces of 8, 8, 8, 6
    short = torch.randn(2, 6)  # the last piece's width
    out, result, _ = _narrowed(uneven, c, short)
    assert (result.rows_kept, result.rows_total) == (6, 30)
    torch.testing.assert_close(out, uneven(c, short), **ROUNDING)


def test_nothing_changes_where_every_piece_is_read_or_the_split_is_elsewhere():
    c, x = _inputs()
    cases = (
        Modulation(range(6)),  # a FULL step: every piece read
        Modulation((0,), split=lambda e: e.unsqueeze(0).chunk(2, dim=1)[0].chunk(6, dim=-1)),  # a split of dim 0 first
        Modulation((0,), split=lambda e: (e * 2).chunk(6, dim=-1)),  # not the linear's own output
    )
    for module in cases:
        out, result, linears = _narrowed(module, c, x)
        assert result.projections == 0 and len(linears) == 1
        torch.testing.assert_close(out, module(c, x), **ROUNDING)


@pytest.mark.parametrize("name", ["flux", "qwenimage"])
def test_a_cached_step_of_a_real_block_computes_only_the_gates(name):
    """Flux: 2 of 6 pieces in a double-stream block (the gates), 1 of 3 in a single-stream one; Qwen-Image: the
    modulation halved, each half split in three, the gate of each half read."""
    spec = get_tiny_model(name)
    model, inputs = spec.build(), spec.make_inputs()
    gm, _ = capture_graph(model, **inputs)
    plan = make_plan(gm, analyze(gm), get_policy("taylorseer", num_steps=8))
    rewrite = build_variants(gm, plan)
    assert rewrite.narrowed[VariantKind.FULL].projections == 0
    cached = rewrite.narrowed[VariantKind.CACHED]
    assert cached.projections > 0 and 3 * cached.rows_kept == cached.rows_total
    assert build_variants(gm, plan, narrow=False).narrowed[VariantKind.CACHED].projections == 0


def test_a_piece_split_again_is_followed():
    """Qwen-Image's modulation: halves, each split in three; only the gates (piece 2 of each half) read."""
    c, x = _inputs()
    module = Modulation((2, 5), split=lambda e: [p for half in e.chunk(2, dim=-1) for p in half.chunk(3, dim=-1)])
    out, result, linears = _narrowed(module, c, x)
    assert (result.projections, result.rows_kept, result.rows_total, len(linears)) == (1, 16, 48, 2)
    torch.testing.assert_close(out, module(c, x), **ROUNDING)


def test_the_backend_narrows_unless_told_not_to():
    """The same generation with and without ``narrow_projections``: the same outputs (to the rounding), fewer
    FLOPs counted per cached step with it; a value that is not a bool is refused."""
    spec = get_tiny_model("flux")
    model, inputs = spec.build(), spec.make_inputs()
    runs = {}
    for narrow in (True, False):
        torch._dynamo.reset()
        backend = c4d_backend("taylorseer", lowering="eager", num_steps=6, narrow_projections=narrow)
        runs[narrow] = (generate(torch.compile(model, backend=backend), spec, inputs, 6), backend)
    (narrowed, on), (whole, off) = runs[True], runs[False]
    torch.testing.assert_close(narrowed, whole, **ROUNDING)
    assert on.rewrite.narrowed[VariantKind.CACHED].projections > 0
    assert off.rewrite.narrowed[VariantKind.CACHED].projections == 0
    assert on.stats().ideal_speedup > off.stats().ideal_speedup
    with pytest.raises(InvalidValueError, match="narrow_projections"):
        c4d_backend("taylorseer", narrow_projections="yes")
