"""Capture a model for export: its one Dynamo graph, which inputs are the caller's and which are constants.

Dynamo lifts parameters and buffers to graph inputs. For export they are constants of the file (stored
once, ``weights.py``); the caller's inputs are the tensors of the keyword arguments, told apart by
identity with the example's own tensors and named by their keyword (a nested one by its pytree path).
Non-tensor keyword arguments (``return_dict=False``) were fixed at trace time: they are recorded, and the
runner refuses another value instead of silently ignoring it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch.utils import _pytree as pytree

from ..errors import NotExportableError
from ..inspect_model import trace

JSON_SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class ModelInput:
    name: str  # keyword (pytree path for a nested one: "joint_attention_kwargs['scale']")
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass
class CapturedModel:
    gm: fx.GraphModule
    example_inputs: list  # Dynamo's, one per placeholder
    inputs: dict[int, ModelInput]  # placeholder position -> the caller's input it takes
    constants: dict[int, str]  # placeholder position -> the constant's name (the module's own name when it has one)
    fixed: dict[str, Any]  # non-tensor keyword arguments and their traced values
    outputs: str  # "tensor" (the model returns one tensor) or "tuple"
    example_outputs: list[torch.Tensor]  # the uncached model's outputs on the example (for the error report)

    def model_inputs(self) -> list[ModelInput]:
        return [self.inputs[i] for i in sorted(self.inputs)]


def flatten_kwargs(kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, leaf) of every leaf of the keyword arguments; a top-level leaf is named by its keyword."""
    leaves, _ = pytree.tree_flatten_with_path(kwargs)
    return [(_name(path), leaf) for path, leaf in leaves]


def _name(path) -> str:
    first, rest = path[0], path[1:]
    return str(first.key) + pytree.keystr(rest)


def capture_model(model: torch.nn.Module, example_kwargs: dict[str, Any]) -> CapturedModel:
    try:
        (gm, examples), = trace(model, example_kwargs, fullgraph=True)
    except Exception as err:  # a graph break: the cached program needs the whole forward in one graph
        raise NotExportableError(f"export needs the forward as one graph (fullgraph=True) and Dynamo could "
                                 f"not trace it as one: {type(err).__name__}: {str(err).splitlines()[0]}") from err
    torch._dynamo.reset()
    with torch.no_grad():
        eager = model(**example_kwargs)
    leaves = flatten_kwargs(example_kwargs)
    by_id = {id(leaf): name for name, leaf in leaves if isinstance(leaf, torch.Tensor)}
    owned = {id(t): name for name, t in (*model.named_parameters(remove_duplicate=False),
                                          *model.named_buffers(remove_duplicate=False))}
    inputs, constants = {}, {}
    for i, example in enumerate(examples):
        if not isinstance(example, torch.Tensor):
            raise NotExportableError(f"graph input {i} is a {type(example).__name__}, not a tensor: export "
                                     "writes static shapes, so sizes must not be graph inputs")
        if id(example) in by_id:
            inputs[i] = ModelInput(by_id[id(example)], tuple(example.shape), example.dtype)
        else:
            constants[i] = owned.get(id(example), f"constant.{i}")
    fixed = {name: leaf for name, leaf in leaves if not isinstance(leaf, torch.Tensor)}
    for name, value in fixed.items():
        if not isinstance(value, JSON_SCALARS):
            raise NotExportableError(f"keyword argument {name!r} is a {type(value).__name__}: export records "
                                     "non-tensor arguments as JSON values (None, bool, int, float, str)")
    return CapturedModel(gm, examples, inputs, constants, fixed, *_outputs(eager, gm))


def _outputs(eager: Any, gm: fx.GraphModule) -> tuple[str, list[torch.Tensor]]:
    leaves = [x for x in pytree.tree_leaves(eager) if isinstance(x, torch.Tensor)]
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    count = len(out) if isinstance(out, (tuple, list)) else 1
    if count != len(leaves):
        raise NotExportableError(f"the graph returns {count} values and the model {len(leaves)} tensors: export "
                                 "needs a model whose outputs are its tensors (return_dict=False)")
    return ("tensor" if isinstance(eager, torch.Tensor) else "tuple"), leaves
