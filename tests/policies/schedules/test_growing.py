"""GrowingIntervalSchedule: after the warm-up, a window of floor(N) steps that grows by ``growth`` at each of the
schedule's own full steps; a step computed for another reason restarts the count but does not grow the window."""

import pytest

from c4d_compile import InvalidValueError
from c4d_compile.policies.schedules.growing import GrowingIntervalSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind


def test_the_window_is_the_floor_of_start_plus_the_growths_with_a_margin_for_rounding():
    assert [GrowingIntervalSchedule().width(k) for k in range(5)] == [2, 2, 3, 4, 5]  # 2, 2.75, 3.5, 4.25, 5
    assert 1.9 + 3 * 0.7 < 4 and GrowingIntervalSchedule(start=1.9, growth=0.7).width(3) == 4


def test_the_planned_steps_widen_by_one_each_time():
    schedule = GrowingIntervalSchedule(warmup=2, start=2.0, growth=1.0)
    assert schedule.planned(12) == (0, 1, 3, 6, 10) and schedule.planned(0) == ()
    assert GrowingIntervalSchedule(growth=0.0, start=3.0, warmup=1).planned(10) == (0, 3, 6, 9)  # a plain interval


def test_a_full_step_of_another_cause_restarts_the_count_at_the_window_the_schedule_had_reached():
    schedule = GrowingIntervalSchedule(warmup=2, start=2.0, growth=1.0)
    full = lambda step, history: schedule.decide(StepInfo(step, None, history)) is VariantKind.FULL  # noqa: E731
    assert not full(5, (0, 1, 3)) and full(6, (0, 1, 3))  # its own plan: a window of 3 after step 3
    # step 4 was computed anyway: the count starts there, and the window stays 3
    assert not full(6, (0, 1, 3, 4)) and full(7, (0, 1, 3, 4))
    assert full(1, (0,)) and full(8, ())  # the warm-up, and a context with nothing to forecast from


@pytest.mark.parametrize("kwargs", [{"warmup": 0}, {"start": 0.5}, {"growth": -0.1}])
def test_invalid_fields_are_refused(kwargs):
    with pytest.raises(InvalidValueError, match=f"'{next(iter(kwargs))}'"):
        GrowingIntervalSchedule(**kwargs)


def test_it_says_what_it_does():
    assert GrowingIntervalSchedule().describe() == (
        "growing interval, warm-up 5, then one step in floor(N), N = 2 + 0.75 per full step")
