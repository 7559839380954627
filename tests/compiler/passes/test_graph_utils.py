"""graph_utils on a traced module with a parameter, a buffer and two inputs, and on graphs written by hand:
module paths in Dynamo's spellings, which placeholders are the module's state, matrix products and writes told
from their neighbours, shapes compared without guarding a dynamic graph — and a graph with no Dynamo records,
where no placeholder is taken for module state."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch._dynamo.source import ConstantSource
from torch.fx.experimental.symbolic_shapes import ShapeEnv

from c4d_compile.compiler.passes.graph_utils import (
    batch_first,
    batch_size,
    example_value,
    is_matmul,
    is_module_state,
    is_parameter_input,
    is_write,
    latent_input,
    model_outputs,
    module_path,
    normalize_module_path,
    same_shape,
    size_hint,
    tensor_meta,
    user_inputs,
)
from c4d_compile.inspect_model import trace


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4)])
        self.register_buffer("scale", torch.full((4,), 2.0))

    def forward(self, x, t):
        return self.blocks[0](x) * self.scale + t


@pytest.fixture(scope="module")
def traced() -> fx.GraphModule:
    ((gm, _),) = trace(Scaled(), {"x": torch.randn(2, 4), "t": torch.randn(2, 4)})
    return gm


def _by_op(gm: fx.GraphModule) -> dict:
    """Placeholders by what they carry, and the first call of each target."""
    found = {}
    for n in gm.graph.nodes:
        key = n.name if n.op == "placeholder" else n.target
        found.setdefault(key, n)
    return found


@pytest.mark.parametrize("path,want", [
    ("L['self'].__dict__['_modules']['blocks'].0.attn", "blocks.0.attn"),
    ("L['self']._modules['blocks']['0'].attn", "blocks.0.attn"),
    ("L['self'].transformer_blocks.3.ff", "transformer_blocks.3.ff"),
    ("G['model']._modules['proj_out']", "proj_out"),
    ("proj_out", "proj_out"),
    ("L['self']", ""),
])
def test_dynamo_module_paths_are_normalised_to_dotted_paths(path, want):
    assert normalize_module_path(path) == want


def test_parameters_and_buffers_are_module_state_and_the_rest_are_the_callers_inputs(traced):
    nodes = _by_op(traced)
    weight, scale = nodes["l_self_modules_blocks_modules_0_parameters_weight_"], nodes["l_self_buffers_scale_"]
    assert is_parameter_input(weight) and is_module_state(weight)
    assert not is_parameter_input(scale) and is_module_state(scale)  # a buffer is known by its source only
    assert [n.name for n in user_inputs(traced)] == ["l_x_", "l_t_"]
    assert module_path(nodes[F.linear]) == "blocks.0" and module_path(nodes[operator.add]) is None


def test_a_graph_without_dynamo_records_has_only_caller_inputs():
    gm = fx.symbolic_trace(Scaled())  # module state stays get_attr here: no placeholder is the module's
    nodes = _by_op(gm)
    assert [n.name for n in user_inputs(gm)] == ["x", "t"] and not any(map(is_module_state, gm.graph.nodes))
    assert module_path(nodes["x"]) is None and module_path(nodes["blocks.0"]) == "blocks.0"  # fx's path is plain


def test_the_example_value_is_dynamos_record_then_the_exported_one_and_only_tensors_have_a_tensor_meta():
    graph = fx.Graph()
    both, val, size, bare = (graph.placeholder(name) for name in ("both", "val", "size", "bare"))
    a, b = torch.zeros(2), torch.ones(3)
    both.meta.update(example_value=a, val=b)
    val.meta["val"] = b
    size.meta["example_value"] = 7
    assert example_value(both) is a and example_value(val) is b and example_value(bare) is None
    assert tensor_meta(val) is b and tensor_meta(size) is None and tensor_meta(bare) is None


def _node(op: str, target) -> fx.Node:
    graph = fx.Graph()
    x = graph.placeholder("x")
    return graph.create_node(op, target, (x, x)) if op != "placeholder" else x


@pytest.mark.parametrize("op,target,want", [
    ("call_function", F.linear, True), ("call_function", torch.matmul, True), ("call_function", operator.matmul, True),
    ("call_function", F.scaled_dot_product_attention, True), ("call_function", torch.einsum, True),
    ("call_method", "bmm", True), ("call_method", "baddbmm", True),
    ("call_function", torch.relu, False), ("call_function", operator.mul, False), ("call_method", "add", False),
    ("call_module", "proj", False), ("placeholder", "x", False),
])
def test_matrix_products_and_attention_are_what_makes_a_block_expensive(op, target, want):
    assert is_matmul(_node(op, target)) is want


@pytest.mark.parametrize("op,target,want", [
    ("call_function", operator.setitem, True), ("call_method", "add_", True), ("call_method", "copy_", True),
    ("call_method", "add", False), ("call_method", "__add__", False), ("call_method", "_private_", False),
    ("call_function", operator.add, False), ("placeholder", "x", False),
])
def test_writes_are_setitem_and_in_place_methods(op, target, want):
    assert is_write(_node(op, target)) is want


def test_a_symbolic_size_is_equal_only_where_provably_so_and_comparing_it_adds_no_guard():
    env = ShapeEnv(duck_shape=False)  # two sizes of 8 in the example call are still two symbols
    tokens = env.create_symintnode(env.create_symbol(8, ConstantSource("tokens")), hint=8)
    other = env.create_symintnode(env.create_symbol(8, ConstantSource("other")), hint=8)
    assert size_hint(tokens) == 8 and size_hint(5) == 5 and isinstance(size_hint(tokens), int)
    assert same_shape((2, tokens, 4), (2, tokens, 4))
    assert not same_shape((2, tokens, 4), (2, 8, 4))  # the example call's 8, not a size of every call
    assert not same_shape((2, tokens), (2, other))
    assert not same_shape((2, 8), (2, 8, 1)) and same_shape(torch.Size([2, 8]), (2, 8))
    assert not env.guards


def test_the_model_outputs_are_a_list_whether_the_graph_returns_one_value_or_several():
    graph = fx.Graph()
    x = graph.placeholder("x")
    relu = graph.call_function(torch.relu, (x,))
    out = graph.output(relu)
    assert model_outputs(graph) == (out, [relu])
    graph = fx.Graph()
    x = graph.placeholder("x")
    out = graph.output((x, x))
    assert model_outputs(graph) == (out, [x, x])


class Transposing(torch.nn.Module):
    def forward(self, ids, x):
        return x.transpose(0, 1) * 2, x.sum(0), x * ids.sum()


def test_the_latent_is_the_first_float_input_of_two_dims_and_batch_first_values_have_its_dim_0():
    """What the forecast weights' rows line up with (``rewrite_cached.py``): the latent's dim 0, the batch; a
    value whose dim 0 is another size (transposed, reduced over the batch) is not batch-first."""
    ((gm, _),) = trace(Transposing(), {"ids": torch.ones(2, 7, dtype=torch.long), "x": torch.randn(3, 5, 4)})
    assert tensor_meta(latent_input(gm)).shape == (3, 5, 4)  # the integer ids come first and are not the latent
    calls = [n for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
    batch = batch_size(gm)
    by_shape = {tuple(tensor_meta(n).shape): batch_first(n, batch) for n in calls if tensor_meta(n) is not None}
    assert by_shape[(5, 3, 4)] is False and by_shape[(5, 4)] is False and by_shape[(3, 5, 4)] is True
