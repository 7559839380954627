"""Sampling loop, timer and latent PSNR for the bundled random-weight model configs (speed benchmarks)."""

from __future__ import annotations

import time

import torch

from ..zoo.tiny_diffusers import TinyModel, first_output


def generate(call, spec: TinyModel, inputs: dict, steps: int, predictions: list | None = None) -> torch.Tensor:
    """Euler over the model's own timesteps: x <- x + (t_next - t) * prediction (scaled to [0, 1]).

    For flow-matching models this is the flow-matching Euler sampler; for the others it is only a
    loop in which every step's input depends on the previous prediction, which is what caching
    must get right. ``predictions``, when given, receives each step's model output.
    """
    ts = spec.timesteps(steps)
    scale = 1000.0 if spec.timestep_kind != "sigma" else 1.0
    return euler(call, inputs, spec.latent_key, spec.timestep_key, ts, [t.float().item() / scale for t in ts],
                 predictions)


def euler(call, inputs: dict, latent_key: str, timestep_key: str, timesteps, times,
          predictions: list | None = None) -> torch.Tensor:
    """x <- x + (t_next - t) * prediction, calling the model at each of ``timesteps`` (moved to the latent's
    device), which stand for ``times`` in [0, 1]; the last step goes to 0. ``predictions``, when given,
    receives each step's model output, uncropped (what an export check compares step by step)."""
    times = [*times, 0.0]
    x = inputs[latent_key].clone()
    with torch.no_grad():
        for t, t_next, value in zip(times, times[1:], timesteps):
            pred = first_output(call(**{**inputs, latent_key: x, timestep_key: value.to(x.device)}))
            if predictions is not None:
                predictions.append(pred)
            pred = pred[tuple(slice(0, s) for s in x.shape)]  # learned-sigma channels
            x = x + (t_next - t) * pred.to(x.dtype)
    return x


def psnr(result: torch.Tensor, reference: torch.Tensor) -> float:
    mse = torch.mean((result.double() - reference.double()) ** 2).item()
    peak = (reference.max() - reference.min()).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak**2 / mse)).item()


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start
