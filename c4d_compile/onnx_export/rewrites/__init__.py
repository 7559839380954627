"""Exporter gaps as passes: where torch's ONNX exporter or onnxruntime fail on a variant, the same math in
ops they take. Each pass rewrites one pattern in place and returns how many it rewrote; each is proven
equal on the torch side by its tests. They run on every variant right before it is exported (the
analysis and the cache plan see the model's own graph), in this order:
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch.fx as fx

from ...compiler.passes.dead_code import eliminate_dead_code
from .bool_masked_fill import bool_masked_fill_as_logic
from .complex_products import complex_products_as_real
from .noop_squeeze import drop_noop_squeeze

GapRewrite = Callable[[fx.GraphModule, Sequence], int]

EXPORT_REWRITES: tuple[GapRewrite, ...] = (
    drop_noop_squeeze,  # squeeze(d) of a dim that is not 1: a no-op in torch, an error in ONNX shape inference
    bool_masked_fill_as_logic,  # masked_fill on bool: onnxruntime has no bool Where kernel
    complex_products_as_real,  # rotary embeddings as complex products: the exporter has no complex ops
)


def bridge_exporter_gaps(gm: fx.GraphModule, constants: Sequence) -> tuple[fx.GraphModule, dict[str, int]]:
    """A copy of ``gm`` with every gap pattern rewritten; per pass, how many it rewrote (passes that found
    nothing are left out). ``constants``: the value of each constant placeholder by position, else None."""
    gm = copy.deepcopy(gm)
    counts = {}
    for rewrite in EXPORT_REWRITES:
        count = rewrite(gm, constants)
        if count:
            counts[rewrite.__name__] = count
    if counts:
        eliminate_dead_code(gm.graph)
        gm.recompile()
    return gm, counts
