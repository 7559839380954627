"""Tiny, randomly initialised diffusers transformers.

Each entry mirrors the structure of a real checkpoint (block lists, conditioning paths, positional
embeddings, the forward kwargs its pipeline passes) at a size where one forward takes milliseconds on a
CPU. The weights are random but seeded, so outputs are reproducible; they are for exercising graph capture
and caching, not for producing images.

diffusers is imported only inside ``build()``: listing the registry stays cheap and works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError

__all__ = [
    "TIMESTEP_KINDS",
    "TINY_MODELS",
    "TinyModel",
    "UnknownModelError",
    "first_output",
    "get_tiny_model",
]

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


class UnknownModelError(ConfigError, KeyError):
    """Raised by get_tiny_model for a name not in TINY_MODELS."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, quoting it.
        return str(self.args[0])


def get_tiny_model(name: str) -> TinyModel:
    try:
        return TINY_MODELS[name]
    except KeyError:
        valid = ", ".join(sorted(TINY_MODELS))
        raise UnknownModelError(f"unknown tiny model {name!r}; valid names: {valid}") from None


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


def _flux_ids(height: int, width: int, text_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(img_ids, txt_ids) as FluxPipeline builds them: (0, row, col) per image token, zeros for text."""
    img_ids = torch.zeros(height, width, 3)
    img_ids[..., 1] = torch.arange(height)[:, None]
    img_ids[..., 2] = torch.arange(width)[None, :]
    return img_ids.reshape(height * width, 3), torch.zeros(text_len, 3)


# --------------------------------------------------------------------------------------------------
# Flux (schnell-style: no guidance embedding): packed 2x2 latents as tokens, RoPE from img_ids/txt_ids.


def _flux_inputs(grid: int, channels: int, text_len: int, text_dim: int, pooled_dim: int):
    def make_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(seed)
        img_ids, txt_ids = _flux_ids(grid, grid, text_len)
        return {
            "hidden_states": _randn(gen, dtype, batch, grid * grid, channels),
            "encoder_hidden_states": _randn(gen, dtype, batch, text_len, text_dim),
            "pooled_projections": _randn(gen, dtype, batch, pooled_dim),
            "timestep": _mid_timestep("sigma", batch),
            "img_ids": img_ids.to(dtype),
            "txt_ids": txt_ids.to(dtype),
            "return_dict": False,
        }

    return make_inputs


_FLUX = TinyModel(
    name="flux",
    description="FluxTransformer2DModel: 2 double + 2 single blocks, dim 32, 16 image + 8 text tokens",
    build=_seeded_builder(
        "FluxTransformer2DModel",
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),  # must sum to attention_head_dim
    ),
    make_inputs=_flux_inputs(grid=4, channels=16, text_len=8, text_dim=32, pooled_dim=32),
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="sigma",
)

# Big enough that attention and the MLPs dominate over Python/dispatch overhead, so caching speedups show.
_FLUX_BENCH = TinyModel(
    name="flux-bench",
    description="FluxTransformer2DModel for benchmarks: 4 double + 8 single blocks, dim 512, 256+64 tokens",
    build=_seeded_builder(
        "FluxTransformer2DModel",
        patch_size=1,
        in_channels=64,
        num_layers=4,
        num_single_layers=8,
        attention_head_dim=128,
        num_attention_heads=4,
        joint_attention_dim=128,
        pooled_projection_dim=64,
        guidance_embeds=False,
        axes_dims_rope=(16, 56, 56),  # the real Flux split of a 128-dim head
    ),
    make_inputs=_flux_inputs(grid=16, channels=64, text_len=64, text_dim=128, pooled_dim=64),
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="sigma",
)


# --------------------------------------------------------------------------------------------------
# Stable Diffusion 3 (MMDiT): joint attention blocks; the last one is context_pre_only (diffusers sets it).


def _sd3_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": _randn(gen, dtype, batch, 4, 8, 8),
        "encoder_hidden_states": _randn(gen, dtype, batch, 8, 32),
        "pooled_projections": _randn(gen, dtype, batch, 32),
        "timestep": _mid_timestep("sigma*1000", batch),
        "return_dict": False,
    }


_SD3 = TinyModel(
    name="sd3",
    description="SD3Transformer2DModel: 3 joint blocks (last context_pre_only), dim 32, 4x8x8 latent, 8 text",
    build=_seeded_builder(
        "SD3Transformer2DModel",
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=3,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        caption_projection_dim=32,  # must equal the inner dim: text tokens join the image tokens' attention
        pooled_projection_dim=32,
        out_channels=4,
        pos_embed_max_size=8,
    ),
    make_inputs=_sd3_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="sigma*1000",
)


# --------------------------------------------------------------------------------------------------
# PixArt (alpha/sigma 512 style): self-attn + cross-attn blocks with a single shared adaLN; learned sigma, so
# the output has twice the latent channels.


def _pixart_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": _randn(gen, dtype, batch, 4, 8, 8),
        "encoder_hidden_states": _randn(gen, dtype, batch, 8, 32),
        # The pipeline always passes the T5 attention mask; all ones = a prompt filling every token.
        "encoder_attention_mask": torch.ones(batch, 8, dtype=torch.long),
        "timestep": _mid_timestep("discrete", batch),
        # What PixArtAlphaPipeline passes when use_additional_conditions is off (every non-1024 checkpoint).
        "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
        "return_dict": False,
    }


_PIXART = TinyModel(
    name="pixart",
    description="PixArtTransformer2DModel: 2 blocks, dim 32, 4x8x8 latent, 8 text tokens; outputs 8 channels",
    build=_seeded_builder(
        "PixArtTransformer2DModel",
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        cross_attention_dim=32,
        sample_size=8,
        patch_size=2,
        caption_channels=32,
        use_additional_conditions=False,
    ),
    make_inputs=_pixart_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="discrete",
)


# --------------------------------------------------------------------------------------------------
# DiT (class-conditional ImageNet): adaLN-zero blocks conditioned on timestep + class label; learned sigma.


def _dit_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": _randn(gen, dtype, batch, 4, 8, 8),
        "timestep": _mid_timestep("discrete", batch),
        "class_labels": torch.randint(0, 1000, (batch,), generator=gen),
        "return_dict": False,
    }


_DIT = TinyModel(
    name="dit",
    description="DiTTransformer2DModel: 2 blocks, dim 32, 4x8x8 latent, 1000 classes; outputs 8 channels",
    build=_seeded_builder(
        "DiTTransformer2DModel",
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=1000,  # the number of class labels
    ),
    make_inputs=_dit_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="discrete",
)


# --------------------------------------------------------------------------------------------------
# Wan 2.1 text-to-video: 3D patches, 3-axis RoPE, self + cross attention with shared timestep modulation.


def _wan_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": _randn(gen, dtype, batch, 4, 2, 8, 8),  # (B, C, frames, H, W)
        "timestep": _mid_timestep("sigma*1000", batch),
        "encoder_hidden_states": _randn(gen, dtype, batch, 8, 32),
        "return_dict": False,
    }


_WAN = TinyModel(
    name="wan",
    description="WanTransformer3DModel (2.1 T2V): 2 blocks, dim 32, 4x2x8x8 latent, 8 text tokens",
    build=_seeded_builder(
        "WanTransformer3DModel",
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=4,
        text_dim=32,
        freq_dim=32,
        ffn_dim=64,
        num_layers=2,
        rope_max_seq_len=32,
    ),
    make_inputs=_wan_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="sigma*1000",
)


# --------------------------------------------------------------------------------------------------
# HunyuanVideo: text token refiner, then double-stream and single-stream blocks; guidance-distilled, so the
# guidance embedding is on and the pipeline passes guidance_scale * 1000.


def _hunyuanvideo_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": _randn(gen, dtype, batch, 4, 2, 8, 8),  # (B, C, frames, H, W)
        "timestep": _mid_timestep("sigma*1000", batch),
        "encoder_hidden_states": _randn(gen, dtype, batch, 8, 32),
        "encoder_attention_mask": torch.ones(batch, 8, dtype=torch.long),
        "pooled_projections": _randn(gen, dtype, batch, 32),
        "guidance": torch.full((batch,), 6.0 * 1000.0),
        "return_dict": False,
    }


_HUNYUANVIDEO = TinyModel(
    name="hunyuanvideo",
    description="HunyuanVideoTransformer3DModel: 2 refiner, 2 double, 2 single blocks, dim 32, 4x2x8x8 video",
    build=_seeded_builder(
        "HunyuanVideoTransformer3DModel",
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        num_single_layers=2,
        num_refiner_layers=2,
        patch_size=2,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=32,
        pooled_projection_dim=32,
        rope_axes_dim=(4, 6, 6),  # must sum to attention_head_dim
    ),
    make_inputs=_hunyuanvideo_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="sigma*1000",
)


# --------------------------------------------------------------------------------------------------
# Qwen-Image: MMDiT double-stream blocks over packed 2x2 latents; RoPE built from img_shapes.


def _qwenimage_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": _randn(gen, dtype, batch, 16, 16),  # 4x4 grid of packed 2x2x4 patches
        "encoder_hidden_states": _randn(gen, dtype, batch, 8, 32),
        "encoder_hidden_states_mask": torch.ones(batch, 8, dtype=torch.long),
        "timestep": _mid_timestep("sigma", batch),
        # One (frames, rows, cols) list per sample, as QwenImagePipeline builds it.
        "img_shapes": [[(1, 4, 4)]] * batch,
        "return_dict": False,
    }


_QWENIMAGE = TinyModel(
    name="qwenimage",
    description="QwenImageTransformer2DModel: 2 blocks, dim 32, 16 packed image tokens, 8 text tokens",
    build=_seeded_builder(
        "QwenImageTransformer2DModel",
        patch_size=2,
        in_channels=16,
        out_channels=4,  # packed back: 2 * 2 * 4 = in_channels, so the output matches the latent's shape
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=(4, 6, 6),  # must sum to attention_head_dim
    ),
    make_inputs=_qwenimage_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="sigma",
)


# --------------------------------------------------------------------------------------------------
# CogVideoX (2B style): text and video tokens in one expert-adaLN stream, sin-cos 3D position embedding.
# Latents are (B, frames, C, H, W), frames before channels.


def _cogvideox_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": _randn(gen, dtype, batch, 2, 4, 8, 8),
        "encoder_hidden_states": _randn(gen, dtype, batch, 8, 32),  # exactly max_text_seq_length tokens
        "timestep": _mid_timestep("discrete", batch),
        "return_dict": False,
    }


_COGVIDEOX = TinyModel(
    name="cogvideox",
    description="CogVideoXTransformer3DModel (2B style): 2 blocks, dim 32, 2x4x8x8 latent, 8 text tokens",
    build=_seeded_builder(
        "CogVideoXTransformer3DModel",
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=4,
        time_embed_dim=32,
        text_embed_dim=32,
        num_layers=2,
        # Sized to the inputs so the position embedding buffer is used as is, not recomputed per call.
        sample_width=8,
        sample_height=8,
        sample_frames=5,  # 2 latent frames = (5 - 1) // 4 + 1
        patch_size=2,
        max_text_seq_length=8,
    ),
    make_inputs=_cogvideox_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="discrete",
)


# --------------------------------------------------------------------------------------------------
# LTX-Video: patch size 1 tokens (already packed by the pipeline), 3D RoPE from num_frames/height/width.


def _ltxvideo_inputs(batch: int = 1, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    frames, height, width = 2, 4, 4
    return {
        "hidden_states": _randn(gen, dtype, batch, frames * height * width, 8),
        "encoder_hidden_states": _randn(gen, dtype, batch, 8, 32),
        "timestep": _mid_timestep("sigma*1000", batch),
        "encoder_attention_mask": torch.ones(batch, 8, dtype=torch.long),
        "num_frames": frames,
        "height": height,
        "width": width,
        # As LTXPipeline passes it: (VAE temporal compression / frame rate, spatial, spatial compression).
        "rope_interpolation_scale": (8 / 25, 32, 32),
        "return_dict": False,
    }


_LTXVIDEO = TinyModel(
    name="ltxvideo",
    description="LTXVideoTransformer3DModel: 2 blocks, dim 32, 32 video tokens (2x4x4), 8 text tokens",
    build=_seeded_builder(
        "LTXVideoTransformer3DModel",
        in_channels=8,
        out_channels=8,
        num_attention_heads=2,
        attention_head_dim=16,
        cross_attention_dim=32,  # the inner dim: captions are projected to it before cross attention
        num_layers=2,
        caption_channels=32,
    ),
    make_inputs=_ltxvideo_inputs,
    latent_key="hidden_states",
    timestep_key="timestep",
    timestep_kind="sigma*1000",
)


TINY_MODELS: dict[str, TinyModel] = {
    m.name: m
    for m in (
        _FLUX,
        _SD3,
        _PIXART,
        _DIT,
        _WAN,
        _HUNYUANVIDEO,
        _QWENIMAGE,
        _COGVIDEOX,
        _LTXVIDEO,
        _FLUX_BENCH,
    )
}
