"""Token-subset caching as data: which cached calls recompute a few token rows of the token-local branches.

A cached call may be *partial* (the PARTIAL variant): every token-local residual branch (proven by
``compiler/passes/find_token_local.py``) is recomputed for K rows of its token space of N tokens, the rest
forecast as on any cached call. The fresh rows replace the order-0 term of the forecast at their
positions and stay there until the next full step (ToCa, arXiv 2410.05317; DuCa, arXiv 2412.18911).

How the K rows are chosen (``selection``):

* ``random``: ``K = max(1, round(token_ratio * N))`` rows drawn uniformly on every partial call (DuCa v2
  found importance scores no better than random);
* ``cluster`` (ClusCa, arXiv 2509.10312): every full step clusters the tokens (k-means, L1 distance,
  warm-started, ``clusters`` centroids, 10 Lloyd iterations, inside the full graph) on the stream after
  the last block that carries the token space; a partial call recomputes one random token per
  cluster, and with ``propagation`` = γ > 0 moves every token's order-0 term toward its cluster's fresh
  row: ``D[j] <- γ y_c(j) + (1 - γ) D[j]``.

* ``score`` (ToCa, arXiv 2410.05317): the K tokens of highest ``importance + staleness_weight * staleness``,
  chosen inside the graph. ToCa's importance is the attention each token receives, which a fused attention
  kernel never materialises; here it is what a graph always has: the size of the token's cached token-local
  branch outputs at the last full step, ``sum_b ||F_b[j]||``, L2-normalised over the tokens (as ToCa
  normalises its scores) — the tokens whose reused values weigh most. ``staleness`` counts the partial calls
  since a token was last recomputed (ToCa's cache counter, reset at full steps); ``staleness_weight`` is
  ToCa's λ3 = 0.25 over its interval N = 4.

Which cached calls are partial: those whose distance from the last full step ``d`` has
``d % partial_every == 1 % partial_every`` — every cached call with 1 (ToCa, ClusCa), the odd ones with 2
(DuCa's conservative steps; the even ones are its aggressive, plain cached steps). It wraps any
schedule's decision, so it composes with budgets, calibrated and signal-driven schedules.

What the fresh rows become (``anchor``): ``order0`` writes them into the order-0 Taylor term, so the
forecast at their step is the fresh value plus the higher-order terms' drift since the full step (what
the reference code does); ``step`` makes the forecast equal the fresh value at that step and
extrapolates later steps from it. With a reuse forecast the two are the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import InvalidValueError
from ..runtime.step_program import StepInfo, VariantKind
from .validate import check_int, check_number, parse_enum


class Anchor(str, enum.Enum):
    """What the fresh rows of a partial call become in the forecast."""

    ORDER0 = "order0"  # the order-0 Taylor term, the later terms still added on top (the reference code)
    STEP = "step"  # the forecast at the step they were computed; later steps extrapolate from them


class Selection(str, enum.Enum):
    """How the K rows of a partial call are chosen."""

    RANDOM = "random"  # uniformly, a new draw every call
    CLUSTER = "cluster"  # one random token per k-means cluster of the last full step (ClusCa)
    SCORE = "score"  # the top tokens by importance at the last full step plus staleness (ToCa)


@dataclass(frozen=True)
class TokenSubset:
    token_ratio: float = 0.1  # random selection: the fraction of each token space recomputed
    partial_every: int = 1
    selection: Selection = Selection.RANDOM
    clusters: int = 16  # cluster selection: k-means centroids, one fresh token each
    propagation: float = 0.0  # cluster selection: γ, how far each token moves toward its cluster's fresh row
    anchor: Anchor = Anchor.ORDER0
    token_seed: int = 0  # of the random draws: a run is reproducible
    staleness_weight: float = 0.0625  # score selection: added per partial call a token was not recomputed

    def __post_init__(self) -> None:
        check_number("token_ratio", self.token_ratio, 0.0, 1.0)
        if self.token_ratio == 0:
            raise InvalidValueError("token_ratio", 0, "a number in (0, 1]: the fraction of tokens a partial call "
                                                      "recomputes")
        check_int("partial_every", self.partial_every, 1)
        check_int("clusters", self.clusters, 1)
        check_number("propagation", self.propagation, 0.0, 1.0)
        check_int("token_seed", self.token_seed, 0)
        check_number("staleness_weight", self.staleness_weight, 0.0)
        object.__setattr__(self, "selection", parse_enum(Selection, "selection", self.selection))
        object.__setattr__(self, "anchor", parse_enum(Anchor, "anchor", self.anchor))
        if self.propagation and self.selection is not Selection.CLUSTER:
            raise InvalidValueError("propagation", self.propagation, "0 unless selection='cluster': it moves tokens "
                                                                     "toward their cluster's fresh row")

    def count(self, tokens: int) -> int:
        """Rows recomputed per partial call in a token space of ``tokens`` rows."""
        if self.selection is Selection.CLUSTER:
            return min(tokens, self.clusters)
        return min(tokens, max(1, round(self.token_ratio * tokens)))

    def refine(self, kind: VariantKind, info: StepInfo) -> VariantKind:
        """The schedule's decision, with the cached calls this subset recomputes made partial."""
        if kind is not VariantKind.CACHED or not info.full_steps:
            return kind
        distance = info.step - info.full_steps[-1]
        return VariantKind.PARTIAL if distance % self.partial_every == 1 % self.partial_every else kind

    def describe(self) -> str:
        every = self.partial_every
        which = "every cached call" if every == 1 else f"cached calls {every}k+1 after a full one"
        if self.selection is Selection.CLUSTER:
            rows = f"one token per cluster of {self.clusters} (γ {self.propagation:g})"
        elif self.selection is Selection.SCORE:
            rows = f"the top {self.token_ratio:g} of the tokens by importance + {self.staleness_weight:g} x staleness"
        else:
            rows = f"{self.token_ratio:g} of the tokens, at random"
        return f"token-local branches recomputed on {rows} on {which}"
