"""Cluster selection (ClusCa, arXiv 2509.10312): every full step clusters the tokens of each token space
(k-means, L1, warm-started from the last full step's centroids) on the stream after the last block that
carries it; a partial call recomputes one random token per cluster, picked inside the graph from a host
draw of one uniform number per token (``tokens.<N>.noise``), and with ``propagation`` = γ > 0 first moves
every token's order-0 term toward its cluster's fresh row. The graph functions are in
``compiler/passes/clusters.py``."""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass

import torch
import torch.fx as fx

from ...errors import NotCacheableError
from ...policies.tokens import Selection, TokenSubset
from ...runtime.state_names import centroids_name, labels_name, token_noise_name
from ...runtime.step_program import StateTensor, VariantKind
from ...runtime.token_picker import HostDraw
from ..passes.clusters import kmeans, one_per_cluster, propagate
from ..passes.find_token_local import TokenLocality, TokenSpace
from .base import TokenHandler
from .registry import register_tokens


def draw_noise(tokens: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(tokens, generator=generator)


@register_tokens
@dataclass(frozen=True)
class ClusterRows(TokenHandler):
    selection = Selection.CLUSTER

    clustered: tuple[TokenSpace, ...] = ()  # per token space, where the stream last carries it

    @classmethod
    def bind(cls, subset: TokenSubset, partial: tuple[TokenLocality, ...],
             spaces: tuple[TokenSpace, ...]) -> ClusterRows:
        rows = TokenHandler.bind(subset, partial, spaces).token_rows
        by_tokens = {s.tokens: s for s in spaces}
        missing = [n for n, _ in rows if n not in by_tokens]
        if missing:
            raise NotCacheableError(f"token clusters: no block output carries the token space(s) of {missing} tokens")
        return cls(subset, partial, rows, tuple(by_tokens[n] for n, _ in rows))

    def state(self) -> list[StateTensor]:
        rows = dict(self.token_rows)
        entries = []
        for space in self.clustered:  # k-means at full steps, warm-started from the last one's centroids
            points = math.prod(space.shape) // space.tokens
            entries.append(StateTensor(centroids_name(space.tokens), (rows[space.tokens], points), torch.float32,
                                       "clusters", written_by=(VariantKind.FULL,), read_by=(VariantKind.FULL,),
                                       initial_zeros=True))
            entries.append(StateTensor(labels_name(space.tokens), (space.tokens,), torch.int64, "clusters",
                                       written_by=(VariantKind.FULL,), read_by=(VariantKind.PARTIAL,)))
        return entries

    def full_inputs(self) -> tuple[str, ...]:
        return tuple(centroids_name(space.tokens) for space in self.clustered)

    def add_to_full(self, graph: fx.Graph, by_name: dict[str, fx.Node],
                    named: dict[str, fx.Node]) -> list[tuple[fx.Node, str]]:
        written = []
        for space in self.clustered:
            found = graph.call_function(kmeans, (by_name[space.site], space.dim, named[centroids_name(space.tokens)]))
            for i, name in enumerate((centroids_name(space.tokens), labels_name(space.tokens))):
                written.append((graph.call_function(operator.getitem, (found, i)), name))
        return written

    def partial_inputs(self, tokens: int) -> tuple[str, ...]:
        return token_noise_name(tokens), labels_name(tokens)

    def pick_rows(self, graph: fx.Graph, named: dict[str, fx.Node], tokens: int,
                  count: int) -> tuple[fx.Node, list[tuple[fx.Node, str]]]:
        picked = graph.call_function(one_per_cluster, (named[labels_name(tokens)], named[token_noise_name(tokens)],
                                                       count))
        return picked, []

    def move_refreshed(self, graph: fx.Graph, refreshed: fx.Node, fresh: fx.Node, named: dict[str, fx.Node],
                       tokens: int, dim: int) -> fx.Node:
        if not self.subset.propagation:
            return refreshed
        return graph.call_function(propagate, (refreshed, fresh, named[labels_name(tokens)], dim,
                                               self.subset.propagation))

    def host_inputs(self) -> dict[str, HostDraw]:
        return {token_noise_name(n): HostDraw((n,), torch.float32, functools.partial(draw_noise, n))
                for n, _ in self.token_rows}

    def describe(self) -> list[str]:
        return [f"  clusters: the {space.tokens} tokens of {space.site}, grouped at every full step"
                for space in self.clustered]
