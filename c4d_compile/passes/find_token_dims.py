"""Which dims of each stream tensor index tokens.

Why: token-subset caching (ClusCa, ToCa) gathers and scatters rows of the stream; the report
shows the layout now so a model whose stream is not (batch, tokens, channels) is visible early.
The stream of a transformer is (batch, tokens..., channels): every dim between the first and the
last is a token dim. A stream of rank < 3 has none.
"""

from __future__ import annotations

from .find_stream import StreamValue


def find_token_dims(values: tuple[StreamValue, ...]) -> dict[str, tuple[int, ...]]:
    return {v.name: tuple(range(1, len(v.shape) - 1)) for v in values}
