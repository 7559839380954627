"""Euler sampling of the rectified-flow reference models, with a swappable transformer call."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .data import IMAGE_SIZE, NUM_CLASSES

__all__ = ["class_labels", "initial_noise", "sample", "time_grid"]


def time_grid(num_steps: int) -> torch.Tensor:
    """linspace(1, 0, num_steps + 1): the model is evaluated at the first num_steps points, never at t=0."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return torch.linspace(1.0, 0.0, num_steps + 1)


def class_labels(per_class: int) -> torch.Tensor:
    """0, 0, ..., 1, 1, ..., 9: ``per_class`` of each digit, grouped."""
    return torch.arange(NUM_CLASSES).repeat_interleave(per_class)


def initial_noise(batch: int, seed: int) -> torch.Tensor:
    """The t=1 latent of a seeded run; its own generator, so the caller's RNG stream is untouched."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)


@torch.no_grad()
def sample(
    model: Callable[..., torch.Tensor],
    labels: torch.Tensor | Sequence[int],
    num_steps: int = 20,
    seed: int = 0,
    transformer_call: Callable[..., object] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Euler-integrate dx/dt = v from t=1 (noise) to t=0; returns (B, 1, 16, 16), not clamped.

    ``model`` is a ReferenceModel, or any callable ``(x, t, labels) -> v``. ``transformer_call`` replaces
    ``model.transformer`` (e.g. the same transformer under ``torch.compile`` with a caching backend) and
    gets the same kwargs, so cached and uncached runs differ only in that call. The output is left
    unclamped so that metrics see exactly what the model produced.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    x = (initial_noise(labels.shape[0], seed) if noise is None else noise.clone()).float()
    if transformer_call is not None and not hasattr(model, "transformer_inputs"):
        raise TypeError("transformer_call needs a ReferenceModel (with transformer_inputs/output_to_v) as model")
    grid = time_grid(num_steps)
    for i in range(num_steps):
        t = torch.full((x.shape[0],), float(grid[i]))
        if transformer_call is None:
            v = model(x, t, labels)
        else:
            v = model.output_to_v(transformer_call(**model.transformer_inputs(x, t, labels)))
        x = x + (grid[i + 1] - grid[i]) * v  # dt < 0: stepping towards the data
    return x
