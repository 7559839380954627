"""Small helpers over torch.fx graphs shared by the passes."""

from __future__ import annotations

import operator
import re

import torch
import torch.fx as fx
from torch.fx.experimental.symbolic_shapes import statically_known_true

# Dynamo writes module paths like  L['self'].__dict__['_modules']['blocks'].0.attn  or
# L['self']._modules['blocks']['0'].attn ; normalise them to  blocks.0.attn .
_ROOT = re.compile(r"^(L|G)\['[^']*'\]\.?")
_DICT_MODULES = re.compile(r"\.?__dict__\['_modules'\]\['([^']*)'\]|\.?_modules\['([^']*)'\]|\['([^']*)'\]")


def normalize_module_path(path: str) -> str:
    path = _ROOT.sub("", path)
    path = _DICT_MODULES.sub(lambda m: "." + next(g for g in m.groups() if g is not None), path)
    return path.strip(".")


def module_path(node: fx.Node) -> str | None:
    """Innermost module path of a node, normalised; None when Dynamo recorded none."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    path, _ = list(stack.values())[-1]
    return normalize_module_path(path)


def example_value(node: fx.Node):
    return node.meta.get("example_value", node.meta.get("val"))


def is_parameter_input(node: fx.Node) -> bool:
    return node.op == "placeholder" and isinstance(example_value(node), torch.nn.Parameter)


def is_module_state(node: fx.Node) -> bool:
    """A placeholder carrying a parameter or a buffer of the traced module (Dynamo lifts both to inputs)."""
    if is_parameter_input(node):
        return True
    source = getattr(node.meta.get("grapharg"), "source", None)
    name = source.name if source is not None and hasattr(source, "name") else ""
    return node.op == "placeholder" and ("._buffers[" in name or "['_buffers']" in name)


def user_inputs(gm: fx.GraphModule) -> list[fx.Node]:
    """Placeholders that are not parameters or buffers of the traced module."""
    return [n for n in gm.graph.nodes if n.op == "placeholder" and not is_module_state(n)]


def tensor_meta(node: fx.Node) -> torch.Tensor | None:
    value = example_value(node)
    return value if isinstance(value, torch.Tensor) else None


_MATMUL_FUNCTIONS = {
    torch.matmul, torch.mm, torch.bmm, torch.baddbmm, torch.addmm, torch.einsum,
    torch.nn.functional.linear, torch.nn.functional.scaled_dot_product_attention,
    torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d,
    torch._C._nn.linear, operator.matmul,
}
_MATMUL_METHODS = {"matmul", "mm", "bmm", "baddbmm", "addmm"}


def is_matmul(node: fx.Node) -> bool:
    """Matrix products and attention: the nodes that make a block expensive."""
    if node.op == "call_function":
        return node.target in _MATMUL_FUNCTIONS
    if node.op == "call_method":
        return node.target in _MATMUL_METHODS
    return False


def is_write(node: fx.Node) -> bool:
    """``x[...] = v`` or an in-place method: changes its first argument."""
    if node.op == "call_function" and node.target is operator.setitem:
        return True
    return node.op == "call_method" and node.target.endswith("_") and not node.target.startswith("_")


ADDS = {operator.add, torch.add, operator.iadd}  # the residual add, in every spelling Dynamo records


def size_hint(dim) -> int:
    """A possibly symbolic size (dynamic shapes) as the int of the example call."""
    return int(dim.node.hint) if isinstance(dim, torch.SymInt) else int(dim)


def same_shape(a, b) -> bool:
    """Whether two shapes are the same in every call the graph serves. On a dynamic-shape graph a size is a
    symbol: equal only when provably so (``s0`` and ``s0``), never by the example call's values, and asked
    without a guard — ``s0 == 8`` compared as Python would make Dynamo guard the graph on the answer, so a
    later call whose size is 8 (an image with as many tokens as the text) would compile it again."""
    return len(a) == len(b) and all(statically_known_true(x == y) for x, y in zip(a, b))


def latent_input(gm: fx.GraphModule) -> fx.Node:
    """The model's latent input: the first floating-point user input of two dims or more. Its dim 0 is the batch."""
    inputs = set(user_inputs(gm))
    return next(n for n in gm.graph.nodes if n.op == "placeholder" and n in inputs
                and (m := tensor_meta(n)) is not None and m.is_floating_point() and m.dim() >= 2)


def batch_size(gm: fx.GraphModule):
    """The graph's batch size (its latent's dim 0: an int, or Dynamo's symbol), or None without a latent input."""
    try:
        return tensor_meta(latent_input(gm)).shape[0]
    except StopIteration:  # no latent among the inputs: nothing says which size is the batch
        return None


def batch_first(node: fx.Node, batch) -> bool:
    """Whether ``node``'s value has ``batch`` (``batch_size(gm)``) as dim 0 in every call the graph serves."""
    meta = tensor_meta(node)
    return batch is not None and meta is not None and meta.dim() > 0 and same_shape((meta.shape[0],), (batch,))


def model_outputs(graph: fx.Graph) -> tuple[fx.Node, list]:
    """The output node and the values it returns (one value or a tuple of them)."""
    out = next(n for n in graph.nodes if n.op == "output")
    values = out.args[0]
    return out, list(values) if isinstance(values, (tuple, list)) else [values]
