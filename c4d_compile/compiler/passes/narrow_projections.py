"""Narrow a projection to the output rows its users still read.

Why: a cached step skips a block's branches but keeps what the residual stream needs from the block, and in the
adaLN-Zero blocks of Flux, SD3, DiT, HunyuanVideo, Qwen-Image or CogVideoX that includes the gates: each block
projects the conditioning once, ``linear(silu(temb), W, b).chunk(6, dim=-1)`` (shift, scale and gate of each
branch), and a CACHED variant reads only the two gates. After dead-code elimination the chunks nobody reads are
gone, but the ``linear`` still multiplies every row of ``W``. At batch 1 that product is bound by reading the
weight, so the cached step pays for all six chunks: the modulation weights are about a quarter of FLUX.1-dev's
parameters, and on the CPU flux-bench config (2 threads, inductor) narrowing them took ``taylorseer``'s CACHED
call from 6.6 to 4.5 ms.

The rewrite: a ``linear`` whose only users split its last dim (``chunk`` / ``split``, method or function) into
pieces read by constant ``getitem`` — a piece may be split again (Qwen-Image halves its modulation, then splits
each half in three) — with some rows unread, becomes one ``linear`` per run of adjacent read rows over
``W.narrow(0, start, rows)`` (and the bias's), each read piece a ``narrow`` of its run's output (none where the
piece is the whole run). A row range of a row-major weight is a view: nothing is copied. Every output element is
the same dot product as before; a gemm of fewer rows may take another kernel, so the last bit may move (on the CPU
at Flux's sizes it does not: equal to the bit).

Not for Wan, PixArt or LTX-Video: each block adds a learned table to one projection made outside the blocks and
splits the sum (one projection per model, not per block). Does nothing where every piece is read, where a split
is not on the last dim, or where the weight's row count is not static, and only for a plain weight: a tensor
subclass (a quantized weight) may not support ``narrow``. ``build_variants`` runs it on every variant but FULL.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from .graph_utils import tensor_meta

_LINEARS = {torch._C._nn.linear, torch.nn.functional.linear}
_SPLIT_METHODS = {"chunk", "split"}
_SPLIT_FUNCTIONS = {torch.chunk: "chunk", torch.split: "split"}


@dataclass(frozen=True)
class NarrowResult:
    """What the pass changed: projections narrowed, and their weight rows kept of all rows."""

    projections: int = 0
    rows_kept: int = 0
    rows_total: int = 0

    def __add__(self, other: NarrowResult) -> NarrowResult:
        return NarrowResult(self.projections + other.projections, self.rows_kept + other.rows_kept,
                            self.rows_total + other.rows_total)


def narrow_projections(gm: fx.GraphModule) -> NarrowResult:
    """Rewrite ``gm``'s graph in place (a variant's own copy) and recompile it; say what changed."""
    result = NarrowResult()
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in _LINEARS:
            result = result + _narrow(gm.graph, node)
    if result.projections:
        gm.graph.lint()
        gm.recompile()
    return result


def _narrow(graph: fx.Graph, linear: fx.Node) -> NarrowResult:
    x, weight, bias = _linear_args(linear)
    rows = _static_rows(weight)
    out = tensor_meta(linear)
    if rows is None or out is None or x is None:
        return NarrowResult()
    visited: list[fx.Node] = []
    reads = _reads(linear, 0, rows, out.dim(), visited)
    if reads is None:
        return NarrowResult()
    runs = _runs(reads)
    kept = sum(stop - start for start, stop, _ in runs)
    if kept == rows:
        return NarrowResult()
    first_split = min(visited)  # fx nodes order by their place in the graph
    for start, stop, readers in runs:
        with graph.inserting_before(first_split):
            narrowed = graph.call_function(linear.target, (
                x, graph.call_method("narrow", (weight, 0, start, stop - start)),
                None if bias is None else graph.call_method("narrow", (bias, 0, start, stop - start))))
            for first, last, reader in readers:
                piece = narrowed
                if (first, last) != (start, stop):
                    piece = graph.call_method("narrow", (narrowed, -1, first - start, last - first))
                reader.replace_all_uses_with(piece)
    for node in sorted(visited, reverse=True):  # the splits and pieces, read by nothing now
        if not node.users:
            graph.erase_node(node)
    graph.erase_node(linear)
    return NarrowResult(1, kept, rows)


def _reads(node: fx.Node, start: int, stop: int, rank: int, visited: list[fx.Node]) -> list | None:
    """The row ranges of the projection that ``node`` (its rows ``start:stop``) is read in: every user of ``node``
    splits its last dim and reads pieces by constant ``getitem``; a piece split again is followed (Qwen-Image
    splits the modulation in two, then each half in three). ``(first, last, reader)`` per reading ``getitem``;
    None where some user reads ``node`` whole."""
    reads = []
    for split in node.users:
        pieces = _pieces(split, stop - start, rank)
        read = _read_pieces(split, len(pieces)) if pieces is not None else None
        if read is None:
            return None
        visited.append(split)
        for index, getters in read.items():
            first, last = start + pieces[index][0], start + pieces[index][1]
            for getter in getters:
                visited.append(getter)
                inner = _reads(getter, first, last, rank, visited) if getter.users else None
                reads += inner if inner is not None else [(first, last, getter)]
    return reads


def _runs(reads: list) -> list[tuple[int, int, list]]:
    """The read ranges merged where they touch or overlap: ``(start, stop, reads inside)`` per run."""
    runs: list[tuple[int, int, list]] = []
    for first, last, reader in sorted(reads, key=lambda r: r[:2]):
        if runs and first <= runs[-1][1]:
            start, stop, inside = runs[-1]
            runs[-1] = (start, max(stop, last), inside + [(first, last, reader)])
        else:
            runs.append((first, last, [(first, last, reader)]))
    return runs


def _linear_args(node: fx.Node) -> tuple[fx.Node | None, fx.Node | None, fx.Node | None]:
    """(input, weight, bias) of a ``linear`` call, by position or keyword; a weight that is not a node is None."""
    names = ("input", "weight", "bias")
    values = [node.args[i] if i < len(node.args) else node.kwargs.get(name) for i, name in enumerate(names)]
    if not all(v is None or isinstance(v, fx.Node) for v in values) or values[1] is None:
        return None, None, None
    return values[0], values[1], values[2]


def _static_rows(weight: fx.Node | None) -> int | None:
    """The weight's output rows when it is a plain 2-D tensor of static size."""
    meta = tensor_meta(weight) if weight is not None else None
    if meta is None or meta.dim() != 2 or is_traceable_wrapper_subclass(meta):
        return None
    rows = meta.shape[0]
    return rows if isinstance(rows, int) else None


