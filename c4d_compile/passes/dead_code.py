"""Dead-code elimination that also drops writes into dead scratch buffers.

Why: FX keeps every ``setitem`` / in-place call as impure, so a rotary embedding written as
``out = empty_like(q); out[..., 0::2] = ...`` (Wan) keeps the q/k projections of every block alive in
a CACHED variant that no longer reads ``out``. A write is dead when it targets a tensor this graph
freshly allocated and nothing but other writes reads that tensor. Writes into inputs or into views
of other values stay, because their effect is visible elsewhere.
"""

from __future__ import annotations

import torch
import torch.fx as fx

from .graph_utils import is_write

_FRESH = {
    torch.empty, torch.zeros, torch.ones, torch.full, torch.empty_like, torch.zeros_like, torch.ones_like,
    torch.full_like, torch.clone,
}
_FRESH_METHODS = {"clone", "new_empty", "new_zeros", "new_ones", "new_full"}


def _is_fresh(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _FRESH) or (
        node.op == "call_method" and node.target in _FRESH_METHODS
    )


def _is_impure(node: fx.Node) -> bool:
    if is_write(node) and node.args and isinstance(node.args[0], fx.Node):
        target = node.args[0]
        if _is_fresh(target) and all(u is node or (is_write(u) and u.args[0] is target) for u in target.users):
            return False
    return node.is_impure()


def eliminate_dead_code(graph: fx.Graph) -> bool:
    """Remove dead nodes, dead scratch writes included; True if anything changed."""
    return graph.eliminate_dead_code(is_impure_node=_is_impure)
