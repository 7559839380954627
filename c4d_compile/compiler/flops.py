"""FLOP count of a graph at its example shapes, without running real compute.

Runs the graph on fake tensors under ``FlopCounterMode`` (matmuls, attention, convolutions), so
the ideal speedup of a schedule is a ratio of counted work, not of wall time.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cached_property

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily

from ..errors import C4DWarning
from .flop_formulas import flop_counter, formulas
from .passes.graph_utils import size_hint

# namespaces whose attention ops torch or this package count
_COUNTED_NAMESPACES = ("aten", "prims", "c4d", "_c10d_functional", "c10d_functional")


def _dense_attention(query, key, value, score_mod, block_mask, *args, **kwargs):
    """``flex_attention`` counted as the dense attention it computes at most (a block mask only skips work): torch's
    FLOP counter cannot run the flex HOP eagerly (2.13: its autograd path enters a torch-function mode that has no
    implementation for it), so the count runs this in its place; its outputs have the HOP's shapes."""
    heads = query.shape[-3]
    if key.shape[-3] != heads:  # grouped-query attention
        key = key.repeat_interleave(heads // key.shape[-3], dim=-3)
        value = value.repeat_interleave(heads // value.shape[-3], dim=-3)
    scores = query @ key.transpose(-2, -1)
    lse = scores.float().logsumexp(-1)
    return scores.softmax(-1) @ value, lse, lse


def _countable(gm: fx.GraphModule) -> fx.GraphModule:
    """``gm``, or a copy whose ``flex_attention`` calls are ``_dense_attention`` (diffusers' ``"flex"`` backend)."""
    flex = getattr(torch.ops.higher_order, "flex_attention", None)
    if flex is None or not any(n.op == "call_function" and n.target is flex for n in gm.graph.nodes):
        return gm
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in gm.graph.nodes:
        env[node] = copied = graph.node_copy(node, lambda n: env[n])
        if copied.op == "call_function" and copied.target is flex:
            copied.target = _dense_attention
    return fx.GraphModule(gm, graph)


def uncounted_attention(gm: fx.GraphModule) -> list[str]:
    """Attention kernels of other libraries in ``gm`` that no FLOP formula counts (flash-attn, xformers, a kernel
    of one's own registered as a custom op): counted as free, they make an ideal speedup too high."""
    from torch.utils.flop_counter import flop_registry

    known = {_op_name(op) for op in [*flop_registry, *formulas()]}
    found = []
    for node in gm.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, (torch._ops.OpOverload,
                                                                      torch._ops.OpOverloadPacket)):
            continue
        name = _op_name(node.target)
        namespace, _, short = name.partition("::")
        if (namespace not in _COUNTED_NAMESPACES and ("attn" in short.lower() or "attention" in short.lower())
                and name not in known and name not in found):
            found.append(name)
    return found


def _op_name(op) -> str:
    """``namespace::name`` of an op or its overload packet."""
    packet = getattr(op, "overloadpacket", op)
    return getattr(packet, "_qualified_op_name", str(packet))


def _fake(mode: FakeTensorMode, x):
    if isinstance(x, FakeTensor) and any(isinstance(d, torch.SymInt) for d in (*x.shape, *x.stride())):
        # a dynamic graph's symbolic example, counted at its example sizes: made afresh from them, as a symbolic
        # size another mode made (the per-row forecast weights') may not turn static in this one
        with unset_fake_temporarily():
            x = torch.empty_strided([size_hint(d) for d in x.shape], [size_hint(d) for d in x.stride()],
                                    dtype=x.dtype, device=x.device)
    if isinstance(x, torch.Tensor):
        fake = mode.from_tensor(x, static_shapes=True)
        if x.dim() == 0 and not isinstance(x, FakeTensor):
            # a Python float Dynamo made an input (a ControlNet's conditioning scale, a LoRA scale after it changed)
            # is a 0-d tensor read with .item() in the graph: fake, it has no value to read, so it keeps its own
            with unset_fake_temporarily():
                fake.item_memo = x.item()
        return fake
    return size_hint(x) if isinstance(x, torch.SymInt) else x


def count_flops(gm: fx.GraphModule, example_inputs: Sequence) -> int:
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        fakes = [_fake(mode, x) for x in example_inputs]
    counter = flop_counter()
    with mode, counter, torch.no_grad():
        _countable(gm)(*fakes)
    return int(counter.get_total_flops())


class LazyFlops:
    """The FLOP count of a variant, computed the first time someone asks (stats), not at compile time.

    The example inputs are turned into fake tensors right away, so nothing real (activations,
    zero-filled state examples) stays alive for the count.
    """

    def __init__(self, gm: fx.GraphModule, example_inputs: Sequence):
        self._gm = gm
        self._mode = FakeTensorMode(allow_non_fake_inputs=True)
        with self._mode:
            self._examples = [_fake(self._mode, x) for x in example_inputs]

    @cached_property
    def value(self) -> int:
        counter = flop_counter()
        with self._mode, counter, torch.no_grad():
            _countable(self._gm)(*self._examples)
        self._examples = []
        uncounted = uncounted_attention(self._gm)
        if uncounted:
            warnings.warn(f"c4d: no FLOP formula for {', '.join(uncounted)}: the attention it computes counts as "
                          "free, so the ideal speedup is too high (the cached steps skip less than it says); "
                          "measure time instead, or register one (c4d_compile.compiler.flop_formulas.register_formula)",
                          C4DWarning, stacklevel=2)
        return int(counter.get_total_flops())
