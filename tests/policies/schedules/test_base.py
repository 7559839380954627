"""What every schedule inherits: the protocol's defaults, and a step-set schedule's decision — the step count it
needs, a call with no history, the set asked of ``planned`` once per step count."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from c4d_compile.policies.schedules import base
from c4d_compile.policies.schedules.base import MissingStepCountError, RunFacts, ScheduleBase, StepSetSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind


@dataclass(frozen=True)
class EveryThird(StepSetSchedule):
    """Counts the calls of ``planned``: the decision must not ask it per step call."""

    offset: int = 0
    kind: ClassVar[str] = "every third"
    asked: ClassVar[list] = []

    def planned(self, num_steps: int) -> tuple[int, ...]:
        self.asked.append(num_steps)
        return tuple(range(self.offset, num_steps, 3))


def test_the_optional_parts_default_to_deciding_nothing_early_and_checking_nothing():
    schedule, info = ScheduleBase(), StepInfo(3, 10, (0,))
    assert schedule.early(info) is None and schedule.forced(info) is False
    assert schedule.check_plan({"graph": "x"}) is None and schedule.check_ready() is None
    assert schedule.check_run(RunFacts(10, (), ())) is None and ScheduleBase.without_step_count is None


def test_a_step_set_computes_its_steps_asking_the_plan_once_per_step_count():
    EveryThird.asked.clear()
    schedule = EveryThird()
    kinds = [schedule.decide(StepInfo(step, 10, (0,))) for step in range(10)]
    assert [s for s, k in enumerate(kinds) if k is VariantKind.FULL] == [0, 3, 6, 9]
    assert [schedule.decide(StepInfo(step, 7, (0,))) for step in (3, 4)] == [VariantKind.FULL, VariantKind.CACHED]
    assert EveryThird(offset=1).decide(StepInfo(4, 10, (0,))) is VariantKind.FULL  # another schedule, its own set
    assert EveryThird.asked == [10, 7, 10]


def test_the_memo_of_plans_stays_bounded():
    for steps in range(1, 1100):
        EveryThird(offset=2).decide(StepInfo(0, steps, (0,)))
    assert len(base._SETS) <= 1025


def test_a_call_with_no_history_computes_and_without_a_step_count_the_error_says_how_to_give_one():
    assert EveryThird().decide(StepInfo(4, 10, ())) is VariantKind.FULL  # 4 is not in the set
    with pytest.raises(MissingStepCountError, match="the 'every third' schedule needs the number of sampler steps"):
        EveryThird().decide(StepInfo(4, None, (0,)))
