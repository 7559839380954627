"""Spectrum: a ridge-regressed Chebyshev fit over the stored full steps (CVPR 2026, arXiv 2603.01623;
code github.com/hanjq17/Spectrum, ``src/utils/basis_utils.py``).

The feature is one smooth function of time, fitted to every stored full-step value at once. Time is
the step coordinate u, mapped to tau = 2 u / span - 1 (the code maps [0, 50] onto [-1, 1]: span = 50,
hard-coded there whatever the step count). With the Chebyshev basis

    phi(tau) = [T_0 .. T_M],   T_0 = 1, T_1 = tau, T_{m+1} = 2 tau T_m - T_{m-1}        (M = degree)

the n stored values H (n x D) at basis rows X (n x (M+1)) give the ridge coefficients
C = (X^T X + lambda I)^-1 X^T H (every coefficient penalised, T_0 included) and the forecast
F^(u*) = phi(tau*)^T C. That is linear in the stored values,

    F^(u*) = sum_j w_j F(u_j),     w = X (X^T X + lambda I)^-1 phi(tau*) = (X X^T + lambda I)^-1 X phi(tau*),

so the weights depend only on where the full steps were and where the forecast is. They are not
normalised: the ridge shrinks the fit toward zero (step 5 from steps 0-4: sum_j w_j = 0.94), part of
the method. They are computed in float64 on the host from the SVD X = U S V^T,
w = U S (S^2 + lambda I)^-1 V^T phi(tau*): the code's Cholesky solve (float32, with the step
coordinates and the coefficients in bfloat16) without squaring the condition of X, whose first full
steps sit close together near tau = -1. With fewer values than M+1 the ridge keeps the fit well-posed
(``ridge=0`` is the minimum-norm least-squares fit, the limit of the ridge).

``blend`` is the released code's optional mix with a linear extrapolation from the newest two values
(``algo.w``; default 1.0, the pure Chebyshev predictor of the paper; the README recommends 0.5..1.0):

    F^ = blend * F^_cheb + (1 - blend) * (F_0 + k (F_0 - F_1)),     k = (u* - u_0) / (u_0 - u_1)

``history`` bounds how many of the most recent full-step values are fitted (``num_slots``, the
history kept per feature). The code keeps up to K = 100 (every full step of its 50-step runs: 14 at
alpha = 0.75); here each slot is a copy of the cached feature, so the default keeps the last 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import InvalidValueError
from ..validate import check_int, check_number, is_number


def chebyshev(degree: int, tau: float) -> list[float]:
    """[T_0(tau) .. T_degree(tau)] by the three-term recurrence."""
    values = [1.0, tau][: degree + 1]
    while len(values) <= degree:
        values.append(2 * tau * values[-1] - values[-2])
    return values


@dataclass(frozen=True)
class Spectrum:
    degree: int = 4
    ridge: float = 0.1
    history: int = 8
    span: float = 50.0
    blend: float = 1.0

    def __post_init__(self) -> None:
        check_int("degree", self.degree, 0)
        check_number("ridge", self.ridge, 0)
        check_int("history", self.history, 1)
        if not is_number(self.span) or self.span <= 0:
            raise InvalidValueError("span", self.span, "a finite number > 0 (the steps mapped onto [-1, 1])")
        check_number("blend", self.blend, 0, 1, note="1: pure Chebyshev, 0: linear extrapolation")

    @property
    def num_slots(self) -> int:
        return self.history

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        x = np.array([chebyshev(self.degree, 2 * u / self.span - 1) for u in history])  # (n, M+1)
        phi = np.array(chebyshev(self.degree, 2 * target / self.span - 1))
        u, s, vt = np.linalg.svd(x, full_matrices=False)  # X = U S V^T: w = U S (S^2 + lambda)^-1 V^T phi
        shrink = np.divide(s, s * s + self.ridge, out=np.zeros_like(s), where=s * s + self.ridge > 0)
        w = u @ (shrink * (vt @ phi))
        if self.blend != 1:
            linear = np.zeros(len(history))
            if len(history) == 1:
                linear[0] = 1.0
            else:
                k = (target - history[0]) / (history[0] - history[1])
                linear[0], linear[1] = 1.0 + k, -k
            w = self.blend * w + (1 - self.blend) * linear
        return tuple(float(v) for v in w)
