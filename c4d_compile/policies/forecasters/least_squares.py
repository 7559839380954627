"""Least-squares weights per cached step, fitted on the user's own model (``policy="auto"``'s last stage).

Every other forecaster here fixes its weights from where the full steps are (a polynomial through them, a
damped or spectral variant of one). This one takes them from data: for each cached step of a schedule, the
weights over its history values that minimise the squared forecast error of the cached features on an
uncached generation recorded during calibration,

    w(s) = argmin_w || sum_j w_j F(h_j) - F(s) ||^2        (features normalised as in the exact search)

solved from the recorded Gram matrix (``calibration/fit.py``). It is the best linear forecast from those
history slots on the recorded trajectory, so it can only match or beat every polynomial of the same history
there, and it stays a weighted sum over the history: the compiled graphs, the export and batched serving
run it unchanged. Measured on the trained ε-prediction DiT at 5 of 50 steps (branch region, the full steps
``auto`` had chosen): the calibration seed's final sample went from 34.4 dB (Adams–Bashforth through 3
values) to 35.3 dB with weights fitted on its own uncached run. Fitted to the features, not to the final
sample, they can also measure worse than a polynomial: on the shifted Flux at 10 of 50, 47.1 against 49.2 dB.

The weights are stored per (target, history) in the forecaster's coordinates (the step index, or the
rescaled timestep with ``variable="timestep"``), rounded so that the Runtime's coordinates find them; a
step the table does not hold (another schedule or step count than the one fitted) falls back to the
polynomial through the same history values, which is what Adams–Bashforth forecasts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from ...errors import InvalidValueError
from ..validate import check_int
from .base import lagrange_weights

DIGITS = 6  # coordinates are compared rounded to this many decimals (units of one sampler step)


def coordinate_key(target: float, history: Sequence[float]) -> tuple[float, tuple[float, ...]]:
    return round(float(target), DIGITS), tuple(round(float(u), DIGITS) for u in history)


@dataclass(frozen=True)
class LeastSquares:
    slots: int = 3
    # per fitted step: (target, history newest first, weights newest first); lists from a JSON file are accepted
    table: tuple = ()

    def __post_init__(self) -> None:
        check_int("slots", self.slots, 1)
        rows = []
        for row in self.table:
            try:
                target, history, weights = row
                row = (float(target), tuple(float(u) for u in history), tuple(float(w) for w in weights))
            except (TypeError, ValueError):
                raise InvalidValueError("table row", row, "(target, [history coordinates], [weights])") from None
            if not 1 <= len(row[1]) <= self.slots or len(row[2]) != len(row[1]):
                raise InvalidValueError("table row", row, f"a history of 1..{self.slots} coordinates and one weight "
                                        "per coordinate")
            rows.append(row)
        object.__setattr__(self, "table", tuple(rows))

    @property
    def num_slots(self) -> int:
        return self.slots

    @cached_property
    def _lookup(self) -> dict:
        return {coordinate_key(target, history): weights for target, history, weights in self.table}

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        history = history[: self.slots]
        found = self._lookup.get(coordinate_key(target, history))
        return found if found is not None else lagrange_weights(target, history)
