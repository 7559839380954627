"""What a plan caches: the cached features, and which graph values each region makes features of."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..policies.config import Region
from .passes.analyze import GraphAnalysis
from .passes.find_stream import StreamValue
from .passes.graph_utils import size_hint


@dataclass(frozen=True)
class CachedFeature:
    name: str  # graph value that is cached
    shape: tuple[int, ...]
    dtype: torch.dtype
    residual_of: str | None = None  # cache `name - residual_of` (a residual) instead of the value
    kind: str = "value"  # what it is: output, stack, branch, block (for per-region memory)
    # context parallelism: "shard" (computed before the output's all-gather: each rank caches its tokens) or
    # "gathered" (after it: every rank caches all of them, world size x the bytes); "" without collectives
    placement: str = ""



def stream_feature(value: StreamValue, kind: str, residual_of: str | None = None) -> CachedFeature:
    """A stream value as a cached feature of ``kind``, cached as its residual over ``residual_of`` when given."""
    return CachedFeature(value.name, tuple(size_hint(d) for d in value.shape), value.dtype, residual_of, kind)


def _output_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    return [stream_feature(v, "output") for v in analysis.stream.graph_outputs]


def _stack_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    partners = dict(analysis.stream.pairs)
    return [stream_feature(v, "stack", partners.get(v.name)) for v in analysis.stream.outputs]


def _branch_features(analysis: GraphAnalysis) -> list[CachedFeature]:
    """Every F of every proven block; a block whose branches are not proven is cached whole."""
    features = []
    for bb in analysis.branches:
        if bb.proven:
            features += [stream_feature(StreamValue(b.feature, b.shape, b.dtype), "branch") for b in bb.branches]
        else:
            values = {v.name: v for boundary in analysis.stream.boundaries for v in boundary}
            values.update({v.name: v for v in analysis.stream.inputs})
            features += [stream_feature(values[out], "block", partner)
                         for out, partner in bb.residual_pairs if out in values]
    return features


REGION_FEATURES: dict[Region, Callable[[GraphAnalysis], list[CachedFeature]]] = {
    Region.OUTPUT: _output_features,
    Region.STACK: _stack_features,
    Region.BRANCH: _branch_features,
}
