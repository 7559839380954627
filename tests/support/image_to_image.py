"""Image-to-image and inpainting pipelines of diffusers over the tiny transformers of ``support.pipelines``.

They run only the last ``strength`` part of their sampler's timesteps, so they test that a budget is placed
over the steps that run. The input image is encoded, so each gets a real (tiny) ``AutoencoderKL`` whose
latent channels match its transformer; the call still returns latents (``output_type="latent"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffusers
import torch

from .pipelines import PIPELINES, run

__all__ = ["IMAGE_TO_IMAGE", "build", "call_kwargs", "run"]

# name -> (diffusers pipeline class, the text-to-image case whose transformer, scheduler and prompts it takes)
IMAGE_TO_IMAGE: dict[str, tuple[str, str]] = {
    "flux-img2img": ("FluxImg2ImgPipeline", "flux"),
    "flux-inpaint": ("FluxInpaintPipeline", "flux"),
    "sd3-img2img": ("StableDiffusion3Img2ImgPipeline", "sd3"),
    "sd3-inpaint": ("StableDiffusion3InpaintPipeline", "sd3"),
}
_SIZE = 64  # pixels: an 8x8 latent after the VAE's 8x compression, as the text-to-image cases


def _tiny_vae(latent_channels: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = diffusers.AutoencoderKL(
            block_out_channels=(8, 8, 8, 8),  # four levels: 8x compression
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=latent_channels,
            norm_num_groups=4,
            layers_per_block=1,
            shift_factor=0.0,  # Flux and SD3 read it; the class default is None
            scaling_factor=1.0,
        )
    return vae.eval()


def _with_channels(model: torch.nn.Module, channels: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        other = type(model).from_config({**model.config, "in_channels": channels, "out_channels": channels})
    return other.eval()


def build(name: str) -> Any:
    class_name, base = IMAGE_TO_IMAGE[name]
    components = PIPELINES[base].build().components
    latent_channels = components["transformer"].config.in_channels
    if base == "flux":
        latent_channels //= 4  # Flux packs 2x2 latent patches into its input channels
    if class_name == "StableDiffusion3InpaintPipeline":  # it accepts 16 latent channels (or 33), not 4
        latent_channels = 16
        components["transformer"] = _with_channels(components["transformer"], latent_channels)
    components["vae"] = _tiny_vae(latent_channels)
    pipe = getattr(diffusers, class_name)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_kwargs(name: str, steps: int, seed: int, strength: float = 0.6) -> dict[str, Any]:
    """The text-to-image case's arguments plus a seeded image (and a mask for inpainting) and ``strength``."""
    _, base = IMAGE_TO_IMAGE[name]
    kwargs = PIPELINES[base].call_kwargs(steps=steps, seed=seed)
    pixels = torch.Generator().manual_seed(100 + seed)
    kwargs.update(image=torch.rand(1, 3, _SIZE, _SIZE, generator=pixels), strength=strength)
    if name.endswith("inpaint"):
        mask = torch.zeros(1, 1, _SIZE, _SIZE)
        mask[..., _SIZE // 4: 3 * _SIZE // 4, _SIZE // 4: 3 * _SIZE // 4] = 1.0  # repaint the centre
        kwargs["mask_image"] = mask
    return kwargs


def runner(name: str) -> Callable[[Any, int, int], torch.Tensor]:
    """``run(pipe, steps, seed)`` for this pipeline: its final latents."""
    case = PIPELINES[IMAGE_TO_IMAGE[name][1]]

    def run_it(pipe: Any, steps: int, seed: int, strength: float = 0.6) -> torch.Tensor:
        with torch.no_grad():
            return case.output(pipe, pipe(**call_kwargs(name, steps, seed, strength)))

    return run_it
