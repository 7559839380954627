"""Forecast math against plainly written references (TaylorSeer arXiv 2503.06923, HiCache 2508.16984,
AB-Cache 2504.10540, FoCa 2508.16211)."""

import math

import pytest
import torch

from c4d_compile.policies.forecasters import AdamsBashforth, FoCa, Hermite, Reuse, Taylor


def run_forecaster(forecaster, values_at_full: dict[int, torch.Tensor], query: int) -> torch.Tensor:
    """Forecast at ``query`` from the values at the full steps, as the CACHED variant does: the weights
    of the last ``num_slots`` full steps (newest first) times their values, summed in float32."""
    steps = list(values_at_full)[-forecaster.num_slots :][::-1]
    weights = forecaster.weights(float(query), [float(s) for s in steps])
    assert len(weights) == len(steps)
    value = values_at_full[steps[0]]
    compute = torch.float64 if value.dtype == torch.float64 else torch.float32  # the graph computes in float32
    out = sum(values_at_full[s].to(compute) * w for s, w in zip(steps, weights))
    return out.to(value.dtype)


def reference_taylor(values_at_full: dict[int, torch.Tensor], order: int, query: int) -> torch.Tensor:
    """TaylorSeer's reference code written out: factors by backward differences over the latest gap."""
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
    for step, value in values.items():  # TaylorSeer's factors
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
def foca_reference(full: dict[int, torch.Tensor], query: int) -> torch.Tensor:
    """The reading documented in forecasters/foca.py, stepped one sampling step at a time: the slope at
    the full step and the start value come from the quadratic through the last three full values,
    then each step forecasts with BDF2 (7), reads the slope back with (6) and calibrates with Heun (8)."""
    (a, fa), (b, fb), (c, fc) = list(full.items())[-1], list(full.items())[-2], list(full.items())[-3]

    def quadratic(u):  # Lagrange form through the three full values
        return (fa * (u - b) * (u - c) / ((a - b) * (a - c)) + fb * (u - a) * (u - c) / ((b - a) * (b - c))
                + fc * (u - a) * (u - b) / ((c - a) * (c - b)))

    slope_full = (fa * ((a - b) + (a - c)) / ((a - b) * (a - c)) + fb * (a - c) / ((b - a) * (b - c))
                  + fc * (a - b) / ((c - a) * (c - b)))  # derivative of the quadratic at u = a
    f_prev, f_k = quadratic(a - 1.0), fa
    for _ in range(query - a):
        slope_k = f_k - f_prev  # F'(x_k), h = 1
        forecast = 4 / 3 * f_k - 1 / 3 * f_prev + 2 / 3 * slope_k  # (7)
        slope_next = (3 * forecast - 4 * f_k + f_prev) / 2  # (6)
        f_prev, f_k = f_k, f_k + 0.5 * (slope_full + slope_next)  # (8)
    return f_k


def test_foca_weights_equal_the_stepped_predictor_corrector():
    torch.manual_seed(1)
    full = {s: torch.randn(5, dtype=torch.float64) for s in (0, 1, 2, 7, 12)}
    for query in (13, 14, 16):
        torch.testing.assert_close(run_forecaster(FoCa(), full, query), foca_reference(full, query))


def test_foca_is_exact_on_a_linear_sequence():
    base, slope = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    full = {s: base + slope * s for s in (0, 1, 2, 7, 12)}
    torch.testing.assert_close(run_forecaster(FoCa(), full, 15), base + slope * 15, rtol=1e-5, atol=1e-5)


def test_foca_with_one_full_step_is_reuse():
    value = torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(run_forecaster(FoCa(), {0: value}, 4), value)


# --- AB-Cache ------------------------------------------------------------------------------------
@pytest.mark.parametrize("order,weights", [(1, [1]), (2, [2, -1]), (3, [3, -3, 1]), (5, [5, -10, 10, -5, 1])])
def test_adams_bashforth_binomial_weights(order, weights):
    values = {s: torch.randn(4, dtype=torch.float64) for s in range(10, 10 + 6 * order, 6)}
    newest_first = list(values.values())[::-1]
    expected = sum(w * v for w, v in zip(weights, newest_first))
    got = run_forecaster(AdamsBashforth(order=order, binomial=True), values, 10 + 6 * order + 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_adams_bashforth_follows_the_polynomial_through_the_history(order):
    # a polynomial of degree order-1 through uneven full steps is extrapolated exactly at any distance
    coefficients = torch.randn(order, 3, dtype=torch.float64)
    values = {s: sum(c * s**i for i, c in enumerate(coefficients)) for s in (0, 3, 4, 9, 11)}
    for query in (12, 14):
        expected = sum(c * query**i for i, c in enumerate(coefficients))
        torch.testing.assert_close(run_forecaster(AdamsBashforth(order=order), values, query), expected)


def test_adams_bashforth_on_an_even_grid_one_spacing_ahead_is_the_binomial_form():
    values = {s: torch.randn(4, dtype=torch.float64) for s in (2, 8, 14)}
    torch.testing.assert_close(run_forecaster(AdamsBashforth(order=3), values, 20),
                               run_forecaster(AdamsBashforth(order=3, binomial=True), values, 20))


def test_adams_bashforth_drops_order_while_history_is_short():
    values = {0: torch.randn(4, dtype=torch.float64)}
    torch.testing.assert_close(run_forecaster(AdamsBashforth(order=3), values, 2), values[0])
