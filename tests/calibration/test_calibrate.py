"""calibrate() end to end on a tiny model, and the schedule file it writes."""

import json

import pytest
import torch
from support.sampling import sample

from c4d_compile import CalibrationFileError, c4d_backend
from c4d_compile.calibration import calibrate
from c4d_compile.policies.schedules import RunFacts
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    spec = get_tiny_model("flux")
    model = spec.build()
    path = tmp_path_factory.mktemp("cal") / "flux.json"
    result = calibrate(model, lambda call: sample(call, spec, num_steps=8, seed=1), "taylorseer", budget=3, out=path)
    return spec, model, result


def test_calibration_writes_a_schedule_the_backend_runs(calibrated):
    spec, model, result = calibrated
    assert result.full_steps[0] == 0 and len(result.full_steps) == 3 and result.num_steps == 8
    data = json.loads(result.path.read_text())
    assert data["full_steps"] == list(result.full_steps) and data["region"] == "branch"
    assert data["forecaster"] == {"type": "Taylor", "order": 1} and len(data["timesteps"]) == 8
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer", lowering="eager", schedule=str(result.path), num_steps=8)
    sample(torch.compile(model, backend=backend), spec, num_steps=8, seed=0)
    assert backend.stats().last.contexts["branch0"].computed == list(result.full_steps)


def test_a_file_for_another_step_count_region_or_model_is_a_typed_error(calibrated, tmp_path):
    spec, model, result = calibrated
    with pytest.raises(CalibrationFileError, match="region"):
        c4d_backend("taylorseer", schedule=str(result.path), region="output")
    with pytest.raises(CalibrationFileError, match="forecaster"):
        c4d_backend("taylorseer", schedule=str(result.path), order=2)
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer", lowering="eager", schedule=str(result.path), num_steps=10)
    with pytest.raises(CalibrationFileError, match="calibrated for 8 steps"):
        sample(torch.compile(model, backend=backend), spec, num_steps=10)
    torch._dynamo.reset()
    wan = get_tiny_model("wan")
    with pytest.raises(Exception) as err:
        sample(torch.compile(wan.build(), backend=c4d_backend("taylorseer", lowering="eager",
                                                                schedule=str(result.path))), wan, num_steps=8)
    inner = getattr(err.value, "inner_exception", err.value)
    assert isinstance(inner, CalibrationFileError) and "another model" in str(inner)


@pytest.mark.parametrize("corrupt", [
    lambda d: "not json {",
    lambda d: json.dumps({**d, "format": "something else"}),
    lambda d: json.dumps({**d, "full_steps": [1, 4, 7]}),
    lambda d: json.dumps({**d, "full_steps": [0, 9]}),
    lambda d: json.dumps({k: v for k, v in d.items() if k != "fingerprint"}),
    lambda d: json.dumps({**d, "sampler_timesteps": [1000.0, 500.0]}),  # not one per step
])
def test_a_corrupted_file_is_a_typed_error(calibrated, tmp_path, corrupt):
    _, _, result = calibrated
    path = tmp_path / "bad.json"
    path.write_text(corrupt(json.loads(result.path.read_text())))
    with pytest.raises(CalibrationFileError):
        c4d_backend("taylorseer", schedule=str(path))


def test_a_file_searched_with_other_options_loads_with_the_same_options(tmp_path):
    spec = get_tiny_model("flux")
    model = spec.build()
    result = calibrate(model, lambda call: sample(call, spec, num_steps=6, seed=1), "taylorseer", budget=3,
                       out=tmp_path / "o2.json", order=2, region="output")
    backend = c4d_backend("taylorseer", schedule=str(result.path), order=2, region="output")  # checked once, at the end
    assert backend.policy.schedule.full_steps == result.full_steps
    with pytest.raises(CalibrationFileError, match="forecaster"):
        c4d_backend("taylorseer", schedule=str(result.path), region="output")


def test_calibrating_a_pipeline_records_its_own_call_and_leaves_it_as_it_was(tmp_path):
    from support.pipelines import PIPELINES, run

    from c4d_compile import calibrate as calibrate_entry  # the package-level entry

    case = PIPELINES["flux"]
    pipe = case.build()
    transformer, set_timesteps = pipe.transformer, pipe.scheduler.set_timesteps
    result = calibrate_entry(pipe, lambda p: run(p, case, steps=6, seed=1), "taylorseer", budget=3,
                             out=tmp_path / "pipe.json")
    assert result.num_steps == 6 and result.full_steps[0] == 0 and len(result.full_steps) == 3
    assert pipe.transformer is transformer and "cache_context" not in vars(transformer)
    assert pipe.scheduler.set_timesteps == set_timesteps


def test_a_file_checks_each_run_it_is_used_on_naming_what_differs(calibrated, tmp_path):
    """``check_run``: what the Runtime hands the schedule at the first full call of every run."""
    _, _, result = calibrated
    data = json.loads(result.path.read_text())
    assert data["sampler_timesteps"] == []  # recorded in a loop of one's own that did not say its grid
    grid = [1000.0 - 100.0 * i for i in range(8)]
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({**data, "sampler_timesteps": grid}))
    schedule = c4d_backend("taylorseer", schedule=str(path)).policy.schedule
    shapes = tuple(tuple(f[1]) for f in data["fingerprint"]["features"])
    graph = data["fingerprint"]["graph"]
    schedule.check_run(RunFacts(8, tuple(grid), shapes, graph))  # its own run
    schedule.check_run(RunFacts(8, (), shapes, graph))  # a run that does not say its grid: not compared
    with pytest.raises(CalibrationFileError, match="calibrated for 8 steps, but this generation runs 10"):
        schedule.check_run(RunFacts(10, (), shapes, graph))
    other = (*grid[:3], 650.0, *grid[4:])
    with pytest.raises(CalibrationFileError, match=r"runs \[1000, 900, 800, \.\.\., 400, 300\].*step 3: 650, recorded"):
        schedule.check_run(RunFacts(8, other, shapes, graph))
    wider = ((shapes[0][0] * 2, *shapes[0][1:]), *shapes[1:])
    with pytest.raises(CalibrationFileError, match=rf"shape \[{shapes[0][0]}, .*this call's are \[{wider[0][0]}, "):
        schedule.check_run(RunFacts(8, tuple(grid), wider, graph))
    with pytest.raises(CalibrationFileError, match="another model"):
        schedule.check_run(RunFacts(8, tuple(grid), shapes, "0" * 16))
