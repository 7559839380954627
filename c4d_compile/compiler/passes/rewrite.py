"""The variants of a plan: one rewrite pass per variant kind, in one registry.

A new kind of step is a new rewrite pass registered in ``REWRITES``; the PROBE of a signal-driven plan is made
by cutting the others after the probe (``rewrite_probe.py``), which also builds DECIDE from them. Every variant but
FULL then has its projections narrowed to the output rows it still reads (``narrow_projections.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.fx as fx

from ...runtime.step_program import VariantKind
from ..plan import CachePlan
from .narrow_projections import NarrowResult, narrow_projections
from .rewrite_cached import build_cached
from .rewrite_full import build_full
from .rewrite_partial import build_partial
from .rewrite_probe import split_at_probe
from .rewrite_verify import build_verify
from .variants import Variant

REWRITES: dict[VariantKind, Callable[[fx.GraphModule, CachePlan], Variant]] = {
    VariantKind.FULL: build_full, VariantKind.CACHED: build_cached, VariantKind.PARTIAL: build_partial,
    VariantKind.VERIFY: build_verify,
}


@dataclass(frozen=True)
class RewriteResult:
    variants: dict[VariantKind, Variant]
    removed_nodes: dict[VariantKind, int]  # nodes of the original graph a variant no longer runs
    narrowed: dict[VariantKind, NarrowResult]  # projections a variant computes only in part


def build_variants(gm: fx.GraphModule, plan: CachePlan, narrow: bool = True) -> RewriteResult:
    """Run the rewrite pass of every variant kind the plan needs; with a probe, cut them after it; then, with
    ``narrow``, narrow each variant's projections to the rows it reads."""
    variants = {kind: REWRITES[kind](gm, plan) for kind in plan.variant_kinds if kind in REWRITES}
    if VariantKind.PROBE in plan.variant_kinds:
        variants = split_at_probe(gm, plan, variants)
    original = {n.name for n in gm.graph.nodes if n.op not in ("placeholder", "output")}
    removed = {kind: len(original - {n.name for n in v.gm.graph.nodes}) for kind, v in variants.items()}
    # counted after the removed nodes: a narrowed projection is still run, in part. FULL stays the model's own
    # graph (an always-full schedule is the model to the bit), whatever the model leaves unread
    narrowed = {kind: narrow_projections(v.gm) if narrow and kind is not VariantKind.FULL else NarrowResult()
                for kind, v in variants.items()}
    return RewriteResult(variants, removed, narrowed)
