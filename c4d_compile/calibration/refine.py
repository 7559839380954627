"""Refine a full-step set by the measured error of the final sample: a local search.

The error a cached run adds to its final sample is not a sum over its cached segments: measured on the
trained reference models, the errors of separate segments partly cancel on the way to the final sample
(for an even spread of 10 of 50 steps, the sum of each segment's own final error was 4.7 times the error
of the run that caches them all; docs/calibration.md). No objective that adds per-segment costs — the
feature error the exact search minimises, DPCache's path-error tensor, LeMiCa's per-edge final error —
predicts which of two good schedules is better. So the last word goes to the measurement itself: from
a starting set, move one full step at a time by one step earlier or later, keep a move when the
measured final error drops, and try the same move again from there; stop after a sweep with no
improvement or when the evaluation budget is spent. Step 0 stays full (nothing to forecast from); the
last step may be left cached, as the search may choose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Refined:
    full_steps: tuple[int, ...]
    error: float
    evaluations: int  # measurements made by the search (the start included when it measured it)
    history: list[tuple[tuple[int, ...], float]] = field(default_factory=list)  # every measured set, in order


def neighbours(full_steps: Sequence[int], index: int, move: int, num_steps: int) -> tuple[int, ...] | None:
    """``full_steps`` with its ``index``-th step moved by ``move``; None when that leaves the valid sets
    (sorted, distinct, step 0 first and fixed, all below ``num_steps``)."""
    if index == 0:
        return None
    steps = list(full_steps)
    steps[index] += move
    lower = steps[index - 1]
    upper = steps[index + 1] if index + 1 < len(steps) else num_steps
    return tuple(steps) if lower < steps[index] < upper else None


def refine(
    measure: Callable[[tuple[int, ...]], float], start: Sequence[int], num_steps: int, max_evaluations: int,
    start_error: float | None = None, on_measure: Callable[[], None] | None = None,
) -> Refined:
    """Local search from ``start`` on ``measure`` (the final error of a full-step set), with at most
    ``max_evaluations`` calls of it (``start_error``, when given, is the start's, already measured)."""
    best = tuple(start)
    result = Refined(best, start_error if start_error is not None else math.inf, 0)
    seen: dict[tuple[int, ...], float] = {}

    def evaluate(steps: tuple[int, ...]) -> float | None:
        if steps in seen:
            return seen[steps]
        if result.evaluations >= max_evaluations:
            return None
        value = measure(steps)
        result.evaluations += 1
        seen[steps] = value
        result.history.append((steps, value))
        if on_measure is not None:
            on_measure()
        return value

    if start_error is None:
        first = evaluate(best)
        if first is None:
            return result
        result.error = first
    seen[best] = result.error
    improved = True
    while improved and result.evaluations < max_evaluations:
        improved = False
        for index in range(1, len(best)):
            for move in (-1, 1):
                candidate = neighbours(best, index, move, num_steps)
                while candidate is not None:  # keep moving the same way while it helps
                    value = evaluate(candidate)
                    if value is None or value >= result.error:
                        break
                    best, result.error, improved = candidate, value, True
                    candidate = neighbours(best, index, move, num_steps)
    result.full_steps = best
    return result
