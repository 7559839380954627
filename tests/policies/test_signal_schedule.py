"""Signal-driven decisions against plainly written references of the methods, on recorded signals."""

import numpy as np
import pytest

from c4d_compile import InvalidValueError
from c4d_compile.policies import get_policy
from c4d_compile.policies.schedules import SignalSchedule
from c4d_compile.runtime.step_program import StepInfo, VariantKind

SIGNALS = [0.0, 0.31, 0.02, 0.05, 0.04, 0.2, 0.01, 0.01, 0.01, 0.01, 0.01, 0.3, 0.06, 0.07, 0.02, 0.09]
FLUX = (498.651651, -283.781631, 55.8554382, -3.82021401, 0.264230861)  # TeaCache's FLUX polynomial


def run(schedule, signals, num_steps=None):
    """Decisions over a generation, as the Runtime asks them: the first call has no signal (no reference)."""
    full, since, kinds = [], [], []
    for step, signal in enumerate(signals):
        if step:
            since.append(signal)
        kind = schedule.decide(StepInfo(step, num_steps, tuple(full), tuple(since)))
        kinds.append("F" if kind is VariantKind.FULL else "C")
        if kind is VariantKind.FULL:
            full.append(step)
            since = []
    return "".join(kinds)


def teacache_reference(signals, threshold, coefficients):
    """TeaCache (ali-vilab/TeaCache, teacache_flux.py): first and last step compute; else accumulate."""
    rescale, acc, out = np.poly1d(coefficients), 0.0, []
    for step, signal in enumerate(signals):
        if step == 0 or step == len(signals) - 1:
            compute, acc = True, 0.0
        else:
            acc += rescale(signal)
            compute = acc >= threshold
            if compute:
                acc = 0.0
        out.append("F" if compute else "C")
    return "".join(out)


def fbcache_reference(signals, threshold, max_in_row=0):
    """FBCache: the signal is measured against the last full step's residual; cache iff it is below."""
    out, in_row = [], 0
    for step, signal in enumerate(signals):
        cache = step > 0 and signal < threshold and not (max_in_row and in_row >= max_in_row)
        in_row = in_row + 1 if cache else 0
        out.append("C" if cache else "F")
    return "".join(out)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.6, 1.0])
def test_teacache_accumulates_rescaled_signals_and_forces_the_first_and_last_step(threshold):
    schedule = SignalSchedule(threshold=threshold, signal="modulated-input", reference="previous",
                              accumulate=True, rescale=FLUX, last_steps_full=1)
    assert run(schedule, SIGNALS, len(SIGNALS)) == teacache_reference(SIGNALS, threshold, FLUX)


def test_teacache_without_rescaling_accumulates_the_raw_signal():
    schedule = SignalSchedule(threshold=0.1, signal="modulated-input", reference="previous", accumulate=True,
                              last_steps_full=1)
    assert run(schedule, SIGNALS, len(SIGNALS)) == teacache_reference(SIGNALS, 0.1, (1.0, 0.0))
    assert "C" in run(schedule, SIGNALS, len(SIGNALS))


@pytest.mark.parametrize("threshold,max_in_row", [(0.05, 0), (0.1, 0), (0.1, 2), (0.5, 3), (0.0, 0)])
def test_fbcache_caches_while_the_signal_stays_below_the_threshold(threshold, max_in_row):
    schedule = SignalSchedule(threshold=threshold, max_cached_in_row=max_in_row)
    assert run(schedule, SIGNALS) == fbcache_reference(SIGNALS, threshold, max_in_row)


def test_threshold_zero_always_computes_and_warmup_computes_the_first_steps():
    assert run(SignalSchedule(threshold=0.0), SIGNALS) == "F" * len(SIGNALS)
    kinds = run(SignalSchedule(threshold=1.0, warmup=4), SIGNALS)
    assert kinds[:4] == "FFFF" and set(kinds[4:]) == {"C"}


def test_the_last_steps_need_the_step_count_and_are_skipped_without_it():
    schedule = SignalSchedule(threshold=10.0, last_steps_full=2)
    assert run(schedule, SIGNALS, len(SIGNALS)).endswith("CFF")
    assert run(schedule, SIGNALS, None).endswith("CCC")


@pytest.mark.parametrize("field,value", [
    ("threshold", -0.1), ("threshold", float("nan")), ("threshold", True), ("signal", "output"),
    ("reference", "first"), ("first_blocks", 0), ("last_blocks", -1), ("warmup", 0), ("rescale", (1.0, "a")),
    ("rescale", 3.0), ("max_cached_in_row", -1), ("accumulate", 1),
])
def test_bad_values_name_the_field_and_the_valid_ones(field, value):
    with pytest.raises(InvalidValueError, match=field):
        SignalSchedule(**{field: value})


def test_every_signal_preset_takes_threshold_and_a_fixed_preset_turns_signal_driven_with_it():
    for name in ("fbcache", "dbcache", "teacache", "customcache"):
        assert get_policy(name, threshold=0.123).schedule.threshold == 0.123
    taylor = get_policy("taylorseer", threshold=0.2, signal="modulated-input")
    assert isinstance(taylor.schedule, SignalSchedule) and taylor.forecaster.order == 1
    with pytest.raises(Exception, match="no full steps known in advance"):
        get_policy("fbcache").schedule.planned(10)
