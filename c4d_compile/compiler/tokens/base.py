"""What every token selection is: how a PARTIAL call picks the rows it recomputes, and what that adds to a plan.

A token subset (ToCa, DuCa, ClusCa) recomputes K rows of every token-local cached branch on a partial call.
The rows of each token space are chosen by the selection; a handler says, for its kind: the state it keeps
(``state``), what FULL computes for it (``add_to_full``), what PARTIAL reads and how it turns that into row
indices (``partial_inputs``, ``pick_rows``), what a partial call does to the rows it did not recompute
(``move_refreshed``) and what the host draws for it each call (``host_inputs``). The plan, the rewrites, the
Runtime and the exporter call these and never branch on the selection; a new selection is a new file here,
registered for its ``Selection`` value (``registry.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.fx as fx

from ...policies.tokens import Anchor, Selection, TokenSubset
from ...runtime.step_program import StateTensor
from ...runtime.token_picker import HostDraw
from ..passes.find_token_local import TokenLocality, TokenSpace


@dataclass(frozen=True)
class TokenHandler:
    """A token selection bound to one graph: the token-local branches a partial call recomputes and the rows
    (N, K) of each token space they read."""

    selection: ClassVar[Selection]

    subset: TokenSubset
    partial: tuple[TokenLocality, ...]  # the cached branches a PARTIAL call recomputes on rows
    token_rows: tuple[tuple[int, int], ...]  # per token space: (its rows N, the rows K a partial call recomputes)

    @classmethod
    def bind(cls, subset: TokenSubset, partial: tuple[TokenLocality, ...],
             spaces: tuple[TokenSpace, ...]) -> TokenHandler:
        """The handler for these branches; ``spaces`` are the graph's token spaces (where each last sits)."""
        rows = tuple((n, subset.count(n)) for n in sorted({t.tokens for t in partial}))
        return cls(subset, partial, rows)

    @property
    def anchor(self) -> Anchor:
        return self.subset.anchor

    @property
    def token_spaces(self) -> tuple[int, ...]:
        return tuple(n for n, _ in self.token_rows)

    def state(self) -> list[StateTensor]:
        """State beyond the refreshed features, per context."""
        return []

    def full_inputs(self) -> tuple[str, ...]:
        """State FULL reads for the selection."""
        return ()

    def add_to_full(self, graph: fx.Graph, by_name: dict[str, fx.Node],
                    named: dict[str, fx.Node]) -> list[tuple[fx.Node, str]]:
        """Nodes FULL adds for the next partial calls, each with the state it writes."""
        return []

    def partial_inputs(self, tokens: int) -> tuple[str, ...]:
        """What PARTIAL reads to pick the rows of a token space (host inputs and state)."""
        raise NotImplementedError

    def pick_rows(self, graph: fx.Graph, named: dict[str, fx.Node], tokens: int,
                  count: int) -> tuple[fx.Node, list[tuple[fx.Node, str]]]:
        """The int64 row indices of a token space in PARTIAL, and state it writes on the way."""
        raise NotImplementedError

    def move_refreshed(self, graph: fx.Graph, refreshed: fx.Node, fresh: fx.Node, named: dict[str, fx.Node],
                       tokens: int, dim: int) -> fx.Node:
        """The refreshed feature before the fresh rows are written into it: unchanged unless the selection
        spreads the fresh rows to other tokens."""
        return refreshed

    def host_inputs(self) -> dict[str, HostDraw]:
        """What the host draws for each partial call."""
        return {}

    def describe(self) -> list[str]:
        """Lines of the plan report."""
        return []
