"""policy="auto" end to end: candidates measured by the final sample's error, the winner written and run."""

import json

import pytest
import torch

from c4d_compile import CalibrationFileError, ConfigError, InvalidValueError, UnknownOptionError, c4d_backend
from c4d_compile.calibration import calibrate
from c4d_compile.calibration.candidates import Candidate, Effort
from c4d_compile.calibration.samples import FinalError, final_sample
from c4d_compile.policies import Region, list_policies
from c4d_compile.policies.forecasters import AdamsBashforth, FoCa, LeastSquares, Reuse, Taylor
from c4d_compile.policies.schedules import CalibrationRequiredError
from c4d_compile.reference.registry import load_reference_model
from c4d_compile.reference.sampling import class_labels, sample

STEPS = 10
# Two regions, a few candidates, a short refinement: the whole search in a few seconds.
SMALL = Effort("small", (Candidate(Region.OUTPUT, Taylor(order=1)), Candidate(Region.OUTPUT, FoCa()),
                         Candidate(Region.STACK, Taylor(order=1))), searched=1, refined=1, evaluations=8)


@pytest.fixture(scope="module")
def flux():
    return load_reference_model("flux")


def _run(model, seed=1000):
    return lambda call: sample(model, class_labels(1), STEPS, seed, transformer_call=call, shift=3.0)


@pytest.fixture(scope="module")
def calibrated(flux, tmp_path_factory):
    path = tmp_path_factory.mktemp("auto") / "auto.json"
    torch._dynamo.reset()
    return calibrate(flux.transformer, _run(flux), "auto", budget=4, out=path, effort=SMALL, progress=False)


def test_the_measured_best_candidate_is_chosen_and_its_file_reproduces_its_error(flux, calibrated):
    cal = calibrated
    assert cal.error == min(r.best.error for r in cal.results)  # the winner is what the measurements say
    assert cal.candidate == min(cal.results, key=lambda r: r.best.error).candidate
    assert len(cal.full_steps) == 4 and cal.full_steps[0] == 0 and cal.num_steps == STEPS
    for r in cal.results:  # a refinement keeps its start when nothing it tried was better
        if r.refined is not None:
            assert r.refined.error <= min(r.spread.error, (r.searched or r.spread).error)
    # the shifted grid: the best screened ones were also tried forecasting in the timestep
    assert {r.candidate.variable.value for r in cal.results} == {"step", "timestep"}
    assert not any(isinstance(r.candidate.forecaster, LeastSquares) for r in cal.results)  # fitted=0: no step 6
    data = json.loads(cal.path.read_text())
    assert data["policy"] == "auto" and data["region"] == cal.candidate.region.value
    assert data["full_steps"] == list(cal.full_steps) and len(data["auto"]["candidates"]) == len(cal.results)
    torch._dynamo.reset()
    backend = c4d_backend("auto", schedule=str(cal.path), lowering="eager")  # the file says the rest, num_steps too
    assert backend.policy.region is cal.candidate.region and backend.policy.forecaster == cal.candidate.forecaster
    reference = final_sample(_run(flux)(flux.transformer))
    cached = final_sample(_run(flux)(torch.compile(flux.transformer, backend=backend)))
    assert backend.stats().last.contexts["branch0"].computed == list(cal.full_steps)
    assert FinalError(reference).mse(cached) == pytest.approx(cal.error, rel=1e-9)  # eager: the same run exactly
    assert cal.psnr == pytest.approx(FinalError(reference).psnr(cal.error))


def test_the_effort_says_whose_exact_search_start_is_measured(flux):
    """``searched=None`` measures every candidate's exact-search start (the spread ranks candidates badly);
    ``searched=0`` only the best screened one of each region."""
    candidates = (Candidate(Region.OUTPUT, Taylor(order=1)), Candidate(Region.OUTPUT, FoCa()),
                  Candidate(Region.OUTPUT, Taylor(order=2)))

    def uniform(call):
        return sample(flux, class_labels(1), STEPS, 1000, transformer_call=call)

    for searched, starts in ((None, 3), (0, 1)):
        torch._dynamo.reset()
        effort = Effort("starts", candidates, searched=searched, refined=0, evaluations=0)
        cal = calibrate(flux.transformer, uniform, "auto", budget=4, effort=effort, progress=False)
        assert sum(r.predicted is not None for r in cal.results) == starts
        assert all(r.refined is None for r in cal.results)
        assert cal.error == min(r.best.error for r in cal.results)


