"""The PROBE variant, and FULL / CACHED cut to continue from it.

Why a split and not a third graph: a signal-driven call must know the signal before it chooses what
to compute, and must not compute the prefix twice. So the graph is cut at the probe's prefix
(``find_probe``): the PROBE variant is the prefix, returning every prefix value a continuation reads
plus the probed values in float32 (``signal.i``: the value, or its residual against its base);
each continuation is its own variant with those prefix values turned into named inputs (by node
name). Scalar glue of the prefix that a continuation needs (a tuple from ``chunk``, a size) is cheap
and is recomputed there rather than passed; in-place writes of the prefix run only in the PROBE.
A full call (PROBE, then FULL) computes exactly what the original graph computes.
"""

from __future__ import annotations

import copy

import torch.fx as fx

from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .dead_code import eliminate_dead_code, is_functorch_level
from .graph_utils import is_write, model_outputs, tensor_meta
from .rewrite_decide import build_decide
from .variants import Variant, add_named_inputs


def split_at_probe(gm: fx.GraphModule, plan: CachePlan, variants: dict[VariantKind, Variant]) -> dict:
    prefix = plan.probe.prefix
    continued = {kind: _continue_after(v, prefix) for kind, v in variants.items()}
    needed = list(dict.fromkeys(name for v in continued.values() for name in v.inputs if name in prefix))
    split = {VariantKind.PROBE: _probe(gm, plan, needed), **continued}
    if plan.decided_on_device:
        split[VariantKind.DECIDE] = build_decide(gm, plan, split)
    return split


def _continue_after(variant: Variant, prefix: frozenset[str]) -> Variant:
    graph = copy.deepcopy(variant.gm.graph)
    nodes = [n for n in graph.nodes if n.name in prefix]
    recomputed = {n for n in nodes if tensor_meta(n) is None and not is_write(n)}

    def outside(user: fx.Node) -> bool:
        return user.name not in prefix or user in recomputed

    passed = [n for n in nodes if n not in recomputed and tensor_meta(n) is not None and any(map(outside, n.users))]
    placeholders = add_named_inputs(graph, [n.name for n in passed])
    for node in passed:
        node.replace_all_uses_with(placeholders[node.name], delete_user_cb=outside)
    for node in reversed(list(graph.nodes)):
        if node.name in prefix and node not in recomputed and not node.users:
            graph.erase_node(node)
    eliminate_dead_code(graph)
    used = []
    for node in passed:
        if placeholders[node.name].users:
            used.append(node.name)
        else:
            graph.erase_node(placeholders[node.name])
    graph.lint()
    gm = fx.GraphModule(variant.gm, graph, class_name=type(variant.gm).__name__)
    return Variant(variant.kind, gm, variant.num_outputs, (*variant.inputs, *used), variant.outputs)


def _probe(gm: fx.GraphModule, plan: CachePlan, needed: list[str]) -> Variant:
    graph = copy.deepcopy(gm.graph)
    by_name = {n.name: n for n in graph.nodes}
    out, _ = model_outputs(graph)
    tracer = fx.proxy.GraphAppendingTracer(graph)
    measured, before = [], set(graph.nodes)
    with graph.inserting_before(out):
        for value, base in plan.probe.values:
            signal = fx.Proxy(by_name[value], tracer).float()
            if base is not None:
                signal = signal - fx.Proxy(by_name[base], tracer).float()
            # contiguous: it is kept as the next call's reference, whose layout a compiled graph checks
            measured.append(signal.contiguous().node)
        # the device path's decision state starts at zero where a context starts: at its first, probed call
        zeros = [fx.Proxy(measured[0], tracer).new_zeros((), dtype=dtype).node for _, dtype in plan.decision_state]
    out.args = (tuple(by_name[name] for name in needed) + tuple(measured) + tuple(zeros),)
    keep = set(graph.nodes) - before | {out}
    for node in reversed(list(graph.nodes)):
        # functorch's level calls have no value a prefix node reads, but the prefix's vmapped ops (flex
        # attention's block mask) run only inside their level; every level is kept, an empty one costs nothing
        if (node in keep or node.op in ("placeholder", "get_attr") or node.name in plan.probe.prefix
                or is_functorch_level(node)):
            continue
        graph.erase_node(node)
    graph.lint()
    probe_gm = fx.GraphModule(gm, graph, class_name="C4DProbe")
    return Variant(VariantKind.PROBE, probe_gm, 0, (), (*needed, *plan.signal_names, *plan.decision_state_names))
