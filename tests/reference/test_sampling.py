"""The flow sampler's time grid and its Flux/SD3 shift; no trained weights needed."""

from __future__ import annotations

import pytest
import torch

from c4d_compile.errors import ConfigError
from c4d_compile.reference.sampling import sample, time_grid


def test_shift_one_is_the_uniform_grid_bit_for_bit():
    for n in (1, 7, 20, 50):
        assert torch.equal(time_grid(n), torch.linspace(1.0, 0.0, n + 1))
        assert torch.equal(time_grid(n, shift=1.0), torch.linspace(1.0, 0.0, n + 1))


def test_shift_three_follows_the_formula_and_favours_high_noise():
    n, shift = 20, 3.0
    t = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)
    expected = shift * t / (1 + (shift - 1) * t)
    grid = time_grid(n, shift=shift)
    torch.testing.assert_close(grid.double(), expected, rtol=1e-6, atol=1e-7)
    assert grid[0] == 1.0 and grid[-1] == 0.0
    assert (grid[1:] < grid[:-1]).all()
    # Half the steps are spent above t = 0.75 (the uniform grid's midpoint maps to 3 * 0.5 / 2).
    assert grid[n // 2] == pytest.approx(0.75)


@pytest.mark.parametrize("shift", [0.0, -1.0, float("nan"), float("inf")])
def test_a_shift_outside_the_positive_reals_is_rejected(shift):
    with pytest.raises(ConfigError, match="shift"):
        time_grid(10, shift=shift)


def test_the_flow_sampler_evaluates_the_model_on_the_shifted_grid():
    seen = []

    def velocity(x, t, labels):
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    sample(velocity, [1, 2], num_steps=5, seed=0, shift=3.0)
    assert seen == time_grid(5, shift=3.0)[:-1].tolist()
