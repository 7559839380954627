"""FoCa — forecast then calibrate (arXiv 2508.16211), read with a bounded history.

The paper treats a layer's feature along the trajectory as a feature-ODE and, per sampling step
of size h, forecasts with BDF2 and calibrates with Heun (equations as transcribed from the paper
by third parties; no official code is public):

    (6) F'(x_{k+1}) = (3 F(x_{k+1}) - 4 F(x_k) + F(x_{k-1})) / 2h
    (7) F^(x_{k+1}) = 4/3 F(x_k) - 1/3 F(x_{k-1}) + 2h/3 F'(x_k)
    (8) F(x_{k+1}) = F(x_k) + h/2 [F'(x_{k-N}) + F'(x_{k+1})]          x_{k-N}: the last full step

The paper leaves F'(x_k) and the start values open. Our reading, stated so it can be checked:
* the trajectory advances one sampler step at a time (h = 1 step), from the newest full step a;
* F'(x_k) is the last one-step difference of the trajectory; then (7) is 2 F_k - F_{k-1} and (6)
  gives back the same difference, so (8) moves each step by s_{j+1} = (d + s_j) / 2: the step
  relaxes geometrically from s_0 to the anchor slope d. In closed form
      F^(u_a + k) = F_a + k d + (1 - 2^-k) (s_0 - d);
* d = F'(x_a) is (6)'s BDF2 derivative at the full step, taken on the full steps themselves (the
  quadratic through the last three full values; the secant with two), and s_0 = F_a - q(u_a - 1)
  is the one-step difference into the full step on that same quadratic.
Everything is linear in the last three full values, so it is a weights forecaster like the others
and needs no state update on cached steps. Unlike a Taylor series of order 2 the curvature term
saturates, which keeps long intervals stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .base import lagrange_weights


def _derivative_weights(at: float, history: Sequence[float]) -> list[float]:
    """Weights of the derivative, at ``at``, of the polynomial through the history points."""
    out = []
    for j, uj in enumerate(history):
        others = [um for m, um in enumerate(history) if m != j]
        denominator = 1.0
        for um in others:
            denominator *= uj - um
        numerator = 0.0
        for skip in range(len(others)):
            term = 1.0
            for m, um in enumerate(others):
                if m != skip:
                    term *= at - um
            numerator += term
        out.append(numerator / denominator)
    return out


@dataclass(frozen=True)
class FoCa:
    num_slots = 3

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        if len(history) == 1:
            return (1.0,)
        k = target - history[0]
        d = _derivative_weights(history[0], history)
        before = lagrange_weights(history[0] - 1.0, history)
        s0 = [(1.0 if j == 0 else 0.0) - b for j, b in enumerate(before)]
        relax = 1.0 - 0.5**k
        return tuple(
            (1.0 if j == 0 else 0.0) + k * d[j] + relax * (s0[j] - d[j]) for j in range(len(history))
        )
