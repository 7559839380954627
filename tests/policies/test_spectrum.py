"""Spectrum (CVPR 2026, arXiv 2603.01623; github.com/hanjq17/Spectrum): the ridge-regressed Chebyshev
weights against a plainly written fit, its growing-interval schedule against the code's counter, and the
preset end to end on the trained reference FLUX model."""

import math

import numpy as np
import pytest
import torch

from c4d_compile import InvalidValueError, c4d_backend, get_policy
from c4d_compile.policies.forecasters import Spectrum
from c4d_compile.policies.schedules import GrowingIntervalSchedule, SpreadSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind


def reference_forecast(values: np.ndarray, steps, target, degree=4, ridge=0.1, span=50.0) -> np.ndarray:
    """The code's ChebyshevForecaster written out: tau = 2t/span - 1, basis T_0..T_M, coefficients
    C = (X^T X + lambda I)^-1 X^T H, forecast phi(tau*)^T C."""

    def basis(t):
        tau = 2 * t / span - 1
        cols = [np.ones_like(tau), tau]
        for _ in range(2, degree + 1):
            cols.append(2 * tau * cols[-1] - cols[-2])
        return np.stack(cols[: degree + 1], axis=-1)

    x = basis(np.asarray(steps, dtype=np.float64))
    coef = np.linalg.solve(x.T @ x + ridge * np.eye(degree + 1), x.T @ values)
    return basis(np.asarray([target], dtype=np.float64)) @ coef


def forecast(forecaster, values: np.ndarray, steps, target) -> np.ndarray:
    """What the CACHED variant computes: the weights of the stored steps (newest first) times their values."""
    newest_first = list(steps)[::-1]
    w = forecaster.weights(float(target), [float(s) for s in newest_first])
    assert len(w) == len(newest_first)
    return sum(wj * values[len(steps) - 1 - j] for j, wj in enumerate(w))


@pytest.mark.parametrize(
    "steps,target",
    [((0, 1, 2, 3, 4), 5), ((0, 1, 2, 3, 4, 6, 8, 11), 13), ((15, 20, 25, 31, 38, 46), 49), ((0,), 1), ((0, 1), 3),
     ((0, 1, 2), 7)],
)
def test_weights_equal_the_plain_ridge_fit(steps, target):
    rng = np.random.default_rng(len(steps))
    values = rng.standard_normal((len(steps), 6))
    got = forecast(Spectrum(history=len(steps)), values, steps, target)
    np.testing.assert_allclose(got, reference_forecast(values, steps, target)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 2, 4])
def test_a_chebyshev_polynomial_of_the_degree_is_reproduced_without_the_ridge(degree):
    rng = np.random.default_rng(degree)
    coef = rng.standard_normal((degree + 1, 3))
    steps = (0, 1, 2, 3, 4, 6, 8, 11, 15, 20, 25, 31, 38)  # the paper's plan: spread over tau in [-1, 1]

    def feature(t):
        tau = 2 * t / 50 - 1
        return np.polynomial.chebyshev.chebval(tau, coef)

    values = np.stack([feature(s) for s in steps])
    forecaster = Spectrum(degree=degree, ridge=1e-9, history=len(steps))
    for target in (40, 46, 49):
        np.testing.assert_allclose(forecast(forecaster, values, steps, target), feature(target), atol=1e-6)


def test_the_ridge_shrinks_the_weights_toward_zero():
    w = Spectrum().weights(5.0, [4.0, 3.0, 2.0, 1.0, 0.0])
    assert sum(w) < 1 - 1e-3  # not normalised: the shrink is part of the method
    assert sum(w) > 0.5
    # without the ridge, 5 values and 5 coefficients: the interpolant, whose weights sum to one
    assert sum(Spectrum(ridge=0.0).weights(5.0, [4.0, 3.0, 2.0, 1.0, 0.0])) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_fewer_stored_values_than_coefficients_give_finite_weights(n):
    history = [float(s) for s in range(n)][::-1]
    for ridge in (0.1, 1e-9, 0.0):
        w = Spectrum(ridge=ridge).weights(float(n + 2), history)
        assert len(w) == n and all(math.isfinite(v) for v in w)
    assert Spectrum(history=4).num_slots == 4


