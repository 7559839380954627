"""The bench matrix end to end on one tiny row, and its bookkeeping against hand-computed answers."""

import dataclasses
import json
import math
from dataclasses import dataclass

import pytest
import torch

from c4d_compile.bench.matrix import BenchRow, bench_model, mark_pareto_front
from c4d_compile.bench.methods import C4DPreset, Prepared
from c4d_compile.bench.report import markdown, plot_pareto, write_json
from c4d_compile.errors import InvalidValueError


@dataclass(frozen=True)
class EveryOtherStep:
    """A stand-in peer: computes on even calls, replays the last output on odd ones; knows no FLOPs."""

    label: str = "every-other"
    family: str = "diffusers"

    def prepare(self, workload, lowering, steps):
        state = {"calls": 0, "last": None}

        def call(**kwargs):
            if state["calls"] % 2 == 0:
                state["last"] = workload.transformer(**kwargs)
            state["calls"] += 1
            return state["last"]

        def begin():
            state.update(calls=0, last=None)

        return Prepared(call=call, steps=steps, settings={"period": 2}, begin=begin, flop_call=call)


@dataclass(frozen=True)
class Broken:
    label: str = "broken"
    family: str = "cache-dit"

    def prepare(self, workload, lowering, steps):
        raise RuntimeError("this peer does not support the model")


@pytest.fixture(scope="module")
def tiny_result():
    torch._dynamo.reset()
    methods = [C4DPreset("taylorseer", {"warmup": 2, "interval": 3}), EveryOtherStep(), Broken()]
    return bench_model("dit", methods, steps=8, repeats=1, per_class=1, lowering="eager", progress=False)


def _row(result, method):
    return next(r for r in result.rows if r.method == method)


def test_one_tiny_row_end_to_end(tiny_result, tmp_path):
    labels = [r.method for r in tiny_result.rows]
    # the uncached row, both methods, and one fewer-steps baseline per distinct compute: both compute 4 of 8 steps in
    # full, but the branch cache's cached steps still run the modulations and the stream adds (4.x steps: against 5)
    assert labels == ["uncached", "taylorseer[interval=3,warmup=2]", "every-other", "uncached, 4 steps",
                      "uncached, 5 steps"]
    cached = _row(tiny_result, "taylorseer[interval=3,warmup=2]")
    baseline = _row(tiny_result, "uncached, 5 steps")
    assert cached.computations == 4 and 1.5 < cached.ideal_speedup < 2  # steps 0, 1, 4, 7 computed
    assert baseline.steps == 5 and baseline.ideal_speedup == 8 / 5 and baseline.compile_seconds is None
    assert _row(tiny_result, "every-other").fewer_steps_db == pytest.approx(
        _row(tiny_result, "every-other").psnr_mean - _row(tiny_result, "uncached, 4 steps").psnr_mean)
    assert cached.fewer_steps_db == pytest.approx(cached.psnr_mean - baseline.psnr_mean)
    # ... and at exactly its 4.x steps, between the gains over 4 and over 5 steps
    gains = sorted(cached.psnr_mean - _row(tiny_result, f"uncached, {k} steps").psnr_mean for k in (4, 5))
    assert gains[0] < cached.interpolated_db < gains[1]
    assert 10 < cached.psnr_mean < 100 and cached.psnr_worst <= cached.psnr_mean
    assert 0 <= cached.accuracy <= 1 and cached.ssim_mean <= 1 and cached.cache_mib > 0
    assert all(r.seconds > 0 and r.measured_speedup > 0 for r in tiny_result.rows)
    uncached = _row(tiny_result, "uncached")
    assert math.isinf(uncached.psnr_mean) and uncached.ideal_speedup == 1.0 and not uncached.on_front


def test_flops_are_counted_for_methods_that_report_none(tiny_result):
    # EveryOtherStep computes 4 of 8 steps, so the counted FLOPs halve exactly.
    peer = _row(tiny_result, "every-other")
    assert peer.ideal_speedup == pytest.approx(2.0)
    assert peer.computations == pytest.approx(4.0) and peer.cache_mib is None


def test_a_failing_peer_is_skipped_with_its_reason(tiny_result):
    assert [(s.method, s.reason) for s in tiny_result.skipped] == [
        ("broken", "RuntimeError: this peer does not support the model")
    ]


