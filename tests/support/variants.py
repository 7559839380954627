"""Run one variant of a plan by hand, with named inputs made from a FULL call's own values."""

from __future__ import annotations

import torch

from c4d_compile.inspect_model import trace
from c4d_compile.runtime.state_names import WEIGHTS, history_names, refreshed_name, token_index_name
from c4d_compile.runtime.step_program import VariantKind

# a gemm on a few rows may take another kernel than on all of them: the last bit moves
ROUNDING = {"rtol": 2e-6, "atol": 2e-6}


def capture_graph(model, **inputs) -> tuple:
    """The one Dynamo graph of ``model`` on ``inputs``, and its example inputs."""
    (captured,) = trace(model, inputs, fullgraph=True)
    return captured


def run_full(backend, example_inputs) -> tuple[list, dict]:
    """The FULL variant's model outputs and its named values."""
    full = backend.rewrite.variants[VariantKind.FULL]
    with torch.no_grad():
        outs = full.gm(*example_inputs)
    return list(outs[: full.num_outputs]), dict(zip(full.outputs, outs[full.num_outputs:]))


def run_with_full_history(backend, kind: VariantKind, example_inputs, full_values: dict, index: dict,
                          refreshed=lambda value: value) -> tuple[list, dict]:
    """Run ``kind`` with every history slot holding the full call's feature, weights (1, 0, ...): its forecast
    is that feature exactly. ``index``: rows per token space; ``refreshed`` makes the refreshed state."""
    plan, variant = backend.plan, backend.rewrite.variants[kind]
    values = {}
    for f in plan.features:
        newest = full_values[history_names(f, 1)[0]]
        values.update(dict.fromkeys(history_names(f, plan.num_slots), newest))
        values[refreshed_name(f.name)] = refreshed(newest)
    values[WEIGHTS] = torch.tensor([1.0] + [0.0] * (plan.num_slots - 1))
    values.update({token_index_name(n): i for n, i in index.items()})
    with torch.no_grad():
        outs = variant.gm(*example_inputs, *(values[name] for name in variant.inputs))
    return list(outs[: variant.num_outputs]), dict(zip(variant.outputs, outs[variant.num_outputs:]))


def random_rows(token_rows, seed: int = 1) -> dict[int, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.randperm(n, generator=generator)[:k].sort().values for n, k in token_rows}
