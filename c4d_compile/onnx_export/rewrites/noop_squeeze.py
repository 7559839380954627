"""``squeeze(d)`` of a dim whose size is not 1 returns its input unchanged in torch; ONNX's Squeeze rejects
it at shape inference (PixArt squeezes a dim of 16 tokens). The squeeze keeps only its dims of size 1 and
disappears when none is left."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx

from ...compiler.passes.graph_utils import tensor_meta


def _squeeze_dims(node: fx.Node) -> tuple[fx.Node, tuple[int, ...]] | None:
    is_method = node.op == "call_method" and node.target == "squeeze"
    if not (is_method or (node.op == "call_function" and node.target is torch.squeeze)):
        return None
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dims is None:
        return None  # squeeze() of every size-1 dim: ONNX does the same
    return node.args[0], tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)


def drop_noop_squeeze(gm: fx.GraphModule, constants: Sequence = ()) -> int:
    count = 0
    for node in list(gm.graph.nodes):
        found = _squeeze_dims(node)
        if found is None:
            continue
        source, dims = found
        meta = tensor_meta(source) if isinstance(source, fx.Node) else None
        if meta is None or not all(isinstance(d, int) for d in meta.shape):
            continue
        rank = len(meta.shape)
        kept = tuple(d for d in dims if meta.shape[d % rank] == 1)
        if kept == dims:
            continue
        count += 1
        if kept:
            node.args, node.kwargs = (source, kept), {}
        else:
            node.replace_all_uses_with(source)
            gm.graph.erase_node(node)
    return count
