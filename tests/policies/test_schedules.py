"""Schedules as data: placement, validation, and the decisions a Runtime asks for."""

import pytest

from c4d_compile import (
    BudgetSchedule,
    ExplicitSchedule,
    IntervalSchedule,
    InvalidValueError,
    MissingStepCountError,
    SpreadSchedule,
)
from c4d_compile.policies.schedules import spread_evenly
from c4d_compile.runtime.step_program import StepInfo, VariantKind


def run(schedule, num_steps, known=True):
    """The steps a schedule computes over a whole generation, as the Runtime asks it."""
    full: list[int] = []
    for step in range(num_steps):
        kind = schedule.decide(StepInfo(step, num_steps if known else None, tuple(full)))
        if kind is VariantKind.FULL:
            full.append(step)
    return full


@pytest.mark.parametrize("budget,steps", [(2, 10), (5, 50), (10, 50), (8, 28), (7, 7), (3, 4), (28, 28)])
def test_budget_places_first_and_last_and_spreads_the_rest(budget, steps):
    planned = spread_evenly(budget, steps)
    assert len(planned) == budget and planned[0] == 0 and planned[-1] == steps - 1
    gaps = [b - a for a, b in zip(planned, planned[1:])]
    assert max(gaps) - min(gaps) <= 1  # even, up to rounding
    assert run(BudgetSchedule(budget), steps) == list(planned)


def test_budget_equal_to_the_steps_computes_everything_and_two_is_first_and_last():
    assert spread_evenly(9, 9) == tuple(range(9))
    assert spread_evenly(2, 30) == (0, 29)
    assert spread_evenly(1, 1) == (0,)


def test_a_budget_above_the_step_count_is_a_typed_error():
    with pytest.raises(InvalidValueError, match="at most the number of steps"):
        spread_evenly(12, 10)
    with pytest.raises(InvalidValueError, match="budget"):
        run(BudgetSchedule(12), 10)


def test_budget_without_a_step_count_says_what_it_needs_at_the_first_call():
    with pytest.raises(MissingStepCountError, match="num_steps"):
        BudgetSchedule(5).decide(StepInfo(0, None, ()))


@pytest.mark.parametrize("bad", [(1, 4), (0, 4, 4), (0, 5, 3), (), (0, -1), (0, 2.0), "0,4"])
def test_explicit_sets_are_validated(bad):
    with pytest.raises(InvalidValueError, match="full_steps"):
        ExplicitSchedule(bad)


def test_explicit_set_must_lie_inside_the_run():
    assert run(ExplicitSchedule((0, 4, 9)), 10) == [0, 4, 9]
    with pytest.raises(InvalidValueError, match="below the generation's step count"):
        run(ExplicitSchedule((0, 4, 12)), 10)


@pytest.mark.parametrize(
    "warmup,interval,steps", [(3, 4, 50), (3, 6, 50), (1, 5, 50), (3, 7, 50), (0, 3, 28), (2, 1, 9)]
)
def test_interval_schedule_matches_the_reference_counter(warmup, interval, steps):
    expected = warmup + (steps - warmup) // interval
    if warmup == 0:  # nothing is cached yet at step 0, so it computes, and the counter starts there
        expected = 1 + (steps - 1) // interval
    assert len(IntervalSchedule(interval, warmup).planned(steps)) == expected
    assert run(IntervalSchedule(interval, warmup), steps) == list(IntervalSchedule(interval, warmup).planned(steps))


def test_interval_papers_ratio_and_last_step():
    assert len(IntervalSchedule(interval=6, warmup=3).planned(50)) == 10  # TaylorSeer FLUX: 5.00x
    assert run(IntervalSchedule(5, 3, last_step_full=True), 10)[-1] == 9
    with pytest.raises(MissingStepCountError):
        run(IntervalSchedule(5, 3, last_step_full=True), 10, known=False)


def test_spread_is_a_budget_of_one_in_interval_and_degrades_without_a_step_count():
    assert SpreadSchedule(5).planned(50) == spread_evenly(10, 50)
    assert SpreadSchedule(5).planned(28) == spread_evenly(6, 28)
    assert SpreadSchedule(1).planned(7) == tuple(range(7))
    assert run(SpreadSchedule(4), 13, known=False) == [0, 4, 8, 12]


def test_a_step_without_history_computes_whatever_the_set_says():
    # e.g. a state reset by a new shape in the middle of a generation
    assert BudgetSchedule(3).decide(StepInfo(7, 20, ())) is VariantKind.FULL
