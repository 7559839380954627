"""Feature shapes of a call when Dynamo traced the graph with dynamic sizes.

After a resolution or batch change Dynamo recompiles with symbolic sizes and passes each size as
an int argument. A cache state is created at the size of the call that creates it, so the shapes
of the cached features are evaluated from those arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.fx as fx

from .passes.graph_utils import example_value


def state_shape_resolver(gm: fx.GraphModule, feature_names: list[str]) -> Callable[[tuple], list[tuple[int, ...]]]:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    symbols = {}
    for pos, node in enumerate(placeholders):
        value = example_value(node)
        if isinstance(value, torch.SymInt) and value.node.expr.is_Symbol:
            symbols[value.node.expr] = pos
    by_name = {n.name: n for n in gm.graph.nodes}
    shapes = [tuple(example_value(by_name[name]).shape) for name in feature_names]
    if all(isinstance(d, int) for shape in shapes for d in shape):
        static = [tuple(shape) for shape in shapes]
        return lambda args: static

    def resolve(args: tuple) -> list[tuple[int, ...]]:
        values = {sym: args[pos] for sym, pos in symbols.items()}
        return [
            tuple(d if isinstance(d, int) else int(d.node.expr.xreplace(values)) for d in shape) for shape in shapes
        ]

    return resolve
