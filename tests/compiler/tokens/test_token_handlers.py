"""The token selection handlers on the three-block graph: each selection's state, host draws and graph
additions, what the registry refuses, and what a handler must leave alone."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.fx as fx
from support.three_blocks import Model, example_inputs

from c4d_compile import NotCacheableError, get_policy
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.passes.clusters import kmeans, one_per_cluster, propagate
from c4d_compile.compiler.plan import make_plan
from c4d_compile.compiler.tokens import bind_tokens
from c4d_compile.compiler.tokens.cluster_rows import ClusterRows
from c4d_compile.compiler.tokens.random_rows import RandomRows
from c4d_compile.compiler.tokens.score_rows import ScoreRows
from c4d_compile.errors import InvalidValueError
from c4d_compile.inspect_model import trace_graphs
from c4d_compile.policies.tokens import TokenSubset


def _graph_and_analysis():
    torch.manual_seed(0)
    (gm,) = trace_graphs(Model(), example_inputs())
    return gm, analyze(gm)


def _plan(name, **overrides):
    gm, analysis = _graph_and_analysis()
    return make_plan(gm, analysis, get_policy(name, num_steps=8, **overrides))


def test_each_selection_binds_its_handler_with_the_rows_of_each_token_space():
    assert isinstance(_plan("duca").tokens, RandomRows)
    assert isinstance(_plan("toca").tokens, ScoreRows)
    clusca = _plan("clusca", clusters=3).tokens
    assert isinstance(clusca, ClusterRows) and clusca.token_rows == ((5, 3),)  # one row per cluster
    (space,) = clusca.clustered
    assert space.tokens == 5 and space.shape == (2, 5, 8)


def test_random_rows_are_drawn_on_the_host_distinct_sorted_and_reproducible():
    handler = _plan("duca", token_ratio=0.6).tokens
    (name, draw), = handler.host_inputs().items()
    assert name == "tokens.5.index" and (draw.shape, draw.dtype) == ((3,), torch.int64)
    rows = draw.draw(torch.Generator().manual_seed(1))
    assert rows.tolist() == sorted(set(rows.tolist())) and len(rows) == 3 and 0 <= rows.min() <= rows.max() < 5
    assert torch.equal(rows, draw.draw(torch.Generator().manual_seed(1)))
    assert handler.state() == [] and handler.full_inputs() == ()


def test_score_rows_draw_nothing_and_keep_importance_and_staleness():
    plan = _plan("toca")
    assert plan.tokens.host_inputs() == {}
    state = {e.name: e for e in plan.tokens.state()}
    assert set(state) == {"tokens.5.score", "tokens.5.staleness"}
    assert state["tokens.5.staleness"].shape == (5,) and plan.bytes_by_kind["token-score"] == 2 * 5 * 4


def test_cluster_rows_add_kmeans_to_full_and_pick_one_row_per_cluster():
    gm, analysis = _graph_and_analysis()
    handler = make_plan(gm, analysis, get_policy("clusca", num_steps=8, clusters=2, propagation=0.5)).tokens
    graph = fx.Graph()
    named = {name: graph.placeholder(name) for name in
             (*handler.full_inputs(), *handler.partial_inputs(5), handler.clustered[0].site)}
    added = handler.add_to_full(graph, {handler.clustered[0].site: named[handler.clustered[0].site]}, named)
    assert [name for _, name in added] == ["tokens.5.centroids", "tokens.5.labels"]
    assert sum(n.target is kmeans for n in graph.nodes) == 1
    rows, written = handler.pick_rows(graph, named, 5, 2)
    assert rows.target is one_per_cluster and written == []
    refreshed, fresh = graph.placeholder("refreshed"), graph.placeholder("fresh")
    assert handler.move_refreshed(graph, refreshed, fresh, named, 5, 1).target is propagate


def test_handlers_leave_the_refreshed_rows_alone_without_propagation():
    graph = fx.Graph()
    refreshed, fresh = graph.placeholder("refreshed"), graph.placeholder("fresh")
    for handler in (_plan("duca").tokens, _plan("clusca").tokens):  # clusca's default: no propagation
        if isinstance(handler, ClusterRows):
            handler = dataclasses.replace(handler, subset=dataclasses.replace(handler.subset, propagation=0.0))
        assert handler.move_refreshed(graph, refreshed, fresh, {}, 5, 1) is refreshed
    assert len(graph.nodes) == 2  # nothing added


def test_a_cluster_selection_without_a_block_output_of_its_token_space_is_refused():
    _, analysis = _graph_and_analysis()
    partial = tuple(t for t in analysis.token_local if t.local)
    with pytest.raises(NotCacheableError, match="token clusters"):
        bind_tokens(TokenSubset(selection="cluster"), partial, spaces=())


def test_an_unregistered_selection_is_a_typed_error_naming_the_registered_ones():
    subset = TokenSubset()
    object.__setattr__(subset, "selection", "nearest")  # what a misspelt registry entry would hand on
    with pytest.raises(InvalidValueError, match="random"):
        bind_tokens(subset, (), ())
