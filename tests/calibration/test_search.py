"""The calibration search: exact (the same as brute force), on the forecaster's own arithmetic."""

import itertools

import numpy as np
import pytest
import torch

from c4d_compile.calibration.record import Trajectory
from c4d_compile.calibration.search import best_full_steps, gram, step_costs, total_cost
from c4d_compile.policies.forecasters import AdamsBashforth, FoCa, Hermite, Reuse, Taylor
from c4d_compile.policies.variable import Variable


def random_trajectory(num_steps: int, features: int = 2, seed: int = 0, uneven: bool = True) -> Trajectory:
    gen = torch.Generator().manual_seed(seed)
    t = torch.linspace(1, 0, num_steps + 1)[:num_steps]
    times = (3 * t / (1 + 2 * t)).tolist() if uneven else t.tolist()
    walk = torch.randn(num_steps, features, 16, generator=gen, dtype=torch.float64).cumsum(0)
    traj = Trajectory(first_step=0, first_key=(times[0],))
    for s in range(num_steps):
        traj.steps.append(s)
        traj.keys.append((times[s],))
        traj.samples.append([walk[s, f] for f in range(features)])
    return traj


FORECASTERS = [Reuse(), Taylor(order=1), Taylor(order=2), Hermite(order=2, sigma=0.5), AdamsBashforth(order=2), FoCa()]


@pytest.mark.parametrize("forecaster", FORECASTERS, ids=lambda f: repr(f))
@pytest.mark.parametrize("variable", [Variable.TIMESTEP, Variable.STEP])
def test_the_dynamic_programme_equals_brute_force(forecaster, variable):
    num_steps = 8
    trajs = [random_trajectory(num_steps, seed=s) for s in (0, 1)]
    costs = step_costs([(t, gram(t, 2)) for t in trajs], forecaster, variable, num_steps)
    for budget in (2, 3, 4):
        steps, value = best_full_steps(costs, forecaster.num_slots, budget, num_steps)
        brute = min(
            (total_cost(costs, forecaster.num_slots, (0, *rest), num_steps), (0, *rest))
            for rest in itertools.combinations(range(1, num_steps), budget - 1)
        )
        assert steps[0] == 0 and len(steps) == budget
        assert value == pytest.approx(brute[0], rel=1e-9, abs=1e-12)
        assert total_cost(costs, forecaster.num_slots, steps, num_steps) == pytest.approx(brute[0], rel=1e-9)


def test_step_cost_is_the_squared_error_of_the_forecast_on_the_recorded_values():
    traj = random_trajectory(6, features=1, uneven=False)
    costs = step_costs([(traj, gram(traj, 1))], Taylor(order=1), Variable.STEP, 6)
    values = traj.matrix(0)
    scale = float((values * values).sum(1).mean())
    forecast = values[3] + (values[3] - values[1]) / 2 * 2  # order 1 from full steps 1, 3 at step 5
    expected = float(((forecast - values[5]) ** 2).sum()) / scale
    assert costs[(3, 1)][5] == pytest.approx(expected, rel=1e-9)


def test_a_budget_outside_the_run_is_a_typed_error():
    from c4d_compile import InvalidValueError

    traj = random_trajectory(5)
    costs = step_costs([(traj, gram(traj, 2))], Reuse(), Variable.STEP, 5)
    with pytest.raises(InvalidValueError, match="budget"):
        best_full_steps(costs, 1, 6, 5)
    assert best_full_steps(costs, 1, 5, 5)[0] == (0, 1, 2, 3, 4)
    assert np.isfinite(best_full_steps(costs, 1, 1, 5)[1])


def test_a_history_too_long_to_search_is_refused_before_anything_is_enumerated():
    from c4d_compile import InvalidValueError
    from c4d_compile.policies.forecasters import Spectrum

    with pytest.raises(InvalidValueError, match="histories"):
        step_costs([], Spectrum(history=8), Variable.STEP, 50)  # C(50, 8) alone is 5e8 histories
