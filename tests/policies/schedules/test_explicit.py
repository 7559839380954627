"""ExplicitSchedule: the full steps as given, checked when made and against each run's step count."""

import pytest

from c4d_compile import InvalidValueError, MissingStepCountError
from c4d_compile.policies.schedules.explicit import ExplicitSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind


def test_a_list_or_a_range_is_kept_as_a_tuple_so_the_schedule_stays_a_hashable_value():
    assert ExplicitSchedule([0, 3]).full_steps == (0, 3) and ExplicitSchedule([0, 3]) == ExplicitSchedule((0, 3))
    assert ExplicitSchedule(range(0, 10, 3)).full_steps == (0, 3, 6, 9)
    assert hash(ExplicitSchedule([0, 3])) == hash(ExplicitSchedule((0, 3)))


@pytest.mark.parametrize("steps", [(0, True), (True, 2), [0, 2, 2], (0, "3"), None])
def test_booleans_repeats_and_other_values_are_refused(steps):
    with pytest.raises(InvalidValueError, match="'full_steps'"):
        ExplicitSchedule(steps)


def test_the_set_is_the_plan_of_any_run_long_enough_and_a_call_computes_its_steps():
    schedule = ExplicitSchedule((0, 3, 5))
    assert schedule.planned(6) == schedule.planned(50) == (0, 3, 5)
    assert [schedule.decide(StepInfo(s, 6, (0,))) is VariantKind.FULL for s in range(6)] == [
        True, False, False, True, False, True]
    with pytest.raises(InvalidValueError, match=r"below the generation's step count \(5\)"):
        schedule.planned(5)
    with pytest.raises(MissingStepCountError, match="'explicit'"):
        schedule.decide(StepInfo(3, None, (0,)))


def test_it_says_its_steps():
    assert ExplicitSchedule((0, 4, 9)).describe() == "explicit [0, 4, 9]"
