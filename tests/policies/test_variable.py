"""Forecasts in the sampler's variable: exact where the feature is linear in the timestep."""

import torch

from c4d_compile.policies.forecasters import AdamsBashforth, FoCa, Hermite, Taylor
from c4d_compile.policies.variable import Variable, coordinates


def shifted_grid(num_steps: int, shift: float = 3.0) -> list[float]:
    """Flow-matching timesteps with the Flux/SD3 time shift: uneven in the step index."""
    t = torch.linspace(1, 0, num_steps + 1)[:num_steps]
    return (shift * t / (1 + (shift - 1) * t)).tolist()


def forecast(forecaster, variable, times, full_steps, query, feature):
    target, coords = coordinates(variable, query, times[query], full_steps[0], times[full_steps[0]],
                                 full_steps[::-1][: forecaster.num_slots],
                                 [times[s] for s in full_steps[::-1][: forecaster.num_slots]])
    weights = forecaster.weights(target, coords)
    return sum(w * feature(times[s]) for w, s in zip(weights, full_steps[::-1]))


def test_order_one_is_exact_in_the_timestep_on_an_uneven_grid_and_the_step_index_is_not():
    times = shifted_grid(20)
    feature = lambda t: 2.0 - 3.0 * t  # linear in the timestep  # noqa: E731
    full, query = [0, 4, 9], 13
    for forecaster in (Taylor(order=1), Hermite(order=1, sigma=2**-0.5), AdamsBashforth(order=2), FoCa()):
        got = forecast(forecaster, Variable.TIMESTEP, times, full, query, feature)
        assert abs(got - feature(times[query])) < 1e-9, forecaster
    in_steps = forecast(Taylor(order=1), Variable.STEP, times, full, query, feature)
    assert abs(in_steps - feature(times[query])) > 1e-3


def test_on_an_even_grid_both_variables_agree():
    times = torch.linspace(1, 0, 21, dtype=torch.float64)[:20].tolist()
    target, coords = coordinates(Variable.TIMESTEP, 13, times[13], 0, times[0], [9, 4], [times[9], times[4]])
    assert abs(target - 13) < 1e-9 and all(abs(a - b) < 1e-9 for a, b in zip(coords, [9, 4]))


def test_the_variable_is_scaled_to_steps_so_hermite_keeps_its_meaning():
    # the timestep coordinate of the current step is the step index itself
    times = shifted_grid(30)
    target, coords = coordinates(Variable.TIMESTEP, 17, times[17], 0, times[0], [12, 6], [times[12], times[6]])
    assert target == 17 and 0 < coords[1] < coords[0] < 17
