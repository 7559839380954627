"""scikit-learn's bundled handwritten digits as 16x16 images in [-1, 1].

``load_digits`` ships inside scikit-learn (no download), 1797 8x8 images with values 0..16 in 10
classes. They are upsampled to 16x16 so that a patch-2 transformer sees 64 tokens, the smallest grid
where attention over positions is not trivial.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ..errors import InvalidValueError

__all__ = ["IMAGE_SIZE", "NUM_CLASSES", "SPLITS", "digits_dataset", "digits_tensors"]

IMAGE_SIZE = 16
NUM_CLASSES = 10
SPLITS = ("train", "test")
_TEST_FRACTION = 0.2
_SPLIT_SEED = 0  # fixed: the shipped weights and the test thresholds are tied to this exact split


@lru_cache(maxsize=1)
def _all_splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    # align_corners=False keeps each source pixel's footprint a 2x2 block; bilinear stays in [0, 1].
    images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    images = images * 2.0 - 1.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    # Stratified, so both splits keep the (nearly uniform) class balance.
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(), test_size=_TEST_FRACTION, random_state=_SPLIT_SEED, stratify=labels.numpy()
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return {
        "train": (images[train_idx].contiguous(), labels[train_idx].contiguous()),
        "test": (images[test_idx].contiguous(), labels[test_idx].contiguous()),
    }


def digits_tensors(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, 16, 16) float32 in [-1, 1], labels (N,) int64) of one split; clones, safe to modify."""
    if split not in SPLITS:
        raise InvalidValueError("split", split, " or ".join(repr(s) for s in SPLITS))
    images, labels = _all_splits()[split]
    return images.clone(), labels.clone()


def digits_dataset(split: str = "train") -> TensorDataset:
    """The split as a torch dataset of (image, label) pairs."""
    return TensorDataset(*digits_tensors(split))
