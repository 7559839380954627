"""Example values of a variant's named inputs, for lowering it (and exporting it): state entries, host inputs, and
the probe's values a continuation reads, each with the shape, dtype, strides and device the calls will have."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx
from torch._guards import TracingContext
from torch._subclasses.fake_tensor import FakeTensor

from ..runtime.state_names import FORCE, WEIGHTS, history_names
from .passes.graph_utils import latent_input, tensor_meta
from .passes.variants import Variant
from .plan import CachePlan


def named_examples(variant: Variant, plan: CachePlan, gm: fx.GraphModule, example_inputs: Sequence) -> list:
    """Examples of the named inputs a variant reads: one per state entry, the host inputs, and, for a
    continuation after a probe, the prefix values it reads (named by their node)."""
    if not variant.inputs:
        return []
    by_name = {n.name: n for n in gm.graph.nodes}
    device = next(x.device for x in example_inputs if isinstance(x, torch.Tensor))

    def like(node: fx.Node):
        meta = tensor_meta(node)
        if any(not isinstance(d, int) for d in meta.shape):
            return meta  # dynamic shapes: the symbolic example Dynamo recorded
        where = meta.device if meta.device.type != "meta" else device
        # the value's own strides: a probe hands its continuation views (transposes), and inductor checks strides
        return torch.empty_strided(meta.shape, meta.stride(), dtype=meta.dtype, device=where).zero_()

    examples = {WEIGHTS: _weights_example(gm, plan.num_slots, device), FORCE: torch.tensor(False, device=device)}
    if plan.tokens is not None:  # what the host draws for a partial call: a draw of its own
        generator = torch.Generator().manual_seed(0)
        examples.update({name: draw.draw(generator).to(device) for name, draw in plan.tokens.host_inputs().items()})
    for feature in plan.features:  # a dynamic-shape graph: the symbolic example Dynamo recorded, for the history
        meta = tensor_meta(by_name[feature.name])
        if any(not isinstance(d, int) for d in meta.shape):
            examples.update(dict.fromkeys(history_names(feature, plan.num_slots), meta))
    for entry in plan.state:  # contiguous, as FULL writes histories (rewrite_full.py) and the probe references
        if entry.name not in examples:
            examples[entry.name] = torch.zeros(entry.shape, dtype=entry.dtype, device=device)
    return [examples[name] if name in examples else like(by_name[name]) for name in variant.inputs]


def _weights_example(gm: fx.GraphModule, num_slots: int, device) -> torch.Tensor:
    """The forecast weights, ``[batch, slots]``: a row per batch row (``rewrite_cached.py``). In a graph whose
    batch size is dynamic, the batch is Dynamo's symbol, so every batch size the graph serves is one compile."""
    latent = tensor_meta(latent_input(gm))
    if isinstance(latent.shape[0], torch.SymInt):
        return latent.new_ones((latent.shape[0], num_slots), dtype=torch.float32)
    return torch.ones(latent.shape[0], num_slots, device=device)


def static_fakes(examples: list) -> list:
    """The named examples as static fake tensors of Dynamo's own fake mode. Lowered as real tensors, they would
    be fakeified with fresh size symbols that no Dynamo source backs, and the guards inductor puts on them
    (broadcasts against the model's inputs) would fail Dynamo's guard generation."""
    context = TracingContext.try_get()
    mode = context.fake_mode if context is not None else None
    if mode is None:
        return examples
    return [mode.from_tensor(x, static_shapes=True) if isinstance(x, torch.Tensor) and not isinstance(x, FakeTensor)
            else x for x in examples]
