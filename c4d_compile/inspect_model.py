"""Trace a model with Dynamo and return what the passes found, without compiling anything."""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import torch

from .compiler.passes.analyze import GraphAnalysis, analyze
from .compiler.passes.rewrite import RewriteResult, build_variants
from .compiler.plan import CachePlan, make_plan
from .errors import InvalidValueError
from .policies import get_policy
from .zoo.tiny_diffusers import get_tiny_model


def load_target(target: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``name`` of a bundled tiny config, or ``module:factory`` returning (model, forward kwargs)."""
    if ":" in target:
        module_name, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        model, inputs = factory()
        return model, inputs

    spec = get_tiny_model(target)
    return spec.build(), spec.make_inputs()


def trace(model: torch.nn.Module, inputs: dict[str, Any], fullgraph: bool = False) -> list[tuple]:
    """Dynamo's graphs of one forward on ``inputs`` and the example inputs of each, nothing compiled.

    The graphs are analysed after Dynamo has finished with them, and Dynamo deletes each placeholder's
    ``node.meta["grapharg"]`` once the backend has returned (``OutputGraph.cleanup``). The backend analyses
    its graph inside that call, where the entry is still there; what is traced here keeps it, so every
    analysis of a traced graph (``c4d inspect``, export) sees what the backend sees. Without it the analysis
    cannot tell a module's buffers from the caller's inputs (``graph_utils.is_module_state``: parameters are
    known by their type, buffers only by their source), and a floating-point buffer of rank >= 2 reads as
    data: Chroma's conditioning network reads one (``mod_proj``), so it counted as blocks on the data, and
    the exported cached variant forecast the modulations from the last full step instead of computing them.
    """
    graphs: list[tuple] = []
    kept: dict = {}

    def capture(gm, example_inputs):
        kept.update({n: n.meta["grapharg"] for n in gm.graph.nodes if n.op == "placeholder" and "grapharg" in n.meta})
        graphs.append((gm, list(example_inputs)))
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(model, backend=capture, fullgraph=fullgraph)(**inputs)
    for node, grapharg in kept.items():  # after Dynamo's cleanup
        node.meta["grapharg"] = grapharg
    return graphs


def trace_graphs(model: torch.nn.Module, inputs: dict[str, Any]) -> list[torch.fx.GraphModule]:
    return [gm for gm, _ in trace(model, inputs)]


class Inspected(NamedTuple):
    """What the passes made of one graph: the analysis, and where it is cacheable the plan and the variants."""

    analysis: GraphAnalysis
    plan: CachePlan | None
    rewrite: RewriteResult | None


def inspect_target(target: str, policy: str = "taylorseer-lite") -> list[Inspected]:
    model, inputs = load_target(target)
    if not isinstance(inputs, dict):
        raise InvalidValueError("factory result", type(inputs).__name__, "(model, dict of forward kwargs)")
    resolved = get_policy(policy)
    results = []
    for gm in trace_graphs(model, inputs):
        analysis = analyze(gm)
        plan = make_plan(gm, analysis, resolved) if analysis.cacheable else None
        results.append(Inspected(analysis, plan, build_variants(gm, plan) if plan is not None else None))
    return results


def describe_variants(rewrite: RewriteResult) -> str:
    """Per variant, the nodes of the original graph it no longer runs (what a step of that kind saves) and the
    projections it computes only in part."""
    lines = []
    for kind, variant in rewrite.variants.items():
        line = (f"  {kind.value}: skips {rewrite.removed_nodes[kind]} node(s) of the original graph, "
                f"{len(variant.inputs)} named input(s), {len(variant.outputs)} named output(s)")
        narrowed = rewrite.narrowed[kind]
        if narrowed.projections:
            line += (f"; narrows {narrowed.projections} projection(s) to the {narrowed.rows_kept} of "
                     f"{narrowed.rows_total} output rows it reads")
        lines.append(line)
    return "\n".join(lines)
