"""Tiny image transformers: Flux (and its CPU benchmark size), SD3, PixArt, DiT, Qwen-Image."""

from __future__ import annotations

from typing import Any

import torch

from .tiny_model import TinyModel, _mid_timestep, _randn, _seeded_builder


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
