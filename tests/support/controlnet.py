"""ControlNet pipelines of diffusers over the tiny transformers of ``support.pipelines``, built in code.

Each pipeline gets a tiny ControlNet of its transformer's kind (``FluxControlNetModel``, ``SD3ControlNetModel``)
and a real tiny ``AutoencoderKL`` (both pipelines encode the control image into latents). A ControlNet's output
projections (``controlnet_blocks``) and its control-image embedder are zero-initialised by diffusers, which would
make every ControlNet a no-op: they get seeded nonzero weights here, so the residuals it adds move the
transformer's output and depend on the control image. The call still
returns latents (``output_type="latent"``); the control image is a seeded random image.
"""

from __future__ import annotations

from typing import Any

import diffusers
import torch

from .image_to_image import _tiny_vae
from .pipelines import _TEXT_DIM, PIPELINES

__all__ = ["CONTROLNET", "build", "call_kwargs", "run"]

# name -> (diffusers pipeline class, the text-to-image case whose transformer, scheduler and prompts it takes)
CONTROLNET: dict[str, tuple[str, str]] = {
    "flux-controlnet": ("FluxControlNetPipeline", "flux"),
    "flux-multi-controlnet": ("FluxControlNetPipeline", "flux"),  # two ControlNets, FluxMultiControlNetModel
    "sd3-controlnet": ("StableDiffusion3ControlNetPipeline", "sd3"),
}
_SIZE = 64  # pixels: an 8x8 latent after the VAE's 8x compression, as the text-to-image cases


_ZERO_INITIALISED = ("controlnet_blocks.", "controlnet_single_blocks.", "controlnet_x_embedder.", "pos_embed_input.")


def _seeded_outputs(controlnet: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Nonzero weights for the zero-initialised layers of a ControlNet."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in controlnet.named_parameters():
            if name.startswith(_ZERO_INITIALISED):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return controlnet.eval()


def flux_controlnet(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
                      num_attention_heads=2, joint_attention_dim=_TEXT_DIM, pooled_projection_dim=_TEXT_DIM,
                      guidance_embeds=True, axes_dims_rope=(4, 6, 6))
        model = diffusers.FluxControlNetModel(**{**config, **overrides})
    return _seeded_outputs(model, 100 + seed)


def sd3_controlnet(seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = diffusers.SD3ControlNetModel(
            sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=2,
            joint_attention_dim=_TEXT_DIM, caption_projection_dim=32, pooled_projection_dim=_TEXT_DIM, out_channels=4,
            pos_embed_max_size=8)
    return _seeded_outputs(model, 100 + seed)


def build(name: str) -> Any:
    class_name, base = CONTROLNET[name]
    components = PIPELINES[base].build().components
    if base == "flux":
        components["vae"] = _tiny_vae(components["transformer"].config.in_channels // 4)  # 2x2 packed latents
        if name == "flux-multi-controlnet":
            components["controlnet"] = [flux_controlnet(0), flux_controlnet(1)]
        else:
            components["controlnet"] = flux_controlnet()
    else:
        components["vae"] = _tiny_vae(components["transformer"].config.in_channels)
        components["controlnet"] = sd3_controlnet()
    pipe = getattr(diffusers, class_name)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_kwargs(name: str, steps: int, seed: int, scale: float | list[float] = 0.7, **extra: Any) -> dict[str, Any]:
    """The text-to-image case's arguments plus a seeded control image and ``controlnet_conditioning_scale``."""
    _, base = CONTROLNET[name]
    kwargs = PIPELINES[base].call_kwargs(steps=steps, seed=seed)
    pixels = torch.Generator().manual_seed(100)  # one control image for every call
    image = torch.rand(1, 3, _SIZE, _SIZE, generator=pixels)
    if name == "flux-multi-controlnet":
        kwargs.update(control_image=[image, image.flip(-1)], control_mode=[None, None],
                      controlnet_conditioning_scale=scale if isinstance(scale, list) else [scale, scale], **extra)
    else:
        kwargs.update(control_image=image, controlnet_conditioning_scale=scale, **extra)
    return kwargs


def run(pipe: Any, name: str, steps: int, seed: int, **kwargs: Any) -> torch.Tensor:
    """The pipeline's own ``__call__``: its final latents. SD3's ControlNet pipeline samples the control image's
    latent from the global RNG (``latent_dist.sample()`` without its generator): seeded here, without disturbing
    the caller's stream."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return pipe(**call_kwargs(name, steps, seed, **kwargs))[0]
