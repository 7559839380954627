"""CalibratedSchedule and its file: what loading refuses, the run a file was recorded on (step count, graph,
feature sizes, sampler grid) checked at each run's first full call, and the fitted policy's placeholder that
refuses to run without a file."""

import json

import pytest

from c4d_compile.policies.schedules.base import RunFacts
from c4d_compile.policies.schedules.calibrated import (
    FORMAT,
    CalibratedSchedule,
    CalibrationFileError,
    CalibrationRequired,
    CalibrationRequiredError,
    read_calibration,
    write_calibration,
)
from c4d_compile.runtime.step_program import StepInfo, VariantKind

GRID = [1000.0, 875.0, 750.0, 625.0, 500.0, 375.0, 250.0, 125.0]
FEATURES = [["stack", [5, 8], "float32"]]


def _data(**changes) -> dict:
    data = {"full_steps": [0, 3, 7], "num_steps": 8, "budget": 3, "region": "stack", "forecaster": {"kind": "reuse"},
            "variable": "none", "timesteps": GRID, "sampler_timesteps": GRID,
            "fingerprint": {"graph": "g1", "features": FEATURES}}
    return {**data, **changes}


@pytest.fixture(scope="module")
def schedule(tmp_path_factory):
    return CalibratedSchedule(write_calibration(tmp_path_factory.mktemp("cal") / "s.json", _data()))


def test_a_written_file_loads_as_the_set_it_records_and_each_call_follows_it(schedule):
    assert json.loads(open(schedule.path).read())["format"] == FORMAT
    assert schedule.full_steps == schedule.planned(8) == (0, 3, 7)
    kinds = [schedule.decide(StepInfo(s, 8, (0,))) for s in range(8)]
    assert [s for s, k in enumerate(kinds) if k is VariantKind.FULL] == [0, 3, 7]
    assert schedule.describe() == f"calibrated [0, 3, 7] from {schedule.path}"


def test_two_schedules_of_one_file_are_equal_values(schedule):
    again = CalibratedSchedule(schedule.path)
    assert again == schedule and hash(again) == hash(schedule)


@pytest.mark.parametrize("change,match", [
    ({"format": "other/1"}, "format 'other/1'"),
    ({"region": None}, "field 'region' missing or not a str"),
    ({"num_steps": True}, "field 'num_steps' missing or not a int"),
    ({"full_steps": [1, 3, 7]}, "must be sorted distinct steps from 0"),
    ({"full_steps": [0, 7, 3]}, "must be sorted distinct steps from 0"),
    ({"full_steps": [0, 3, 8]}, "below num_steps 8"),
    ({"full_steps": [0, 3]}, "budget 3 of them"),
    ({"full_steps": [0, 3.0, 7]}, "must be sorted distinct steps from 0"),
    ({"sampler_timesteps": GRID[:5]}, "sampler_timesteps must be a list of 8 numbers"),
    ({"sampler_timesteps": [*GRID[:7], "x"]}, "sampler_timesteps must be a list of 8 numbers"),
])
def test_a_file_that_does_not_hold_a_valid_set_is_refused_naming_what_is_wrong(tmp_path, change, match):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"format": FORMAT, **_data(**change)}))
    with pytest.raises(CalibrationFileError, match=match):
        read_calibration(path)


