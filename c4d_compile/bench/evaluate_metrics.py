"""PSNR and SSIM of one generation against the uncached one, for ``c4d evaluate``: on images (values in [0, 1],
data range 1) or on the latents a pipeline returns (data range: the uncached latent's own peak-to-peak).

SSIM is the usual Gaussian-window one (11 x 11, sigma 1.5, K1 0.01, K2 0.03, the image reflect-padded by half a
window and the index averaged over every pixel: torchmetrics' ``structural_similarity_index_measure``, which the
reference models' metrics use), in plain torch, no extra dependency: every channel and frame of a
``(..., H, W)`` tensor is a grey image of its own and the result is their mean. A tensor without two spatial dims
of at least 6 (the padding reflects 5 pixels), such as Flux's packed latents ``(B, tokens, C)``, has none.
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidValueError

KINDS = ("image", "latent")
IMAGE_RANGE = 1.0  # diffusers' ``output_type="pt"`` / ``"np"`` / ``"pil"`` images, scaled to [0, 1]


def data_range(reference: torch.Tensor, kind: str) -> float:
    """What PSNR and SSIM take as the peak: 1 for images, the reference's max - min for latents."""
    if kind not in KINDS:
        raise InvalidValueError("kind", kind, f"one of {', '.join(KINDS)}")
    if kind == "image":
        return IMAGE_RANGE
    peak = (reference.max() - reference.min()).item()
    return peak if peak > 0 else 1.0


def psnr(result: torch.Tensor, reference: torch.Tensor, peak: float) -> float:
    """10 log10(peak^2 / MSE) in float64; +inf for identical tensors."""
    _check(result, reference)
    mse = torch.mean((result.double() - reference.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def _gaussian(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


WINDOW, SIGMA = 11, 1.5


def ssim(result: torch.Tensor, reference: torch.Tensor, peak: float) -> float | None:
    """Mean SSIM over every channel / frame of ``(B, ..., H, W)`` tensors; None when there are no two spatial
    dims (a tensor of fewer than 4 dims, or an image smaller than 6 x 6)."""
    _check(result, reference)
    size = WINDOW
    if result.dim() < 4 or min(result.shape[-2:]) <= (size - 1) // 2:
        return None
    g = _gaussian(size, SIGMA)
    kernel = (g[:, None] * g[None, :])[None, None]
    x = result.double().reshape(-1, 1, *result.shape[-2:])
    y = reference.double().reshape(-1, 1, *reference.shape[-2:])

    pad = (size - 1) // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, kernel.to(t.device))

    x, y = (torch.nn.functional.pad(t, (pad, pad, pad, pad), mode="reflect") for t in (x, y))
    mx, my = blur(x), blur(y)
    sxx, syy = (blur(t * t) - m**2 for t, m in ((x, mx), (y, my)))
    sxx, syy, sxy = sxx.clamp(min=0), syy.clamp(min=0), blur(x * y) - mx * my
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return index.mean().item()


def _check(result: torch.Tensor, reference: torch.Tensor) -> None:
    if result.shape != reference.shape:
        raise InvalidValueError("output shape", tuple(result.shape),
                                f"the uncached output's shape {tuple(reference.shape)} (same call arguments)")
