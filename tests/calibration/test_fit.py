"""fit_weights: per cached step, the least-squares weights over its history on the recorded features, checked
against numpy's least squares on the same normalised samples, in the step index and in the timestep."""

import numpy as np
import pytest
import torch

from c4d_compile.calibration.fit import fit_weights
from c4d_compile.calibration.record import Trajectory
from c4d_compile.calibration.search import Prepared, gram
from c4d_compile.policies.forecasters import LeastSquares
from c4d_compile.policies.variable import Variable, coordinates

STEPS = 12
FULL = (0, 3, 7, 10)


def _trajectory(seed: int, times: list[float]) -> Trajectory:
    """Two features of 40 elements each that drift non-polynomially over the steps, plus noise."""
    g = torch.Generator().manual_seed(seed)
    base = [torch.randn(40, generator=g, dtype=torch.float64) for _ in range(4)]
    samples = []
    for s in range(STEPS):
        u = s / STEPS
        a = base[0] * np.cos(2 * u) + base[1] * u**3 + 0.01 * torch.randn(40, generator=g, dtype=torch.float64)
        b = 5 * (base[2] * np.exp(-u) + base[3] * np.sin(3 * u))  # a larger scale: normalisation matters
        samples.append([a, b])
    return Trajectory(steps=list(range(STEPS)), keys=[(t,) for t in times], first_step=0, first_key=(times[0],),
                      samples=samples)


def _plain_fit(trajectories: list[Trajectory], s: int, history: tuple[int, ...]) -> np.ndarray:
    """Stack every trajectory's features, each scaled by its mean squared norm over steps, and solve lstsq."""
    rows_a, rows_b = [], []
    for t in trajectories:
        for f in range(2):
            m = t.matrix(f).numpy()
            scale = np.sqrt((m * m).sum(1).mean())
            rows_a.append(np.stack([m[h] / scale for h in history], axis=1))
            rows_b.append(m[s] / scale)
    return np.linalg.lstsq(np.concatenate(rows_a), np.concatenate(rows_b), rcond=None)[0]


@pytest.mark.parametrize("variable", [Variable.STEP, Variable.TIMESTEP])
@pytest.mark.parametrize("slots", [1, 2, 3])
def test_each_cached_step_gets_the_least_squares_weights_of_its_history(variable, slots):
    times = [1000 * (1 - s / STEPS) ** 2 for s in range(STEPS)]  # an uneven grid: the timestep differs
    trajectories = [_trajectory(seed, times) for seed in (0, 1)]
    prepared = [Prepared(t, gram(t, 2)) for t in trajectories]
    fitted = fit_weights(prepared, variable, FULL, slots, STEPS)
    assert isinstance(fitted, LeastSquares) and fitted.slots == slots
    assert len(fitted.table) == STEPS - len(FULL)  # every cached step, none of the full ones
    for s in sorted(set(range(STEPS)) - set(FULL)):
        history = tuple(reversed([f for f in FULL if f < s]))[:slots]
        target, coords = coordinates(variable, s, times[s], 0, times[0], list(history), [times[h] for h in history])
        weights = fitted.weights(target, coords)  # found by the coordinates the Runtime computes
        np.testing.assert_allclose(weights, _plain_fit(trajectories, s, history), rtol=1e-5, atol=1e-7)


def test_the_fit_beats_the_polynomial_of_the_same_history_on_the_recorded_features():
    times = [float(1000 - 80 * s) for s in range(STEPS)]
    traj = _trajectory(3, times)
    fitted = fit_weights([Prepared(traj, gram(traj, 2))], Variable.STEP, FULL, 3, STEPS)
    polynomial = LeastSquares(slots=3)  # an empty table: the polynomial through the history everywhere

    def error(forecaster):
        total = 0.0
        for s in sorted(set(range(STEPS)) - set(FULL)):
            history = tuple(reversed([f for f in FULL if f < s]))[:3]
            w = forecaster.weights(float(s), [float(h) for h in history])
            for f in range(2):
                m = traj.matrix(f)
                forecast = sum(wj * m[h] for wj, h in zip(w, history))
                total += float(((forecast - m[s]) ** 2).sum() / (m * m).sum(1).mean())
        return total

    assert error(fitted) < 0.7 * error(polynomial)  # 0.44 against 0.77 on these drifts
    rng = np.random.default_rng(0)
    for _ in range(3):  # the minimum: weights moved a little either way forecast worse
        moved = tuple((t, h, tuple(w + 0.01 * rng.standard_normal(len(w)))) for t, h, w in fitted.table)
        assert error(fitted) < error(LeastSquares(slots=3, table=moved))
