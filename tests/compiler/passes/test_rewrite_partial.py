"""The PARTIAL variant: token-local branches recomputed on a few token rows inside the cached graph.

Checked against the FULL variant of the same call: fed the full step's own features as history, a
partial call's recomputed rows are the full computation's rows, it writes exactly those rows into
the refreshed state, and its model output is the full output. Bit for bit where the CPU's matrix
library runs the same kernel for K rows as for N; for a few rows it switches kernels (matrix-vector
and small-M paths, seen from 2 to 8 rows), which moves the last bit: there the rows are equal to
float32 rounding (ROUNDING)."""

import pytest
import torch
from support.variants import ROUNDING, capture_graph, random_rows, run_full, run_with_full_history

from c4d_compile import c4d_backend
from c4d_compile.runtime.state_names import refreshed_name
from c4d_compile.runtime.step_program import VariantKind
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def same(a: torch.Tensor, b: torch.Tensor, exact: bool) -> None:
    if exact:
        assert torch.equal(a, b)
    else:
        torch.testing.assert_close(a, b, **ROUNDING)


def rows_kernel_stable(rows: int, tokens: int, features: int = 128) -> bool:
    """Whether a linear on ``rows`` gathered rows gives the bits of the same rows of a linear on all."""
    x, w = torch.randn(1, tokens, features), torch.randn(32, features)
    return torch.equal(torch.nn.functional.linear(x[:, :rows], w), torch.nn.functional.linear(x, w)[:, :rows])


def traced(name: str):
    spec = get_tiny_model(name)
    return capture_graph(spec.build().eval(), **spec.make_inputs())


@pytest.mark.parametrize("name, ratio", [("flux", 0.3), ("dit", 0.3), ("wan", 0.5), ("pixart", 0.3)])
def test_partial_rows_are_the_full_computation_of_those_rows(name, ratio):
    gm, example_inputs = traced(name)
    backend = c4d_backend("taylorseer", lowering="eager", token_ratio=ratio)
    backend(gm, example_inputs)
    plan = backend.plan
    model_out, full_values = run_full(backend, example_inputs)
    index = random_rows(plan.token_rows)
    assert all(0 < k < n for n, k in plan.token_rows)
    exact = all(rows_kernel_stable(k, n) for n, k in plan.token_rows)  # wan: 16 of 32 rows

    # the refreshed state holds the full values: the recomputed rows must land on them unchanged
    outs, written = run_with_full_history(backend, VariantKind.PARTIAL, example_inputs, full_values, index)
    for a, b in zip(outs, model_out):
        same(a, b, exact)
    assert set(written) == {refreshed_name(t.feature) for t in plan.partial}
    for t in plan.partial:
        same(written[refreshed_name(t.feature)], full_values[f"{t.feature}@0"], exact)

    # the refreshed state holds zeros: exactly the chosen rows are written, with the full computation's values
    _, written = run_with_full_history(backend, VariantKind.PARTIAL, example_inputs, full_values, index,
                                       torch.zeros_like)
    for t in plan.partial:
        dim, rows = dict(t.body)[t.feature], index[t.tokens]
        got, expected = written[refreshed_name(t.feature)], full_values[f"{t.feature}@0"]
        same(got.index_select(dim, rows), expected.index_select(dim, rows), exact)
        others = torch.ones(t.tokens, dtype=torch.bool)
        others[rows] = False
        assert not got.index_select(dim, others.nonzero()[:, 0]).any()


def test_partial_recomputes_only_the_token_local_branches_on_the_chosen_rows():
    gm, example_inputs = traced("flux")
    backend = c4d_backend("taylorseer", lowering="eager", token_ratio=0.25)
    runtime = backend(gm, example_inputs)
    flops = {k: v.flops.value for k, v in runtime.variants.items()}
    assert flops[VariantKind.CACHED] < flops[VariantKind.PARTIAL] < flops[VariantKind.FULL]
    partial = backend.rewrite.variants[VariantKind.PARTIAL].gm
    assert sum(n.target is torch.index_select for n in partial.graph.nodes) == len(backend.plan.partial)
    assert sum(n.target is torch.index_copy for n in partial.graph.nodes) == len(backend.plan.partial)
    assert not any(n.target is torch.nn.functional.scaled_dot_product_attention for n in partial.graph.nodes)


def test_without_token_subsets_nothing_changes():
    gm, example_inputs = traced("dit")
    backend = c4d_backend("taylorseer", lowering="eager")
    backend(gm, example_inputs)
    assert VariantKind.PARTIAL not in backend.rewrite.variants and not backend.plan.partial
    cached = backend.rewrite.variants[VariantKind.CACHED]
    assert not any(name.endswith(".refreshed") for name in cached.inputs)
    assert not any(n.target is torch.index_copy for n in cached.gm.graph.nodes)
