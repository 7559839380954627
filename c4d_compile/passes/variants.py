"""The variants of a plan: one rewrite pass per variant kind, in one registry.

Every variant is an ordinary GraphModule with an explicit signature, never mutating its inputs:

    (*model_inputs, *named_inputs) -> (*model_outputs, *named_outputs)

Named inputs are state tensors (by their state-spec name) and host inputs (``weights``: the forecast
weights of the step, a 1-D float32 tensor); named outputs are state tensors the variant writes. The
Runtime resolves the names, so it never needs to know which kind of variant it runs. A new kind of
step is a new rewrite pass registered in ``_registry``; the PROBE of a signal-driven plan is made by
cutting the others (``rewrite_probe.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.fx as fx

from ..step_program import VariantKind

WEIGHTS = "weights"  # host input: forecast weights over the history slots, newest first
FORCE = "force"  # host input of DECIDE: a 0-d bool, true on steps the schedule computes whatever the signal says
SIGNAL_VALUE, SIGNAL_FULL = "signal.value", "signal.full"  # DECIDE's outputs for stats: the signal, the decision


@dataclass(frozen=True)
class Variant:
    kind: VariantKind
    gm: fx.GraphModule
    num_outputs: int  # the model's own outputs come first
    inputs: tuple[str, ...]  # named inputs after the model's own, in order
    outputs: tuple[str, ...]  # named outputs after the model's own, in order


@dataclass(frozen=True)
class RewriteResult:
    variants: dict[VariantKind, Variant]
    changed: bool
    removed_nodes: dict[VariantKind, int]  # nodes of the original graph a variant no longer runs


def _registry() -> dict[VariantKind, Callable]:
    from .rewrite_cached import build_cached
    from .rewrite_full import build_full
    from .rewrite_partial import build_partial
    from .rewrite_verify import build_verify

    return {VariantKind.FULL: build_full, VariantKind.CACHED: build_cached, VariantKind.PARTIAL: build_partial,
            VariantKind.VERIFY: build_verify}


def build_variants(gm: fx.GraphModule, plan) -> RewriteResult:
    """Run the rewrite pass of every variant kind the plan needs; with a probe, cut them after it."""
    from .rewrite_probe import split_at_probe

    passes = _registry()
    variants = {kind: passes[kind](gm, plan) for kind in plan.variant_kinds if kind in passes}
    if VariantKind.PROBE in plan.variant_kinds:
        variants = split_at_probe(gm, plan, variants)
    original = {n.name for n in gm.graph.nodes if n.op not in ("placeholder", "output")}
    removed = {kind: len(original - {n.name for n in v.gm.graph.nodes}) for kind, v in variants.items()}
    return RewriteResult(variants, True, removed)


def placeholder_name(name: str) -> str:
    """The placeholder of a named input in a variant's graph."""
    return "c4d_" + name.replace("@", "_at_").replace(".", "_")


def add_named_inputs(graph: fx.Graph, names: list[str]) -> dict[str, fx.Node]:
    """Placeholders after the model's own, in the order given."""
    last = [n for n in graph.nodes if n.op == "placeholder"][-1]
    nodes: dict[str, fx.Node] = {}
    for name in names:
        with graph.inserting_after(last):
            last = nodes[name] = graph.placeholder(placeholder_name(name))
    return nodes

