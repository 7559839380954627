"""spread_evenly: the first and the last step, the rest rounded to even places between them; the budgets it
refuses."""

import pytest

from c4d_compile import InvalidValueError
from c4d_compile.policies.schedules.placement import spread_evenly


@pytest.mark.parametrize("budget,steps,want", [
    (5, 50, (0, 12, 24, 37, 49)),  # 12.25, 24.5 and 36.75 rounded (24.5 to the even 24)
    (4, 10, (0, 3, 6, 9)),
    (3, 4, (0, 2, 3)),
    (6, 7, (0, 1, 2, 4, 5, 6)),
    (2, 2, (0, 1)),
    (1, 1, (0,)),  # a run of one step computes it
])
def test_the_full_steps_of_a_budget(budget, steps, want):
    assert spread_evenly(budget, steps) == want


def test_every_budget_up_to_the_step_count_gives_that_many_distinct_steps_from_first_to_last():
    for budget in range(2, 14):
        planned = spread_evenly(budget, 13)
        assert len(set(planned)) == budget and list(planned) == sorted(planned)
        assert planned[0] == 0 and planned[-1] == 12


@pytest.mark.parametrize("budget,steps,match", [
    (2, 0, "'num_steps'"),
    (8, 7, "at most the number of steps"),
    (1, 5, "the first and the last step are always full"),
])
def test_a_budget_that_cannot_be_placed_is_a_typed_error(budget, steps, match):
    with pytest.raises(InvalidValueError, match=match):
        spread_evenly(budget, steps)
