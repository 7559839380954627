"""BudgetSchedule: n full steps placed by spread_evenly, decided per call from that set."""

import pytest

from c4d_compile import InvalidValueError
from c4d_compile.policies.schedules.budget import BudgetSchedule
from c4d_compile.policies.schedules.placement import spread_evenly
from c4d_compile.runtime.step_program import StepInfo, VariantKind


def test_the_planned_steps_are_the_even_placement_and_each_call_follows_them():
    schedule = BudgetSchedule(4)
    assert schedule.planned(10) == spread_evenly(4, 10) == (0, 3, 6, 9)
    kinds = [schedule.decide(StepInfo(step, 10, (0,))) for step in range(10)]
    assert [s for s, k in enumerate(kinds) if k is VariantKind.FULL] == [0, 3, 6, 9]


@pytest.mark.parametrize("budget", [1, 0, True, 2.0, "4"])
def test_a_budget_below_two_or_not_an_integer_is_refused(budget):
    with pytest.raises(InvalidValueError, match="'budget'"):
        BudgetSchedule(budget)


def test_schedules_are_values_and_say_what_they_do():
    assert BudgetSchedule(4) == BudgetSchedule(4) and hash(BudgetSchedule(4)) == hash(BudgetSchedule(4))
    assert BudgetSchedule(4) != BudgetSchedule(5)
    assert BudgetSchedule(4).describe() == "budget 4, first and last step full, the rest spread evenly"
