"""The analysis on small traced models: what it finds, and the facts the backend decides on — a graph that holds a
part of a split stack, a stack whose timestep embedding ran in an earlier graph, a graph with nothing to cache."""

from __future__ import annotations

import torch
from support.three_blocks import Model

from c4d_compile.compiler.passes.analyze import NO_STACK, NO_TIMESTEP, analyze
from c4d_compile.inspect_model import trace_graphs


def _analyses(model):
    return [analyze(gm) for gm in trace_graphs(model, {"x": torch.randn(2, 5, 4), "timestep": torch.rand(2)})]


def test_a_whole_stack_with_its_timestep_is_cacheable_and_says_so():
    (analysis,) = _analyses(Model())
    assert analysis.cacheable and not analysis.problems and not analysis.split
    assert [b.index for b in analysis.stack.blocks] == [0, 1, 2]
    assert "timestep input" in analysis.report()


def test_the_graphs_of_a_stack_split_by_a_break_are_flagged_split():
    first, second = _analyses(Model(break_after_block=True))
    assert [b.index for b in first.stack.blocks] == [0] and first.stream.split  # the stack's output leaves it
    assert [b.index for b in second.stack.blocks] == [1, 2] and second.stack.split  # its list does not start at 0
    assert first.split and second.split and not first.cacheable and not second.cacheable


def test_a_stack_after_a_prologue_graph_is_cacheable_with_the_prologues_timestep():
    prologue, stack = _analyses(Model(break_after_embedding=True))
    assert prologue.timestep_only and not prologue.stack.blocks
    assert stack.problems == (NO_TIMESTEP,) and stack.timestep_elsewhere and not stack.split


class NoStack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.t = torch.nn.Linear(8, 4)

    def forward(self, x, timestep):
        return x + self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))[:, None]


def test_a_graph_without_blocks_has_nothing_to_cache():
    (analysis,) = _analyses(NoStack())
    assert NO_STACK in analysis.problems and not analysis.cacheable and not analysis.split
