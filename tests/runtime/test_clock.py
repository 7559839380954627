"""Clocks on their own (no model): which context and step each call is, for every model of a session."""

from __future__ import annotations

from c4d_compile.runtime.clock import Clocks
from c4d_compile.runtime.contexts import call_context, new_generation


def _steps(clocks: Clocks, calls):
    """(model, timestep) calls -> (context, step) of each."""
    out = []
    for model, t in calls:
        tick = clocks.observe(model, (t,))
        out.append((tick.context, tick.clock.step))
    return out


def test_every_call_of_one_model_is_the_next_step_and_a_repeat_is_the_next_branch():
    got = _steps(Clocks(), [("a", 900.0), ("a", 900.0), ("a", 800.0), ("a", 800.0)])
    assert got == [("branch0", 0), ("branch1", 0), ("branch0", 1), ("branch1", 1)]


def test_a_second_model_at_the_same_timestep_is_at_the_same_step():
    # a ControlNet, then its transformer, at every step
    got = _steps(Clocks(), [("cn", 900.0), ("t", 900.0), ("cn", 800.0), ("t", 800.0)])
    assert got == [("branch0", 0), ("branch0", 0), ("branch0", 1), ("branch0", 1)]


def test_an_expert_that_takes_over_goes_on_at_the_generations_step():
    calls = [("high", t) for t in (1000.0, 900.0, 800.0)] + [("low", t) for t in (700.0, 600.0)]
    assert [step for _, step in _steps(Clocks(), calls)] == [0, 1, 2, 3, 4]


def test_a_timestep_that_moves_back_starts_a_new_generation_for_every_model():
    clocks = Clocks()
    _steps(clocks, [("high", 1000.0), ("high", 900.0), ("low", 800.0), ("low", 700.0)])
    first = clocks.observe("low", (600.0,)).clock.generation
    tick = clocks.observe("high", (1000.0,))  # the next generation starts with the first expert
    assert tick.clock.step == 0 and tick.clock.generation > first
    assert clocks.observe("high", (900.0,)).clock.step == 1
    assert clocks.observe("low", (800.0,)).clock.step == 2  # the second expert joins the new generation


def test_the_pipelines_step_index_and_a_begun_generations_step_count_are_used():
    clocks = Clocks()
    clocks.begin(new_generation(4, (1000.0, 750.0, 500.0, 250.0)))
    with call_context("cond", step_index=2):
        tick = clocks.observe("a", (500.0,))
    assert (tick.context, tick.clock.step, tick.num_steps) == ("cond", 2, 4)
    assert clocks.observe("b", (750.0,)).clock.step == 1  # first seen mid-generation: at its timestep's place


def test_heun_repeats_are_steps_of_their_branch_not_new_branches():
    ts = [1000.0, 800.0, 800.0, 600.0, 600.0]
    calls = [("a", t) for t in ts for _ in range(2)]  # cond and uncond at each timestep
    got = _steps(Clocks(), calls)
    assert {c for c, _ in got} == {"branch0", "branch1"}
    assert [s for c, s in got if c == "branch0"] == [0, 1, 2, 3, 4]
