"""Factories for ``c4d evaluate --pipeline support.evaluate_factories:NAME``: the tiny real pipelines of
``support.pipelines`` with a ``call_kwargs(prompt, seed, steps)`` hook.

They have no text encoder, so a prompt becomes seeded random embeddings of the case's shapes (drawn from a
generator seeded by the prompt's CRC32: the same prompt always gives the same embeddings, two prompts differ).
Outputs are latents (no VAE), except ``sd3_images``: SD3 with a tiny random AutoencoderKL, decoded to 64 x 64
images (``output_type="pt"``, values in [0, 1]).
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from support.pipelines import PIPELINES, PipelineCase


def _with_prompts(case: PipelineCase, pipe: Any = None, output_type: str = "latent"):
    def call_kwargs(prompt: str, seed: int, steps: int) -> dict[str, Any]:
        kwargs = {**case.call_kwargs(steps=steps, seed=seed, cfg=True), "output_type": output_type}
        gen = torch.Generator().manual_seed(zlib.crc32(prompt.encode()))
        for key in sorted(kwargs):
            if "embeds" in key and isinstance(kwargs[key], torch.Tensor):
                kwargs[key] = torch.randn(kwargs[key].shape, generator=gen)
        return kwargs

    return pipe if pipe is not None else case.build(), call_kwargs


def flux():
    return _with_prompts(PIPELINES["flux"])


def sd3():
    return _with_prompts(PIPELINES["sd3"])


def sd3_images():
    import diffusers

    pipe = PIPELINES["sd3"].build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # 4 levels: the pipeline's default 8x compression, so 64 px images decode from its 8 x 8 latents
        vae = diffusers.AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=pipe.transformer.config.in_channels,
            block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, norm_num_groups=4, shift_factor=0.0,
        ).eval()
    pipe.register_modules(vae=vae)
    return _with_prompts(PIPELINES["sd3"], pipe, output_type="pt")


def flux_plain():
    """The pipeline alone, without a hook: what a text pipeline factory returns (here it cannot run)."""
    return PIPELINES["flux"].build()


def tiny_clip(folder) -> str:
    """A random-weight CLIP model saved to ``folder`` as a local model directory (``--clip-model``): a
    character-level vocabulary (no merges), 32 px images."""
    from pathlib import Path

    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = sorted(ByteLevel.alphabet())
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[]).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    text = {"vocab_size": len(tokens), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 32, "bos_token_id": len(tokens) - 2,
            "eos_token_id": len(tokens) - 1}
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(folder)
    return str(folder)
