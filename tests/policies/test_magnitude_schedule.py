"""MagCache's decision against a plainly written reference of its loop, on a recorded ratio curve."""

import json
import math

import pytest

from c4d_compile import ConfigError, InvalidValueError, RatiosTransferError
from c4d_compile.policies import get_policy
from c4d_compile.policies.schedules import MagnitudeSchedule, RatiosMissingError, RunFacts, write_ratios
from c4d_compile.policies.schedules.magnitude import by_time, resample
from c4d_compile.runtime.step_program import StepInfo, VariantKind

CURVE = (1.0, 1.08, 1.04, 0.99, 0.997, 0.985, 0.999, 0.976, 0.988, 0.995, 0.983, 0.988, 0.986, 0.989, 0.9835,
         0.9886, 0.9875, 0.985, 0.993, 0.985, 0.981, 0.976, 0.97, 0.95, 0.93, 0.9)


def run(schedule, num_steps):
    full, kinds = [], []
    for step in range(num_steps):
        kind = schedule.decide(StepInfo(step, num_steps, tuple(full)))
        kinds.append("F" if kind is VariantKind.FULL else "C")
        if kind is VariantKind.FULL:
            full.append(step)
    return "".join(kinds)


def magcache_reference(ratios, num_steps, threshold, k, retention):
    """Zehong-Ma/MagCache magcache_flux.py, written plainly: accumulate ratio, error and skips; reset on compute."""
    scale = (len(ratios) - 1) / (num_steps - 1)
    curve = [ratios[int(math.floor(i * scale + 0.5))] for i in range(num_steps)]
    ratio, error, skips, out = 1.0, 0.0, 0, []
    for step in range(num_steps):
        if step < round(retention * num_steps):
            out.append("F")
            continue
        ratio *= curve[step]
        skips += 1
        error += abs(1 - ratio)
        if error <= threshold and skips <= k:
            out.append("C")
        else:
            out.append("F")
            ratio, error, skips = 1.0, 0.0, 0
    return "".join(out)


@pytest.mark.parametrize("threshold,k,retention,steps", [
    (0.06, 3, 0.2, 26), (0.24, 5, 0.1, 26), (0.12, 2, 0.2, 50), (0.5, 4, 0.1, 13), (0.0, 3, 0.2, 26),
])
def test_magcache_decides_like_its_reference_loop(threshold, k, retention, steps):
    schedule = MagnitudeSchedule(threshold=threshold, max_cached_in_row=k, retention=retention, ratios=CURVE)
    kinds = run(schedule, steps)
    assert kinds == magcache_reference(CURVE, steps, threshold, k, retention)
    assert schedule.planned(steps) == tuple(i for i, c in enumerate(kinds) if c == "F")
    assert ("C" in kinds) == (threshold > 0)


def test_without_retention_the_first_step_still_computes():
    kinds = run(MagnitudeSchedule(threshold=1.0, max_cached_in_row=4, retention=0.0, ratios=CURVE), 13)
    assert kinds.startswith("FCCCCF")  # nothing to reuse at step 0, then the reference's loop


def test_resampling_keeps_the_ends_and_picks_the_nearest_entry():
    assert resample(CURVE, len(CURVE)) == CURVE
    short = resample(CURVE, 6)
    assert short[0] == CURVE[0] and short[-1] == CURVE[-1] and len(short) == 6 and set(short) <= set(CURVE)


def test_without_ratios_the_error_says_how_to_record_them():
    with pytest.raises(RatiosMissingError, match="c4d calibrate MODEL --policy magcache"):
        get_policy("magcache").schedule.check_plan({"graph": "x"})


@pytest.mark.parametrize("field,value", [("threshold", -1), ("retention", 1.5), ("max_cached_in_row", -1),
                                         ("ratios", (1.0, -0.5)), ("ratios", "no-such-file.json")])
def test_bad_values_are_typed_errors(field, value):
    with pytest.raises(Exception) as err:
        MagnitudeSchedule(**{field: value})
    assert isinstance(err.value, (InvalidValueError,)) or "ratios" in str(err.value)


# Resampling to the run's grid (a file that recorded the sampler's timesteps, a run that says its own).

def uniform(n: int, first: float = 1000.0, last: float = 0.0) -> tuple[float, ...]:
    return tuple(first + (last - first) * i / (n - 1) for i in range(n))


