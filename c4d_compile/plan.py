"""Plan: which values a policy caches, the state tensors that hold them, and their memory, before step one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx as fx

from .passes.analyze import GraphAnalysis
from .passes.find_stream import StreamValue
from .passes.graph_utils import size_hint
from .policies.config import Policy, Region
from .step_program import StateTensor, VariantKind


@dataclass(frozen=True)
class CachedFeature:
    name: str  # graph value that is cached
    shape: tuple[int, ...]
    dtype: torch.dtype
    residual_of: str | None = None  # cache `name - residual_of` (a residual) instead of the value
    kind: str = "value"  # what it is: output, stack, branch, block (for per-region memory)


def history_names(feature: CachedFeature, slots: int) -> list[str]:
    """State names of a feature's history, newest first."""
    return [f"{feature.name}@{age}" for age in range(slots)]


@dataclass(frozen=True)
class CachePlan:
    region: Region
    features: tuple[CachedFeature, ...]
    num_slots: int  # history length per feature (the forecaster's)
    fingerprint: dict  # the graph and feature shapes the plan was made for (calibration files check it)
    variant_kinds: tuple[VariantKind, ...] = (VariantKind.FULL, VariantKind.CACHED)

    @property
    def state(self) -> tuple[StateTensor, ...]:
        """Per feature, its history: age 0 written by FULL, older ages shifted from younger ones."""
        entries = []
        for f in self.features:
            names = history_names(f, self.num_slots)
            for age, name in enumerate(names):
                entries.append(StateTensor(
                    name, f.shape, f.dtype, f.kind, written_by=(VariantKind.FULL,), read_by=(VariantKind.CACHED,),
                    shifts_from=names[age - 1] if age else None,
                ))
        return tuple(entries)

    @property
    def state_bytes(self) -> int:
        """Bytes of cache state for one guidance context."""
        return sum(self.bytes_by_kind.values())

    @property
    def bytes_by_kind(self) -> dict[str, int]:
        """Bytes of cache state for one guidance context, per kind of feature (branch, block, ...)."""
        out: dict[str, int] = {}
        for entry in self.state:
            out[entry.kind] = out.get(entry.kind, 0) + entry.nbytes
        return out

    def describe(self) -> str:
        lines = [f"region {self.region.value}: {len(self.features)} feature(s) x {self.num_slots} history slot(s), "
                 f"{self.state_bytes / 2**20:.3f} MiB per context; variants "
                 + ", ".join(k.value for k in self.variant_kinds)]
        for f in self.features:
            kind = f"residual vs {f.residual_of}" if f.residual_of else "value"
            lines.append(f"  {f.name} {list(f.shape)} {str(f.dtype).replace('torch.', '')} ({f.kind} {kind})")
        return "\n".join(lines)


def _feature(value: StreamValue, kind: str, residual_of: str | None = None) -> CachedFeature:
    return CachedFeature(value.name, tuple(size_hint(d) for d in value.shape), value.dtype, residual_of, kind)


def _output_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    return [_feature(v, "output") for v in analysis.stream.graph_outputs]


def _stack_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    partners = dict(analysis.stream.pairs)
    return [_feature(v, "stack", partners.get(v.name)) for v in analysis.stream.outputs]


def _branch_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    """Every F of every proven block; a block whose branches are not proven is cached whole."""
    features = []
    for bb in analysis.branches:
        if bb.proven:
            features += [_feature(StreamValue(b.feature, b.shape, b.dtype), "branch") for b in bb.branches]
        else:
            values = {v.name: v for boundary in analysis.stream.boundaries for v in boundary}
            values.update({v.name: v for v in analysis.stream.inputs})
            features += [_feature(values[out], "block", partner) for out, partner in bb.residual_pairs if out in values]
    return features


REGION_FEATURES: dict[Region, Callable[[GraphAnalysis], list[CachedFeature]]] = {
    Region.OUTPUT: _output_features,
    Region.STACK: _stack_features,
    Region.BRANCH: _branch_features,
}


def graph_fingerprint(gm: fx.GraphModule, features: tuple[CachedFeature, ...]) -> dict:
    """What a calibrated schedule is checked against: the graph's structure and the cached shapes, but
    not the batch size (a schedule searched on a few images holds for a batch of many)."""
    ops = "\n".join(f"{n.op}:{getattr(n.target, '__name__', n.target)}" for n in gm.graph.nodes)
    return {
        "graph": hashlib.sha256(ops.encode()).hexdigest()[:16],
        "features": [[f.kind, list(f.shape[1:]), str(f.dtype).replace("torch.", "")] for f in features],
    }


def make_plan(gm: fx.GraphModule, analysis: GraphAnalysis, policy: Policy) -> CachePlan:
    features = tuple(REGION_FEATURES[policy.region](analysis))
    plan = CachePlan(policy.region, features, policy.forecaster.num_slots, graph_fingerprint(gm, features))
    policy.schedule.check_plan(plan.fingerprint)
    return plan
