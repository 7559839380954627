"""Forecast math against plainly written references (methods.md §3, design.md §5)."""

import math

import pytest
import torch

from c4d_compile.policies.adams_bashforth import AdamsBashforth
from c4d_compile.policies.foca import FoCa
from c4d_compile.policies.hermite import Hermite
from c4d_compile.policies.reuse import Reuse
from c4d_compile.policies.taylor import Taylor


def run_forecaster(forecaster, values_at_full: dict[int, torch.Tensor], query: int) -> torch.Tensor:
    """Feed the forecaster the feature at each full step (in order), then predict at ``query``."""
    slots = [torch.zeros_like(next(iter(values_at_full.values()))) for _ in range(forecaster.num_slots)]
    history = []
    for step, value in values_at_full.items():
        history.append(step)
        scalars = {k: torch.tensor(v) for k, v in forecaster.update_scalars(history).items()}
        slots = forecaster.update(value, slots, scalars, value.dtype)
    scalars = {k: torch.tensor(v) for k, v in forecaster.predict_scalars(query, history).items()}
    return forecaster.predict(slots, scalars, value.dtype)


def reference_taylor(values_at_full: dict[int, torch.Tensor], order: int, query: int) -> torch.Tensor:
    """methods.md §3 written out: factors by backward differences over the latest gap."""
    factors: dict[int, torch.Tensor] = {}
    prev_step = None
    for step, value in values_at_full.items():
        new = {0: value.double()}
        for i in range(order):
            if prev_step is None or i not in factors:
                break
            new[i + 1] = (new[i] - factors[i]) / (step - prev_step)
        factors, prev_step = new, step
    k = query - prev_step
    return sum(d * k**i / math.factorial(i) for i, d in factors.items())


