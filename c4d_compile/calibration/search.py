"""The exact search for the full-step set of a budget that minimises the forecaster's error.

Given recorded trajectories (``record.py``), the error of a cached step ``s`` whose history is the
full steps ``h = (h_0 newest, h_1, ...)`` is, summed over features (each normalised by its mean
squared value, so every feature counts alike) and over trajectories,

    c(s | h) = || sum_j w_j(s, h) F(h_j) - F(s) ||^2

with the forecaster's own weights in the policy's variable (the same function the Runtime calls).
With the Gram matrix G of the trajectory this is w^T G[h,h] w - 2 w^T G[h,s] + G[s,s]: scalars only.
The forecast at ``s`` depends only on the last K full steps before it (K = the forecaster's history),
so a dynamic programme over states "the last K full steps" with the number of full steps so far is
exact: dp[m+1][(b, h_0, ..., h_{K-2})] = min over h_{K-1} of dp[m][h] + sum_{s=h_0+1..b-1} c(s | h).
Step 0 is always full (nothing to forecast from); the search may leave the last step cached.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidValueError
from ..policies.variable import Variable, coordinates
from .record import Trajectory

MAX_TABLE = 2e7  # entries of the segment-cost table; bounds memory (8 bytes each)


def gram(traj: Trajectory, num_features: int) -> np.ndarray:
    """Sum over features of the normalised Gram matrix of the trajectory's samples."""
    total = None
    for f in range(num_features):
        m = traj.matrix(f)
        scale = float((m * m).sum(1).mean()) or 1.0
        g = (m @ m.T).numpy() / scale
        total = g if total is None else total + g
    return total


def check_table(histories: int, num_steps: int) -> None:
    """The search's table must fit: a typed error before anything is enumerated, not after."""
    if histories * num_steps > MAX_TABLE:
        raise InvalidValueError("budget search", f"{histories} histories x {num_steps} steps",
                                f"at most {MAX_TABLE:.0e} table entries: use fewer steps or a forecaster with a "
                                "shorter history")


def step_costs(trajectories: Sequence[tuple[Trajectory, np.ndarray]], forecaster, variable: Variable,
               num_steps: int) -> dict[tuple, np.ndarray]:
    """c(s | h) for every history h (newest first, at most K long) and every later step s: h -> array over s."""
    check_table(sum(math.comb(num_steps, k) for k in range(1, forecaster.num_slots + 1)), num_steps)
    # In the step index a forecaster whose weights depend only on the distances between the steps has the same
    # weights for every shifted copy of a history: computed once per shape (the search's time is in the weights).
    shared = {} if variable is Variable.STEP and _shift_invariant(forecaster) else None
    prepared = [Prepared(traj, g, shared) for traj, g in trajectories]
    costs: dict[tuple, np.ndarray] = {}
    for length in range(1, forecaster.num_slots + 1):
        for history in itertools.combinations(range(num_steps), length):
            h = history[::-1]  # newest first
            row = np.full(num_steps, np.nan)
            row[h[0] + 1:] = sum(p.costs(forecaster, variable, h, num_steps) for p in prepared)
            costs[h] = row
    return costs


def _shift_invariant(forecaster) -> bool:
    """Whether the weights are unchanged when the target and the history move by the same amount (checked on a
    few histories: Taylor, Hermite, Lagrange and FoCa are; a forecaster over absolute time, Spectrum, is not)."""
    probes = [(7.0, [5.0]), (9.0, [6.0, 4.0]), (13.0, [10.0, 7.0, 2.0]), (6.0, [5.0, 3.0, 1.0, 0.0])]
    for target, history in probes:
        history = history[: forecaster.num_slots]
        here = np.asarray(forecaster.weights(target, history))
        moved = np.asarray(forecaster.weights(target + 11.0, [u + 11.0 for u in history]))
        if not np.allclose(here, moved, rtol=1e-9, atol=1e-12):
            return False
    return True


