"""Follow one dim of a stream value through a block's ops: where it sits in every value it reaches,
or where and why it stops.

Why: token-subset caching (ClusCa, ToCa, DuCa) recomputes a branch for a few token rows. That is
the full computation, row for row, exactly when every op on the way treats the token dim like a
batch dim: pointwise ops, linears and norms over the channels, modulation broadcasts, views and
permutes that keep it whole. Attention over it mixes tokens; a linear, norm or reduction over it
contracts it; an invariant input indexed by it (a per-token table such as rotary angles) would
have to be gathered too; a slice or concatenation along it changes which row is which. An op
without a rule stops the flow: not proven is not local.

Two modes: ``local=True`` (the token-locality proof) stops at everything above; ``local=False``
(the layout: where the dim went) follows through attention (noting it), slices and concatenations
along the dim, and does not inspect invariant operands.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F

from .graph_utils import tensor_meta


class Why(str, enum.Enum):
    ATTENDS = "attention over it mixes tokens"
    CONTRACTS = "contracts it"
    ROWS = "changes which row is which"
    TABLE = "reads an invariant indexed by it"
    UNKNOWN = "has no token rule"


@dataclass(frozen=True)
class Stopped:
    why: Why
    node: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.node} {self.detail or self.why.value}"


@dataclass
class Flow:
    positions: dict[fx.Node, int]  # the dim's index in each value it reached
    stops: dict[fx.Node, Stopped]  # values it reached through an op that stops it, and the first such op
    attended: list[fx.Node]  # attentions that ran over it (the layout mode follows through them)


def follow(nodes: Iterable[fx.Node], seeds: dict[fx.Node, int], *, local: bool = True) -> Flow:
    """Follow the dim given per seed value through ``nodes`` (graph order). Values that read no
    followed value are invariants; a value reading a stopped one is stopped by the same op."""
    flow = Flow(dict(seeds), {}, [])
    for node in nodes:
        if node in seeds:
            continue
        inputs = node.all_input_nodes
        stopped = next((flow.stops[a] for a in inputs if a in flow.stops), None)
        # the layout follows on where another operand still carries the dim (a residual add after an op without a rule)
        if stopped is not None and (local or not any(a in flow.positions for a in inputs)):
            flow.stops[node] = stopped
            continue
        if not any(a in flow.positions for a in inputs):
            continue
        rule = _rule(node)
        if any(_symbolic(n) for n in (node, *inputs)):  # comparing symbolic sizes would add guards to the graph
            result = _stop(node, Why.UNKNOWN, f"({_op_name(node)}) has sizes that vary between calls")
        else:
            result = rule(node, flow.positions, local) if rule is not None else _stop(node, Why.UNKNOWN)
        if isinstance(result, Stopped) and result.why is Why.ATTENDS and not local:
            flow.attended.append(node)
            result = flow.positions[_arg(node, 0, "query")] if _arg(node, 0, "query") in flow.positions else result
        if isinstance(result, Stopped):
            flow.stops[node] = result
        elif result is not None:
            flow.positions[node] = result
    return flow


def _op_name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))


def _stop(node: fx.Node, why: Why, detail: str = "") -> Stopped:
    return Stopped(why, node.name, detail or f"({_op_name(node)}) {why.value}")


def _symbolic(node: fx.Node) -> bool:
    meta = tensor_meta(node)
    return meta is not None and not all(isinstance(d, int) for d in meta.shape)


def _shape(value) -> tuple[int, ...] | None:
    meta = tensor_meta(value) if isinstance(value, fx.Node) else None
    return tuple(meta.shape) if meta is not None else None


def _arg(node: fx.Node, index: int, name: str, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _norm(dim: int, rank: int) -> int:
    return dim % rank if rank else 0


def _pointwise(node: fx.Node, pos: dict, local: bool):
    """Broadcasting ops: every followed operand must put the dim in the same output place; an
    invariant operand must broadcast along it (size 1 or absent)."""
    out = _shape(node)
    if out is None:
        return _stop(node, Why.UNKNOWN)
    rank = len(out)
    operands = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node)]
    places = {pos[a] + rank - len(_shape(a) or ()) for a in operands if a in pos}
    if len(places) != 1:
        return _stop(node, Why.ROWS, f"({_op_name(node)}) combines the token dim of two values at different places")
    place = places.pop()
    if local:
        for a in operands:
            shape = _shape(a)
            if a in pos or shape is None:
                continue
            at = place - (rank - len(shape))
            if at >= 0 and shape[at] != 1:
                return _stop(node, Why.TABLE, f"({_op_name(node)}) reads {a.name}, which is indexed by the token dim")
    return place


def _first(node: fx.Node, pos: dict, local: bool):
    """Casts, copies and ops whose other arguments are options: the value keeps its layout."""
    first = node.args[0] if node.args else None
    return pos.get(first) if isinstance(first, fx.Node) else None


def _dropout(node: fx.Node, pos: dict, local: bool):
    p, training = _arg(node, 1, "p", 0.5), _arg(node, 2, "training", True)
    if training and p:
        return _stop(node, Why.UNKNOWN, "(dropout) draws at random in training mode")
    return _first(node, pos, local)


def _contracts_last(count: Callable[[fx.Node], int]):
    """Linears (the last dim) and norms (their normalized dims): the other dims are batch dims."""
    def rule(node: fx.Node, pos: dict, local: bool):
        x = node.args[0]
        if any(a in pos for a in node.all_input_nodes if a is not x):
            return _stop(node, Why.UNKNOWN, f"({_op_name(node)}) has a stream-dependent weight")
        rank = len(_shape(x) or ())
        return _stop(node, Why.CONTRACTS) if pos[x] >= rank - count(node) else pos[x]
    return rule


def _normalized_dims(node: fx.Node) -> int:
    shape = _arg(node, 1, "normalized_shape")
    return len(shape) if isinstance(shape, (tuple, list)) else 1


def _reduction(node: fx.Node, pos: dict, local: bool):
    x = node.args[0]
    rank = len(_shape(x) or ())
    dims = _arg(node, 1, "dim")
    if dims is None:
        return _stop(node, Why.CONTRACTS, f"({_op_name(node)}) reduces every dim")
    dims = {_norm(d, rank) for d in (dims if isinstance(dims, (tuple, list)) else (dims,))}
    if pos[x] in dims:
        return _stop(node, Why.CONTRACTS)
    keep = _arg(node, 2, "keepdim", False)
    return pos[x] if keep else pos[x] - sum(d < pos[x] for d in dims)


def _softmax(node: fx.Node, pos: dict, local: bool):
    x = node.args[0]
    return _stop(node, Why.CONTRACTS) if _norm(_arg(node, 1, "dim"), len(_shape(x))) == pos[x] else pos[x]


def _by_shapes(node: fx.Node, pos: dict, local: bool):
    """Views, reshapes, flattens, unflattens, squeezes: the dim survives when the sizes before it
    multiply to the same number and it keeps its size."""
    x = node.args[0]
    before, after = _shape(x), _shape(node)
    if before is None or after is None:
        return _stop(node, Why.UNKNOWN)
    p = pos[x]
    lead, size = math.prod(before[:p]), before[p]
    for j in range(len(after)):
        if math.prod(after[:j]) == lead and after[j] == size:
            if size == 1 and j < len(after) - 1 and after[j + 1] == 1:
                continue  # ambiguous among size-1 dims: take the last
            return j
    return _stop(node, Why.ROWS, f"({_op_name(node)}) splits or merges the token dim")


def _unsqueeze(node: fx.Node, pos: dict, local: bool):
    x = node.args[0]
    d = _norm(_arg(node, 1, "dim"), len(_shape(x)) + 1)
    return pos[x] + (d <= pos[x])


def _permute(node: fx.Node, pos: dict, local: bool):
    x = node.args[0]
    rank = len(_shape(x))
    dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
    if not dims:
        dims = _arg(node, 1, "dims")
    return [_norm(d, rank) for d in dims].index(pos[x])


def _transpose(node: fx.Node, pos: dict, local: bool):
    x = node.args[0]
    rank = len(_shape(x))
    a, b = _norm(_arg(node, 1, "dim0"), rank), _norm(_arg(node, 2, "dim1"), rank)
    return {a: b, b: a}.get(pos[x], pos[x])


def _splits(dim_index: int):
    """chunk / split / unbind: each piece keeps the dim unless the split is along it."""
    def rule(node: fx.Node, pos: dict, local: bool):
        x = node.args[0]
        rank = len(_shape(x))
        d = _norm(_arg(node, dim_index, "dim", 0), rank)
        if d == pos[x]:
            if _op_name(node) == "unbind" or local:
                return _stop(node, Why.ROWS, f"({_op_name(node)}) splits along the token dim")
            return pos[x]
        return pos[x] - (d < pos[x]) if _op_name(node) == "unbind" else pos[x]
    return rule


def _getitem(node: fx.Node, pos: dict, local: bool):
    source, index = node.args
    if _shape(source) is None:  # an element of a chunk / split / unbind: the pieces' position
        return pos[source]
    rank, p = len(_shape(source)), pos[source]
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, fx.Node) or i is Ellipsis and index.count(Ellipsis) > 1 for i in index):
        return _stop(node, Why.UNKNOWN, "(getitem) indexes with a tensor")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        taken = sum(i is not None for i in index if i is not Ellipsis)
        index = index[:at] + (slice(None),) * (rank - taken) + index[at + 1:]
    dim, out = 0, 0  # the input dim an index item reads, the output dims made so far
    for item in index:
        if item is None:
            out += 1
            continue
        if dim == p:
            if isinstance(item, int):
                return _stop(node, Why.ROWS, "(getitem) takes one token")
            if item != slice(None) and local:
                return _stop(node, Why.ROWS, "(getitem) slices the token dim")
            return out
        out += not isinstance(item, int)
        dim += 1
    return out + (p - dim)


def _cat(node: fx.Node, pos: dict, local: bool):
    values = _arg(node, 0, "tensors")
    out = _shape(node)
    d = _norm(_arg(node, 1, "dim", 0), len(out))
    places = {pos[v] for v in values if v in pos}
    if len(places) != 1:
        return _stop(node, Why.ROWS, "(cat) joins values with the token dim at different places")
    place = places.pop()
    if local and d == place:
        return _stop(node, Why.ROWS, "(cat) concatenates along the token dim")
    if local and any(v not in pos and (_shape(v) or (1,) * len(out))[place] != 1 for v in values):
        return _stop(node, Why.TABLE, "(cat) joins an invariant indexed by the token dim")
    return place


def _stack(node: fx.Node, pos: dict, local: bool):
    values = _arg(node, 0, "tensors")
    places = {pos[v] for v in values if v in pos}
    if len(places) != 1 or (local and any(v not in pos for v in values)):
        return _stop(node, Why.ROWS, "(stack) joins values that do not all carry the token dim")
    place = places.pop()
    d = _norm(_arg(node, 1, "dim", 0), len(_shape(node)))
    return place + (d <= place)


def _attention(node: fx.Node, pos: dict, local: bool):
    q, k, v = (_arg(node, i, name) for i, name in enumerate(("query", "key", "value")))
    mask = _arg(node, 3, "attn_mask")
    rank = len(_shape(q))
    if isinstance(mask, fx.Node) and mask in pos:
        return _stop(node, Why.UNKNOWN, "(attention) has a stream-dependent mask")
    if any(t in pos and pos[t] == rank - 2 for t in (k, v)):
        return _stop(node, Why.ATTENDS)
    if any(t in pos and pos[t] == rank - 1 for t in (q, k, v)):
        return _stop(node, Why.CONTRACTS, "(attention) contracts it as a channel")
    places = {pos[t] for t in (q, k, v) if t in pos}
    if len(places) != 1:
        return _stop(node, Why.ROWS, "(attention) reads the token dim at different places")
    return places.pop()


def _expand(node: fx.Node, pos: dict, local: bool):
    x = node.args[0]
    before, after = _shape(x), _shape(node)
    place = pos[x] + len(after) - len(before)
    return place if after[place] == before[pos[x]] else _stop(node, Why.ROWS, "(expand) expands the token dim")


_POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow, operator.floordiv,
    torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.pow, torch.where, torch.rsqrt, torch.sqrt,
    torch.exp, torch.sin, torch.cos, torch.sigmoid, torch.tanh, torch.abs, torch.clamp, torch.clip, torch.erf,
    torch.square, torch.relu, torch.log, torch.maximum, torch.minimum,
    F.gelu, F.silu, F.relu, F.mish, F.softplus, F.sigmoid, F.tanh,
}
_POINTWISE_METHODS = {
    "add", "sub", "mul", "div", "neg", "pow", "sqrt", "rsqrt", "exp", "sin", "cos", "sigmoid", "tanh",
    "abs", "clamp", "clip", "masked_fill", "square", "relu", "log",
}
_FIRST_METHODS = {"float", "half", "bfloat16", "double", "to", "type_as", "contiguous", "clone", "detach"}
_LIKE = {torch.empty_like, torch.zeros_like, torch.ones_like}  # a new value laid out like the input
_FUNCTIONS: dict[object, Callable] = {
    F.linear: _contracts_last(lambda n: 1),
    F.layer_norm: _contracts_last(_normalized_dims),
    torch.rms_norm: _contracts_last(_normalized_dims),
    F.rms_norm: _contracts_last(_normalized_dims),
    F.dropout: _dropout,
    F.softmax: _softmax, torch.softmax: _softmax,
    F.scaled_dot_product_attention: _attention,
    torch.mean: _reduction, torch.sum: _reduction, torch.amax: _reduction,
    torch.reshape: _by_shapes, torch.flatten: _by_shapes, torch.squeeze: _by_shapes,
    torch.unsqueeze: _unsqueeze, torch.permute: _permute, torch.transpose: _transpose,
    torch.chunk: _splits(2), torch.split: _splits(2), torch.unbind: _splits(1),
    operator.getitem: _getitem, torch.cat: _cat, torch.concat: _cat, torch.stack: _stack,
    **{f: _pointwise for f in _POINTWISE_FUNCTIONS}, **{f: _first for f in _LIKE},
}
_METHODS: dict[str, Callable] = {
    "view": _by_shapes, "reshape": _by_shapes, "flatten": _by_shapes, "unflatten": _by_shapes,
    "squeeze": _by_shapes, "unsqueeze": _unsqueeze, "permute": _permute, "transpose": _transpose,
    "chunk": _splits(2), "split": _splits(2), "split_with_sizes": _splits(2), "unbind": _splits(1),
    "mean": _reduction, "sum": _reduction, "amax": _reduction, "softmax": _softmax, "expand": _expand,
    **{m: _pointwise for m in _POINTWISE_METHODS}, **{m: _first for m in _FIRST_METHODS},
}


def mutates(node: fx.Node) -> bool:
    """An in-place op: what it writes is invisible to a walk along inputs, so no proof may pass it."""
    if node.op == "call_method":
        return node.target.endswith("_") and not node.target.startswith("__")
    return node.op == "call_function" and node.target in (operator.setitem, operator.iadd, operator.imul)


def _rule(node: fx.Node) -> Callable | None:
    if node.op == "call_method":
        return _METHODS.get(node.target)
    if node.op == "call_function":
        return _FUNCTIONS.get(node.target)
    return None


def reshape_sizes(node: fx.Node, positions: dict[fx.Node, int], rows: int) -> tuple | None:
    """The size arguments of a view/reshape/expand method in the body with the token dim's size
    replaced by ``rows`` (None for any other node). The token dim's place in the output is where the
    flow put it; an explicit -1 stays. (Other sized ops the flow lets through, such as unflatten, only
    size dims other than the token dim.)"""
    if node.op != "call_method" or node.target not in ("view", "reshape", "expand"):
        return None
    sizes = list(node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:])
    place = positions[node]
    if sizes[place] != -1:
        sizes[place] = rows
    return tuple(sizes)


def stream_layout(nodes: Sequence[fx.Node], value: fx.Node) -> tuple[int, ...]:
    """The dims of ``value`` that an attention in ``nodes`` runs over: its token dims."""
    rank = len(_shape(value) or ())
    return tuple(p for p in range(rank) if follow(nodes, {value: p}, local=False).attended)
