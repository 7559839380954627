"""The local search on a measured error: moves, budget of measurements, what it never changes."""

from c4d_compile.calibration.refine import neighbours, refine


def test_a_move_keeps_the_set_sorted_distinct_in_range_and_step_zero_fixed():
    assert neighbours((0, 3, 6, 9), 1, -1, 10) == (0, 2, 6, 9)
    assert neighbours((0, 3, 6, 9), 3, 1, 10) is None  # past the last step
    assert neighbours((0, 3, 4, 9), 1, 1, 10) is None  # onto its neighbour
    assert neighbours((0, 3, 6, 9), 0, 1, 10) is None  # step 0 stays full


def test_the_search_reaches_the_best_set_of_a_smooth_error_within_its_budget():
    target = (0, 2, 9, 13, 19)
    calls = []

    def measure(steps):
        calls.append(steps)
        return sum((a - b) ** 2 for a, b in zip(steps, target))

    result = refine(measure, (0, 5, 10, 15, 19), 20, max_evaluations=60)
    assert result.full_steps == target and result.error == 0
    assert result.evaluations == len(calls) <= 60 and all(steps[0] == 0 for steps in calls)
    assert len(set(calls)) == len(calls)  # nothing measured twice


def test_the_budget_of_measurements_is_never_exceeded_and_a_given_start_is_not_measured_again():
    calls = []

    def measure(steps):
        calls.append(steps)
        return -sum(steps)  # always better further right: the search would go on

    result = refine(measure, (0, 1, 2, 3), 50, max_evaluations=5, start_error=-6.0)
    assert len(calls) == result.evaluations == 5 and (0, 1, 2, 3) not in calls
    assert result.error < -6.0


def test_a_start_that_no_move_improves_is_kept():
    result = refine(lambda steps: 0.0 if steps == (0, 4, 8) else 1.0, (0, 4, 8), 10, max_evaluations=20)
    assert result.full_steps == (0, 4, 8) and result.error == 0.0
