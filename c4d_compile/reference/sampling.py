"""Sampling the reference models, with a swappable transformer call.

Rectified-flow models ("dit", "flux") are Euler-integrated over a time grid, optionally shifted towards
high noise as Flux and SD3 do. The ε-prediction model ("dit-eps") is sampled as diffusers' DiTPipeline
samples a learned-sigma DiT with a DDIMScheduler: the output is split into ε and the variance channel,
and DDIM (arXiv 2010.02502, deterministic, eta = 0) steps with ε alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import InvalidValueError
from .data import IMAGE_SIZE, NUM_CLASSES

__all__ = ["class_labels", "initial_noise", "sample", "time_grid"]

Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def time_grid(num_steps: int, shift: float = 1.0) -> torch.Tensor:
    """The flow sampler's times: linspace(1, 0, num_steps + 1), then the Flux/SD3 time shift.

    The shift maps t to ``shift * t / (1 + (shift - 1) * t)``, which keeps 0 and 1 fixed and, for
    shift > 1, crowds the steps towards t=1 (high noise, where the coarse layout is decided); SD3 (arXiv
    2403.03206) motivates it by resolution, Flux samples with it. shift=1 leaves the uniform grid unchanged
    bit for bit (1 * t / (1 + 0 * t) is t exactly in floating point). The model is evaluated at the first
    num_steps points, never at t=0.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not (shift > 0 and shift < float("inf")):
        raise InvalidValueError("shift", shift, "a finite number > 0")
    grid = torch.linspace(1.0, 0.0, num_steps + 1)
    return shift * grid / (1 + (shift - 1) * grid)


def class_labels(per_class: int) -> torch.Tensor:
    """0, 0, ..., 1, 1, ..., 9: ``per_class`` of each digit, grouped."""
    return torch.arange(NUM_CLASSES).repeat_interleave(per_class)


def initial_noise(batch: int, seed: int) -> torch.Tensor:
    """The starting latent (t=1, or DDPM's x_T) of a seeded run; its own generator, so the caller's RNG
    stream is untouched."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)


def _predictor(model: Callable[..., torch.Tensor], transformer_call: Callable[..., object] | None) -> Predictor:
    """``(x, t, labels) -> prediction``: the model itself, or its wrapper around ``transformer_call``."""
    if transformer_call is None:
        return model
    if not hasattr(model, "transformer_inputs"):
        raise TypeError("transformer_call needs a ReferenceModel (with transformer_inputs) as model")

    def predict(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return model.output_to_prediction(transformer_call(**model.transformer_inputs(x, t, labels)))

    return predict


def _euler(predict: Predictor, x: torch.Tensor, labels: torch.Tensor, num_steps: int, shift: float) -> torch.Tensor:
    """Integrate dx/dt = v from t=1 (noise) to t=0 over ``time_grid(num_steps, shift)``."""
    grid = time_grid(num_steps, shift)
    for i in range(num_steps):
        v = predict(x, torch.full((x.shape[0],), float(grid[i])), labels)
        x = x + (grid[i + 1] - grid[i]) * v  # dt < 0: stepping towards the data
    return x


def _ddim(predict: Predictor, x: torch.Tensor, labels: torch.Tensor, num_steps: int, scheduler) -> torch.Tensor:
    """DiTPipeline's loop without guidance: ``scheduler.step(ε, t, x)`` down ``scheduler.timesteps``.

    DiTPipeline also calls ``scale_model_input``, which is the identity for DDIM, and passes the integer
    timestep expanded to the batch, as here.
    """
    scheduler.set_timesteps(num_steps)
    for t in scheduler.timesteps:
        eps = predict(x, t.expand(x.shape[0]), labels)
        x = scheduler.step(eps, t, x).prev_sample
    return x


@torch.no_grad()
def sample(
    model: Callable[..., torch.Tensor],
    labels: torch.Tensor | Sequence[int],
    num_steps: int = 20,
    seed: int = 0,
    transformer_call: Callable[..., object] | None = None,
    noise: torch.Tensor | None = None,
    shift: float = 1.0,
) -> torch.Tensor:
    """Generate (B, 1, 16, 16) images in [-1, 1] pixel space from ``initial_noise(B, seed)`` (or ``noise``).

    ``model`` is a ReferenceModel, or any callable ``(x, t, labels) -> v`` (then taken to be a flow model).
    Its ``prediction`` picks the sampler: Euler over ``time_grid(num_steps, shift)`` for ``"velocity"``,
    DDIM over the model's scheduler for ``"epsilon"``. DDIM's steps are the scheduler's discrete timesteps,
    so a time shift has no meaning there and ``shift != 1`` is rejected rather than silently ignored.

    ``transformer_call`` replaces ``model.transformer`` (e.g. the same transformer under ``torch.compile``
    with a caching backend) and gets the same kwargs, so cached and uncached runs differ only in that call.
    The output is left unclamped so that metrics see exactly what the sampler produced (DDIM's last step
    lands on its clipped x0 estimate, so those images are within [-1, 1] anyway).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    labels = torch.as_tensor(labels, dtype=torch.long)
    x = (initial_noise(labels.shape[0], seed) if noise is None else noise.clone()).float()
    predict = _predictor(model, transformer_call)
    prediction = getattr(model, "prediction", "velocity")
    if prediction == "velocity":
        return _euler(predict, x, labels, num_steps, shift)
    if prediction == "epsilon":
        if shift != 1.0:
            raise InvalidValueError("shift", shift, "1.0 for an ε-prediction model (DDIM samples discrete timesteps)")
        return _ddim(predict, x, labels, num_steps, model.make_scheduler())
    raise InvalidValueError("model.prediction", prediction, "'velocity' or 'epsilon'")
