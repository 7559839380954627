"""The analysis: run the analysis passes in order and collect what they found.

Order (each reads the graph and what the passes before it found):
    find_blocks -> find_stream -> find_branches -> find_timestep -> find_token_dims -> find_token_local
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx

from .find_blocks import BlockStack, find_blocks
from .find_branches import BlockBranches, find_branches
from .find_stream import StreamFacts, find_stream
from .find_timestep import TimestepInput, find_timestep
from .find_token_dims import TokenDims, find_token_dims
from .find_token_local import TokenLocality, TokenSpace, find_token_local


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
        found = list(self.stack.problems)
        if not self.stack.blocks:
            found.append(
                "no block stack: searched the Dynamo module paths for ModuleList items doing two or "
                "more matrix products"
            )
        else:
            found += [p for p in self.stream.problems if "split" in p]
        if not self.timesteps:
            found.append("no timestep input: no input of rank <= 1 feeds a sin/cos embedding")
        return tuple(found)

    @property
    def split(self) -> bool:
        return any("split" in p for p in self.problems)

    @property
    def cacheable(self) -> bool:
        return not self.problems and bool(self.stream.outputs)

    @property
    def timestep_elsewhere(self) -> bool:
        """A whole stack whose only problem is that the timestep embedding ran in an earlier graph of the
        same forward (a graph break between the prologue and the blocks): cacheable with that graph's key."""
        others = [p for p in self.problems if not p.startswith("no timestep input")]
        return not self.timesteps and not others and bool(self.stack.blocks) and bool(self.stream.outputs)

    @property
    def timestep_only(self) -> bool:
        """A graph with a timestep input and no block stack: a prologue split off by a graph break."""
        return bool(self.timesteps) and not self.stack.blocks

    def report(self) -> str:
        from .report import format_report

        return format_report(self)


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
