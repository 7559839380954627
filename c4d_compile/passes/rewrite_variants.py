"""Build the FULL and CACHED variants of a traced graph for a cache plan.

Why one pass for every coarse region: once the plan has named the cached features (a graph value,
optionally paired with the stack input it is a residual against), FULL and CACHED differ only in
what happens at those values:

* FULL  = the original graph, unchanged, plus outputs: the forecaster's new state computed from
  each feature (``value`` or ``value - input`` in float32). The original outputs are the original
  nodes, so with an always-full schedule the result is bit-exact.
* CACHED = the original graph where every use of a feature is replaced by its forecast
  (``input + forecast`` for a residual); dead-code elimination then removes everything only the
  features needed — the blocks — and keeps the prologue/epilogue the outputs still need.

Both are ordinary GraphModules with an explicit signature, never mutating their inputs:
    (*original_inputs, *state, *scalars) -> (*original_outputs, *new_state)      # FULL
    (*original_inputs, *state, *scalars) -> (*original_outputs)                  # CACHED
State is feature-major (feature 0 slots 0..S-1, feature 1 ...). Scalars are 0-dim float32 tensors.
The forecaster's arithmetic is traced in through torch.fx proxies, so the lowering fuses it.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass

import torch.fx as fx

from ..plan import CachePlan
from .dead_code import eliminate_dead_code


class VariantKind(str, enum.Enum):
    FULL = "full"
    CACHED = "cached"


@dataclass(frozen=True)
class Variant:
    kind: VariantKind
    gm: fx.GraphModule
    num_inputs: int  # original inputs
    num_outputs: int  # original outputs
    scalar_names: tuple[str, ...]
    returns_state: bool


@dataclass(frozen=True)
class RewriteResult:
    variants: dict[VariantKind, Variant]
    changed: bool
    removed_nodes: dict[VariantKind, int]  # nodes of the original graph a variant no longer runs


def _proxy(node: fx.Node, tracer) -> fx.Proxy:
    return fx.Proxy(node, tracer)


def _add_inputs(graph: fx.Graph, plan: CachePlan, scalar_names: tuple[str, ...]):
    last = [n for n in graph.nodes if n.op == "placeholder"][-1]
    state, scalars = [], {}
    with graph.inserting_after(last):
        # inserting_after a fixed node reverses order; insert in reverse to keep the signature order
        for name in reversed(scalar_names):
            scalars[name] = graph.placeholder(f"c4d_{name}")
        for f_i in reversed(range(len(plan.features))):
            for slot in reversed(range(plan.forecaster.num_slots)):
                state.append(graph.placeholder(f"c4d_state_{f_i}_{slot}"))
    state.reverse()
    slots = plan.forecaster.num_slots
    per_feature = [state[i * slots : (i + 1) * slots] for i in range(len(plan.features))]
    return per_feature, {k: scalars[k] for k in scalar_names}


def _nodes_by_name(graph: fx.Graph) -> dict[str, fx.Node]:
    return {n.name: n for n in graph.nodes}


def build_full(gm: fx.GraphModule, plan: CachePlan) -> Variant:
    graph = copy.deepcopy(gm.graph)
    num_inputs = sum(n.op == "placeholder" for n in graph.nodes)
    names = plan.forecaster.update_scalar_names
    state, scalars = _add_inputs(graph, plan, names)
    tracer = fx.proxy.GraphAppendingTracer(graph)
    by_name = _nodes_by_name(graph)
    out = next(n for n in graph.nodes if n.op == "output")
    original = list(out.args[0]) if isinstance(out.args[0], (tuple, list)) else [out.args[0]]
    new_state = []
    with graph.inserting_before(out):
        sc = {k: _proxy(v, tracer) for k, v in scalars.items()}
        for feature, slots in zip(plan.features, state):
            value = _proxy(by_name[feature.name], tracer)
            if feature.residual_of is not None:
                value = (value.float() - _proxy(by_name[feature.residual_of], tracer).float()).to(feature.dtype)
            updated = plan.forecaster.update(value, [_proxy(s, tracer) for s in slots], sc, feature.dtype)
            new_state += [p.node for p in updated]
    out.args = (tuple(original + new_state),)
    graph.lint()
    variant_gm = fx.GraphModule(gm, graph, class_name="C4DFull")
    return Variant(VariantKind.FULL, variant_gm, num_inputs, len(original), names, True)


def build_cached(gm: fx.GraphModule, plan: CachePlan) -> Variant:
    graph = copy.deepcopy(gm.graph)
    num_inputs = sum(n.op == "placeholder" for n in graph.nodes)
    names = plan.forecaster.predict_scalar_names
    state, scalars = _add_inputs(graph, plan, names)
    tracer = fx.proxy.GraphAppendingTracer(graph)
    by_name = _nodes_by_name(graph)
    for feature, slots in zip(plan.features, state):
        node = by_name[feature.name]
        users = list(node.users)
        with graph.inserting_before(node.next):  # keeps creation order, unlike inserting_after
            sc = {k: _proxy(v, tracer) for k, v in scalars.items()}
            forecast = plan.forecaster.predict([_proxy(s, tracer) for s in slots], sc, feature.dtype)
            if feature.residual_of is not None:
                base = _proxy(by_name[feature.residual_of], tracer)
                forecast = (base.float() + forecast.float()).to(feature.dtype)
        for user in users:
            user.replace_input_with(node, forecast.node)
    eliminate_dead_code(graph)
    graph.lint()
    out = next(n for n in graph.nodes if n.op == "output")
    num_outputs = len(out.args[0]) if isinstance(out.args[0], (tuple, list)) else 1
    variant_gm = fx.GraphModule(gm, graph, class_name="C4DCached")
    return Variant(VariantKind.CACHED, variant_gm, num_inputs, num_outputs, names, False)


def rewrite_variants(gm: fx.GraphModule, plan: CachePlan) -> RewriteResult:
    full, cached = build_full(gm, plan), build_cached(gm, plan)
    original = {n.name for n in gm.graph.nodes if n.op not in ("placeholder", "output")}
    removed = {
        v.kind: len(original - {n.name for n in v.gm.graph.nodes}) for v in (full, cached)
    }
    return RewriteResult({VariantKind.FULL: full, VariantKind.CACHED: cached}, True, removed)
