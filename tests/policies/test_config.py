import pytest

from c4d_compile import (
    ConfigError,
    FixedSchedule,
    InvalidValueError,
    UnknownOptionError,
    UnknownPolicyError,
    c4d_backend,
    get_policy,
    list_policies,
)


def test_presets_are_listed():
    assert {"taylorseer-lite", "stack-reuse"} <= set(list_policies())


def test_unknown_policy_lists_valid_names():
    with pytest.raises(UnknownPolicyError) as err:
        c4d_backend("nope")
    assert "taylorseer-lite" in str(err.value) and "stack-reuse" in str(err.value)


def test_unknown_option_is_rejected_with_valid_options():
    with pytest.raises(UnknownOptionError) as err:
        c4d_backend("taylorseer-lite", intervall=3)
    assert "interval" in str(err.value) and "order" in str(err.value)


@pytest.mark.parametrize(
    "field,value", [("interval", 0), ("order", -1), ("warmup", -1), ("interval", 2.5), ("interval", True)]
)
def test_bad_numbers_name_the_field_and_range(field, value):
    with pytest.raises(InvalidValueError) as err:
        c4d_backend("taylorseer-lite", **{field: value})
    assert err.value.field == field and ">=" in str(err.value)


def test_bad_lowering_and_region():
    with pytest.raises(InvalidValueError, match="eager"):
        c4d_backend("taylorseer-lite", lowering="tensorrt")
    with pytest.raises(InvalidValueError, match="stack"):
        c4d_backend("taylorseer-lite", region="everywhere")


def test_last_step_full_needs_num_steps():
    with pytest.raises(ConfigError, match="num_steps"):
        c4d_backend("taylorseer-lite", last_step_full=True)
    assert get_policy("taylorseer-lite", last_step_full=True, num_steps=10).schedule.num_steps == 10


def test_overrides_reach_the_owning_part_and_keep_the_rest():
    policy = get_policy("taylorseer-lite", interval=4, order=1)
    assert policy.schedule.interval == 4 and policy.forecaster.order == 1
    assert policy.schedule.warmup == get_policy("taylorseer-lite").schedule.warmup
    assert get_policy("taylorseer-lite").schedule.interval == 5  # presets are immutable data


@pytest.mark.parametrize(
    "warmup,interval,steps", [(3, 4, 50), (3, 6, 50), (1, 5, 50), (3, 7, 50), (0, 3, 28), (2, 1, 9)]
)
def test_fixed_schedule_full_count_matches_reference_formula(warmup, interval, steps):
    schedule = FixedSchedule(interval=interval, warmup=warmup)
    expected = warmup + (steps - warmup) // interval
    if warmup == 0:  # nothing is cached yet at step 0, so it computes, and the counter starts there
        expected = 1 + (steps - 1) // interval
    assert schedule.full_steps(steps) == expected


def test_fixed_schedule_published_ratio():
    # TaylorSeer FLUX N=6, W=3 on 50 steps: 10 full steps, 5.00x (methods.md §0.2)
    assert FixedSchedule(interval=6, warmup=3).full_steps(50) == 10


def test_last_step_full_adds_the_final_step():
    schedule = FixedSchedule(interval=5, warmup=3, last_step_full=True, num_steps=10)
    assert [s for s in range(10) if schedule.is_full(s, 2 if s > 2 else None)][-1] == 9