def test_on_a_uniform_grid_with_the_recorded_ends_resampling_by_timestep_is_magcaches_nearest_index():
    for steps in (2, 6, 7, 13, 26, 50):
        assert by_time(CURVE, uniform(26), uniform(steps)) == resample(CURVE, steps), steps


def test_resampling_by_timestep_keeps_the_recorded_grid_and_reads_the_tail_for_image_to_image():
    grid = GRID
    assert by_time(CURVE, grid, grid) is CURVE
    assert by_time(CURVE, grid, grid[10:]) == CURVE[10:]  # strength 16/26: the last 16 steps of the grid
    assert resample(CURVE, 16) != CURVE[10:]  # what the step position would read
    heun = (1000.0, 800.0, 800.0, 600.0, 600.0, 400.0)  # a timestep evaluated twice: each call keeps its own ratio
    assert by_time(CURVE[:6], heun, heun) == CURVE[:6]
    assert by_time(CURVE[:6], heun, (1000.0, 800.0, 800.0)) == CURVE[:3]


GRID = uniform(26, 1000.0, 40.0)  # the sampler timesteps CURVE is taken as recorded at


def ratios_file(tmp_path, ratios=CURVE, grid=GRID):
    path = tmp_path / "ratios.json"
    write_ratios(path, {"ratios": list(ratios), "num_steps": len(ratios), "sampler_timesteps": list(grid),
                        "fingerprint": {"graph": "abc", "features": []}})
    return str(path)


def test_a_run_says_its_grid_and_the_decisions_follow_it(tmp_path):
    drop = (1.0,) * 25 + (0.8,)  # the last recorded step's residual shrinks
    schedule = MagnitudeSchedule(threshold=0.1, max_cached_in_row=0, ratios=ratios_file(tmp_path, drop))
    assert "by timestep" in schedule.describe()
    tail = GRID[16:]  # image-to-image: the last 10 timesteps of the recorded grid
    assert schedule.planned(10, tail) == (0, 1, 9)
    assert schedule.planned(10, (1000.0, *uniform(9, 500.0, 40.0))) == (0, 1, 9)
    shifted = (1000.0, 990.0, 950.0, 900.0, 700.0, 400.0, 60.0, 45.0, 41.0, 40.0)  # reaches the end early: from
    assert schedule.planned(10, shifted) == (0, 1, 7, 8, 9)  # step 7 (45) on, the nearest recorded timestep is 40
    assert schedule.planned(10) == (0, 1, 9)  # no grid: by the normalised step position


def test_a_run_beyond_the_recorded_timesteps_is_refused_naming_them(tmp_path):
    schedule = MagnitudeSchedule(ratios=ratios_file(tmp_path, CURVE[:10], GRID[16:]))
    schedule.check_run(RunFacts(10, GRID[16:], (), "abc"))  # its own range: 385.6 to 40, 38.4 apart
    schedule.check_run(RunFacts(10, uniform(10, 424.0, 1.6), (), "abc"))  # one recorded step beyond either end
    with pytest.raises(RatiosTransferError) as err:
        schedule.check_run(RunFacts(26, GRID, (), "abc"))  # the full strength run
    message = str(err.value)
    assert "recorded over sampler timesteps 385.6 to 40 (10 steps)" in message and "step 0" in message
    assert "at 1000" in message and "c4d calibrate" in message
    with pytest.raises(ConfigError, match="another model"):
        schedule.check_run(RunFacts(10, (), (), "other"))
    schedule.check_run(RunFacts(10, (), (), "abc"))  # a run that does not say its grid: nothing to check


def test_ratios_without_a_recorded_grid_resample_by_position_and_a_bad_grid_is_refused(tmp_path):
    plain = MagnitudeSchedule(ratios=CURVE)
    assert plain.ratios_for(6, uniform(6)) == resample(CURVE, 6) and "by step position" in plain.describe()
    plain.check_run(RunFacts(6, uniform(6, 5000.0, 4000.0), (), "abc"))  # nothing recorded to compare with
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "c4d-magnitude-ratios/1", "ratios": list(CURVE), "sampler_timesteps": [1.0]}))
    with pytest.raises(ConfigError, match="sampler_timesteps"):
        MagnitudeSchedule(ratios=str(path))
