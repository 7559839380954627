"""The PARTIAL variant: a CACHED step that recomputes the token-local branches on K token rows.

Why inside the graph: ToCa, DuCa and ClusCa (arXiv 2410.05317, 2412.18911, 2509.10312) keep most of
a cached step and recompute a small subset of tokens for the branches where that is exact row for
row (``find_token_local.py`` proves which). Per such branch F, on top of the CACHED graph:

    rows      = index_select(entry, token_dim, index)     for each stream value the branch reads
    fresh     = the branch's own ops on those rows         (K rows of F, the full computation's rows)
    refreshed = index_copy(refreshed, token_dim, index, fresh)

and F's forecast adds ``refreshed - history_0``, so the fresh rows replace the order-0 term at their
positions (the other terms of a Taylor forecast stay, as in the reference code) and stay there for
the following cached calls until the next full step writes ``refreshed`` anew. K is static (one
graph, no recompiles); ``index`` is an int64 host input per token space, so the rows may change on
every call. With token clusters (ClusCa) the rows are picked inside the graph, one per cluster of the last
full step, from a host input of one uniform draw per token, and every token first moves toward its
cluster's fresh row by γ (``clusters.py``). With score selection (ToCa) the rows are the top ones by the
importance of the last full step plus staleness, picked inside the graph, and the staleness it writes
counts on (``token_scores.py``).
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx

from ...policies.tokens import Anchor
from ...runtime.state_names import (
    WEIGHTS,
    history_names,
    labels_name,
    refreshed_name,
    score_name,
    staleness_name,
    token_index_name,
    token_noise_name,
)
from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .clusters import one_per_cluster, propagate
from .dead_code import eliminate_dead_code
from .dim_flow import reshape_sizes
from .graph_utils import model_outputs
from .rewrite_cached import forecast_graph
from .token_scores import top_rows
from .variants import Variant, add_named_inputs, placeholder_name


def build_partial(gm: fx.GraphModule, plan: CachePlan) -> Variant:
    graph, inputs, _ = forecast_graph(gm, plan)
    clustered = {space.tokens for space in plan.clustered}
    scored = set(plan.scored)
    host = {n: (token_noise_name(n), labels_name(n)) if n in clustered else
            (score_name(n), staleness_name(n)) if n in scored else (token_index_name(n),) for n, _ in plan.token_rows}
    spaces = [name for names in host.values() for name in names]
    named = add_named_inputs(graph, spaces)
    rows = dict(plan.token_rows)
    by_name = {n.name: n for n in graph.nodes}
    placeholders = {n.target: n for n in graph.nodes if n.op == "placeholder"}
    features = {f.name: f for f in plan.features}
    first = next(n for n in graph.nodes if n.op != "placeholder")
    indices, staleness = {}, []
    with graph.inserting_before(first):  # the rows of each token space, once per call
        for n, names in host.items():
            if n in scored:
                picked = graph.call_function(top_rows, (named[names[0]], named[names[1]], plan.staleness_weight,
                                                        rows[n]))
                indices[n] = graph.call_function(operator.getitem, (picked, 0))
                staleness.append(graph.call_function(operator.getitem, (picked, 1)))
            else:
                indices[n] = (graph.call_function(one_per_cluster, (named[names[1]], named[names[0]], rows[n]))
                              if n in clustered else named[names[0]])
    written = []
    for branch in plan.partial:
        index = indices[branch.tokens]
        refreshed = placeholders[placeholder_name(refreshed_name(branch.feature))]
        with graph.inserting_before(by_name[branch.feature]):
            fresh = _recompute(graph, by_name, branch, index, rows[branch.tokens])
            dim = dict(branch.body)[branch.feature]
            if plan.anchor is Anchor.STEP:
                history = [placeholders[placeholder_name(name)]
                           for name in history_names(features[branch.feature], plan.num_slots)]
                fresh = _anchored(graph, fresh, history, placeholders[placeholder_name(WEIGHTS)], dim, index)
            moved = refreshed
            if branch.tokens in clustered and plan.propagation:
                moved = graph.call_function(propagate, (refreshed, fresh, named[labels_name(branch.tokens)], dim,
                                                        plan.propagation))
            new = graph.call_function(torch.index_copy, (moved, dim, index, fresh))
        refreshed.replace_all_uses_with(new, delete_user_cb=lambda user, own=(new, moved): user not in own)
        written.append(new)
    out, outputs = model_outputs(graph)
    out.args = (tuple(outputs) + tuple(written) + tuple(staleness),)
    eliminate_dead_code(graph)
    graph.lint()
    names = tuple(refreshed_name(b.feature) for b in plan.partial) + tuple(staleness_name(n) for n in plan.scored)
    return Variant(VariantKind.PARTIAL, fx.GraphModule(gm, graph, class_name="C4DPartial"), len(outputs),
                   (*inputs, *spaces), names)


def _anchored(graph: fx.Graph, fresh: fx.Node, history: list[fx.Node], weights: fx.Node, dim: int,
              index: fx.Node) -> fx.Node:
    """The order-0 term that makes the forecast equal the fresh rows at this step: ``fresh - (sum_j w_j h_j -
    h_0)`` on the chosen rows. Later steps then extrapolate from the fresh rows, not from the full step."""
    tracer = fx.proxy.GraphAppendingTracer(graph)
    rows = [fx.Proxy(graph.call_function(torch.index_select, (h, dim, index)), tracer).float() for h in history]
    w = fx.Proxy(weights, tracer)
    forecast = rows[0] * w[0]
    for j in range(1, len(rows)):
        forecast = forecast + rows[j] * w[j]
    fresh = fx.Proxy(fresh, tracer)
    return (fresh.float() - (forecast - rows[0])).type_as(fresh).node


def _recompute(graph: fx.Graph, by_name: dict, branch, index: fx.Node, count: int) -> fx.Node:
    """The branch's ops on ``count`` gathered rows; returns the fresh rows of F."""
    env: dict[fx.Node, fx.Node] = {}
    for name, dim in branch.entries:
        env[by_name[name]] = graph.call_function(torch.index_select, (by_name[name], dim, index))
    positions = {by_name[name]: dim for name, dim in branch.body}
    for name, _ in branch.body:
        node = by_name[name]
        copy = graph.node_copy(node, lambda a: env.get(a, a))
        sizes = reshape_sizes(node, positions, count)
        if sizes is not None:
            copy.args = (copy.args[0], *sizes)
        env[node] = copy
    return env[by_name[branch.feature]]
