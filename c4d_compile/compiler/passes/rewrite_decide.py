"""The DECIDE variant: probe, signal, decision and both continuations in one graph (``torch.cond``).

Why: on the host path every call reads one scalar from the device to choose its continuation. Here
that choice is a node of the graph, so nothing is read on the host per call: the relative L1 signal,
TeaCache's polynomial and accumulator, the count of cached calls in a row and the steps forced full
(a host input: the warm-up and the last steps are known on the host) give a predicate, and
``torch.ops.higher_order.cond`` runs the FULL or the CACHED continuation (``rewrite_probe.py``) as
its two branches, with the same operands. Both branches return the model's outputs and the new value
of every cached feature (CACHED returns a copy of the one it reused), and the decision state (the
reference of the next comparison, the accumulator in float64 as the host computes it, the count in a
row) is updated by ``where``. The signal and the decision leave the graph too, so ``stats()`` can show
them without a read per call.

Under context parallelism the signal's two sums are added over the ranks inside the graph before the
division, so every rank takes the decision one process would take on all the tokens.

Only reuse forecasts fit this path (checked by the plan): the host does not learn which steps were
full, so it cannot give step-dependent forecast weights.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
from torch.fx.graph_module import _copy_attr

from ...runtime.state_names import FORCE, SIGNAL_FULL, SIGNAL_VALUE, WEIGHTS, history_names
from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from ..signals import relative_l1
from .check_collectives import exchange_group, in_graph_sum
from .variants import Variant, placeholder_name


def _branch(variant: Variant, model_count: int, operands: list[str], reused: list[str]) -> fx.GraphModule:
    """A cond branch over ``operands``: the continuation, returning its outputs (and copies of ``reused``)."""
    graph = fx.Graph()
    nodes = {name: graph.placeholder(placeholder_name(name)) for name in operands}
    own = [n for n in variant.gm.graph.nodes if n.op == "placeholder"]
    val_map = {p: nodes[f"model.{i}"] for i, p in enumerate(own[:model_count])}
    for p, name in zip(own[model_count:], variant.inputs):
        if name == WEIGHTS:  # reuse: weight 1 on the only slot
            val_map[p] = graph.call_method("new_full", (nodes[reused[0]], (1, 1), 1.0), {"dtype": torch.float32})
        else:
            val_map[p] = nodes[name]
    outs = graph.graph_copy(variant.gm.graph, val_map)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    if not variant.outputs:  # CACHED writes nothing: hand back a copy of what it reused (no aliasing in cond)
        outs += [graph.call_method("clone", (nodes[name],)) for name in reused]
    graph.output(tuple(outs))
    return fx.GraphModule(variant.gm, graph, class_name=f"C4D{variant.kind.value.title()}Branch")


def build_decide(gm: fx.GraphModule, plan: CachePlan, split: dict[VariantKind, Variant]) -> Variant:
    rule = plan.signal.rule
    probe, full, cached = split[VariantKind.PROBE], split[VariantKind.FULL], split[VariantKind.CACHED]
    originals = [n for n in gm.graph.nodes if n.op == "placeholder"]
    model_count = len(originals)
    histories = [history_names(f, plan.num_slots)[0] for f in plan.features]
    crossing = list(dict.fromkeys(n for v in (full, cached) for n in v.inputs if n in plan.probe.prefix))
    operands = [f"model.{i}" for i in range(model_count)] + crossing + histories

    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    model = [graph.placeholder(p.name) for p in originals]
    for new, old in zip(model, originals):
        new.meta = dict(old.meta)
    inputs = [*histories, *plan.reference_names, *plan.decision_state_names, FORCE]
    named = {name: graph.placeholder(placeholder_name(name)) for name in inputs}

    probe_outs = graph.graph_copy(probe.gm.graph, dict(zip([n for n in probe.gm.graph.nodes
                                                            if n.op == "placeholder"], model)))
    values = dict(zip(probe.outputs, probe_outs))

    def proxy(node: fx.Node) -> fx.Proxy:
        return fx.Proxy(node, tracer)

    group = exchange_group(gm)  # context parallelism: every rank decides from the sums over all the tokens
    reduce = in_graph_sum(group) if group is not None else None
    signal = relative_l1([proxy(values[n]) for n in plan.signal_names],
                         [proxy(named[n]) for n in plan.reference_names], reduce)
    score = rule.rescaled(signal.double())  # the schedule's own polynomial, in float64 like the host
    acc_name, in_row_name = plan.decision_state_names
    acc, in_row = proxy(named[acc_name]), proxy(named[in_row_name])
    if rule.accumulate:
        score = acc + score
    compute = (score >= rule.threshold) | proxy(named[FORCE])
    if rule.max_cached_in_row:
        compute = compute | (in_row >= float(rule.max_cached_in_row))

    root = torch.nn.Module()
    root.add_module("c4d_full_branch", _branch(full, model_count, operands, histories))
    root.add_module("c4d_cached_branch", _branch(cached, model_count, operands, histories))
    for node in probe.gm.graph.nodes:  # constants the copied probe reads
        if node.op == "get_attr":
            _copy_attr(probe.gm, root, node.target)
    branch_nodes = [graph.get_attr("c4d_full_branch"), graph.get_attr("c4d_cached_branch")]
    # the prefix values enter the branches contiguous: a branch is compiled for the layout its operand had when
    # traced, and inductor may lay an intermediate out otherwise in the graph around it
    operand_nodes = [*model, *(proxy(values[n]).contiguous().node for n in crossing), *(named[n] for n in histories)]
    chosen = graph.call_function(torch.ops.higher_order.cond,
                                 (compute.node, *branch_nodes, tuple(operand_nodes)))
    outs = [graph.call_function(operator.getitem, (chosen, i)) for i in range(full.num_outputs + len(histories))]

    refs = []
    for name, ref_name in zip(plan.signal_names, plan.reference_names):
        now = proxy(values[name])
        refs.append(now if plan.probe_written_by is VariantKind.PROBE
                    else torch.where(compute, now, proxy(named[ref_name])))
    new_acc = torch.where(compute, acc * 0.0, score) if rule.accumulate else acc * 0.0
    new_in_row = torch.where(compute, in_row * 0.0, in_row + 1.0)
    extra = [*(r.node for r in refs), new_acc.node, new_in_row.node, signal.node, compute.node]
    graph.output(tuple(outs) + tuple(extra))
    graph.lint()
    decide_gm = fx.GraphModule(root, graph, class_name="C4DDecide")
    outputs = (*histories, *plan.reference_names, *plan.decision_state_names, SIGNAL_VALUE, SIGNAL_FULL)
    return Variant(VariantKind.DECIDE, decide_gm, full.num_outputs, tuple(inputs), outputs)
