"""AdaCache's codebook schedule as data: the interval lookup, the threshold's scaling, the decision from
the last two full steps and the distance measured at the last one, and typed errors for bad values."""

import pytest

from c4d_compile import ConfigError, c4d_backend
from c4d_compile.errors import InvalidValueError
from c4d_compile.policies.schedules import CodebookSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind

BOOK = ((0.05, 4), (0.1, 3), (1.0, 2))


def test_the_first_bound_above_the_distance_gives_the_interval():
    schedule = CodebookSchedule(codebook=BOOK)
    assert [schedule.interval(d) for d in (0.01, 0.05, 0.07, 0.5, 3.0)] == [4, 3, 3, 2, 2]
    assert CodebookSchedule(codebook=BOOK, threshold=2.0).interval(0.07) == 4  # bounds doubled
    assert CodebookSchedule(codebook=BOOK, threshold=0.0).interval(0.0) == 1  # 0: always compute


def test_the_decision_spaces_full_steps_by_the_normalised_distance():
    schedule = CodebookSchedule(codebook=BOOK, warmup=1, last_steps_full=1)
    # full at 2 and 4: the distance 0.16 over 2 steps is 0.08 -> interval 3 -> next full step 7
    kinds = [schedule.decide(StepInfo(step, 10, (2, 4), (0.16,))) for step in (5, 6, 7)]
    assert kinds == [VariantKind.CACHED, VariantKind.CACHED, VariantKind.FULL]
    assert schedule.decide(StepInfo(9, 10, (2, 4), (0.0,))) is VariantKind.FULL  # the last step
    assert schedule.decide(StepInfo(1, 10, (0,), ())) is VariantKind.FULL  # nothing measured yet
    assert schedule.decide(StepInfo(5, 10, (4,), (None,))) is VariantKind.FULL  # one full step: no rate yet


@pytest.mark.parametrize("options,match", [
    ({"codebook": ()}, "non-empty sequence"),
    ({"codebook": ((0.1, 3), (0.05, 4))}, "bounds ascending"),
    ({"codebook": ((0.1, 0),)}, "interval in steps >= 1"),
    ({"codebook": ((-1.0, 2),)}, "distance bound > 0"),
    ({"threshold": -1}, "threshold"),
    ({"block": -1}, "block"),
    ({"warmup": 0}, "warmup"),
])
def test_bad_values_raise_typed_errors(options, match):
    with pytest.raises(InvalidValueError, match=match):
        CodebookSchedule(**options)


def test_overrides_reach_the_codebook_and_it_has_no_plan_in_advance():
    backend = c4d_backend("adacache", codebook=BOOK, threshold=1.5, block=0)
    schedule = backend.policy.schedule
    assert isinstance(schedule, CodebookSchedule) and schedule.codebook == BOOK and schedule.block == 0
    assert "<0.075: 4" in schedule.describe()
    with pytest.raises(ConfigError, match="no full steps known in advance"):
        schedule.planned(10)
