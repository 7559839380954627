"""Which residual branches are token-local: each token's F depends only on that token's stream row.

Why: a token-local branch can be recomputed for K chosen token rows on a cached step (ClusCa, ToCa,
DuCa): gather the rows of the stream values it reads, run its ops on them, and the K rows of F are
the full computation's rows. The proof per branch (``dim_flow.py``): the branch body is F and the
stream-dependent values it needs inside the block off the stream chain; its entries are the chain
values it reads (the stream at that point of the block). Following the token dim from the entries,
every body op must keep each row to itself: pointwise ops, linears and norms over channels,
modulation broadcasts. Attention, a reduction or reshape across tokens, or an invariant indexed by
token (rotary tables) make the branch token-mixing; ``c4d inspect`` prints which op and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx

from .dim_flow import follow, mutates
from .find_blocks import BlockStack
from .find_branches import BlockBranches
from .find_stream import StreamFacts
from .find_token_dims import TokenDims
from .graph_utils import tensor_meta


@dataclass(frozen=True)
class TokenLocality:
    block: str
    feature: str
    local: bool
    reason: str  # why not, naming the op; empty when local
    entries: tuple[tuple[str, int], ...] = ()  # chain values the body reads, each with its token dim
    body: tuple[tuple[str, int], ...] = ()  # the ops recomputed on token rows, graph order, with the token dim
    tokens: int = 0  # rows of the token dim


@dataclass(frozen=True)
class TokenSpace:
    """A set of token rows (image tokens, text tokens) and where the stream last carries it: the value after
    the last block whose output holds these rows, which token clustering (ClusCa) groups at full steps."""

    tokens: int
    site: str  # that block output
    dim: int  # its token dim
    shape: tuple[int, ...]


def find_token_local(gm: fx.GraphModule, stack: BlockStack, branches: tuple[BlockBranches, ...],
                     token_dims: dict[str, TokenDims], stream_facts: StreamFacts,
                     ) -> tuple[tuple[TokenLocality, ...], tuple[TokenSpace, ...]]:
    """Per residual branch, whether it is token-local; per token count, the token space's last block output."""
    nodes = list(gm.graph.nodes)
    by_name = {n.name: n for n in nodes}
    seeds = {by_name[name]: t.dims[0] for name, t in token_dims.items() if len(t.dims) == 1}
    if not seeds or not stack.blocks:
        return (), ()
    layout = follow(nodes[: stack.blocks[-1].end + 1], seeds, local=False)  # where the token dim is in the stream
    stream = set(layout.positions) | set(layout.stops)
    position = {n: i for i, n in enumerate(nodes)}
    found = []
    for block, bb in zip(stack.blocks, branches):
        inside = set(nodes[block.start : block.end + 1])
        chain = {by_name[name] for name in bb.chain}
        for branch in bb.branches if bb.proven else ():
            found.append(_branch(by_name[branch.feature], bb.block, inside, chain, stream, layout.positions,
                                 position))
    spaces: dict[int, TokenSpace] = {}
    for boundary in stream_facts.boundaries:  # later blocks overwrite
        for value in boundary:
            node = by_name[value.name]
            if node in layout.positions and isinstance(rows := value.shape[layout.positions[node]], int):
                spaces[rows] = TokenSpace(rows, value.name, layout.positions[node], tuple(value.shape))
    return tuple(found), tuple(spaces[n] for n in sorted(spaces))


def _branch(feature: fx.Node, block: str, inside: set, chain: set, stream: set, layout: dict,
            position: dict) -> TokenLocality:
    body, entries, todo = set(), set(), [feature]
    while todo:
        n = todo.pop()
        if n in body or n in entries or n not in stream:
            continue
        if n in chain or n not in inside:
            entries.add(n)
            continue
        body.add(n)
        todo.extend(n.all_input_nodes)
    missing = [e.name for e in entries if e not in layout]
    if missing:
        return TokenLocality(block, feature.name, False, f"reads {', '.join(sorted(missing))}, whose token dim is "
                                                         "not known")
    ordered = sorted(body, key=position.__getitem__)
    written = next((u for n in ordered for u in n.users if mutates(u)), None)
    if written is not None:
        return TokenLocality(block, feature.name, False, f"{written.name} writes into a value of it in place")
    flow = follow(ordered, {e: layout[e] for e in entries}, local=True)
    stop = next((flow.stops[n] for n in ordered if n in flow.stops), None)
    if stop is not None or feature not in flow.positions:
        return TokenLocality(block, feature.name, False, str(stop) if stop else "F does not carry the token dim")
    sizes = [tensor_meta(e).shape[layout[e]] for e in entries]
    if not all(isinstance(n, int) for n in sizes):
        return TokenLocality(block, feature.name, False, "the token count varies between calls (dynamic shapes)")
    if len(set(sizes)) != 1:
        return TokenLocality(block, feature.name, False, "reads stream values of different token counts")
    return TokenLocality(block, feature.name, True, "", tuple(sorted((e.name, layout[e]) for e in entries)),
                         tuple((n.name, flow.positions[n]) for n in ordered), sizes[0])
