"""``mask_out = x.masked_fill(m, False)`` on a bool ``x`` exports as an ONNX Where on bool data, which
onnxruntime has no kernel for (HunyuanVideo builds its attention mask so). On bools it is logic:
``x & ~m`` for False, ``x | m`` for True."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx

from ...compiler.passes.graph_utils import tensor_meta


def bool_masked_fill_as_logic(gm: fx.GraphModule, constants: Sequence = ()) -> int:
    count = 0
    for node in list(gm.graph.nodes):
        is_method = node.op == "call_method" and node.target == "masked_fill"
        if not (is_method or (node.op == "call_function" and node.target is torch.masked_fill)):
            continue
        x, mask, value = (*node.args, *node.kwargs.values())[:3]
        meta = tensor_meta(x) if isinstance(x, fx.Node) else None
        if meta is None or meta.dtype is not torch.bool or not isinstance(value, (bool, int)) or value not in (0, 1):
            continue
        with gm.graph.inserting_before(node):
            if value:
                logic = gm.graph.call_function(torch.logical_or, (x, mask))
            else:
                logic = gm.graph.call_function(torch.logical_and, (x, gm.graph.call_function(torch.logical_not,
                                                                                             (mask,))))
        logic.meta = dict(node.meta)
        node.replace_all_uses_with(logic)
        gm.graph.erase_node(node)
        count += 1
    return count
