"""The VERIFY variant: a CACHED step that also checks its own forecast on the last block (SpeCa).

Why a variant and not a second call: SpeCa (arXiv 2509.11628) accepts a forecast draft by running the
last transformer block exactly on the input the draft gives it and comparing that block's true branch
outputs with their forecasts. In the graph this is the CACHED variant with the last block's cached
branches kept alive: every use still reads the forecast, so the model output is the draft's, and
one more output measures

    e = mean(|f - y| / (|y| + 1e-10))        over every element of the verified branches

(the reference code's ``relative_l1``), as its sum and its count, which the host divides. Dead-code
elimination then keeps exactly the last block's branch computations on top of the draft: one block of
extra work per verified step.
"""

from __future__ import annotations

import torch
import torch.fx as fx

from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from ..signals import VERIFY_ERROR
from .dead_code import eliminate_dead_code
from .graph_utils import model_outputs
from .rewrite_cached import forecast_graph
from .variants import Variant


def build_verify(gm: fx.GraphModule, plan: CachePlan) -> Variant:
    graph, inputs, forecasts = forecast_graph(gm, plan)
    out, outputs = model_outputs(graph)
    tracer = fx.proxy.GraphAppendingTracer(graph)
    with graph.inserting_before(out):
        errors = []
        for name, _ in plan.probe.values:
            true, forecast = (fx.Proxy(n, tracer).float() for n in forecasts[name])
            errors.append(((forecast - true).abs() / (true.abs() + 1e-10)).flatten())
        flat = fx.Proxy(graph.call_function(torch.cat, ([e.node for e in errors],)), tracer)
        # the sum and the count, not the mean: under context parallelism each rank holds a shard of the tokens,
        # and the host adds both over the ranks before dividing
        count = fx.Proxy(graph.call_function(torch.ones_like, (flat.node,)), tracer).sum()
        error = fx.Proxy(graph.call_function(torch.stack, ([flat.sum().node, count.node],)), tracer)
    out.args = (tuple(outputs) + (error.node,),)
    eliminate_dead_code(graph)
    graph.lint()
    variant_gm = fx.GraphModule(gm, graph, class_name="C4DVerify")
    return Variant(VariantKind.VERIFY, variant_gm, len(outputs), tuple(inputs), (VERIFY_ERROR,))
