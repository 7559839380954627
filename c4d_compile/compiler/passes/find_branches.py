"""Find the residual branches of every block: ``s <- s + g * F``, what branch-level caching stores.

Why: branch-level methods (TaylorSeer, FoCa, HiCache, FORA, ...) cache each F and, on cached steps,
keep the block's skeleton — its stream adds and the invariant-only nodes that make the gates from
the *current* timestep — while everything else of the block disappears.

Per block:
* stream-dependent nodes depend on a stream value entering the block (a stack input or a value
  computed from an earlier block); invariant-only nodes depend only on invariants (temb,
  modulation tables, rotary tables) and parameters;
* the chain is the stream itself inside the block: the entering stream values and what structural
  ops make of them (casts, views, ``cat`` of two streams, slices back) and residual adds;
* a residual add has one operand on the chain and one stream-dependent operand T off the chain;
  T is ``g * F`` when one factor is invariant-only (either order, casts absorbed), else F = T;
* the block is proven when every value it hands on is on the chain and no stream-dependent node
  off the chain is needed once each F is replaced — i.e. the skeleton really is skip + branches.
  Otherwise the block is reported with the reason and cached as a whole block residual instead.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx

from .find_blocks import BlockStack
from .find_stream import StreamFacts, pair_residuals
from .graph_utils import ADDS, tensor_meta

_MULS = {operator.mul, torch.mul, operator.imul}
_PASS_METHODS = {
    "float", "half", "bfloat16", "to", "type_as", "type", "contiguous", "clone", "view", "reshape",
    "flatten", "unflatten", "permute", "transpose", "squeeze", "unsqueeze", "clip", "clamp",
}
_CASTS = {"float", "to", "type_as", "half", "bfloat16"}
_PASS_FUNCTIONS = {
    torch.cat, torch.concat, operator.getitem, torch.reshape, torch.flatten, torch.permute, torch.transpose,
    torch.squeeze, torch.unsqueeze, torch.clip, torch.clamp, torch.split, torch.chunk, torch.narrow,
}


@dataclass(frozen=True)
class Branch:
    add: str  # the residual add node
    feature: str  # F: what branch-level caching stores
    gate: str | None  # g, invariant-only; None when ungated
    shape: tuple
    dtype: torch.dtype


@dataclass(frozen=True)
class BlockBranches:
    block: str
    branches: tuple[Branch, ...]
    proven: bool
    reason: str = ""  # why a block is not proven
    # (value handed on, stream input it is a residual against or None) for the block-residual fallback
    residual_pairs: tuple[tuple[str, str | None], ...] = ()
    chain: tuple[str, ...] = ()  # the stream inside the block: the values entering it, structural ops, residual adds


def _is_pass_through(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _PASS_METHODS
    return node.op == "call_function" and node.target in _PASS_FUNCTIONS


def _split_gate(term: fx.Node, stream_dep: set[fx.Node]) -> tuple[fx.Node, fx.Node | None, list[fx.Node]]:
    """``g * F`` -> (F, g, skeleton nodes from the term down to F); ungated: (F, None, ...).

    Casts around the product and around F are absorbed: they stay in the skeleton and act on the
    forecast, so F is cached in the dtype the branch computed it in.
    """
    skeleton = []
    core = term
    while core.op == "call_method" and core.target in _CASTS:
        skeleton.append(core)
        core = core.args[0]
    feature, gate = core, None
    if core.op == "call_function" and core.target in _MULS and len(core.args) == 2:
        a, b = core.args
        a_dep = isinstance(a, fx.Node) and a in stream_dep
        b_dep = isinstance(b, fx.Node) and b in stream_dep
        if a_dep != b_dep and isinstance(a, fx.Node) and isinstance(b, fx.Node):
            skeleton.append(core)
            feature, gate = (a, b) if a_dep else (b, a)
    while feature.op == "call_method" and feature.target in _CASTS and len(feature.users) == 1:
        skeleton.append(feature)
        feature = feature.args[0]
    return feature, gate, skeleton


def _analyze_block(nodes: list[fx.Node], stream_in: set[fx.Node], inside: set[fx.Node]):
    frontier = {a for n in nodes for a in n.all_input_nodes if a not in inside and a in stream_in}
    stream_dep: set[fx.Node] = set(frontier)
    for n in nodes:
        if any(a in stream_dep for a in n.all_input_nodes):
            stream_dep.add(n)
    chain: set[fx.Node] = set(frontier)
    skeleton: set[fx.Node] = set()  # gate products and casts between a residual add and its F
    branches: list[tuple[fx.Node, fx.Node, fx.Node | None]] = []
    for n in nodes:
        inputs = [a for a in n.all_input_nodes if a in stream_dep]
        if not inputs:
            continue
        if n.op == "call_function" and n.target in ADDS and len(n.args) == 2:
            on_chain = [a for a in n.args if isinstance(a, fx.Node) and a in chain]
            off_chain = [a for a in n.args if isinstance(a, fx.Node) and a in stream_dep and a not in chain]
            if len(on_chain) == 2 or (on_chain and not off_chain):
                chain.add(n)  # a long skip joining two stream values, or a bias
            elif len(on_chain) == 1 and len(off_chain) == 1:
                feature, gate, path = _split_gate(off_chain[0], stream_dep)
                branches.append((n, feature, gate))
                chain.add(n)
                skeleton.update(path)
        elif _is_pass_through(n) and all(a in chain for a in inputs):
            chain.add(n)
    outputs = [n for n in nodes if any(u not in inside for u in n.users)]
    stream_outputs = [n for n in outputs if n in stream_dep]
    reason = ""
    off = [n.name for n in stream_outputs if n not in chain]
    if off:
        reason = f"hands on {', '.join(off)}, which is not the stream plus residual branches"
    elif not branches:
        reason = "no residual add found"
    else:
        # Walk back from the outputs, stopping at each F: nothing stream-dependent may be needed
        # off the chain (else the skeleton would still depend on work the branches skip).
        features = {f for _, f, _ in branches}
        seen, todo = set(), list(stream_outputs)
        while todo and not reason:
            n = todo.pop()
            if n in seen or n not in inside or n in features:
                continue
            seen.add(n)
            if n in stream_dep and n not in chain and n not in skeleton:
                reason = f"{n.name} is stream-dependent but not part of a residual branch"
            todo.extend(n.all_input_nodes)
    entering = sorted((n for n in frontier if tensor_meta(n) is not None), key=lambda n: n.name)
    return branches, reason, stream_outputs, entering, chain


def find_branches(gm: fx.GraphModule, stack: BlockStack, stream: StreamFacts) -> tuple[BlockBranches, ...]:
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    stream_in = {n for n in nodes if n.name in {v.name for v in stream.inputs}}
    # Values computed from any block are stream for the blocks after it.
    block_nodes = {n for b in stack.blocks for n in nodes[b.start : b.end + 1]}
    depends: set[fx.Node] = set()
    for n in nodes:
        if n in block_nodes or any(a in depends for a in n.all_input_nodes):
            depends.add(n)
    stream_values = stream_in | depends
    result = []
    for block in stack.blocks:
        members = nodes[block.start : block.end + 1]
        inside = set(members)
        branches, reason, outputs, frontier, chain = _analyze_block(members, stream_values, inside)
        found = tuple(
            Branch(add.name, f.name, g.name if g is not None else None, tuple(meta.shape), meta.dtype)
            for add, f, g in branches
            if (meta := tensor_meta(f)) is not None
        )
        pairs = () if not reason else tuple(
            (out.name, partner.name if partner is not None else None)
            for out, partner in pair_residuals([n for n in outputs if tensor_meta(n) is not None], frontier, pos,
                                               block.start)
        )
        ordered = tuple(n.name for n in nodes[: block.end + 1] if n in chain)
        result.append(BlockBranches(block.name, found, not reason, reason, pairs, ordered))
    return tuple(result)
