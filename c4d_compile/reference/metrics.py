"""Fidelity metrics for the reference models' samples (images in [-1, 1], shape (B, 1, 16, 16)).

Per-image values come back as tensors so that callers can report both the mean and the worst case:
a cache that is fine on average can still ruin single images.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import load_classifier

__all__ = ["DATA_RANGE", "class_accuracy", "frechet_distance", "psnr", "ssim"]

DATA_RANGE = 2.0  # images live in [-1, 1]


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    # float64: PSNR of nearly identical images takes the log of a tiny MSE, where float32 loses digits.
    return a.double(), b.double()


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, (B,); +inf where an image equals its reference exactly."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = _check_pair(images, reference)
    return peak_signal_noise_ratio(a, b, data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3))


def ssim(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM, (B,); 1 for identical images. Default 11x11 Gaussian window (sigma 1.5)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _check_pair(images, reference)
    return structural_similarity_index_measure(a, b, data_range=DATA_RANGE, reduction="none")


@torch.no_grad()
def class_accuracy(images: torch.Tensor, labels: torch.Tensor, classifier: nn.Module | None = None) -> float:
    """Fraction of images the (shipped, by default) classifier labels as the requested class."""
    if classifier is None:
        classifier = load_classifier()
    predicted = classifier.predict(images.float())
    return (predicted == torch.as_tensor(labels)).double().mean().item()


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (N >= 2 each).

    torchmetrics' FrechetInceptionDistance does the statistics and the matrix square root, but it wants
    images and a feature network; it accepts a custom network, so an identity "network" that declares
    ``num_features`` lets it run on feature tensors we computed ourselves (with the digit classifier's
    ``features`` instead of Inception, which knows nothing about 16x16 digits).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"expected (N, D) features of one D, got {tuple(features_a.shape)}, {tuple(features_b.shape)}")
    passthrough = nn.Identity()
    passthrough.num_features = features_a.shape[1]
    fid = FrechetInceptionDistance(feature=passthrough)
    fid.update(features_a.double(), real=True)
    fid.update(features_b.double(), real=False)
    # Estimation noise can leave a tiny negative value for identical sets; a distance is >= 0.
    return max(float(fid.compute()), 0.0)
