"""What one tiny model of the registry is (``TinyModel``), and the helpers its entries share.

diffusers is imported only inside ``build()``: listing the registry stays cheap and works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# How a model reads its timestep, which decides what `TinyModel.timesteps` produces:
#   "sigma"       flow matching, sigma in (0, 1] (the model scales by 1000 itself: Flux, QwenImage)
#   "sigma*1000"  flow matching, the pipeline passes sigma * 1000 (SD3, Wan, HunyuanVideo, LTX-Video)
#   "discrete"    DDPM-style integer timesteps 999..0 (DiT, PixArt, CogVideoX)
TIMESTEP_KINDS = ("sigma", "sigma*1000", "discrete")
_NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True)
class TinyModel:
    """One registry entry: how to build the model and call it like its pipeline does."""

    name: str  # registry key
    description: str  # one line
    build: Callable[[], torch.nn.Module]  # seeded, eval mode, float32, CPU
    # make_inputs(batch=1, seed=0, dtype=torch.float32) -> forward kwargs, return_dict=False included.
    # `dtype` applies to latents, embeddings and ids; timesteps, masks and class labels keep their own dtypes.
    make_inputs: Callable[..., dict[str, Any]]
    latent_key: str  # kwarg holding the noisy latent
    timestep_key: str  # kwarg holding the timestep
    timestep_kind: str = "sigma"  # one of TIMESTEP_KINDS, drives timesteps()

    def __post_init__(self) -> None:
        if self.timestep_kind not in TIMESTEP_KINDS:
            kinds = ", ".join(TIMESTEP_KINDS)
            raise ValueError(f"{self.name}: timestep_kind {self.timestep_kind!r} is not one of {kinds}")

    def timesteps(self, num_steps: int) -> list[torch.Tensor]:
        """Timesteps for a `num_steps` sampling loop, noisiest first, each shaped (1,) like make_inputs'."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if self.timestep_kind == "discrete":
            if num_steps > _NUM_TRAIN_TIMESTEPS:
                raise ValueError(f"{self.name} has only {_NUM_TRAIN_TIMESTEPS} discrete timesteps")
            values = torch.linspace(_NUM_TRAIN_TIMESTEPS - 1, 0, num_steps).round().long()
        else:
            # Drop the final sigma 0: samplers step *to* it but never evaluate the model there.
            values = torch.linspace(1.0, 0.0, num_steps + 1)[:-1]
            if self.timestep_kind == "sigma*1000":
                values = values * _NUM_TRAIN_TIMESTEPS
        return [v.reshape(1) for v in values]


def first_output(result: Any) -> torch.Tensor:
    """The prediction tensor from a diffusers forward result (a tuple, or an output object with .sample)."""
    if isinstance(result, torch.Tensor):
        return result
    if isinstance(result, (tuple, list)):
        return result[0]
    if hasattr(result, "sample"):
        return result.sample
    raise TypeError(f"cannot find the prediction tensor in a {type(result).__name__}")


# --------------------------------------------------------------------------------------------------
# Helpers shared by the entries.


def _seeded_builder(class_name: str, **config: Any) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import diffusers

        cls = getattr(diffusers, class_name)
        # fork_rng: seed the init without disturbing the caller's global RNG stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = cls(**config)
        return model.eval()

    return build


def _randn(gen: torch.Generator, dtype: torch.dtype, *shape: int) -> torch.Tensor:
    # Sample in float32 and cast, so every dtype sees the same values for a given seed.
    return torch.randn(*shape, generator=gen).to(dtype)


def _mid_timestep(kind: str, batch: int) -> torch.Tensor:
    # Halfway through the schedule: a representative value, far from the degenerate ends.
    if kind == "discrete":
        return torch.full((batch,), _NUM_TRAIN_TIMESTEPS // 2, dtype=torch.long)
    value = 0.5 if kind == "sigma" else 0.5 * _NUM_TRAIN_TIMESTEPS
    # Timesteps stay float32 whatever `dtype`: bf16 cannot even represent every integer in 0..1000.
    return torch.full((batch,), value, dtype=torch.float32)
