"""IntervalSchedule: a warm-up, then one full step in ``interval`` counted from the last full step, whatever made
it full; the last step full when asked, which needs the step count then only."""

import pytest

from c4d_compile import InvalidValueError, MissingStepCountError
from c4d_compile.policies.schedules.interval import IntervalSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind


@pytest.mark.parametrize("schedule,want", [
    (IntervalSchedule(3, 2), (0, 1, 4, 7)),
    (IntervalSchedule(3, 2, last_step_full=True), (0, 1, 4, 7, 9)),
    (IntervalSchedule(3), (0, 3, 6, 9)),  # no warm-up: step 0 computes, having nothing to forecast from
    (IntervalSchedule(1, 4), tuple(range(10))),
])
def test_the_planned_steps_of_ten(schedule, want):
    assert schedule.planned(10) == want


def test_the_count_starts_again_at_any_full_step_and_needs_no_step_count():
    schedule = IntervalSchedule(3, 2)
    full = lambda step, history: schedule.decide(StepInfo(step, None, history)) is VariantKind.FULL  # noqa: E731
    assert [full(s, (0, 1, 4)) for s in (5, 6, 7)] == [False, False, True]
    assert [full(s, (0, 1, 4, 5)) for s in (7, 8)] == [False, True]  # step 5 was full for another reason
    assert full(9, ())  # nothing to forecast from (a state reset)


def test_the_last_step_needs_the_step_count_only_once_a_step_could_be_cached():
    schedule = IntervalSchedule(3, 2, last_step_full=True)
    assert schedule.decide(StepInfo(1, None, (0,))) is VariantKind.FULL  # warm-up: no question asked
    with pytest.raises(MissingStepCountError, match="last_step_full"):
        schedule.decide(StepInfo(2, None, (0, 1)))


@pytest.mark.parametrize("kwargs,field", [
    ({"interval": 0}, "interval"), ({"warmup": -1}, "warmup"), ({"last_step_full": 1}, "last_step_full"),
])
def test_invalid_fields_are_refused(kwargs, field):
    with pytest.raises(InvalidValueError, match=f"'{field}'"):
        IntervalSchedule(**kwargs)


def test_it_says_what_it_does():
    assert IntervalSchedule(6, 3, True).describe() == "interval 6, warm-up 3, last step full"
    assert IntervalSchedule(2).describe() == "interval 2, warm-up 0"
