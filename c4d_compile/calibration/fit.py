"""Fit least-squares forecast weights to a schedule on recorded trajectories (``LeastSquares``).

For a cached step ``s`` of a full-step set, with history ``h`` (its last ``slots`` full steps, newest first), the
weights minimising the summed, normalised squared forecast error of the recorded features (the exact search's
objective, ``search.py``) solve the normal equations of the trajectories' Gram matrix G:

    G[h, h] w = G[h, s]

summed over the recorded trajectories. A ridge of ``RIDGE`` times the mean diagonal keeps a history of nearly
equal values (neighbouring full steps late in sampling) well posed; at that size it changes no fitted weight
measurably on the reference models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..policies.forecasters.least_squares import LeastSquares
from ..policies.variable import Variable
from .search import Prepared

RIDGE = 1e-8


def fit_weights(prepared: Sequence[Prepared], variable: Variable, full_steps: Sequence[int], slots: int,
                num_steps: int) -> LeastSquares:
    """The least-squares forecaster of ``slots`` history values for every cached step of ``full_steps``."""
    full = sorted(full_steps)
    first = prepared[0]
    table = []
    for s in range(num_steps):
        if s in full or s < full[0]:
            continue
        h = tuple(reversed([f for f in full if f < s]))[:slots]
        rows = [j - first.offset for j in h]
        column = s - first.offset
        gram = sum(p.g[np.ix_(rows, rows)] for p in prepared)
        target = sum(p.g[rows, column] for p in prepared)
        gram = gram + RIDGE * np.trace(gram) / len(h) * np.eye(len(h))
        weights = np.linalg.solve(gram, target)
        at, coords = first.coordinates(variable, s, h)
        table.append((at, tuple(coords), tuple(float(w) for w in weights)))
    return LeastSquares(slots=slots, table=tuple(table))
