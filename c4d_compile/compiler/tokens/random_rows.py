"""Random selection: K distinct rows drawn uniformly on every partial call (DuCa v2, arXiv 2412.18911, found
importance scores no better than random), a host input ``tokens.<N>.index`` per token space, sorted so the
gather reads memory in order."""

from __future__ import annotations

import functools

import torch
import torch.fx as fx

from ...policies.tokens import Selection
from ...runtime.state_names import token_index_name
from ...runtime.token_picker import HostDraw
from .base import TokenHandler
from .registry import register_tokens


def draw_rows(tokens: int, count: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(tokens, generator=generator)[:count].sort().values


@register_tokens
class RandomRows(TokenHandler):
    selection = Selection.RANDOM

    def partial_inputs(self, tokens: int) -> tuple[str, ...]:
        return (token_index_name(tokens),)

    def pick_rows(self, graph: fx.Graph, named: dict[str, fx.Node], tokens: int,
                  count: int) -> tuple[fx.Node, list[tuple[fx.Node, str]]]:
        return named[token_index_name(tokens)], []

    def host_inputs(self) -> dict[str, HostDraw]:
        return {token_index_name(n): HostDraw((k,), torch.int64, functools.partial(draw_rows, n, k))
                for n, k in self.token_rows}
