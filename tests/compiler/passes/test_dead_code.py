"""Dead-code elimination of functional collectives: a collective whose result nothing reads goes with its
wait; a wait stays while the collective's result is read, and so does a collective whose wait is read."""

import operator

import torch
import torch.fx as fx

from c4d_compile.compiler.passes.dead_code import eliminate_dead_code

GATHER = torch.ops._c10d_functional.all_gather_into_tensor
WAIT = torch.ops._c10d_functional.wait_tensor


def _graph(read: str) -> fx.Graph:
    """x -> all_gather -> wait; the output reads x, the wait, or the collective's result directly."""
    graph = fx.Graph()
    x = graph.placeholder("x")
    gathered = graph.call_function(GATHER, (x, 2, "0"))
    waited = graph.call_function(WAIT, (gathered,))
    graph.output({"x": x, "wait": waited, "result": gathered}[read])
    return graph


def _collectives(graph: fx.Graph) -> list[str]:
    return [str(n.target) for n in graph.nodes if n.op == "call_function"]


def test_a_collective_nothing_reads_goes_with_its_wait():
    graph = _graph("x")
    assert eliminate_dead_code(graph)
    assert _collectives(graph) == []


def test_a_read_collective_keeps_its_wait():
    for read in ("wait", "result"):  # through the wait, or the result after waiting on it in place
        graph = _graph(read)
        eliminate_dead_code(graph)
        assert _collectives(graph) == ["_c10d_functional.all_gather_into_tensor", "_c10d_functional.wait_tensor"]


def test_a_plain_graph_is_left_alone():
    graph = fx.Graph()
    x = graph.placeholder("x")
    y = graph.call_function(torch.relu, (x,))
    graph.output(y)
    assert not eliminate_dead_code(graph)
    assert [n.target for n in graph.nodes if n.op == "call_function"] == [torch.relu]


FLASH = torch.ops.aten._scaled_dot_product_flash_attention  # seeded: it takes a dropout probability


def _unread_attention(dropout_p) -> fx.Graph:
    """q -> flash attention (its result unread) -> the output reads q; ``dropout_p=None``: the default."""
    graph = fx.Graph()
    q = graph.placeholder("q")
    args = (q, q, q) if dropout_p is None else (q, q, q, dropout_p)
    graph.call_function(FLASH, args)
    graph.output(q)
    return graph


def test_unread_attention_without_dropout_goes():
    for dropout_p in (0.0, None):  # given as zero, or left at the schema's default (zero)
        graph = _unread_attention(dropout_p)
        assert eliminate_dead_code(graph)
        assert _collectives(graph) == []


def test_unread_attention_with_dropout_stays():  # it draws from the RNG: removing it would change later draws
    graph = _unread_attention(0.1)
    assert not eliminate_dead_code(graph)
    assert _collectives(graph) == ["aten._scaled_dot_product_flash_attention"]
    graph = fx.Graph()  # so does any other seeded op
    x = graph.placeholder("x")
    graph.call_function(torch.ops.aten.bernoulli.p, (x, 0.5))
    graph.output(x)
    assert not eliminate_dead_code(graph)


def test_a_vmap_level_stays_while_ops_inside_it_stay():
    """A vmap traced into the graph (flex attention's block mask): an op inside the level that stays (a write into
    a buffer read elsewhere) must still run inside it. The level calls return nothing anyone reads."""
    from torch._functorch import predispatch

    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.call_function(predispatch._vmap_increment_nesting, (1, "error"))
    batched = graph.call_function(predispatch._add_batch_dim, (x, 0, 1))
    graph.call_function(operator.setitem, (batched, 0, 1.0))  # a write into the input: it stays
    graph.call_function(predispatch._vmap_decrement_nesting, ())
    graph.output(x)
    eliminate_dead_code(graph)
    assert [getattr(n.target, "__name__", n.target) for n in graph.nodes if n.op in ("call_function", "call_method")] \
        == ["_vmap_increment_nesting", "_add_batch_dim", "setitem", "_vmap_decrement_nesting"]
    x = torch.zeros(3, 2)
    fx.GraphModule({}, graph)(x)  # inside the level, each row's element 0
    assert torch.equal(x, torch.tensor([[1.0, 0.0]] * 3))