def test_taylor_order1_is_exact_on_a_linear_sequence():
    base, slope = torch.randn(4, 8), torch.randn(4, 8)
    values = {s: base + slope * s for s in (0, 1, 2, 6, 11)}
    for query in (12, 13, 15):
        got = run_forecaster(Taylor(order=1), values, query)
        torch.testing.assert_close(got, base + slope * query, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_taylor_matches_the_written_formula_on_recorded_values(order):
    torch.manual_seed(order)
    values = {s: torch.randn(3, 5) for s in (0, 1, 2, 7, 12, 17)}
    for query in (18, 19, 21):
        got = run_forecaster(Taylor(order=order), values, query)
        torch.testing.assert_close(got.double(), reference_taylor(values, order, query), rtol=1e-4, atol=1e-4)


def test_taylor_order2_on_a_quadratic_has_the_backward_difference_error():
    # F(s) = c s^2 with full steps spaced N apart: the forecast at s_a + k is c (s_a + k)^2 - c N k.
    c, gap = 0.5, 4
    steps = [2, 2 + gap, 2 + 2 * gap, 2 + 3 * gap]
    values = {s: torch.full((2,), c * s * s, dtype=torch.float64) for s in steps}
    for k in (1, 2, 3):
        got = run_forecaster(Taylor(order=2), values, steps[-1] + k)
        expected = c * (steps[-1] + k) ** 2 - c * gap * k
        torch.testing.assert_close(got, torch.full((2,), expected, dtype=torch.float64))


def test_taylor_with_one_full_step_is_reuse():
    value = torch.randn(3)
    torch.testing.assert_close(run_forecaster(Taylor(order=3), {4: value}, 7), value)


def test_taylor_keeps_bf16_and_computes_in_float32():
    values = {s: (torch.ones(4) * s).bfloat16() for s in (0, 3)}
    got = run_forecaster(Taylor(order=1), values, 5)
    assert got.dtype == torch.bfloat16 and torch.equal(got, torch.full((4,), 5.0).bfloat16())


def test_reuse_returns_the_last_full_value():
    values = {0: torch.randn(3), 4: torch.randn(3)}
    torch.testing.assert_close(run_forecaster(Reuse(), values, 9), values[4])


# --- HiCache -------------------------------------------------------------------------------------


def hermite_poly(n: int, x: float) -> float:
    """Physicists' Hermite polynomials, written out to order 4."""
    return [1.0, 2 * x, 4 * x**2 - 2, 8 * x**3 - 12 * x, 16 * x**4 - 48 * x**2 + 12][n]


def test_hermite_order1_with_sigma_one_over_sqrt2_is_exact_on_a_linear_sequence():
    base, slope = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    values = {s: base + slope * s for s in (0, 1, 2, 8)}
    got = run_forecaster(Hermite(order=1, sigma=1 / math.sqrt(2)), values, 11)
    torch.testing.assert_close(got, base + slope * 11, rtol=1e-5, atol=1e-5)  # forecasts run in float32


@pytest.mark.parametrize("order,sigma", [(2, 0.5), (3, 0.7), (4, 0.3)])
def test_hermite_matches_the_written_formula(order, sigma):
    torch.manual_seed(0)
    values = {s: torch.randn(3, dtype=torch.float64) for s in (0, 1, 2, 9, 16)}
    factors: dict[int, torch.Tensor] = {}
    prev = None
    for step, value in values.items():  # TaylorSeer's factors (methods.md §3)
        new = {0: value}
        for i in range(order):
            if prev is None or i not in factors:
                break
            new[i + 1] = (new[i] - factors[i]) / (step - prev)
        factors, prev = new, step
    k = 19 - prev
    expected = factors[0] + sum(
        factors[i] / math.factorial(i) * sigma**i * hermite_poly(i, sigma * k) for i in factors if i > 0
    )
    got = run_forecaster(Hermite(order=order, sigma=sigma), values, 19)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_hermite_rejects_a_sigma_outside_0_1():
    from c4d_compile import InvalidValueError

    with pytest.raises(InvalidValueError, match="sigma"):
        Hermite(sigma=1.5)


# --- FoCa ----------------------------------------------------------------------------------------
def foca_reference(full_steps: dict[int, torch.Tensor], query: int) -> torch.Tensor:
    """The recursive reading documented in policies/foca.py, stepped one sampling step at a time:
    between full steps each step forecasts with BDF2 then calibrates with Heun."""
    trajectory: dict[int, torch.Tensor] = {}
    last_full = prev_full = None
    for step in range(min(full_steps), query + 1):
        if step in full_steps:
            trajectory[step] = full_steps[step]
            prev_full, last_full = last_full, step
            continue
        f_k = trajectory[step - 1]
        f_km1 = trajectory.get(step - 2, f_k)  # computed or forecast
        slope_full = (
            (trajectory[last_full] - trajectory[prev_full]) / (last_full - prev_full) if prev_full is not None else 0
        )
        forecast = 4 / 3 * f_k - 1 / 3 * f_km1 + 2 / 3 * (f_k - f_km1)  # (7), F'(x_k) = F_k - F_{k-1}
        slope_next = (3 * forecast - 4 * f_k + f_km1) / 2  # (6)
        trajectory[step] = f_k + 0.5 * (slope_full + slope_next)  # (8)
    return trajectory[query]


def test_foca_closed_form_equals_the_recursive_predictor_corrector():
    torch.manual_seed(1)
    full = {s: torch.randn(5, dtype=torch.float64) for s in (0, 1, 2, 7, 12)}
    for query in (13, 14, 16):
        expected = foca_reference(full, query)
        got = run_forecaster(FoCa(), full, query)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_foca_is_exact_on_a_linear_sequence():
    base, slope = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    full = {s: base + slope * s for s in (0, 1, 2, 7, 12)}
    torch.testing.assert_close(run_forecaster(FoCa(), full, 15), base + slope * 15, rtol=1e-5, atol=1e-5)


# --- AB-Cache ------------------------------------------------------------------------------------
@pytest.mark.parametrize("order,weights", [(1, [1]), (2, [2, -1]), (3, [3, -3, 1]), (5, [5, -10, 10, -5, 1])])
def test_adams_bashforth_binomial_weights(order, weights):
    values = {s: torch.randn(4, dtype=torch.float64) for s in range(10, 10 + 6 * order, 6)}
    newest_first = list(values.values())[::-1]
    expected = sum(w * v for w, v in zip(weights, newest_first))
    got = run_forecaster(AdamsBashforth(order=order), values, 10 + 6 * order + 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_adams_bashforth_drops_order_while_history_is_short():
    values = {0: torch.randn(4, dtype=torch.float64)}
    torch.testing.assert_close(run_forecaster(AdamsBashforth(order=3), values, 2), values[0])
