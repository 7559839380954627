"""Dead-code elimination that also drops writes into dead scratch buffers and dead collectives.

Why: FX keeps every ``setitem`` / in-place call as impure, so a rotary embedding written as
``out = empty_like(q); out[..., 0::2] = ...`` (Wan) keeps the q/k projections of every block alive in
a CACHED variant that no longer reads ``out``. A write is dead when it targets a tensor this graph
freshly allocated and nothing but other writes reads that tensor. Writes into inputs or into views
of other values stay, because their effect is visible elsewhere.

Likewise FX keeps every ``wait_tensor`` of a functional collective (context parallelism: Ulysses'
all-to-all, the all-gathers), and through it the collective and every block that feeds it: a cached
step of a context-parallel model would save nothing. A functional collective returns a new tensor
and has no other effect, so a collective whose result only dead waits read is dead, and so are those
waits. Skipping it is safe only if every rank skips it: the graphs are the same on every rank and so
is this rule, and ``check_collectives`` compares what each variant keeps across ranks.

FX does not know that functorch's level calls have an effect: a ``vmap`` traced into the graph (flex attention's
block mask, built by ``create_block_mask``, when diffusers' ``"flex"`` attention backend is set) enters and leaves
its level with ``_vmap_increment_nesting`` / ``_vmap_decrement_nesting``, whose results nothing reads. Removed
while ops inside the level stay (a write into the mask keeps them), those ops run at a level that is not there:
functorch raises. So they always stay; an empty level costs nothing.

And FX keeps every op tagged ``nondeterministic_seeded`` (it may draw from the RNG), among them the
attention kernels that take a dropout probability (``_scaled_dot_product_flash_attention``, which
diffusers' flash and ring attention call): with ``dropout_p == 0`` such a call draws nothing and is
as pure as a matmul, so it goes with the block that no longer reads it.
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


def is_collective(node: fx.Node) -> bool:
    """A functional collective or its wait (``torch.ops._c10d_functional``)."""
    if node.op != "call_function":
        return False
    target = node.target  # an OpOverloadPacket in Dynamo's graphs, an OpOverload after decomposition
    return isinstance(target, (torch._ops.OpOverloadPacket, torch._ops.OpOverload)) and str(target).startswith(
        "_c10d_functional.")


def _dead_wait(node: fx.Node) -> bool:
    """A wait whose collective's result is read by nothing but waits that nothing reads."""
    if not (is_collective(node) and node.args and isinstance(node.args[0], fx.Node)):
        return False
    return all(is_collective(u) and not u.users for u in node.args[0].users)


def _draws_nothing(node: fx.Node) -> bool:
    """A seeded op called with a dropout probability of zero (inference attention)."""
    target = node.target
    overload = getattr(target, "default", target)  # Dynamo's graphs hold the packet
    schema = getattr(overload, "_schema", None)
    if not getattr(overload, "_nondeterministic_seeded", False) or schema is None:
        return False
    for index, argument in enumerate(schema.arguments):
        if argument.name == "dropout_p":
            value = node.args[index] if index < len(node.args) else node.kwargs.get("dropout_p",
                                                                                  argument.default_value)
            return value == 0
    return False


def is_functorch_level(node: fx.Node) -> bool:
    """``_vmap_increment_nesting`` and its kin (``torch._functorch.predispatch``, ``torch._C._functorch``)."""
    name = getattr(node.target, "__name__", "")
    return (node.op == "call_function" and name.endswith(("_increment_nesting", "_decrement_nesting"))
            and "functorch" in (getattr(node.target, "__module__", None) or ""))


def _is_impure(node: fx.Node) -> bool:
    if is_functorch_level(node):
        return True
    if is_collective(node):  # a collective goes with its waits; a wait stays while its result is read
        return "wait_tensor" in str(node.target) and not _dead_wait(node)
    if is_write(node) and node.args and isinstance(node.args[0], fx.Node):
        target = node.args[0]
        if _is_fresh(target) and all(u is node or (is_write(u) and u.args[0] is target) for u in target.users):
            return False
    if node.op == "call_function" and _draws_nothing(node):
        return node.is_impure(impure_random=False)
    return node.is_impure()


def eliminate_dead_code(graph: fx.Graph) -> bool:
    """Remove dead nodes, dead scratch writes included; True if anything changed."""
    return graph.eliminate_dead_code(is_impure_node=_is_impure)
