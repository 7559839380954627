import pytest

from c4d_compile import (
    BudgetSchedule,
    ConfigError,
    ExplicitSchedule,
    IntervalSchedule,
    InvalidValueError,
    Settings,
    SpreadSchedule,
    UnknownOptionError,
    UnknownPolicyError,
    Variable,
    c4d_backend,
    get_policy,
    list_policies,
)


def test_presets_are_listed():
    presets = {"taylorseer", "taylorseer-lite", "foca", "hicache", "fora", "abcache", "stack-reuse"}
    assert presets <= set(list_policies())


def test_unknown_policy_lists_valid_names():
    with pytest.raises(UnknownPolicyError) as err:
        c4d_backend("nope")
    assert "taylorseer-lite" in str(err.value) and "stack-reuse" in str(err.value)


def test_unknown_option_is_rejected_with_valid_options_and_settings():
    with pytest.raises(UnknownOptionError) as err:
        c4d_backend("taylorseer-lite", intervall=3)
    message = str(err.value)
    assert "interval" in message and "order" in message and "budget" in message and "lowering" in message


@pytest.mark.parametrize(
    "field,value",
    [("interval", 0), ("order", -1), ("warmup", -1), ("interval", 2.5), ("interval", True), ("budget", 1),
     ("num_steps", 0)],
)
def test_bad_numbers_name_the_field_and_range(field, value):
    with pytest.raises(InvalidValueError) as err:
        c4d_backend("taylorseer-lite", **{field: value})
    assert err.value.field == field and ">=" in str(err.value)


def test_bad_settings_region_and_variable_name_the_valid_values():
    with pytest.raises(InvalidValueError, match="eager"):
        c4d_backend("taylorseer-lite", lowering="tensorrt")
    with pytest.raises(InvalidValueError, match="stack"):
        c4d_backend("taylorseer-lite", region="everywhere")
    with pytest.raises(InvalidValueError, match="timestep"):
        c4d_backend("taylorseer-lite", variable="sigma")
    with pytest.raises(InvalidValueError, match="max-autotune"):
        c4d_backend("taylorseer", mode="fastest")
    with pytest.raises(InvalidValueError, match="paper"):
        c4d_backend("taylorseer", schedule="fast")


def test_settings_are_apart_from_the_policy():
    backend = c4d_backend("taylorseer", lowering="eager", strict=True, interval=4)
    assert backend.settings == Settings(lowering="eager", strict=True)
    assert backend.policy.schedule == SpreadSchedule(interval=4)
    with pytest.raises(InvalidValueError, match="not both"):
        c4d_backend("taylorseer", settings=Settings(), lowering="eager")
    assert c4d_backend("taylorseer", settings=Settings(mode="max-autotune")).settings.inductor_config()["max_autotune"]


def test_schedule_fields_select_the_kind_that_owns_them():
    assert get_policy("taylorseer", budget=8).schedule == BudgetSchedule(8)
    assert get_policy("taylorseer", full_steps=(0, 3, 9)).schedule == ExplicitSchedule((0, 3, 9))
    assert get_policy("taylorseer", interval=4).schedule == SpreadSchedule(4)  # the default kind has interval
    # warmup belongs to the papers' kind only; the interval carries over
    assert get_policy("taylorseer", warmup=2).schedule == IntervalSchedule(interval=5, warmup=2)
    assert get_policy("taylorseer", interval=6, warmup=3).schedule == IntervalSchedule(6, 3)
    with pytest.raises(ConfigError, match="different schedule kinds"):
        get_policy("taylorseer", budget=8, warmup=2)


def test_schedule_paper_restores_the_papers_settings_with_overrides_on_top():
    paper = get_policy("taylorseer", schedule="paper")
    assert paper.schedule == IntervalSchedule(interval=6, warmup=3) and paper.variable is Variable.STEP
    assert get_policy("taylorseer-lite", schedule="paper").forecaster.order == 2
    assert get_policy("abcache", schedule="paper").forecaster.binomial is True
    tuned = get_policy("taylorseer", schedule="paper", interval=4)
    assert tuned.schedule == IntervalSchedule(interval=4, warmup=3)


def test_overrides_reach_the_owning_part_and_keep_the_rest():
    policy = get_policy("taylorseer-lite", interval=4, order=2)
    assert policy.schedule.interval == 4 and policy.forecaster.order == 2
    assert get_policy("taylorseer-lite").schedule.interval == 5  # presets are immutable data


def test_every_preset_takes_a_budget_and_a_step_count():
    for name in list_policies(fitted=False):
        policy = get_policy(name, budget=8, num_steps=28)
        assert policy.schedule.planned(28)[0] == 0 and policy.schedule.planned(28)[-1] == 27
        assert len(policy.schedule.planned(28)) == 8