def test_blend_mixes_in_the_linear_extrapolation_of_the_code():
    history = [11.0, 8.0, 6.0, 4.0]
    cheb = np.array(Spectrum().weights(13.0, history))
    k = (13 - 11) / (11 - 8)
    linear = np.array([1 + k, -k, 0, 0])
    np.testing.assert_allclose(Spectrum(blend=0.5).weights(13.0, history), 0.5 * cheb + 0.5 * linear)
    np.testing.assert_allclose(Spectrum(blend=0.0).weights(13.0, history), linear)
    assert Spectrum(blend=0.0).weights(13.0, [11.0]) == (1.0,)


def code_schedule(num_steps, warmup=5, window=2.0, flex=0.75):
    """The released forward's counter (src/pipelines/flux_forward.py) written out."""
    full, consecutive, ws = [], 0, window
    for cnt in range(num_steps):
        actual = True
        if cnt >= warmup:
            actual = (consecutive + 1) % math.floor(ws) == 0
            if actual:
                ws = round(ws + flex, 3)
        consecutive = 0 if actual else consecutive + 1
        if actual:
            full.append(cnt)
    return full


def run(schedule, num_steps):
    full: list[int] = []
    for step in range(num_steps):
        if schedule.decide(StepInfo(step, None, tuple(full[-2:]))) is VariantKind.FULL:  # the Runtime keeps >= 2
            full.append(step)
    return full


def test_growing_interval_gives_the_papers_step_lists():
    assert GrowingIntervalSchedule().planned(50) == (0, 1, 2, 3, 4, 6, 8, 11, 15, 20, 25, 31, 38, 46)
    assert GrowingIntervalSchedule(growth=3.0).planned(50) == (0, 1, 2, 3, 4, 6, 11, 19, 30, 44)
    for warmup, start, growth, steps in [(5, 2.0, 0.75, 50), (5, 2.0, 3.0, 50), (3, 1.0, 0.1, 60), (1, 3.0, 0.0, 20),
                                         (4, 2.5, 1.3, 100)]:
        schedule = GrowingIntervalSchedule(warmup=warmup, start=start, growth=growth)
        assert list(schedule.planned(steps)) == code_schedule(steps, warmup, start, growth) == run(schedule, steps)


@pytest.mark.parametrize(
    "make",
    [lambda: Spectrum(degree=-1), lambda: Spectrum(ridge=-0.1), lambda: Spectrum(history=0),
     lambda: Spectrum(span=0.0), lambda: Spectrum(blend=1.5), lambda: Spectrum(degree=2.0),
     lambda: GrowingIntervalSchedule(growth=-0.5), lambda: GrowingIntervalSchedule(start=0.5),
     lambda: GrowingIntervalSchedule(warmup=0), lambda: GrowingIntervalSchedule(growth=float("nan"))],
)
def test_invalid_values_are_typed_errors(make):
    with pytest.raises(InvalidValueError):
        make()


def test_the_preset_resolves_and_takes_overrides():
    policy = get_policy("spectrum")
    assert policy.region.value == "stack" and policy.forecaster == Spectrum() and policy.schedule == SpreadSchedule(5)
    paper = get_policy("spectrum", schedule="paper")
    assert paper.schedule == GrowingIntervalSchedule(warmup=5, start=2.0, growth=0.75)
    assert paper.schedule.planned(50)[-1] == 46 and paper.forecaster.history == 14
    assert get_policy("spectrum", schedule="paper", growth=3.0).schedule.planned(50)[-1] == 44
    assert type(get_policy("spectrum", warmup=3).schedule).__name__ == "IntervalSchedule"  # selects what it did
    assert c4d_backend("spectrum", budget=5).policy.schedule.planned(20) == (0, 5, 10, 14, 19)


@pytest.mark.usefixtures("one_thread")
def test_the_preset_caches_the_reference_flux_close_to_uncached():
    pytest.importorskip("diffusers")
    pytest.importorskip("safetensors")
    pytest.importorskip("torchmetrics")
    from c4d_compile.reference.metrics import psnr
    from c4d_compile.reference.registry import load_reference_model
    from c4d_compile.reference.sampling import class_labels, sample

    model = load_reference_model("flux")
    labels = class_labels(1)
    reference = sample(model, labels, 20, seed=0)
    backend = c4d_backend("spectrum", lowering="eager", num_steps=20, budget=6)
    got = sample(model, labels, 20, seed=0, transformer_call=torch.compile(model.transformer, backend=backend))
    assert backend.stats().full_steps == 6 and backend.stats().cached_steps == 14
    assert psnr(got, reference).min() > 25
