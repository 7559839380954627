"""Which dim of each stream input indexes tokens: the one attention mixes.

Why: token-subset caching (ClusCa, ToCa, DuCa) gathers and scatters rows of the stream, so it must
know which dim is the rows. A transformer's token dim is the one its attention runs over: each dim
of a stream input is followed through the first blocks (``dim_flow.py``) and the one that reaches
an attention's key/value sequence dim is the token dim. The batch dim passes attention as a batch
dim; the channel dim is contracted by the first linear. Where no attention is reached (a model
that attends through ops without a rule), the layout (batch, tokens..., channels) is assumed and
the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx

from .dim_flow import stream_layout
from .find_blocks import BlockStack
from .find_stream import StreamFacts

_BLOCKS_SEARCHED = 2  # the first blocks hold every stream's first attention (double-stream models included)


@dataclass(frozen=True)
class TokenDims:
    dims: tuple[int, ...]
    proven: bool  # found from attention, not assumed from the layout
    why: str


def find_token_dims(gm: fx.GraphModule, stack: BlockStack, stream: StreamFacts) -> dict[str, TokenDims]:
    nodes = list(gm.graph.nodes)
    by_name = {n.name: n for n in nodes}
    searched = nodes[stack.blocks[0].start : stack.blocks[min(len(stack.blocks), _BLOCKS_SEARCHED) - 1].end + 1] \
        if stack.blocks else []
    found = {}
    for value in stream.inputs:
        dims = stream_layout(searched, by_name[value.name]) if searched else ()
        if dims:
            found[value.name] = TokenDims(dims, True, "attention runs over it")
        else:
            assumed = tuple(range(1, len(value.shape) - 1))
            found[value.name] = TokenDims(assumed, False, "assumed (batch, tokens..., channels): no attention "
                                          "over a dim of it found in the first blocks")
    return found
