"""The CACHED variant: every cached feature replaced by its forecast, and what only it needed removed.

Why one pass for every region: once the plan has named the cached features (a graph value,
optionally paired with the input it is a residual against), a cached step differs from the
original graph only at those values. Each use of a feature reads instead

    forecast = sum_j weights[row, j] * history_j     (float32, cast back to the feature's dtype; a chain of addcmul)

(``input + forecast`` for a residual); a feature some partial calls refresh on token rows adds the
rows they changed, ``refreshed - history_0`` (zero until a partial call ran: ``compiler/passes/rewrite_partial.py``).
Dead-code elimination then removes everything only the
features needed — the blocks, or the branch computations inside them — and keeps the prologue,
the epilogue and the block skeletons the outputs still need. The weights are a step input computed
on the host, so one graph serves every forecaster and every step; one row of them per batch row, so the rows
of a batch of requests (``runtime/rows.py``) each forecast at their own distance from their full steps.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx

from ...runtime.state_names import WEIGHTS, history_names, refreshed_name
from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .dead_code import eliminate_dead_code
from .graph_utils import batch_first, batch_size, model_outputs, tensor_meta
from .variants import Variant, add_named_inputs


def build_cached(gm: fx.GraphModule, plan: CachePlan) -> Variant:
    graph, inputs, _ = forecast_graph(gm, plan)
    eliminate_dead_code(graph)
    graph.lint()
    _, outputs = model_outputs(graph)
    variant_gm = fx.GraphModule(gm, graph, class_name="C4DCached")
    return Variant(VariantKind.CACHED, variant_gm, len(outputs), tuple(inputs), ())


def forecast_graph(gm: fx.GraphModule, plan: CachePlan) -> tuple[fx.Graph, list[str], dict[str, tuple]]:
    """A copy of the graph where every use of a cached feature reads its forecast instead; its named inputs;
    per feature, (the original value, its forecast), both still in the graph (the value until dead-code
    elimination)."""
    graph = copy.deepcopy(gm.graph)
    forecasts = {}
    histories = [history_names(f, plan.num_slots) for f in plan.features]
    refreshed = {t.feature for t in plan.partial}
    inputs = [name for names in histories for name in names] + [refreshed_name(f) for f in sorted(refreshed)]
    inputs += [WEIGHTS]
    placeholders = add_named_inputs(graph, inputs)
    tracer = fx.proxy.GraphAppendingTracer(graph)
    by_name = {n.name: n for n in graph.nodes}
    weight_of = _slot_weights(graph, gm, placeholders[WEIGHTS], plan.num_slots)
    for feature, names in zip(plan.features, histories):
        node = by_name[feature.name]
        users = list(node.users)
        w = [fx.Proxy(n, tracer) for n in weight_of(by_name[feature.name])]
        with graph.inserting_before(node.next):  # keeps creation order, unlike inserting_after
            slots = [fx.Proxy(placeholders[name], tracer).float() for name in names]
            # a multiply-add per slot (one op, no temporary: what the eager lowering runs is memory-bound),
            # starting from the input the feature is a residual against
            if feature.residual_of is not None:
                forecast = torch.addcmul(fx.Proxy(by_name[feature.residual_of], tracer).float(), slots[0], w[0])
            else:
                forecast = slots[0] * w[0]
            for slot, weight in zip(slots[1:], w[1:]):
                forecast = torch.addcmul(forecast, slot, weight)
            if feature.name in refreshed:  # forecasters reproduce constants: a changed order-0 term adds as it is
                rows = fx.Proxy(placeholders[refreshed_name(feature.name)], tracer).float()
                forecast = forecast + (rows - slots[0])
            forecast = forecast.to(feature.dtype)
        for user in users:
            user.replace_input_with(node, forecast.node)
        forecasts[feature.name] = (node, forecast.node)
    return graph, inputs, forecasts


def _slot_weights(graph: fx.Graph, gm: fx.GraphModule, weights: fx.Node, num_slots: int):
    """The weights input is ``[rows, slots]``: one row per batch row (``[1, slots]`` or ``[slots]`` when every row
    has the same). Returns, for a feature, its weight of each slot: per row, shaped to broadcast over the feature,
    where its dim 0 is the batch; else row 0's scalar (every row of such a graph's calls has the same weights).
    The weight nodes are made once, before the graph's first op, and shared by the features of one rank."""
    tracer = fx.proxy.GraphAppendingTracer(graph)
    first = next(n for n in graph.nodes if n.op != "placeholder")
    batch = batch_size(gm)
    made: dict[int | None, list[fx.Node]] = {}

    def weight_of(feature: fx.Node) -> list[fx.Node]:
        rank = tensor_meta(feature).dim() if batch_first(feature, batch) else None
        if rank not in made:
            with graph.inserting_before(first):
                table = fx.Proxy(weights, tracer).reshape(-1, num_slots)
                if rank is None:
                    made[rank] = [table[0, j].node for j in range(num_slots)]
                else:
                    made[rank] = [table[:, j].reshape(-1, *(1,) * (rank - 1)).node for j in range(num_slots)]
        return made[rank]

    return weight_of