def test_reports_are_written(tiny_result, tmp_path):
    table = markdown(tiny_result)
    assert "| taylorseer[interval=3,warmup=2]" in table and "broken: RuntimeError" in table
    cached = _row(tiny_result, "taylorseer[interval=3,warmup=2]")
    assert f"{cached.method} {cached.fewer_steps_db:+.2f} dB" in table  # the summary line under the table
    write_json(tiny_result, tmp_path / "b.json")
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["rows"][0]["psnr_mean"] is None  # infinity is not JSON
    assert {r["method"] for r in data["rows"]} == {r.method for r in tiny_result.rows}
    plot_pareto(tiny_result, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fake(method, speed, psnr):
    return BenchRow(model="m", method=method, family="c4d", settings={}, lowering="eager", compiled=True, device="cpu",
                    steps=10,
                    computations=5, seconds=1, uncached_seconds=1, measured_speedup=speed, ideal_speedup=2,
                    ratio=1, psnr_mean=psnr, psnr_worst=psnr, ssim_mean=None, accuracy=None, frechet=None,
                    cache_mib=None, compile_seconds=None)


def test_pareto_front_keeps_only_the_undominated():
    rows = [_fake("fast", 4.0, 30.0), _fake("good", 2.0, 45.0), _fake("dominated", 1.9, 40.0),
            _fake("tie-on-speed-worse", 4.0, 29.0), _fake("both", 3.0, 40.0)]
    mark_pareto_front(rows)
    assert {r.method for r in rows if r.on_front} == {"fast", "good", "both"}


def test_bad_lowering_and_repeats_are_rejected_before_loading():
    with pytest.raises(InvalidValueError, match="auto, eager, inductor"):
        bench_model("dit", [], lowering="tensorrt")
    with pytest.raises(InvalidValueError, match="repeats"):
        bench_model("dit", [], repeats=0)


@dataclass(frozen=True)
class Drifting:
    """Computes fewer steps in the timed runs than at warm-up, as a row silently running uncompiled would."""

    label: str = "drifting"
    family: str = "c4d"

    def prepare(self, workload, lowering, steps):
        runs = {"n": 0}

        def begin():
            runs["n"] += 1

        return Prepared(call=workload.transformer, steps=steps, settings={}, begin=begin,
                        full_steps=lambda: steps if runs["n"] <= 1 else 0, ideal_speedup=lambda: 1.0)


def test_a_row_that_changes_between_warmup_and_timed_runs_fails_loudly():
    with pytest.raises(RuntimeError, match="'drifting' computed 4 steps at warm-up but 0"):
        bench_model("dit", [Drifting()], steps=4, repeats=1, per_class=1, lowering="eager", progress=False)


def test_a_signal_row_keeps_its_trace_and_the_plot_shows_what_the_threshold_saw(tmp_path):
    from c4d_compile.bench.report import decision_scores, plot_signals
    from c4d_compile.policies.schedules import SignalSchedule

    torch._dynamo.reset()
    result = bench_model("dit", [C4DPreset("teacache", {"threshold": 0.1})], steps=8, repeats=1, per_class=1,
                         lowering="eager", progress=False)
    row = _row(result, "teacache[threshold=0.1]")
    ctx = next(iter(row.trace["contexts"].values()))
    assert len(ctx["kinds"]) == len(ctx["signals"]) == 8 and ctx["signals"][0] is None
    # the plotted score is what the schedule compared with the threshold: the signals summed since a full call
    schedule = SignalSchedule(threshold=0.1, signal="modulated-input", reference="previous", accumulate=True)
    scores, since = decision_scores(row.trace)[0], []
    for step, (kind, signal, score) in enumerate(zip(ctx["kinds"][1:], ctx["signals"][1:], scores[1:]), 1):
        since.append(signal)
        assert score == pytest.approx(schedule.score(since))
        if step < len(scores) - 1:  # the last step is forced full: elsewhere the score explains the decision
            assert (kind == "full") == (score >= 0.1)
        if kind == "full":
            since = []
    assert plot_signals(result, tmp_path / "s.png") and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert all(r.trace is None for r in result.rows if r.family != "c4d")
    assert not plot_signals(bench_model("dit", [], steps=4, repeats=1, per_class=1, lowering="eager",
                                        progress=False), tmp_path / "none.png")


def test_rules_measured_after_a_call_plot_their_raw_signal():
    from c4d_compile.bench.report import decision_scores

    context = {"kinds": ["full", "full", "cached"], "signals": [None, 0.2, None]}
    trace = {"threshold": 1.0, "contexts": {"cond": context}}
    assert decision_scores(trace) == [[None, 0.2, None]]


def test_every_row_is_held_against_ceil_of_its_flop_equivalent_steps():
    from c4d_compile.bench.matrix import equal_compute

    assert equal_compute(50, 5.0) == 10  # an output forecast: cached steps cost nothing
    assert equal_compute(50, 4.70) == 11  # 10 full steps and the cached steps' own work: 10.6 steps
    assert equal_compute(28, 28 / 6) == 6  # an exact integer stays itself under float rounding
    assert equal_compute(50, 1.0) == 50 and equal_compute(50, 200.0) == 1


def test_the_interpolated_gain_is_measured_at_the_exact_flop_equivalent():
    from c4d_compile.bench.matrix import interpolated_gain

    def row(steps_of_50: float, psnr: float) -> BenchRow:
        return BenchRow(model="m", method="x", family="c4d", settings={}, lowering="eager", compiled=True, device="cpu",
                        steps=50, computations=steps_of_50, seconds=1.0, uncached_seconds=1.0, measured_speedup=1.0,
                        ideal_speedup=50 / steps_of_50, ratio=1.0, psnr_mean=psnr, psnr_worst=psnr, ssim_mean=None,
                        accuracy=None, frechet=None, cache_mib=None, compile_seconds=None)

    fewer = {10: row(10, 36.0), 11: row(11, 38.0)}
    eleven = dataclasses.replace(fewer[11], family="fewer steps", steps=11, computations=11, ideal_speedup=50 / 11)
    assert eleven.flop_steps == 11  # a fewer-steps row runs its own step count
    assert interpolated_gain(row(10.25, 47.0), fewer) == pytest.approx(47.0 - 36.5)  # a quarter of the way
    assert interpolated_gain(row(10, 47.0), fewer) == pytest.approx(11.0)  # an integer: that row itself
    assert interpolated_gain(row(11.5, 47.0), fewer) is None  # 12 steps were not run
