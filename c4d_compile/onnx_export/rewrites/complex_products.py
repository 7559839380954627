"""Rotary embeddings written as complex products (QwenImage, Lumina, HiDream):

    view_as_real(view_as_complex(x) * f)          x real (..., 2), f complex, computed from constants only

torch's ONNX exporter has no complex ops. The frequencies ``f`` depend on the model's buffers alone, so
they are evaluated once here (in torch) and stored as a real constant ``(..., 2)``; the product is
written out in real arithmetic, ``(xr fr - xi fi, xr fi + xi fr)`` stacked on a last dim of 2: the same
values, rounding aside. A product whose ``f`` depends on an input is left alone (the export then names it).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
import torch.fx as fx

_MUL = {operator.mul, torch.mul}


def _call(node, targets) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target in targets


def _constant_derived(node: fx.Node, constants: dict[fx.Node, torch.Tensor], memo: dict) -> bool:
    """Computed from constant placeholders and literals only."""
    if node not in memo:
        if node.op == "placeholder":
            memo[node] = node in constants
        elif node.op in ("call_function", "call_method"):
            memo[node] = not node.is_impure() and all(_constant_derived(a, constants, memo)
                                                      for a in node.all_input_nodes)
        else:
            memo[node] = node.op == "get_attr"
    return memo[node]


def _evaluate(gm: fx.GraphModule, target: fx.Node, constants: dict[fx.Node, torch.Tensor]) -> torch.Tensor:
    """The value of a constant-derived node, computed in torch: its ancestors copied into a graph of their own."""
    needed, todo = {target}, [target]
    while todo:
        for parent in todo.pop().all_input_nodes:
            if parent not in needed:
                needed.add(parent)
                todo.append(parent)
    graph, env, inputs = fx.Graph(), {}, []
    for node in gm.graph.nodes:  # graph order is a topological order
        if node not in needed:
            continue
        if node.op == "placeholder":
            env[node] = graph.placeholder(node.name)
            inputs.append(constants[node])
        else:
            env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(env[target])
    with torch.no_grad():
        return fx.GraphModule(gm, graph)(*inputs)


def complex_products_as_real(gm: fx.GraphModule, constants: Sequence = ()) -> int:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    constants = {p: v for p, v in zip(placeholders, constants) if v is not None}
    count, memo = 0, {}
    for node in list(gm.graph.nodes):
        if not _call(node, {torch.view_as_real}) or not _call(node.args[0], _MUL):
            continue
        a, b = node.args[0].args[:2]
        x_complex, freqs = (a, b) if _call(a, {torch.view_as_complex}) else (b, a)
        if not (_call(x_complex, {torch.view_as_complex}) and isinstance(freqs, fx.Node)
                and _constant_derived(freqs, constants, memo)):
            continue
        value = _evaluate(gm, freqs, constants)
        name = f"c4d_real_freqs_{count}"
        gm.register_buffer(name, torch.view_as_real(value).contiguous(), persistent=False)
        graph, x = gm.graph, x_complex.args[0]
        with graph.inserting_before(node):
            real = graph.get_attr(name)
            xr, xi, fr, fi = (graph.call_function(operator.getitem, (v, (Ellipsis, k))) for v, k in
                              ((x, 0), (x, 1), (real, 0), (real, 1)))
            mul, sub, add = operator.mul, operator.sub, operator.add
            re = graph.call_function(sub, (graph.call_function(mul, (xr, fr)), graph.call_function(mul, (xi, fi))))
            im = graph.call_function(add, (graph.call_function(mul, (xr, fi)), graph.call_function(mul, (xi, fr))))
            out = graph.call_function(torch.stack, ([re, im],), {"dim": -1})
        out.meta = dict(node.meta)
        node.replace_all_uses_with(out)
        count += 1
    return count
