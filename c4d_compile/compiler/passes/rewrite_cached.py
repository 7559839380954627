"""The CACHED variant: every cached feature replaced by its forecast, and what only it needed removed.

Why one pass for every region: once the plan has named the cached features (a graph value,
optionally paired with the input it is a residual against), a cached step differs from the
original graph only at those values. Each use of a feature reads instead

    forecast = sum_j weights[j] * history_j          (float32, cast back to the feature's dtype)

(``input + forecast`` for a residual); a feature some partial calls refresh on token rows adds the
rows they changed, ``refreshed - history_0`` (zero until a partial call ran: ``compiler/passes/rewrite_partial.py``).
Dead-code elimination then removes everything only the
features needed — the blocks, or the branch computations inside them — and keeps the prologue,
the epilogue and the block skeletons the outputs still need. The weights are a step input computed
on the host, so one graph serves every forecaster and every step.
"""

from __future__ import annotations

import copy
import operator

import torch.fx as fx

from ...runtime.state_names import WEIGHTS, history_names, refreshed_name
from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .dead_code import eliminate_dead_code
from .graph_utils import model_outputs
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
    weights = fx.Proxy(placeholders[WEIGHTS], tracer)
    for feature, names in zip(plan.features, histories):
        node = by_name[feature.name]
        users = list(node.users)
        with graph.inserting_before(node.next):  # keeps creation order, unlike inserting_after
            w = [fx.Proxy(graph.call_function(operator.getitem, (weights.node, j)), tracer) for j in range(len(names))]
            forecast = fx.Proxy(placeholders[names[0]], tracer).float() * w[0]
            for j in range(1, len(names)):
                forecast = forecast + fx.Proxy(placeholders[names[j]], tracer).float() * w[j]
            if feature.name in refreshed:  # forecasters reproduce constants: a changed order-0 term adds as it is
                rows = fx.Proxy(placeholders[refreshed_name(feature.name)], tracer).float()
                forecast = forecast + (rows - fx.Proxy(placeholders[names[0]], tracer).float())
            if feature.residual_of is not None:
                forecast = fx.Proxy(by_name[feature.residual_of], tracer).float() + forecast
            forecast = forecast.to(feature.dtype)
        for user in users:
            user.replace_input_with(node, forecast.node)
        forecasts[feature.name] = (node, forecast.node)
    return graph, inputs, forecasts
