"""SpreadSchedule: a budget of ceil(T / interval) full steps placed evenly; without a step count, the first step
and then one in ``interval``."""

import pytest

from c4d_compile.policies.schedules.budget import BudgetSchedule
from c4d_compile.policies.schedules.placement import spread_evenly
from c4d_compile.policies.schedules.spread import SpreadSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind


@pytest.mark.parametrize("interval,steps,budget", [(5, 50, 10), (5, 7, 2), (4, 13, 4), (1, 7, 7), (5, 1, 1)])
def test_the_budget_is_one_per_interval_at_least_first_and_last_at_most_every_step(interval, steps, budget):
    schedule = SpreadSchedule(interval)
    assert schedule.budget(steps) == budget and schedule.planned(steps) == spread_evenly(budget, steps)


def test_with_a_step_count_a_call_follows_the_plan():
    schedule = SpreadSchedule(4)
    assert schedule.planned(13) == (0, 4, 8, 12)
    assert [schedule.decide(StepInfo(s, 13, (0,))) is VariantKind.FULL for s in (4, 5, 12)] == [True, False, True]


def test_without_a_step_count_it_counts_from_the_last_full_step_and_says_so():
    schedule = SpreadSchedule(3)
    full = lambda step, history: schedule.decide(StepInfo(step, None, history)) is VariantKind.FULL  # noqa: E731
    assert full(0, ()) and not full(5, (0, 4)) and full(7, (0, 4))
    assert schedule.without_step_count and BudgetSchedule.without_step_count is None  # a budget cannot decide
