"""What the Runtime reads of a compiled graph's inputs and outputs: on a graph with a dynamic batch size, the
inputs that carry the batch and the probe's outputs that do not (one value for every row of a batch of requests);
on a static graph, none carry it (its batch is written into its ops)."""

from __future__ import annotations

import torch

from c4d_compile import c4d_backend
from c4d_compile.runtime.step_program import VariantKind
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def _runtime(dynamic: bool):
    spec = get_tiny_model("flux")
    backend = c4d_backend("fbcache", lowering="eager")
    compiled = torch.compile(spec.build().eval(), backend=backend, dynamic=dynamic)
    inputs = spec.make_inputs(batch=2)
    with torch.no_grad():
        compiled(**inputs)
    (runtime,) = backend.runtimes
    return runtime, inputs


def test_a_dynamic_batch_is_found_in_the_inputs_and_the_probe_outputs_that_do_not_carry_it():
    runtime, inputs = _runtime(dynamic=True)
    sig = runtime.signature
    sizes = {tuple(v.shape) for v in inputs.values() if isinstance(v, torch.Tensor) and v.shape[:1] == (2,)}
    assert len(sig.batched) == len(sizes) == 4  # latent, text, pooled projections, timestep
    assert sig.batch_sizes  # the batch symbol is a graph input of its own
    probe = runtime.variants[VariantKind.PROBE]
    assert probe.shared and all(name.startswith("freqs") for name in probe.shared)  # the rotary tables
    assert any(name.startswith("signal.") for name in probe.outputs) and not any(
        name.startswith("signal.") for name in probe.shared)


def test_a_static_graph_has_no_batch_inputs():
    runtime, _ = _runtime(dynamic=False)
    assert runtime.signature.batched == () and runtime.signature.batch_sizes == ()
