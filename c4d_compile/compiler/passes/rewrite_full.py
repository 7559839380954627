"""The FULL variant: the original graph, plus the newest value of every cached feature as an output.

Why it is the original graph: the model's outputs stay the original nodes, so a schedule that
always computes is bit-exact. The only addition is the feature values the CACHED variant will
forecast from (``value``, or ``value - input`` in float32 for a residual), written to the newest
slot of each feature's history; older slots are moved by the Runtime, so a full step does no cache
arithmetic at all. A signal measured at full steps (AdaCache's block residual, EasyCache's output)
adds its values, in float32. Token clusters (ClusCa) add k-means over the stream after the last block
of each clustered token space, warm-started from the centroids of the last full step (``clusters.py``).
Score selection (ToCa) adds each token's importance and resets its staleness (``token_scores.py``).
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx

from ...runtime.state_names import centroids_name, history_names, labels_name, score_name, staleness_name
from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .clusters import kmeans
from .graph_utils import model_outputs
from .token_scores import importance
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
    inputs = [centroids_name(space.tokens) for space in plan.clustered]
    placeholders = add_named_inputs(graph, inputs) if inputs else {}
    with graph.inserting_before(out):
        for space in plan.clustered:
            found = graph.call_function(kmeans, (by_name[space.site], space.dim, placeholders[centroids_name(
                space.tokens)]))
            for i, name in enumerate((centroids_name(space.tokens), labels_name(space.tokens))):
                written.append(fx.Proxy(found, tracer)[i].node)
                names.append(name)
        for tokens in plan.scored:  # importance of each token, from its token-local branches' values
            branches = [b for b in plan.partial if b.tokens == tokens]
            score = graph.call_function(importance, ([by_name[b.feature] for b in branches],
                                                     [dict(b.body)[b.feature] for b in branches]))
            written += [score, graph.call_function(torch.zeros_like, (score,))]
            names += [score_name(tokens), staleness_name(tokens)]
    out.args = (tuple(original + written),)
    graph.lint()
    return Variant(VariantKind.FULL, fx.GraphModule(gm, graph, class_name="C4DFull"), len(original), tuple(inputs),
                   tuple(names))