def test_an_unreadable_file_or_one_not_an_object_is_refused(tmp_path):
    with pytest.raises(CalibrationFileError, match="cannot read calibrated schedule"):
        CalibratedSchedule(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(CalibrationFileError, match="expected a JSON object"):
        read_calibration(tmp_path / "list.json")


def test_the_run_it_was_recorded_on_passes_with_any_batch_and_grids_equal_to_rounding(schedule):
    schedule.check_run(RunFacts(8, tuple(GRID), ((5, 8),), "g1"))
    schedule.check_run(RunFacts(8, tuple(t * (1 + 1e-7) for t in GRID), ((5, 8),), "g1"))
    schedule.check_run(RunFacts(None, (), (), ""))  # nothing said: nothing to check


@pytest.mark.parametrize("run,match", [
    (RunFacts(10, (), (), ""), "calibrated for 8 steps, but this generation runs 10.*budget=3"),
    (RunFacts(8, (), ((6, 8),), ""), r"features of shape \[5, 8\] \(feature 0, batch dim excluded\).*are \[6, 8\]"),
    (RunFacts(8, (), (), "g2"), r"another model \(graph g1, this one g2\)"),
    (RunFacts(8, (*GRID[:6], 251.0, 125.0), (), ""),
     r"timesteps \[1000, 875, 750, \.\.\., 250, 125\] \(8 steps\).*step 6: 251, recorded 250"),
])
def test_another_run_is_refused_naming_what_differs(schedule, run, match):
    with pytest.raises(CalibrationFileError, match=match):
        schedule.check_run(run)


def test_the_plan_and_the_policy_must_be_those_it_was_searched_with(schedule):
    schedule.check_plan({"graph": "g1", "features": FEATURES})
    with pytest.raises(CalibrationFileError, match=r"feature 0 of shape \[5, 8\] recorded, \[4, 8\] here"):
        schedule.check_plan({"graph": "g1", "features": [["stack", [4, 8], "float32"]]})
    with pytest.raises(CalibrationFileError, match=r"feature 1 of shape None recorded, \[2\] here"):
        schedule.check_plan({"graph": "g1", "features": [*FEATURES, ["branch", [2], "float32"]]})
    schedule.check_policy("stack", {"kind": "reuse"}, "none")
    with pytest.raises(CalibrationFileError, match="calibrated with forecaster {'kind': 'reuse'}"):
        schedule.check_policy("stack", {"kind": "taylor"}, "none")
    with pytest.raises(CalibrationFileError, match="calibrated for 8 steps"):
        schedule.planned(9)


def test_a_fitted_policy_without_its_file_refuses_every_use_saying_how_to_calibrate():
    placeholder = CalibrationRequired()
    uses = (placeholder.check_ready, lambda: placeholder.decide(StepInfo(0, 8, ())), lambda: placeholder.planned(8))
    for use in uses:
        with pytest.raises(CalibrationRequiredError, match="c4d calibrate MODEL --policy auto"):
            use()
    assert "schedule='file.json'" in placeholder.describe()


def test_a_shard_under_context_parallelism_counts_its_split_dim_whole(schedule, tmp_path):
    """Calibrated in one process, run on 2 ranks that each hold half the tokens of feature 0 (``shards`` in the
    plan's fingerprint), and the other way round; a shard that is not the whole split over the ranks is refused."""
    shards = {"world": 2, "features": [0]}
    schedule.check_plan({"graph": "g1", "features": [["stack", [5, 4], "float32"]], "shards": shards})
    schedule.check_run(RunFacts(8, tuple(GRID), ((5, 4),), "g1", shards))
    for shard, world in (((5, 2), 2), ((5, 4), 4), ((3, 4), 2)):
        with pytest.raises(CalibrationFileError, match="features of shape"):
            schedule.check_run(RunFacts(8, tuple(GRID), (shard,), "g1", {"world": world, "features": [0]}))
    with pytest.raises(CalibrationFileError, match="features of shape"):
        schedule.check_run(RunFacts(8, tuple(GRID), ((5, 4),), "g1"))  # half the tokens in one process
    on_ranks = CalibratedSchedule(write_calibration(tmp_path / "ranks.json", _data(fingerprint={
        "graph": "g1", "features": [["stack", [5, 4], "float32"]], "shards": shards})))
    on_ranks.check_plan({"graph": "g1", "features": FEATURES})
    on_ranks.check_run(RunFacts(8, tuple(GRID), ((5, 8),), "g1"))
