"""Plan: which values a policy caches, their state tensors and their memory, before step one."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .passes.analyze import GraphAnalysis
from .passes.find_stream import StreamValue
from .passes.graph_utils import size_hint
from .policies.config import Policy, Region


@dataclass(frozen=True)
class CachedFeature:
    name: str  # graph value that is cached
    shape: tuple[int, ...]
    dtype: torch.dtype
    residual_of: str | None = None  # cache `name - residual_of` (stack residual) instead of the value
    kind: str = "value"  # what it is: output, stack, branch, block (for per-region memory)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * torch.empty((), dtype=self.dtype).element_size()


@dataclass(frozen=True)
class CachePlan:
    region: Region
    features: tuple[CachedFeature, ...]
    forecaster: Any

    @property
    def state_bytes(self) -> int:
        """Bytes of cache state for one guidance context."""
        return sum(self.bytes_by_kind.values())

    @property
    def bytes_by_kind(self) -> dict[str, int]:
        """Bytes of cache state for one guidance context, per kind of feature (branch, block, ...)."""
        out: dict[str, int] = {}
        for f in self.features:
            out[f.kind] = out.get(f.kind, 0) + f.nbytes * self.forecaster.num_slots
        return out

    def describe(self) -> str:
        lines = [f"region {self.region.value}: {len(self.features)} feature(s) x {self.forecaster.num_slots} slot(s), "
                 f"{self.state_bytes / 2**20:.3f} MiB per context"]
        for f in self.features:
            kind = f"residual vs {f.residual_of}" if f.residual_of else "value"
            lines.append(f"  {f.name} {list(f.shape)} {str(f.dtype).replace('torch.', '')} ({kind})")
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
            features += _block_residuals(analysis, bb)
    return features


def _block_residuals(analysis: GraphAnalysis, bb) -> list[CachedFeature]:
    values = {v.name: v for boundary in analysis.stream.boundaries for v in boundary}
    values.update({v.name: v for v in analysis.stream.inputs})
    inputs = [values[name] for name in bb.inputs if name in values]
    features = []
    for name in bb.outputs:
        out = values.get(name)
        if out is None:
            continue
        partner = next((i for i in inputs if (i.shape, i.dtype) == (out.shape, out.dtype)), None)
        if partner is not None:
            inputs.remove(partner)
        features.append(_feature(out, "block", partner.name if partner else None))
    return features


REGION_FEATURES: dict[Region, Callable[[GraphAnalysis], list[CachedFeature]]] = {
    Region.OUTPUT: _output_features,
    Region.STACK: _stack_features,
    Region.BRANCH: _branch_features,
}


def make_plan(analysis: GraphAnalysis, policy: Policy) -> CachePlan:
    return CachePlan(policy.region, tuple(REGION_FEATURES[policy.region](analysis)), policy.forecaster)
