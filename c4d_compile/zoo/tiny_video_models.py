"""Tiny video transformers: Wan 2.1, HunyuanVideo, CogVideoX, LTX-Video."""

from __future__ import annotations

from typing import Any

import torch

from .tiny_model import TinyModel, _mid_timestep, _randn, _seeded_builder

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
