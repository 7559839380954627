"""Plan: which values a policy caches, their state tensors and their memory, before step one."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .passes.analyze import GraphAnalysis
from .passes.find_stream import StreamValue
from .policies.config import Policy, Region


@dataclass(frozen=True)
class CachedFeature:
    name: str  # graph value that is cached
    shape: tuple[int, ...]
    dtype: torch.dtype
    residual_of: str | None = None  # cache `name - residual_of` (stack residual) instead of the value

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
        return sum(f.nbytes for f in self.features) * self.forecaster.num_slots

    def describe(self) -> str:
        lines = [f"region {self.region.value}: {len(self.features)} feature(s) x {self.forecaster.num_slots} slot(s), "
                 f"{self.state_bytes / 2**20:.3f} MiB per context"]
        for f in self.features:
            kind = f"residual vs {f.residual_of}" if f.residual_of else "value"
            lines.append(f"  {f.name} {list(f.shape)} {str(f.dtype).replace('torch.', '')} ({kind})")
        return "\n".join(lines)


def _concrete(dim) -> int:
    """Size hint of a possibly symbolic dim (dynamic shapes): the size of the example call."""
    if isinstance(dim, torch.SymInt):
        return int(dim.node.hint)
    return int(dim)


def _feature(value: StreamValue, residual_of: str | None = None) -> CachedFeature:
    return CachedFeature(value.name, tuple(_concrete(d) for d in value.shape), value.dtype, residual_of)


def _output_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    return [_feature(v) for v in analysis.stream.graph_outputs]


def _stack_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    partners = dict(analysis.stream.pairs)
    return [_feature(v, partners.get(v.name)) for v in analysis.stream.outputs]


REGION_FEATURES: dict[Region, Callable[[GraphAnalysis], list[CachedFeature]]] = {
    Region.OUTPUT: _output_features,
    Region.STACK: _stack_features,
}


def make_plan(analysis: GraphAnalysis, policy: Policy) -> CachePlan:
    return CachePlan(policy.region, tuple(REGION_FEATURES[policy.region](analysis)), policy.forecaster)
