"""What a variant is: its graph and its named inputs and outputs (the rewrite passes are in ``rewrite.py``).

Every variant is an ordinary GraphModule with an explicit signature, never mutating its inputs:

    (*model_inputs, *named_inputs) -> (*model_outputs, *named_outputs)

Named inputs are state tensors (by their state-spec name) and host inputs (``weights``: the forecast
weights of the step, a 1-D float32 tensor); named outputs are state tensors the variant writes. The
Runtime resolves the names, so it never needs to know which kind of variant it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx

from ...runtime.step_program import VariantKind


@dataclass(frozen=True)
class Variant:
    kind: VariantKind
    gm: fx.GraphModule
    num_outputs: int  # the model's own outputs come first
    inputs: tuple[str, ...]  # named inputs after the model's own, in order
    outputs: tuple[str, ...]  # named outputs after the model's own, in order


def placeholder_name(name: str) -> str:
    """The placeholder of a named input in a variant's graph."""
    return "c4d_" + name.replace("@", "_at_").replace(".", "_")


def add_named_inputs(graph: fx.Graph, names: list[str]) -> dict[str, fx.Node]:
    """Placeholders after the model's own, in the order given."""
    last = [n for n in graph.nodes if n.op == "placeholder"][-1]
    nodes: dict[str, fx.Node] = {}
    for name in names:
        with graph.inserting_after(last):
            last = nodes[name] = graph.placeholder(placeholder_name(name))
    return nodes

