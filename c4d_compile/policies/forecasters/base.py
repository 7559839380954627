"""What every forecaster is: weights over the values of past full steps.

Every forecaster here predicts a cached value as a weighted sum of the values the feature had at
the last few full steps,

    F^(u) = sum_j w_j(u, u_0, u_1, ...) * F(u_j)        u_0 newest, u_1 the full step before, ...

with weights that depend only on where the full steps were and where the prediction is. So the
graph side is one shape for all of them (the CACHED variant multiplies its history slots by a
weights vector), the state is the history of raw values (the Runtime rotates it on the host, no
arithmetic on full steps), and the weights are computed on the host per step: the export and the
calibration search use the same numbers.

Coordinates ``u`` are in units of sampler steps: the step index (``variable="step"``, the papers'
form) or the timestep rescaled so that one average step is one unit (``variable="timestep"``, see
``policies/variable.py``). Forecasters whose weights do not depend on the unit (Taylor, Lagrange)
see no difference; the Hermite basis does, which is why the unit is a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Forecaster(Protocol):
    """A frozen dataclass; its fields are overridable policy options (``order=2``)."""

    @property
    def num_slots(self) -> int:
        """How many past full-step values the forecast reads (the history kept per feature)."""

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        """Weights of the history values (newest first) for a forecast at coordinate ``target``.

        ``history`` holds the coordinates of the valid slots, newest first, 1 <= len <= num_slots;
        the result has the same length.
        """


def slot_weights(forecaster: Forecaster, target: float, history: Sequence[float], num_slots: int) -> tuple[float, ...]:
    """The weights input of a forecasting variant: one per history slot, slots not filled yet weigh zero."""
    values = tuple(forecaster.weights(target, history))
    return values + (0.0,) * (num_slots - len(values))


def taylor_factors(history: Sequence[float], order: int) -> list[list[float]]:
    """TaylorSeer's finite-difference factors D^0..D^order at the newest full step, as coefficient
    rows over the history values (arXiv 2503.06923; reference code ``taylor_utils``).

    At each full step the factors are refreshed by backward differences over the *latest* gap:
        D^0_a = F_a,   D^{i+1}_a = (D^i_a - D^i_{a-1}) / (u_a - u_{a-1}),
    where D^i_{a-1} is the factor formed at the previous full step; a factor whose previous one did
    not exist yet is zero, so a short history falls back to the lower orders. Written over the
    history (j = 0 newest), D^i_j needs the values j..j+i.
    """
    n = len(history)
    rows: list[list[list[float]]] = [[_unit(j, n) for j in range(n)]]  # rows[i][j] = D^i at full step j
    for i in range(order):
        nxt = []
        for j in range(n - i - 1):
            gap = history[j] - history[j + 1]
            nxt.append([(a - b) / gap for a, b in zip(rows[i][j], rows[i][j + 1])])
        if not nxt:
            break
        rows.append(nxt)
    return [level[0] for level in rows]


def lagrange_weights(target: float, history: Sequence[float]) -> tuple[float, ...]:
    """Weights of the polynomial through all history points, evaluated at ``target``."""
    out = []
    for j, uj in enumerate(history):
        w = 1.0
        for m, um in enumerate(history):
            if m != j:
                w *= (target - um) / (uj - um)
        out.append(w)
    return tuple(out)


def combine(rows: Sequence[Sequence[float]], coefficients: Sequence[float]) -> tuple[float, ...]:
    """sum_i coefficients[i] * rows[i]: a weights vector from factor rows."""
    n = len(rows[0])
    return tuple(sum(c * row[j] for c, row in zip(coefficients, rows)) for j in range(n))


def _unit(j: int, n: int) -> list[float]:
    return [1.0 if m == j else 0.0 for m in range(n)]
