"""SpeCa's speculative schedule as data: drafts, verified drafts from the ``min_drafts``-th on, the decaying
acceptance threshold, the cap on drafts, and typed errors for bad values."""

import pytest

from c4d_compile import ConfigError
from c4d_compile.errors import InvalidValueError
from c4d_compile.policies.schedules import SpeculativeSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind

FULL, CACHED, VERIFY = VariantKind.FULL, VariantKind.CACHED, VariantKind.VERIFY


def test_drafts_are_verified_from_the_min_drafts_th_on_and_capped():
    schedule = SpeculativeSchedule(threshold=1.0, warmup=1, min_drafts=2, max_drafts=3, min_threshold=0.0)
    # full at 4; the errors of the verified drafts so far are small
    assert [schedule.decide(StepInfo(s, 20, (4,), (0.001,) * max(0, s - 6))) for s in (5, 6, 7, 8)] == [
        CACHED, VERIFY, VERIFY, FULL]  # 5: first draft, 6: second (verified), 7: third, 8: max_drafts reached


def test_a_verified_error_above_the_decayed_threshold_makes_the_next_step_full():
    schedule = SpeculativeSchedule(threshold=1.0, decay=0.1, min_threshold=0.05, warmup=1, min_drafts=1, max_drafts=9)
    assert schedule.tau(0, 10) == 1.0 and schedule.tau(10, 10) == pytest.approx(0.1)
    assert SpeculativeSchedule(threshold=1.0, decay=0.01, min_threshold=0.05).tau(10, 10) == 0.05  # the floor
    # step 2, one verified draft since the full step 0: tau(2) = 0.1^(2/10) = 0.63
    assert schedule.decide(StepInfo(2, 10, (0,), (0.6,))) is VERIFY
    assert schedule.decide(StepInfo(2, 10, (0,), (0.7,))) is FULL


def test_warm_up_threshold_zero_and_bad_values():
    schedule = SpeculativeSchedule(warmup=3)
    assert schedule.decide(StepInfo(2, 10, (0, 1), ())) is FULL
    assert SpeculativeSchedule(threshold=0.0).decide(StepInfo(5, 10, (4,), ())) is FULL
    with pytest.raises(ConfigError, match="min_drafts=5 > max_drafts=2"):
        SpeculativeSchedule(min_drafts=5, max_drafts=2)
    with pytest.raises(InvalidValueError, match="decay"):
        SpeculativeSchedule(decay=2.0)
    with pytest.raises(ConfigError, match="no full steps known in advance"):
        schedule.planned(10)
