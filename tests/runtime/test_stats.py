"""The stats recorder: calls are appended as they come and summed, in order, when the stats are read."""

from __future__ import annotations

import torch

from c4d_compile.runtime.stats import StatsRecorder


class Flops:  # what the Runtime passes: an object with the FLOPs of one call
    def __init__(self, value: int):
        self.value = value


FULL, CACHED = Flops(10), Flops(2)


def test_calls_are_summed_in_order_per_generation_when_read():
    recorder = StatsRecorder()
    recorder.record(1, "cond", 0, "full", True, FULL, FULL)
    recorder.record(1, "cond", 1, "cached", False, CACHED, FULL)
    recorder.uncached()  # still generation 1: counted in its `last`
    recorder.record(2, "cond", 0, "full", True, FULL, FULL)
    recorder.uncached()
    recorder.uncached()
    assert recorder.total.steps == 0  # nothing summed before the stats are read
    recorder.flush()
    assert recorder.total.steps == 3 and recorder.total.uncached_calls == 3
    assert recorder.last.steps == 1 and recorder.last.uncached_calls == 2  # generation 2 alone
    assert recorder.last.contexts["cond"].computed == [0]
    assert recorder.total.ideal_speedup == 30 / 22


def test_decisions_left_on_the_device_are_read_in_one_go_in_their_place():
    recorder = StatsRecorder()
    recorder.record_pending(1, "cond", 0, torch.tensor(True), torch.tensor(0.0), FULL, CACHED)
    recorder.record(1, "uncond", 0, "full", True, FULL, FULL, None)
    recorder.record_pending(1, "cond", 1, torch.tensor(False), torch.tensor(0.25), FULL, CACHED)
    recorder.flush()
    cond = recorder.last.contexts["cond"]
    assert cond.kinds == ["full", "cached"] and cond.signals == [0.0, 0.25] and cond.computed == [0]
    assert recorder.last.contexts["uncond"].signals == [None]


def test_a_loop_that_never_reads_its_stats_stays_bounded():
    recorder = StatsRecorder()
    for step in range(10_000):
        recorder.record(1, "cond", step, "cached", False, CACHED, FULL)
    assert len(recorder._pending) < 4096
    recorder.flush()
    assert recorder.total.steps == 10_000
