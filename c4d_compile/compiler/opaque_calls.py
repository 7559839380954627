"""A submodule whose forward Dynamo cannot trace, called as one opaque op, so the forward around it is one graph.

Why: Dynamo ends a graph at ops it cannot trace: data-dependent shapes (``torch.nonzero`` in Mochi's
attention) or Python control flow over tensor values (HiDream's mixture-of-experts loops over
``bincount().numpy()``). A break inside the blocks leaves no graph holding the whole stack, so nothing can
be cached. The module holding the break is small and sits inside one branch of a block: called through the
custom op ``c4d::opaque_call`` it becomes one node, the forward becomes one graph, the analysis finds the
blocks and branches as usual, and a cached step drops the op with the branch it feeds. The op runs the
module's own forward eagerly, so what it computes is bit-identical; only that module is not compiled.

Arguments may be tensors, sequences of tensors, None, ints and bools; outputs any nesting of tuples, lists and
dicts of tensors and numbers (a number passes as a 0-d tensor). Dynamo learns the op's output shapes from its
fake implementation, which runs the module once on zeros of the input shapes (outside fake mode) and
remembers, per input signature, the output shapes and the FLOPs (so ideal speedups count the module's work).
A symbolic input size runs at its example value, and an output size equal to it becomes that symbol. Where
that cannot work (the module failing on zeros, an output size two input symbols could explain), the fake
implementation says "dynamic output shape": Dynamo breaks the graph at the call and runs the op as Python,
so the model runs as it did, split. Outputs are made contiguous, so the fake and the real strides agree.
"""

from __future__ import annotations

import logging
import weakref

import torch
from torch._subclasses.fake_tensor import DynamicOutputShapeException, unset_fake_temporarily

from .flop_formulas import flop_counter, register_formula
from .passes.graph_utils import size_hint

log = logging.getLogger(__name__)

# handle -> the module (weakly: the op never keeps a model alive). A handle is a string: Dynamo would make an
# int that differs between calls of two instances a symbolic input of the graph.
_MODULES: dict[str, weakref.ref] = {}
_ORIGINAL = "_c4d_original_forward"
_SEP = "\x1f"  # between the layout's items; never in an argument name


# (handle, layout, inputs' shapes, dtypes and devices) -> the outputs' shapes and dtypes; None: this call cannot
# be made opaquely
_SIGNATURES: dict[tuple, tuple[tuple[tuple[int, ...], torch.dtype], ...] | None] = {}
_FLOPS: dict[tuple, int] = {}  # (handle, layout, input shapes) -> FLOPs of one call, for the FLOP counter
_OUTPUTS: dict[tuple[str, str], object] = {}  # (handle, layout) -> the output's structure (see _describe)
_NUMBERS = {"int": int, "float": float, "bool": bool}


def _layout(args: tuple, kwargs: dict) -> tuple[str, list[torch.Tensor]] | None:
    """The call as a string (what each argument is) and its tensors; None for an argument the op cannot carry."""
    marks, tensors = [], []
    for name, value in [("", a) for a in args] + list(kwargs.items()):
        if value is None:
            mark = "N"
        elif isinstance(value, torch.Tensor):
            mark = "T"
            tensors.append(value)
        elif isinstance(value, (tuple, list)) and all(isinstance(v, torch.Tensor) for v in value):
            mark = f"S{len(value)}"
            tensors.extend(value)
        elif isinstance(value, bool):
            mark = f"B{int(value)}"
        elif isinstance(value, int):
            mark = f"I{value}"
        else:
            return None
        marks.append(f"{name}={mark}")
    return _SEP.join(marks), tensors


def _value(mark: str, pending):
    kind, rest = mark[0], mark[1:]
    if kind == "T":
        return next(pending)
    if kind == "S":
        return tuple(next(pending) for _ in range(int(rest)))
    return {"N": None, "B": bool(int(rest or 0)), "I": int(rest or 0)}[kind]


def _rebuild(layout: str, tensors: list[torch.Tensor]) -> tuple[list, dict]:
    pending, args, kwargs = iter(tensors), [], {}
    for item in layout.split(_SEP) if layout else []:
        name, _, mark = item.partition("=")
        value = _value(mark, pending)
        if name:
            kwargs[name] = value
        else:
            args.append(value)
    return args, kwargs


def _run(handle: str, layout: str, tensors: list[torch.Tensor]):
    module = _MODULES[handle]()
    if module is None:
        raise RuntimeError("c4d: an opaque call outlived its module")
    args, kwargs = _rebuild(layout, tensors)
    return getattr(module, _ORIGINAL)(*args, **kwargs)


def _describe(out, leaves: list) -> object:
    """The output's structure as nested tuples of constants; its tensors and numbers appended to ``leaves``."""
    if isinstance(out, torch.Tensor):
        leaves.append(out)
        return "T"
    if isinstance(out, (bool, int, float)):
        leaves.append(torch.tensor(out))  # a number passes the op as a 0-d tensor
        return type(out).__name__
    if out is None:
        return "N"
    if isinstance(out, (tuple, list)):
        return (type(out).__name__, tuple(_describe(v, leaves) for v in out))
    if isinstance(out, dict):
        return ("dict", tuple((k, _describe(v, leaves)) for k, v in out.items()))
    raise TypeError(f"c4d: an opaque call returns a {type(out).__name__}: only tensors, numbers, None, tuples, "
                    "lists and dicts of them pass an op")


def _build(structure, leaves) -> object:
    """The inverse of ``_describe``; traced by Dynamo (constants and tensors only)."""
    if structure == "T":
        return next(leaves)
    if structure == "N":
        return None
    if structure in _NUMBERS:
        return _NUMBERS[structure](next(leaves).item())
    kind, items = structure
    if kind == "dict":
        return {k: _build(v, leaves) for k, v in items}
    built = [_build(v, leaves) for v in items]
    return tuple(built) if kind == "tuple" else built


