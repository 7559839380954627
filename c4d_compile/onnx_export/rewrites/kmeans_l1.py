"""ClusCa's k-means measures L1 distances with ``torch.cdist``, which torch's ONNX exporter has no
conversion for. The k-means call of a FULL variant becomes ``kmeans_per_centroid``: the same distances,
one centroid at a time, in elementwise ops and sums."""

from __future__ import annotations

from collections.abc import Sequence

import torch.fx as fx

from ...compiler.passes.clusters import kmeans, kmeans_per_centroid


def kmeans_without_cdist(gm: fx.GraphModule, constants: Sequence = ()) -> int:
    count = 0
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is kmeans:
            node.target = kmeans_per_centroid
            count += 1
    return count
