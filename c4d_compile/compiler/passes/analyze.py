"""The analysis: run the analysis passes in order, collect what they found, and say it (``c4d inspect``).

Order (each reads the graph and what the passes before it found):
    find_blocks -> find_stream -> find_branches -> find_timestep -> find_token_dims -> find_token_local
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx

from .find_blocks import BlockStack, find_blocks
from .find_branches import BlockBranches, find_branches
from .find_stream import SPLIT_OUTPUT, StreamFacts, find_stream
from .find_timestep import TimestepInput, find_timestep
from .find_token_dims import TokenDims, find_token_dims
from .find_token_local import TokenLocality, TokenSpace, find_token_local

NO_STACK = "no block stack: searched the Dynamo module paths for ModuleList items doing two or more matrix products"
NO_TIMESTEP = "no timestep input: no input of rank <= 1 feeds a sin/cos embedding"


@dataclass(frozen=True)
class GraphAnalysis:
    num_nodes: int
    stack: BlockStack
    stream: StreamFacts
    branches: tuple[BlockBranches, ...]  # per block, graph order
    timesteps: tuple[TimestepInput, ...]
    token_dims: dict[str, TokenDims]
    token_local: tuple[TokenLocality, ...] = ()  # per residual branch of a proven block
    token_spaces: tuple[TokenSpace, ...] = ()  # per token count, the last block output carrying it

    @property
    def problems(self) -> tuple[str, ...]:
        return self._stack_problems + (() if self.timesteps else (NO_TIMESTEP,))

    @property
    def _stack_problems(self) -> tuple[str, ...]:
        found = list(self.stack.problems)
        if not self.stack.blocks:
            found.append(NO_STACK)
        elif self.stream.split:
            found.append(SPLIT_OUTPUT)
        return tuple(found)

    @property
    def split(self) -> bool:
        """A graph break split the block stack: this graph holds a part of it."""
        return self.stack.split or (bool(self.stack.blocks) and self.stream.split)

    @property
    def cacheable(self) -> bool:
        return not self.problems and bool(self.stream.outputs)

    @property
    def timestep_elsewhere(self) -> bool:
        """A whole stack whose only problem is that the timestep embedding ran in an earlier graph of the
        same forward (a graph break between the prologue and the blocks): cacheable with that graph's key."""
        return (not self.timesteps and not self._stack_problems and bool(self.stack.blocks)
                and bool(self.stream.outputs))

    @property
    def timestep_only(self) -> bool:
        """A graph with a timestep input and no block stack: a prologue split off by a graph break."""
        return bool(self.timesteps) and not self.stack.blocks

    def report(self) -> str:
        return _report(self)


def analyze(gm: fx.GraphModule) -> GraphAnalysis:
    stack = find_blocks(gm)
    stream = find_stream(gm, stack)
    branches = find_branches(gm, stack, stream) if stack.blocks else ()
    token_dims = find_token_dims(gm, stack, stream)
    token_local, token_spaces = find_token_local(gm, stack, branches, token_dims, stream)
    return GraphAnalysis(
        num_nodes=len(gm.graph.nodes),
        stack=stack,
        stream=stream,
        branches=branches,
        timesteps=find_timestep(gm),
        token_dims=token_dims,
        token_local=token_local,
        token_spaces=token_spaces,
    )


def _values(values) -> str:
    return ", ".join(map(str, values)) or "-"


def _report(a: GraphAnalysis) -> str:
    """What ``c4d inspect`` prints."""
    lines = [f"graph: {a.num_nodes} nodes"]
    lines.append("timestep input: " + (", ".join(t.name for t in a.timesteps) or "none"))
    stack = a.stack
    if stack.blocks:
        start, end = stack.span
        lines.append(f"block stack: {len(stack.blocks)} blocks in {len(stack.lists)} list(s), nodes {start}..{end}")
        for name in stack.lists:
            members = [b for b in stack.blocks if b.list_name == name]
            lines.append(f"  list {name}: {len(members)} blocks")
        for before, after, count in stack.glue:
            lines.append(f"  glue {before} -> {after}: {count} nodes")
        s = a.stream
        lines.append(f"stream in : {_values(s.inputs)}")
        lines.append(f"stream out: {_values(s.outputs)}")
        for out, partner in s.pairs:
            lines.append(f"  residual {out} - {partner}" if partner else f"  value {out} (no input partner)")
        if s.recomputed_outputs:
            lines.append(f"recomputed glue: {', '.join(s.recomputed_outputs)}")
        lines.append(f"invariants: {_values(s.invariants)}")
        lines.append("token dims: " + (", ".join(f"{k}{list(t.dims)}" + ("" if t.proven else " (assumed)")
                                                 for k, t in a.token_dims.items()) or "-"))
        lines.append("blocks (graph order): position, matmuls, stream after it")
        for b, live in zip(stack.blocks, s.boundaries):
            lines.append(f"  {b.name:<32} {b.start:>5}..{b.end:<5} {b.matmuls:>3}  {_values(live)}")
        lines.append("residual branches per block (s <- s + g * F):")
        for bb in a.branches:
            if bb.proven:
                found = ", ".join(f"{br.feature}" + (f"*{br.gate}" if br.gate else "") for br in bb.branches)
                lines.append(f"  {bb.block:<32} {len(bb.branches)}: {found}")
            else:
                lines.append(f"  {bb.block:<32} not proven ({bb.reason}): cached as a block residual")
        if a.token_local:
            local = [t for t in a.token_local if t.local]
            lines.append(f"token-local branches (recomputable on a token subset): {len(local)} of {len(a.token_local)}")
            for t in a.token_local:
                verdict = f"local, {len(t.body)} ops on {t.tokens} tokens" if t.local else f"mixes tokens: {t.reason}"
                lines.append(f"  {t.block:<32} {t.feature:<28} {verdict}")
    lines.append("cacheable: " + ("yes" if a.cacheable else "no"))
    lines += [f"  problem: {p}" for p in a.problems]
    return "\n".join(lines)
