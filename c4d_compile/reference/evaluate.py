"""How good are a reference model's samples, and how much do fewer sampler steps cost?

``python -m c4d_compile.reference.evaluate {dit,flux,dit-eps}`` prints, per step count, the class accuracy
of seeded samples (judged by the shipped classifier), their Fréchet distance to the test split in the
classifier's feature space, and PSNR / SSIM against the same seeds sampled with the most steps. The
sampler is the model's own: Euler for the flow models (``--shift`` shifts its grid), DDIM for dit-eps.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .data import digits_tensors
from .metrics import class_accuracy, frechet_distance, psnr, ssim
from .registry import REFERENCE_MODELS, load_classifier, load_reference_model
from .sampling import class_labels, sample

__all__ = ["evaluate_steps"]


@torch.no_grad()
def evaluate_steps(
    model: nn.Module,
    classifier: nn.Module,
    steps: Sequence[int] = (10, 20, 50),
    per_class: int = 10,
    seed: int = 0,
    shift: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Figures per step count; the largest count is the reference for PSNR and SSIM.

    Row "real" scores as many real training images, per class, as there are samples: with ~100 images in
    64 dimensions the Fréchet distance carries a large small-sample bias, so real data is the yardstick.
    """
    labels = class_labels(per_class)
    runs = {n: sample(model, labels, num_steps=n, seed=seed, shift=shift) for n in sorted(steps)}
    reference = runs[max(runs)]
    test_features = classifier.features(digits_tensors("test")[0])
    real = _real_images(per_class, seed)
    figures = {
        "real": {
            "accuracy": class_accuracy(real, labels, classifier),
            "fd_test": frechet_distance(classifier.features(real), test_features),
        }
    }
    for n, images in runs.items():
        figures[str(n)] = {
            "accuracy": class_accuracy(images, labels, classifier),
            "fd_test": frechet_distance(classifier.features(images), test_features),
        }
        if images is not reference:  # against itself PSNR is inf (and not valid JSON): leave it out
            p, s = psnr(images, reference), ssim(images, reference)
            figures[str(n)].update(
                psnr_mean=float(p.mean()), psnr_min=float(p.min()), ssim_mean=float(s.mean()), ssim_min=float(s.min())
            )
    return figures


def _real_images(per_class: int, seed: int) -> torch.Tensor:
    """``per_class`` random training images of each class, ordered like ``class_labels(per_class)``."""
    images, labels = digits_tensors("train")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(int(labels.max()) + 1):
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return images[torch.cat(picks)]


def format_figures(figures: dict[str, dict[str, float]]) -> str:
    lines = [f"{'steps':>5} {'acc':>6} {'FD':>7} {'PSNR':>7} {'PSNRmin':>7} {'SSIM':>6} {'SSIMmin':>7}"]
    for n, f in figures.items():
        line = f"{n:>5} {f['accuracy']:6.3f} {f['fd_test']:7.2f}"
        if "psnr_mean" in f:
            line += f" {f['psnr_mean']:7.2f} {f['psnr_min']:7.2f} {f['ssim_mean']:6.3f} {f['ssim_min']:7.3f}"
        else:
            line += "  (real training images)" if n == "real" else "  (reference)"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=REFERENCE_MODELS)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=float, default=1.0, help="time shift of the flow models' Euler grid")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model, classifier = load_reference_model(args.model), load_classifier()
    figures = evaluate_steps(model, classifier, args.steps, args.per_class, args.seed, args.shift)
    print(json.dumps(figures, indent=2) if args.json else format_figures(figures))
    return figures


if __name__ == "__main__":
    main()
