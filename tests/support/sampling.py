"""A plain denoising loop over a tiny model: enough to drive the Runtime step by step.

The update ``x <- x - 0.05 * prediction`` is not a real sampler; it only makes every step's latent
depend on the previous prediction, which is what caching has to get right.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from c4d_compile.zoo.tiny_diffusers import TinyModel, first_output


def _fit(pred: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Crop a prediction to the latent's shape (DiT predicts a learned sigma in extra channels)."""
    return pred[tuple(slice(0, s) for s in like.shape)]


def sample(
    call: Callable,
    spec: TinyModel,
    num_steps: int = 8,
    batch: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    guidance_calls: int = 1,
    inputs: dict | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``num_steps`` steps; ``guidance_calls`` > 1 calls the model that often per step (CFG)."""
    inputs = dict(inputs if inputs is not None else spec.make_inputs(batch=batch, seed=seed, dtype=dtype))
    x = inputs[spec.latent_key].clone()
    predictions = []
    with torch.no_grad():
        for t in spec.timesteps(num_steps):
            t = t.repeat(batch) if t.dim() == 1 else t
            preds = []
            for _ in range(guidance_calls):
                kwargs = {**inputs, spec.latent_key: x, spec.timestep_key: t}
                preds.append(_fit(first_output(call(**kwargs)), x))
            pred = preds[0] if guidance_calls == 1 else preds[0] + 0.5 * (preds[0] - preds[1])
            predictions.append(pred)
            x = x - 0.05 * pred.to(x.dtype)
    return x, predictions


def loop(call, spec: TinyModel, steps: int, inputs: dict | None = None) -> list[torch.Tensor]:
    """Sampler stand-in: the prediction feeds the next latent; returns every step's prediction."""
    inputs = dict(inputs or spec.make_inputs())
    x = inputs[spec.latent_key].clone()
    outs = []
    with torch.no_grad():
        for t in spec.timesteps(steps):
            out = first_output(call(**{**inputs, spec.latent_key: x, spec.timestep_key: t}))
            outs.append(out)
            x = x - 0.05 * out[tuple(slice(0, s) for s in x.shape)]
    return outs


def relative_l1(now: torch.Tensor, ref: torch.Tensor) -> float:
    return float((now.float() - ref.float()).abs().sum() / ref.float().abs().sum())
