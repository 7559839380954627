"""The FULL variant: the original graph, plus the newest value of every cached feature as an output.

Why it is the original graph: the model's outputs stay the original nodes, so a schedule that
always computes is bit-exact. The only addition is the feature values the CACHED variant will
forecast from (``value``, or ``value - input`` in float32 for a residual), written to the newest
slot of each feature's history; older slots are moved by the Runtime, so a full step does no cache
arithmetic at all. A signal measured at full steps (AdaCache's block residual, EasyCache's output)
adds its values, in float32. A token selection adds what its partial calls pick rows from
(``compiler/tokens/``): ClusCa's k-means clusters, ToCa's importance and staleness.
"""

from __future__ import annotations

import copy

import torch.fx as fx

from ...runtime.state_names import history_names
from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .graph_utils import model_outputs
from .variants import Variant, add_named_inputs


def build_full(gm: fx.GraphModule, plan: CachePlan) -> Variant:
    graph = copy.deepcopy(gm.graph)
    by_name = {n.name: n for n in graph.nodes}
    out, original = model_outputs(graph)
    tracer = fx.proxy.GraphAppendingTracer(graph)
    written, names = [], []
    with graph.inserting_before(out):
        for feature in plan.features:
            value = by_name[feature.name]
            if feature.residual_of is not None:
                base = fx.Proxy(by_name[feature.residual_of], tracer)
                value = (fx.Proxy(value, tracer).float() - base.float()).to(feature.dtype).node
            # contiguous (free when it already is): every variant that reads the history is compiled for one layout
            written.append(fx.Proxy(value, tracer).contiguous().node)
            names.append(history_names(feature, plan.num_slots)[0])
        for name, value, base in plan.full_signal_outputs:  # what a signal measured at full steps reads
            measured = fx.Proxy(by_name[value], tracer).float()
            if base is not None:
                measured = measured - fx.Proxy(by_name[base], tracer).float()
            written.append(measured.contiguous().node)
            names.append(name)
    inputs = list(plan.tokens.full_inputs()) if plan.tokens is not None else []
    placeholders = add_named_inputs(graph, inputs) if inputs else {}
    if plan.tokens is not None:  # what the token selection computes at full steps for the partial calls
        with graph.inserting_before(out):
            for value, name in plan.tokens.add_to_full(graph, by_name, placeholders):
                written.append(value)
                names.append(name)
    out.args = (tuple(original + written),)
    graph.lint()
    return Variant(VariantKind.FULL, fx.GraphModule(gm, graph, class_name="C4DFull"), len(original), tuple(inputs),
                   tuple(names))
