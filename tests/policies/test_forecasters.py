"""Forecast math against plainly written references (methods.md §3, design.md §5)."""

import math

import pytest
import torch

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
