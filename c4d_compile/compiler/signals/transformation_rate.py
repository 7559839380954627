"""EasyCache (arXiv 2507.02860): the PROBE is the model's latent input.

A full step measures the rate ``k = |v_s - v_p| / |x_s - x_p|`` between the last two full steps' outputs ``v``
and inputs ``x``, and every later call estimates the relative change of the output from the change of the input,
``k |x - x_prev| / |v_p|`` (L1 norms; the reference code's means over the same number of elements give the same
ratios). The output is cached as its change from the input, so a cached call moves with the latent it is given.
"""

from __future__ import annotations

import dataclasses

import torch

from ...errors import ConfigError
from ...policies.schedules.signal import Signal
from ...runtime.step_program import StateTensor, VariantKind
from ..passes.graph_utils import size_hint, tensor_meta
from .base import SignalHandler
from .registry import register_signal

OUTPUT = "signal.output"  # FULL's model output in float32, kept until the next full step
INPUT_AT_FULL = "signal.input_at_full"  # the latent input of the last full step


@register_signal(Signal.MODEL_INPUT)
class TransformationRate(SignalHandler):
    measures_after = True  # the rate, after a full call

    def find(self, gm, analysis, policy, features):
        """An output of the probed input's shape and dtype is cached as its change from that input (``x + (v_p -
        x_p)`` at a cached call); an output of another shape (a learned-variance DiT's) is reused as it is."""
        probe, features = super().find(gm, analysis, policy, features)
        ((latent, _),) = probe.values
        meta = tensor_meta(next(n for n in gm.graph.nodes if n.name == latent))
        shape = tuple(size_hint(d) for d in meta.shape)
        return probe, [dataclasses.replace(f, residual_of=latent) if f.kind == "output" and f.shape == shape else f
                       for f in features]

    def check(self, plan):
        if plan.features[0].kind != "output":
            raise ConfigError("signal='model-input' measures the model output's rate of change: use it with "
                              "region='output' (easycache)")

    def reference_writer(self, plan):
        return VariantKind.PROBE  # the previous call's input

    def full_outputs(self, plan):
        return ((OUTPUT, plan.features[0].name, None),)  # the model output whose rate of change is measured

    def state(self, plan):
        (shape,), (name,) = plan.probe_shapes, plan.signal_names
        return [*super().state(plan),
                StateTensor(INPUT_AT_FULL, shape, torch.float32, "signal", (VariantKind.FULL,), (), source=name),
                StateTensor(OUTPUT, plan.features[0].shape, torch.float32, "signal", (VariantKind.FULL,), ())]

    # the latent input and the gathered output are the same on every rank: nothing to reduce
    def before(self, plan, values, state, reduce=None):
        (ref,) = (state.tensors.get(name) for name in plan.reference_names)
        rate, norm = state.scalars.get("rate"), state.scalars.get("output_norm")
        if ref is None or rate is None:
            return None
        (now,) = (values[name] for name in plan.signal_names)
        return rate * float((now - ref).abs().sum()) / max(norm, 1e-30)

    def after(self, plan, kind, values, state, reduce=None):
        if kind is not VariantKind.FULL:
            return None
        (now,) = (values[name] for name in plan.signal_names)
        output, tensors = values[OUTPUT], state.tensors
        if OUTPUT in tensors:  # one read: the output's and the input's change since the last full step, the norm
            moved, changed, norm = torch.stack([(output - tensors[OUTPUT]).abs().sum(),
                                                (now - tensors[INPUT_AT_FULL]).abs().sum(),
                                                output.abs().sum()]).tolist()
            if changed > 0:
                state.scalars["rate"] = moved / changed
        else:
            norm = float(output.abs().sum())
        state.scalars["output_norm"] = norm
        return None