def _split_call(node: fx.Node) -> tuple[str, object, object] | None:
    """(kind, chunks or sizes, dim) of a ``chunk`` / ``split`` of the linear's output, else None."""
    if node.op == "call_method" and node.target in _SPLIT_METHODS:
        kind = node.target
    elif node.op == "call_function" and node.target in _SPLIT_FUNCTIONS:
        kind = _SPLIT_FUNCTIONS[node.target]
    else:
        return None
    size_name = "chunks" if kind == "chunk" else "split_size"
    size = node.args[1] if len(node.args) > 1 else node.kwargs.get(size_name, node.kwargs.get("split_size_or_sections"))
    dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    return kind, size, dim


def _pieces(split: fx.Node, rows: int, rank: int) -> list[tuple[int, int]] | None:
    """The [start, stop) rows of each piece ``split`` makes of the last dim, as torch makes them."""
    call = _split_call(split)
    if call is None:
        return None
    kind, size, dim = call
    if not isinstance(dim, int) or dim % rank != rank - 1:
        return None
    if kind == "chunk":
        if not isinstance(size, int) or size <= 0:
            return None
        size = -(-rows // size)  # torch.chunk: pieces of ceil(rows / chunks), the last one shorter
    if isinstance(size, int):
        if size <= 0:
            return None
        return [(start, min(start + size, rows)) for start in range(0, rows, size)]
    if isinstance(size, (list, tuple)) and all(isinstance(s, int) for s in size) and sum(size) == rows:
        bounds = [0]
        for s in size:
            bounds.append(bounds[-1] + s)
        return list(zip(bounds, bounds[1:]))
    return None


def _read_pieces(split: fx.Node, count: int) -> dict[int, list[fx.Node]] | None:
    """Which of ``count`` pieces are read, by whom: every user must be a constant ``getitem`` (else None)."""
    read: dict[int, list[fx.Node]] = {}
    for user in split.users:
        index = user.args[1] if user.op == "call_function" and user.target is operator.getitem else None
        if not isinstance(index, int) or not -count <= index < count:
            return None
        read.setdefault(index % count, []).append(user)
    return read
