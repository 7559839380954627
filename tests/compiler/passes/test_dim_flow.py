"""dim_flow on graphs written op by op: where the token dim sits in every value it reaches, which op stops it and
why in each mode, the size arguments a partial graph rewrites, the token dims an attention reveals — and the
values it must leave alone (invariants, sizes that vary between calls)."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

from c4d_compile.compiler.passes.dim_flow import Why, follow, mutates, reshape_sizes, stream_layout

B, N, C = 2, 6, 8  # batch, tokens, channels: the token dim of the stream is dim 1


class Builder:
    """A graph written op by op. Each node's value is computed as it is added and kept as its example value,
    as Dynamo keeps one on every node it records (the passes read shapes from it)."""

    def __init__(self):
        self.graph = fx.Graph()

    def input(self, name: str, value) -> fx.Node:
        node = self.graph.placeholder(name)
        node.meta["val"] = value
        return node

    def fn(self, target, *args, **kwargs) -> fx.Node:
        return self._add("call_function", target, args, kwargs)

    def method(self, name: str, *args, **kwargs) -> fx.Node:
        return self._add("call_method", name, args, kwargs)

    def _add(self, op: str, target, args: tuple, kwargs: dict) -> fx.Node:
        values = fx.node.map_arg((args, kwargs), lambda n: n.meta["val"])
        node = self.graph.create_node(op, target, args, kwargs)
        a, k = values
        node.meta["val"] = target(*a, **k) if op == "call_function" else getattr(a[0], target)(*a[1:], **k)
        return node

    @property
    def nodes(self) -> list[fx.Node]:
        return list(self.graph.nodes)


def stream() -> tuple[Builder, fx.Node]:
    g = Builder()
    return g, g.input("x", torch.randn(B, N, C))


def test_a_token_local_mlp_keeps_the_dim_at_its_place_and_leaves_the_invariants_alone():
    g, x = stream()
    w1, w2 = g.input("w1", torch.randn(2 * C, C)), g.input("w2", torch.randn(C, 2 * C))
    shift = g.input("shift", torch.randn(B, C))  # a modulation vector per sample: broadcast over the tokens
    normed = g.fn(F.layer_norm, x, (C,))
    up = g.fn(F.linear, normed, w1)
    act = g.fn(F.gelu, up)
    down = g.fn(F.linear, act, w2)
    mod = g.fn(operator.getitem, shift, (slice(None), None))
    scaled = g.fn(operator.mul, down, mod)
    out = g.fn(operator.add, x, scaled)
    flow = follow(g.nodes, {x: 1})
    assert flow.positions == {x: 1, normed: 1, up: 1, act: 1, down: 1, scaled: 1, out: 1}  # not the weights, mod
    assert flow.stops == {} and flow.attended == []


def test_a_graph_that_never_reads_the_seed_is_left_as_it_is():
    g, x = stream()
    y = g.input("y", torch.randn(B, N, C))
    relu = g.fn(torch.relu, y)
    g.fn(torch.roll, relu, 1, 1)  # an op without a rule: it stops only what reaches it
    for local in (True, False):
        flow = follow(g.nodes, {x: 1}, local=local)
        assert flow.positions == {x: 1} and flow.stops == {} and flow.attended == []


def _mean(g, x):
    return g.method("mean", x, dim=1, keepdim=True)


def _softmax(g, x):
    return g.fn(F.softmax, x, dim=1)


def _token_linear(g, x):
    return g.fn(F.linear, g.method("transpose", x, 1, 2), g.input("w", torch.randn(N, N)))


def _table(g, x):
    return g.fn(operator.mul, x, g.input("angles", torch.randn(N, 1)))


def _roll(g, x):
    return g.method("roll", x, 1, 1)


def _cat(g, x):
    return g.fn(torch.cat, [x, g.input("text", torch.randn(B, 3, C))], dim=1)


def _slice(g, x):
    return g.fn(operator.getitem, x, (slice(None), slice(None, 3)))


def _one_token(g, x):
    return g.fn(operator.getitem, x, (slice(None), 0))


def _merge(g, x):
    return g.method("view", x, B * N, C)


def _dropout(g, x):
    return g.fn(F.dropout, x, 0.1, True)


def _expand(g, x):
    return g.method("expand", g.fn(operator.getitem, x, (slice(None), slice(None, 1))), B, N, C)


# (op, why in the token-locality proof, what its message says, the layout mode's position or None where it stops too)
STOPS = [
    (_mean, Why.CONTRACTS, "(mean) contracts it", None),
    (_softmax, Why.CONTRACTS, "(softmax) contracts it", None),
    (_token_linear, Why.CONTRACTS, "(linear) contracts it", None),
    (_table, Why.TABLE, "reads angles, which is indexed by the token dim", 1),
    (_roll, Why.UNKNOWN, "(roll) has no token rule", None),
    (_cat, Why.ROWS, "(cat) concatenates along the token dim", 1),
    (_slice, Why.ROWS, "(getitem) slices the token dim", 1),
    (_one_token, Why.ROWS, "(getitem) takes one token", None),
    (_merge, Why.ROWS, "(view) splits or merges the token dim", None),
    (_dropout, Why.UNKNOWN, "(dropout) draws at random in training mode", None),
    (_expand, Why.ROWS, "(getitem) slices the token dim", None),  # the layout: (expand) expands the token dim
]


@pytest.mark.parametrize("build,why,detail,layout", STOPS, ids=[s[0].__name__.strip("_") for s in STOPS])
def test_an_op_that_mixes_contracts_or_reorders_tokens_stops_the_proof(build, why, detail, layout):
    g, x = stream()
    last = build(g, x)
    stop = follow(g.nodes, {x: 1}).stops[last]
    assert stop.why is why and detail in str(stop) and last not in follow(g.nodes, {x: 1}).positions
    flow = follow(g.nodes, {x: 1}, local=False)
    assert flow.positions.get(last) == layout and (last in flow.stops) == (layout is None)


def test_the_layout_mode_says_why_an_expand_of_one_token_stops():
    g, x = stream()
    last = _expand(g, x)
    assert str(follow(g.nodes, {x: 1}, local=False).stops[last]) == "expand (expand) expands the token dim"


def test_a_value_reading_a_stopped_one_is_stopped_by_the_same_op_unless_the_layout_still_carries_the_dim():
    g, x = stream()
    rolled = _roll(g, x)
    relu = g.fn(torch.relu, rolled)
    residual = g.fn(operator.add, x, relu)
    local = follow(g.nodes, {x: 1})
    assert local.stops[relu] is local.stops[rolled] is local.stops[residual] and local.stops[relu].node == "roll"
    layout = follow(g.nodes, {x: 1}, local=False)
    assert relu in layout.stops and layout.positions[residual] == 1  # x still carries it into the add


def _attention(g, x, mask=None):
    heads = g.method("transpose", g.method("view", x, B, N, 2, C // 2), 1, 2)  # B, heads, N, head dim
    return g.fn(F.scaled_dot_product_attention, heads, heads, heads, attn_mask=mask)


def test_attention_over_the_tokens_stops_the_proof_and_the_layout_follows_it_through():
    g, x = stream()
    attn = _attention(g, x)
    local = follow(g.nodes, {x: 1})
    assert local.stops[attn].why is Why.ATTENDS and local.attended == []
    layout = follow(g.nodes, {x: 1}, local=False)
    assert layout.positions[attn] == 2 and layout.attended == [attn] and not layout.stops


def test_an_attention_mask_made_from_the_stream_has_no_rule():
    g, x = stream()
    mask = g.fn(operator.getitem, g.method("sum", x, dim=2), (slice(None), None, slice(None), None))
    mask = g.method("expand", mask, B, 2, N, N)  # an additive mask: a bias per key token
    attn = _attention(g, x, mask)
    assert "stream-dependent mask" in str(follow(g.nodes, {x: 1}, local=False).stops[attn])


# ops that move the dim or keep it: (build, the dim's place in the result)
MOVES = [
    (lambda g, x: g.method("permute", x, 0, 2, 1), 2),
    (lambda g, x: g.fn(torch.permute, x, (2, 1, 0)), 1),
    (lambda g, x: g.method("transpose", x, 0, 1), 0),
    (lambda g, x: g.method("unsqueeze", x, 0), 2),
    (lambda g, x: g.method("unsqueeze", x, -1), 1),
    (lambda g, x: g.method("unflatten", x, -1, (2, C // 2)), 1),
    (lambda g, x: g.method("flatten", g.method("unsqueeze", x, 0), 0, 1), 1),
    (lambda g, x: g.fn(operator.getitem, g.method("chunk", x, 2, dim=-1), 1), 1),
    (lambda g, x: g.fn(operator.getitem, g.method("unbind", x, 0), 1), 0),
    (lambda g, x: g.method("sum", x, dim=0), 0),
    (lambda g, x: g.method("sum", x, dim=0, keepdim=True), 1),
    (lambda g, x: g.method("amax", x, dim=-1), 1),
    (lambda g, x: g.fn(F.softmax, x, dim=-1), 1),
    (lambda g, x: g.fn(torch.stack, [x, x], dim=0), 2),
    (lambda g, x: g.method("expand", g.method("unsqueeze", x, 0), 3, B, N, C), 2),
    (lambda g, x: g.fn(operator.getitem, x, (None, Ellipsis, slice(None, 4))), 2),
    (lambda g, x: g.fn(torch.zeros_like, x), 1),
    (lambda g, x: g.method("to", x, torch.float64), 1),
    (lambda g, x: g.fn(F.dropout, x, 0.1, False), 1),
    (lambda g, x: g.fn(F.rms_norm, x, (C,)), 1),
]


@pytest.mark.parametrize("build,place", MOVES, ids=[str(i) for i in range(len(MOVES))])
def test_views_permutes_splits_and_reductions_over_other_dims_move_the_dim_where_the_value_has_it(build, place):
    g, x = stream()
    last = build(g, x)
    flow = follow(g.nodes, {x: 1})
    assert flow.positions[last] == place and not flow.stops
    assert last.meta["val"].shape[place] == N  # the place holds the token count


def test_sizes_that_vary_between_calls_are_not_compared():
    env = ShapeEnv()
    dynamic = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.STATIC, DimDynamic.DYNAMIC, DimDynamic.STATIC])
    fake = FakeTensorMode(shape_env=env).from_tensor(torch.randn(B, N, C), symbolic_context=dynamic)
    g = Builder()
    x = g.input("x", fake)
    relu = g.fn(torch.relu, x)
    stop = follow(g.nodes, {x: 1}).stops[relu]
    assert stop.why is Why.UNKNOWN and "sizes that vary between calls" in stop.detail and not env.guards


def test_in_place_writes_are_told_apart_from_their_out_of_place_twins():
    g, x = stream()
    cases = {
        g.method("add_", x, 1.0): True, g.fn(operator.setitem, x, 0, 0.0): True, g.fn(operator.iadd, x, 1.0): True,
        g.method("add", x, 1.0): False, g.fn(torch.add, x, 1.0): False, g.method("__add__", x, 1.0): False, x: False,
    }
    assert {n.name: mutates(n) for n in cases} == {n.name: want for n, want in cases.items()}


def test_a_view_of_the_body_gets_the_row_count_at_the_token_place_and_other_nodes_get_nothing():
    g, x = stream()
    heads = g.method("view", x, B, N, 2, C // 2)
    whole = g.method("reshape", heads, (B, N, C))
    inferred = g.method("reshape", heads, B, -1, C)
    wide = g.method("expand", g.method("unsqueeze", x, 0), 3, B, N, C)
    relu = g.fn(torch.relu, x)
    positions = follow(g.nodes, {x: 1}).positions
    assert reshape_sizes(heads, positions, 3) == (B, 3, 2, C // 2)
    assert reshape_sizes(whole, positions, 3) == (B, 3, C)  # sizes given as one tuple
    assert reshape_sizes(inferred, positions, 3) == (B, -1, C)  # -1 is inferred from the rows given
    assert reshape_sizes(wide, positions, 3) == (3, B, 3, C)
    assert reshape_sizes(relu, positions, 3) is None


def test_the_token_dims_of_a_stream_are_those_an_attention_runs_over():
    g, x = stream()
    _attention(g, x)
    assert stream_layout(g.nodes, x) == (1,)
    g, seq_first = Builder(), None
    seq_first = g.input("x", torch.randn(N, B, C))
    _attention(g, g.method("transpose", seq_first, 0, 1))
    assert stream_layout(g.nodes, seq_first) == (0,)


def test_a_stream_no_attention_reads_has_no_token_dim():
    g, x = stream()
    g.fn(F.linear, g.fn(F.layer_norm, x, (C,)), g.input("w", torch.randn(C, C)))
    assert stream_layout(g.nodes, x) == ()
