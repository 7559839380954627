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
every call. How the rows are picked is the token selection's (``compiler/tokens/``): host row indices
(random), one per cluster of the last full step (ClusCa, which may also move every token toward its
cluster's fresh row), or the top ones by importance plus staleness (ToCa, whose staleness counts on).
"""

from __future__ import annotations

import torch
import torch.fx as fx

from ...policies.tokens import Anchor
from ...runtime.state_names import WEIGHTS, history_names, refreshed_name
from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .dead_code import eliminate_dead_code
from .dim_flow import reshape_sizes
from .graph_utils import model_outputs
from .rewrite_cached import forecast_graph
from .variants import Variant, add_named_inputs, placeholder_name


def build_partial(gm: fx.GraphModule, plan: CachePlan) -> Variant:
    graph, inputs, _ = forecast_graph(gm, plan)
    selection = plan.tokens
    spaces = [name for n in selection.token_spaces for name in selection.partial_inputs(n)]
    named = add_named_inputs(graph, spaces)
    rows = dict(plan.token_rows)
    by_name = {n.name: n for n in graph.nodes}
    placeholders = {n.target: n for n in graph.nodes if n.op == "placeholder"}
    features = {f.name: f for f in plan.features}
    first = next(n for n in graph.nodes if n.op != "placeholder")
    indices, picked_state = {}, []
    with graph.inserting_before(first):  # the rows of each token space, once per call
        for n in selection.token_spaces:
            indices[n], state = selection.pick_rows(graph, named, n, rows[n])
            picked_state += state
    written = []
    for branch in plan.partial:
        index = indices[branch.tokens]
        refreshed = placeholders[placeholder_name(refreshed_name(branch.feature))]
        with graph.inserting_before(by_name[branch.feature]):
            fresh = _recompute(graph, by_name, branch, index, rows[branch.tokens])
            dim = dict(branch.body)[branch.feature]
            if selection.anchor is Anchor.STEP:
                history = [placeholders[placeholder_name(name)]
                           for name in history_names(features[branch.feature], plan.num_slots)]
                fresh = _anchored(graph, fresh, history, placeholders[placeholder_name(WEIGHTS)], dim, index)
            moved = selection.move_refreshed(graph, refreshed, fresh, named, branch.tokens, dim)
            new = graph.call_function(torch.index_copy, (moved, dim, index, fresh))
        refreshed.replace_all_uses_with(new, delete_user_cb=lambda user, own=(new, moved): user not in own)
        written.append(new)
    out, outputs = model_outputs(graph)
    out.args = (tuple(outputs) + tuple(written) + tuple(value for value, _ in picked_state),)
    eliminate_dead_code(graph)
    graph.lint()
    names = tuple(refreshed_name(b.feature) for b in plan.partial) + tuple(name for _, name in picked_state)
    return Variant(VariantKind.PARTIAL, fx.GraphModule(gm, graph, class_name="C4DPartial"), len(outputs),
                   (*inputs, *spaces), names)


def _anchored(graph: fx.Graph, fresh: fx.Node, history: list[fx.Node], weights: fx.Node, dim: int,
              index: fx.Node) -> fx.Node:
    """The order-0 term that makes the forecast equal the fresh rows at this step: ``fresh - (sum_j w_j h_j -
    h_0)`` on the chosen rows. Later steps then extrapolate from the fresh rows, not from the full step."""
    tracer = fx.proxy.GraphAppendingTracer(graph)
    rows = [fx.Proxy(graph.call_function(torch.index_select, (h, dim, index)), tracer).float() for h in history]
    w = fx.Proxy(weights, tracer).reshape(-1, len(history))  # [rows, slots]: every row the same here (row 0's)
    forecast = rows[0] * w[0, 0]
    for j in range(1, len(rows)):
        forecast = forecast + rows[j] * w[0, j]
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
