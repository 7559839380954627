"""Score selection inside the compiled graphs (ToCa, arXiv 2410.05317): importance at full steps, the
top rows by importance plus staleness at partial steps. Plain torch functions that the rewrite passes
call from graph nodes, so they compile with the variant and never read back to the host.

ToCa scores a token by the attention it receives, which a fused attention kernel never writes out. The
importance here is what every graph has: the size of the token's cached token-local branch outputs,
``sum_b ||F_b[j]||`` over the branches of its token space (each norm over every dim but the token dim),
L2-normalised over the tokens as ToCa normalises its scores. ``staleness`` is ToCa's cache counter: the
partial calls since the token was last recomputed (reset to zero at full steps).
"""

from __future__ import annotations

import torch


def importance(values: list[torch.Tensor], dims: list[int]) -> torch.Tensor:
    """One float32 score per token: the L2 norm of each value's token row, summed, then L2-normalised."""
    total = None
    for value, dim in zip(values, dims):
        others = [d for d in range(value.dim()) if d != dim]
        norms = value.float().pow(2).sum(others).sqrt()
        total = norms if total is None else total + norms
    return total / total.norm().clamp_min(1e-12)


def top_rows(score: torch.Tensor, staleness: torch.Tensor, weight: float,
             count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` rows of highest ``score + weight * staleness``, sorted; the staleness after recomputing
    them (theirs zero, every other token's one more)."""
    rows = torch.topk(score + weight * staleness, count).indices.sort().values
    return rows, (staleness + 1).index_fill(0, rows, 0.0)