class Prepared:
    """A trajectory with what every cost evaluation needs looked up once."""

    def __init__(self, traj: Trajectory, g: np.ndarray, shared: dict | None = None):
        self.shared = shared  # weights by the distances (s - h_0, h_0 - h_1, ...), for shift-invariant forecasters
        if traj.steps != list(range(traj.steps[0], traj.steps[0] + len(traj.steps))):
            raise InvalidValueError("recorded steps", traj.steps, "consecutive steps (every step of a generation)")
        self.g, self.first_step = g, traj.first_step
        self.offset = traj.steps[0]
        # the timestep input that moves (as the Runtime picks it)
        i = next((i for i, (a, b) in enumerate(zip(traj.first_key, traj.keys[-1])) if a != b), 0)
        self.times = [key[i] for key in traj.keys]
        self.first_time = traj.first_key[i] if traj.first_key else self.times[0]

    def costs(self, forecaster, variable: Variable, h: tuple, num_steps: int) -> np.ndarray:
        """c(s | h) for s = h_0 + 1 .. num_steps - 1: with the forecaster's weights w(s) (one row per s),
        w G[h,h] w - 2 w G[h,s] + G[s,s], in one matrix expression."""
        o = self.offset
        targets = range(h[0] + 1, num_steps)
        if not targets:
            return np.zeros(0)
        w = np.array([self.weights(forecaster, variable, s, h) for s in targets])  # (targets, len(h))
        rows = [j - o for j in h]
        cols = [s - o for s in targets]
        g = self.g
        quadratic = np.einsum("si,ij,sj->s", w, g[np.ix_(rows, rows)], w)
        cross = np.einsum("si,is->s", w, g[np.ix_(rows, cols)])
        return quadratic - 2 * cross + g[cols, cols]

    def weights(self, forecaster, variable: Variable, s: int, h: tuple) -> tuple[float, ...]:
        if self.shared is not None:
            shape = (s - h[0], *(a - b for a, b in zip(h, h[1:])))
            found = self.shared.get(shape)
            if found is None:
                found = self.shared[shape] = tuple(forecaster.weights(float(s), [float(j) for j in h]))
            return found
        return forecaster.weights(*self.coordinates(variable, s, h))

    def coordinates(self, variable: Variable, s: int, h: tuple) -> tuple[float, list[float]]:
        """Step ``s`` and its history ``h`` in the forecaster's coordinates, as the Runtime computes them."""
        o = self.offset
        return coordinates(variable, s, self.times[s - o], self.first_step, self.first_time, list(h),
                           [self.times[j - o] for j in h])


def best_full_steps(
    costs: dict[tuple, np.ndarray], num_slots: int, budget: int, num_steps: int
) -> tuple[tuple[int, ...], float]:
    """The exact minimum of the summed cost over full-step sets of ``budget`` steps that contain step 0."""
    if not 1 <= budget <= num_steps:
        raise InvalidValueError("budget", budget, f"an integer in 1..{num_steps} (the recorded step count)")
    check_table(len(costs), num_steps)
    # prefix[h][b] = sum of c(s | h) for h_0 < s < b
    prefix = {h: np.concatenate([[0.0], np.nancumsum(np.nan_to_num(row, nan=0.0))]) for h, row in costs.items()}
    best: dict[tuple, tuple[float, tuple[int, ...]]] = {(0,): (0.0, (0,))}
    for _ in range(budget - 1):
        nxt: dict[tuple, tuple[float, tuple[int, ...]]] = {}
        for h, (value, steps) in best.items():
            for b in range(h[0] + 1, num_steps):
                total = value + prefix[h][b] - prefix[h][h[0] + 1]
                state = ((b,) + h)[:num_slots]
                if state not in nxt or total < nxt[state][0]:
                    nxt[state] = (total, steps + (b,))
        best = nxt
    finals = [(value + prefix[h][num_steps] - prefix[h][h[0] + 1], steps) for h, (value, steps) in best.items()]
    value, steps = min(finals)
    return steps, float(value)


def total_cost(costs: dict[tuple, np.ndarray], num_slots: int, full_steps: Sequence[int], num_steps: int) -> float:
    """The cost of one given full-step set, step by step (what the search minimises; used to check it)."""
    full = sorted(full_steps)
    value = 0.0
    for s in range(num_steps):
        if s in full:
            continue
        h = tuple(reversed([f for f in full if f < s]))[:num_slots]
        value += costs[h][s]
    return value
