"""Where the Runtime finds what it needs among a compiled graph's inputs and outputs: the timesteps, the model's
identity, the sizes that key its state, the device, and — in a graph whose batch size is dynamic — which inputs
and outputs carry the batch, so a batch of requests can be split by rows (``runtime/rows.py``). Read from the
traced graph's shapes once per compile, never per call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx

from ..runtime.executor import CallSignature
from .passes.analyze import GraphAnalysis
from .passes.graph_utils import (
    batch_first,
    example_value,
    is_parameter_input,
    latent_input,
    same_shape,
    tensor_meta,
    user_inputs,
)
from .passes.variants import Variant


def call_signature(gm: fx.GraphModule, analysis: GraphAnalysis, features: Sequence[str] = ()) -> CallSignature:
    """``features``: the names of the cached features (``CachePlan.features``), whose layout decides whether the
    forecast weights are an input per row."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    by_name = {n.name: n for n in gm.graph.nodes}
    inputs = set(user_inputs(gm))
    latent = latent_input(gm)
    batch = tensor_meta(latent).shape[0]
    dynamic = isinstance(batch, torch.SymInt)  # the batch size is an input: the rows of a batch may be split

    def is_batch(size) -> bool:
        return dynamic and isinstance(size, torch.SymInt) and same_shape((size,), (batch,))

    return CallSignature(
        timesteps=tuple(t.position for t in analysis.timesteps),
        carried=analysis.timestep_elsewhere,
        parameter=next((i for i, n in enumerate(placeholders) if is_parameter_input(n)), None),
        sized=tuple(i for i, n in enumerate(placeholders) if n in inputs and tensor_meta(n) is not None),
        sizes=tuple(i for i, n in enumerate(placeholders) if isinstance(example_value(n), torch.SymInt)),
        device=placeholders.index(latent),
        batched=tuple(i for i, n in enumerate(placeholders) if n in inputs and (m := tensor_meta(n)) is not None
                      and m.dim() >= 1 and is_batch(m.shape[0])),
        batch_sizes=tuple(i for i, n in enumerate(placeholders) if is_batch(example_value(n))),
        row_weights=bool(features) and all(batch_first(by_name[name], batch) for name in features),
    )


def shared_outputs(variant: Variant, gm: fx.GraphModule) -> frozenset[str]:
    """Named outputs without the batch as dim 0 (rotary tables, scalars): one value for every row of a batch of
    requests. Values made by the rewrites carry no shape and are per row (signals, histories)."""
    batch = tensor_meta(latent_input(gm)).shape[0]
    output = next(n for n in variant.gm.graph.nodes if n.op == "output")
    shared = set()
    for name, value in zip(variant.outputs, output.args[0][variant.num_outputs:]):
        meta = tensor_meta(value) if isinstance(value, fx.Node) else None
        if meta is not None and (meta.dim() == 0 or not same_shape((meta.shape[0],), (batch,))):
            shared.add(name)
    return frozenset(shared)
