"""A small CNN that labels 16x16 digits: judges the class of generated samples and embeds them for FD."""

from __future__ import annotations

import torch
from torch import nn

from .data import IMAGE_SIZE, NUM_CLASSES

__all__ = ["DigitClassifier"]


class DigitClassifier(nn.Module):
    """Two conv stages (16 -> 8 -> 4) and a ``feature_dim`` penultimate layer, like a tiny VGG."""

    def __init__(self, channels: int = 32, feature_dim: int = 64, dropout: float = 0.3):
        super().__init__()

        def stage(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]

        self.conv = nn.Sequential(*stage(1, channels), *stage(channels, 2 * channels), nn.Flatten())
        flat = 2 * channels * (IMAGE_SIZE // 4) ** 2
        self.embed = nn.Sequential(nn.Linear(flat, feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, NUM_CLASSES)
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 16, 16) in [-1, 1] -> (B, feature_dim): the penultimate activations, for a Fréchet distance."""
        return self.embed(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, 10)."""
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Predicted class per image, evaluated in eval mode (no dropout), in batches."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(chunk).argmax(dim=1) for chunk in x.split(batch_size)])
        finally:
            self.train(was_training)