def test_weights_fitted_to_the_best_set_are_chosen_when_they_measure_best_and_their_file_runs_them(flux, tmp_path):
    """Step 6: least-squares weights fitted to the best set of the others, refined when they beat it. Against
    two weak forecasts (reuse; Adams-Bashforth's equal-spacing form on a shifted grid) they must win."""
    weak = Effort("weak", (Candidate(Region.OUTPUT, Reuse()), Candidate(Region.OUTPUT, AdamsBashforth(
        order=3, binomial=True))), searched=0, refined=1, evaluations=4, fitted=4)
    torch._dynamo.reset()
    cal = calibrate(flux.transformer, _run(flux), "auto", budget=4, out=tmp_path / "fitted.json", effort=weak,
                    progress=False)
    fitted = [r for r in cal.results if isinstance(r.candidate.forecaster, LeastSquares)]
    assert len(fitted) == 1 and fitted[0].spread is None
    others = min((r for r in cal.results if r is not fitted[0]), key=lambda r: r.best.error)
    assert fitted[0].searched.full_steps == others.best.full_steps  # fitted to the best set of the others
    assert fitted[0].searched.error < others.best.error and fitted[0].refined is not None
    assert cal.candidate == fitted[0].candidate and cal.full_steps == fitted[0].best.full_steps
    forecaster = cal.candidate.forecaster
    assert forecaster.slots == 3 and {row[0] for row in forecaster.table} == set(range(STEPS)) - set(cal.full_steps)
    assert "| – | " in cal.table() and "fitted to the best set" in cal.table()
    torch._dynamo.reset()  # the file holds the table: the backend it makes runs the same weights
    backend = c4d_backend("auto", schedule=str(cal.path), lowering="eager")
    assert backend.policy.forecaster == forecaster
    reference = final_sample(_run(flux)(flux.transformer))
    cached = final_sample(_run(flux)(torch.compile(flux.transformer, backend=backend)))
    assert FinalError(reference).mse(cached) == pytest.approx(cal.error, rel=1e-9)


def test_the_chosen_schedule_holds_on_other_seeds(flux, calibrated):
    """Calibrated on seed 1000, scored on seed 0: better than the even spread of the same candidate there too."""
    torch._dynamo.reset()
    reference = final_sample(_run(flux, seed=0)(flux.transformer))
    errors = {}
    for name, steps in (("chosen", calibrated.full_steps), ("spread", (0, 3, 6, 9))):
        backend = c4d_backend(calibrated.policy, full_steps=steps, lowering="eager")
        errors[name] = FinalError(reference).mse(final_sample(_run(flux, seed=0)(
            torch.compile(flux.transformer, backend=backend))))
    assert errors["chosen"] < errors["spread"]


def test_auto_without_its_file_says_how_to_calibrate(calibrated):
    with pytest.raises(CalibrationRequiredError, match="c4d calibrate"):
        c4d_backend("auto")
    with pytest.raises(CalibrationRequiredError):
        c4d_backend("auto", budget=4)
    assert "auto" in list_policies() and "auto" not in list_policies(fitted=False)
    with pytest.raises(CalibrationFileError, match="region"):  # the file's choice, contradicted
        c4d_backend("auto", schedule=str(calibrated.path), region="branch")


def test_a_run_without_a_sample_or_with_different_samples_is_a_typed_error(flux):
    with pytest.raises(InvalidValueError, match="final sample"):
        calibrate(flux.transformer, lambda call: None, "auto", budget=3, effort=SMALL, progress=False)
    noisy = _run(flux)

    def unseeded(call):
        return noisy(call) + torch.randn(1)  # another sample every time

    with pytest.raises(InvalidValueError, match="same samples"):
        calibrate(flux.transformer, unseeded, "auto", budget=3, effort=SMALL, progress=False)
    with pytest.raises(UnknownOptionError, match="effort"):
        calibrate(flux.transformer, noisy, "auto", budget=3, order=2)
    with pytest.raises(ConfigError, match="effort"):
        calibrate(flux.transformer, noisy, "auto", budget=3, effort="thorough")


def test_a_pipeline_is_calibrated_through_its_own_call_and_left_as_it_was(tmp_path):
    from support.pipelines import PIPELINES, run

    case = PIPELINES["flux"]
    pipe = case.build()
    transformer, set_timesteps = pipe.transformer, pipe.scheduler.set_timesteps
    effort = Effort("tiny", (Candidate(Region.OUTPUT, Taylor(order=1)),), searched=0, refined=1, evaluations=3)
    cal = calibrate(pipe, lambda p: run(p, case, steps=6, seed=1), "auto", budget=3, out=tmp_path / "pipe.json",
                    effort=effort, progress=False)
    assert cal.num_steps == 6 and len(cal.full_steps) == 3
    assert cal.cost.cached_runs == sum(r.evaluations for r in cal.results)  # every measurement accounted for
    assert pipe.transformer is transformer and "cache_context" not in vars(transformer)
    assert pipe.scheduler.set_timesteps == set_timesteps
