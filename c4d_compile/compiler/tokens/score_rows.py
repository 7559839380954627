"""Score selection (ToCa, arXiv 2410.05317): a partial call recomputes the K tokens of highest
``importance + staleness_weight * staleness``, chosen inside the graph, so the host draws nothing. FULL writes
each token's importance (the size of its cached token-local branch outputs) and resets its staleness; PARTIAL
counts the staleness on. The graph functions are in ``compiler/passes/token_scores.py``."""

from __future__ import annotations

import operator

import torch
import torch.fx as fx

from ...policies.tokens import Selection
from ...runtime.state_names import score_name, staleness_name
from ...runtime.step_program import StateTensor, VariantKind
from ..passes.token_scores import importance, top_rows
from .base import TokenHandler
from .registry import register_tokens


@register_tokens
class ScoreRows(TokenHandler):
    selection = Selection.SCORE

    @property
    def staleness_weight(self) -> float:
        return self.subset.staleness_weight

    def state(self) -> list[StateTensor]:
        entries = []
        for tokens in self.token_spaces:  # importance at full steps; staleness reset there, counted by partial calls
            entries.append(StateTensor(score_name(tokens), (tokens,), torch.float32, "token-score",
                                       written_by=(VariantKind.FULL,), read_by=(VariantKind.PARTIAL,)))
            entries.append(StateTensor(staleness_name(tokens), (tokens,), torch.float32, "token-score",
                                       written_by=(VariantKind.FULL, VariantKind.PARTIAL),
                                       read_by=(VariantKind.PARTIAL,)))
        return entries

    def add_to_full(self, graph: fx.Graph, by_name: dict[str, fx.Node],
                    named: dict[str, fx.Node]) -> list[tuple[fx.Node, str]]:
        written = []
        for tokens in self.token_spaces:  # importance of each token, from its token-local branches' values
            branches = [b for b in self.partial if b.tokens == tokens]
            score = graph.call_function(importance, ([by_name[b.feature] for b in branches],
                                                     [dict(b.body)[b.feature] for b in branches]))
            written += [(score, score_name(tokens)),
                        (graph.call_function(torch.zeros_like, (score,)), staleness_name(tokens))]
        return written

    def partial_inputs(self, tokens: int) -> tuple[str, ...]:
        return score_name(tokens), staleness_name(tokens)

    def pick_rows(self, graph: fx.Graph, named: dict[str, fx.Node], tokens: int,
                  count: int) -> tuple[fx.Node, list[tuple[fx.Node, str]]]:
        picked = graph.call_function(top_rows, (named[score_name(tokens)], named[staleness_name(tokens)],
                                                self.staleness_weight, count))
        rows = graph.call_function(operator.getitem, (picked, 0))
        return rows, [(graph.call_function(operator.getitem, (picked, 1)), staleness_name(tokens))]

    def describe(self) -> list[str]:
        return [f"  scores: the {tokens} tokens ranked by importance at full steps + staleness"
                for tokens in self.token_spaces]
