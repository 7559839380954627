"""MagCache's decision against a plainly written reference of its loop, on a recorded ratio curve."""

import math

import pytest

from c4d_compile import InvalidValueError
from c4d_compile.policies import get_policy
from c4d_compile.policies.schedules import MagnitudeSchedule, RatiosMissingError
from c4d_compile.policies.schedules.magnitude import resample
from c4d_compile.step_program import StepInfo, VariantKind

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