def _flatten_output(handle: str, layout: str, out) -> list[torch.Tensor]:
    leaves: list[torch.Tensor] = []
    _OUTPUTS[handle, layout] = _describe(out, leaves)
    return leaves


@torch._dynamo.assume_constant_result
def _output_structure(handle: str, layout: str) -> object:
    """Read when Dynamo traces a call, after the op's fake implementation has learnt it: Dynamo calls this for
    real and keeps the result as a constant (a dict read in traced code would be a snapshot from before)."""
    return _OUTPUTS[handle, layout]


@torch.library.custom_op("c4d::opaque_call", mutates_args=())
def opaque_call(handle: str, layout: str, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    outs = [o.contiguous() for o in _flatten_output(handle, layout, _run(handle, layout, tensors))]
    # an op returns new tensors, none sharing storage with an input or another output (views of one tensor, as
    # ``emb.chunk(6, dim=1)`` at batch 1 returns, stay views after contiguous())
    seen = {t.untyped_storage().data_ptr() for t in tensors}
    fresh = []
    for o in outs:
        storage = o.untyped_storage().data_ptr()
        fresh.append(o.clone() if storage in seen else o)
        seen.add(storage)
    return fresh


def _key(handle: str, layout: str, tensors: list[torch.Tensor]) -> tuple:
    return handle, layout, tuple((tuple(size_hint(s) for s in t.shape), t.dtype, t.device.type) for t in tensors)


def _symbolic(shape: tuple[int, ...], tensors: list[torch.Tensor]) -> list | None:
    """An output shape with each size that equals a symbolic input size (at its example value) as that symbol."""
    symbols: dict[int, dict[str, torch.SymInt]] = {}
    for t in tensors:
        for s in t.shape:
            if isinstance(s, torch.SymInt):
                symbols.setdefault(size_hint(s), {})[str(s)] = s
    sizes = []
    for size in shape:
        candidates = list(symbols.get(size, {}).values())
        if len(candidates) > 1:
            return None  # two symbols share this value: which one the output follows is unknown
        sizes.append(candidates[0] if candidates else size)
    return sizes


def _signature(handle: str, layout: str, tensors: list[torch.Tensor]) -> tuple | None:
    """Run the module once on zeros of these inputs (outside fake mode); remembered per signature."""
    key = _key(handle, layout, tensors)
    if key not in _SIGNATURES:
        signature = None
        try:
            with unset_fake_temporarily(), torch.no_grad():
                zeros = [torch.zeros(shape, dtype=dtype, device=t.device) for t, (shape, dtype, _) in
                         zip(tensors, key[2])]
                counter = flop_counter()
                with counter:
                    out = _run(handle, layout, zeros)
            outs = _flatten_output(handle, layout, out)
            signature = tuple((tuple(o.shape), o.dtype) for o in outs)
            _FLOPS[handle, layout, tuple(shape for shape, _, _ in key[2])] = int(counter.get_total_flops())
        except Exception as err:  # the module cannot run on zeros: it stays a graph break
            log.info("c4d: opaque call %s cannot run on zeros: %s", handle, err)
        _SIGNATURES[key] = signature
    return _SIGNATURES[key]


@opaque_call.register_fake
def _(handle, layout, tensors):
    try:
        signature = _signature(handle, layout, tensors)
        shapes = [_symbolic(shape, tensors) for shape, _ in signature] if signature is not None else [None]
    except Exception as err:  # whatever goes wrong here must cost a graph break, never the user's call
        log.info("c4d: opaque call %s: %s", handle, err)
        shapes = [None]
    if any(shape is None for shape in shapes):  # Dynamo breaks the graph at the call instead, and runs it as Python
        raise DynamicOutputShapeException(torch.ops.c4d.opaque_call.default)
    device = tensors[0].device if tensors else torch.device("cpu")
    return [torch.empty(shape, dtype=dtype, device=device) for shape, (_, dtype) in zip(shapes, signature)]


def opaque_call_flops(handle, layout, shapes, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of one opaque call (FlopCounterMode passes shapes): what its module counted on zeros."""
    return _FLOPS.get((handle, layout, tuple(tuple(size_hint(d) for d in s) for s in shapes)), 0)


register_formula(torch.ops.c4d.opaque_call, opaque_call_flops)


def opaque_modules(gm) -> list[str]:
    """The classes of the modules a graph calls opaquely, in order."""
    names = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and str(node.target).startswith("c4d.opaque_call"):
            module = _MODULES[node.args[0]]()
            name = type(module).__qualname__ if module is not None else "a released module"
            if name not in names:
                names.append(name)
    return names


def make_opaque(module: torch.nn.Module) -> None:
    """From now on, a traced call of ``module`` is one ``c4d::opaque_call`` node; an eager call is unchanged."""
    if is_opaque(module):
        return
    handle = f"m{len(_MODULES)}"
    _MODULES[handle] = weakref.ref(module)
    setattr(module, _ORIGINAL, module.forward)

    def forward(*args, **kwargs):
        original = getattr(module, _ORIGINAL)
        call = _layout(args, kwargs) if torch.compiler.is_compiling() else None
        if call is None:
            return original(*args, **kwargs)
        layout, tensors = call
        outs = torch.ops.c4d.opaque_call(handle, layout, tensors)
        return _build(_output_structure(handle, layout), iter(outs))

    module.forward = forward


def is_opaque(module: torch.nn.Module) -> bool:
    return _ORIGINAL in module.__dict__
