"""Find the stream: the tensors the block stack carries from block to block, and the invariants.

Why: the ``stack`` region caches ``stream_out - stream_in``, so it must know which values enter
the stack as stream and which leave it; the report shows the stream at every block boundary.

* A value *depends on the stack* when it is computed by a block node or from one.
* Stack outputs: values made inside the stack span and read after it. Those that depend on the
  stack are stream outputs (forecast on cached steps); the others (glue that only reads the
  prologue, e.g. a late timestep projection) are recomputed.
* Stream inputs: floating-point tensors (not 0-d scalars) made before the stack that exactly one block (or the
  glue) reads and that are dead after the stack — the stack replaces them. Values read by several blocks (temb,
  rotary tables, masks) and scalars are invariants.
* Each stream output is paired with the stream input of the same shape and dtype; when several
  fit, the one reached by walking back the skip path (the older operand of each add) wins. An
  output with no partner is cached as a value rather than a residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx

from .find_blocks import BlockStack
from .graph_utils import ADDS, is_module_state, model_outputs, same_shape, tensor_meta


@dataclass(frozen=True)
class StreamValue:
    name: str
    shape: tuple
    dtype: torch.dtype

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        return f"{self.name}[{dims}, {str(self.dtype).replace('torch.', '')}]"


SPLIT_OUTPUT = ("the stack's output leaves the graph without an epilogue: the block stack was split across several "
                "graphs")


@dataclass(frozen=True)
class StreamFacts:
    inputs: tuple[StreamValue, ...]
    outputs: tuple[StreamValue, ...]  # stream outputs read after the stack
    pairs: tuple[tuple[str, str | None], ...]  # (output name, paired input name or None)
    recomputed_outputs: tuple[str, ...]  # stack-span values read after it that do not depend on blocks
    boundaries: tuple[tuple[StreamValue, ...], ...]  # stream after each block
    invariants: tuple[StreamValue, ...]
    graph_outputs: tuple[StreamValue, ...]  # graph outputs computed from the stack (the `output` region)
    problems: tuple[str, ...]
    split: bool = False  # the stack's output leaves the graph: a graph break split the stack (SPLIT_OUTPUT says it)


def _value(node: fx.Node) -> StreamValue | None:
    meta = tensor_meta(node)
    if meta is None:
        return None
    return StreamValue(node.name, tuple(meta.shape), meta.dtype)


def _skip_path_root(node: fx.Node, pos: dict[fx.Node, int], stop: int) -> fx.Node:
    """Walk back from a stack output along the residual skip path until before the stack."""
    while pos[node] >= stop:
        tensors = [a for a in node.all_input_nodes if tensor_meta(a) is not None]
        if not tensors:
            break
        if node.op == "call_function" and node.target in ADDS:
            node = min(tensors, key=pos.__getitem__)  # s + g*F: the skip operand is the older one
        else:
            node = tensors[0]
    return node


def pair_residuals(
    outputs: list[fx.Node], inputs: list[fx.Node], pos: dict[fx.Node, int], start: int
) -> list[tuple[fx.Node, fx.Node | None]]:
    """Pair each output of a span (the stack, or one block) with the input it is a residual against.

    Candidates have the output's shape and dtype; when several do (two streams of equal token counts),
    the one reached by walking back the skip path wins. Each input pairs at most once.
    """
    pairs, free = [], list(inputs)
    for out in outputs:
        meta = tensor_meta(out)
        fits = [i for i in free if tensor_meta(i).dtype == meta.dtype and same_shape(tensor_meta(i).shape, meta.shape)]
        if len(fits) > 1:
            root = _skip_path_root(out, pos, start)
            fits = [root] if root in fits else fits
        partner = fits[0] if fits else None
        if partner is not None:
            free.remove(partner)
        pairs.append((out, partner))
    return pairs


def find_stream(gm: fx.GraphModule, stack: BlockStack) -> StreamFacts:
    if stack.span is None:
        return StreamFacts((), (), (), (), (), (), (), ("no block stack",))
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    start, end = stack.span
    block_of = {}
    for b_i, b in enumerate(stack.blocks):
        for p in range(b.start, b.end + 1):
            block_of[p] = b_i

    depends = set()
    for n in nodes:
        if pos[n] in block_of or any(a in depends for a in n.all_input_nodes):
            depends.add(n)
    last_use = {n: max((pos[u] for u in n.users), default=-1) for n in nodes}

    outputs, recomputed = [], []
    for n in nodes[start : end + 1]:
        if last_use[n] > end and tensor_meta(n) is not None:
            (outputs if n in depends else recomputed).append(n)

    inputs, invariants = [], []
    for n in nodes[:start]:
        readers = {block_of.get(pos[u], "glue") for u in n.users if start <= pos[u] <= end}
        meta = tensor_meta(n)
        if not readers or meta is None or is_module_state(n):
            continue
        # a 0-d value is a constant, not a stream: under dynamic=True Dynamo lifts the float attributes a block
        # reads (a norm's eps, a dropout p) into graph inputs, each read by that one block
        if len(readers) == 1 and last_use[n] <= end and meta.is_floating_point() and len(meta.shape) > 0:
            inputs.append(n)
        else:
            invariants.append(n)

    pairs, problems = [], []
    for out, partner in pair_residuals(outputs, inputs, pos, start):
        if partner is None:
            problems.append(f"stack output {out.name} has no input of its shape: cached as a value")
        pairs.append((out.name, partner.name if partner else None))

    boundaries = []
    for b in stack.blocks:
        live = [n for n in nodes[start : b.end + 1] if n in depends and last_use[n] > b.end]
        boundaries.append(tuple(v for v in map(_value, live) if v is not None))

    graph_outputs = [
        v for v in dict.fromkeys(model_outputs(gm.graph)[1])
        if isinstance(v, fx.Node) and v in depends and tensor_meta(v) is not None and tensor_meta(v).is_floating_point()
    ]
    split = any(n.op == "output" for o in outputs for n in o.users)
    if split:
        problems.append(SPLIT_OUTPUT)
    return StreamFacts(
        inputs=tuple(map(_value, inputs)),
        outputs=tuple(map(_value, outputs)),
        pairs=tuple(pairs),
        recomputed_outputs=tuple(n.name for n in recomputed),
        boundaries=tuple(boundaries),
        invariants=tuple(map(_value, invariants)),
        graph_outputs=tuple(map(_value, graph_outputs)),
        problems=tuple(problems),
        split=split,
    )
