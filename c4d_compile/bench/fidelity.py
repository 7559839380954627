"""Fidelity of caching presets on the trained reference models, against the honest baseline.

For each policy: the same seeds and steps as the uncached run, sampled through the cached
transformer; scored by PSNR / SSIM against the uncached images (mean and worst image), class
accuracy of the shipped digit classifier, and a Fréchet distance to real test digits in that
classifier's feature space. Each row is paired with the baseline every cache must beat: the
uncached model run with as many steps as the cache computed in full (equal compute).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from ..backend import c4d_backend
from ..reference import metrics
from ..reference.data import digits_tensors
from ..reference.registry import load_classifier, load_reference_model
from ..reference.sampling import class_labels, sample


@dataclass
class FidelityRow:
    model: str
    policy: str  # "uncached" for the fewer-steps baseline
    options: dict
    steps: int
    full_steps: int  # computations of the transformer per generation
    psnr_mean: float
    psnr_worst: float
    ssim_mean: float
    accuracy: float
    frechet: float

    def as_dict(self) -> dict:
        return asdict(self)


def _score(model_name, policy, options, steps, full, images, reference, labels, classifier, real_features):
    with torch.no_grad():
        psnr = metrics.psnr(images, reference)
        ssim = metrics.ssim(images, reference)
        features = classifier.features(images.clamp(-1, 1))
    return FidelityRow(
        model=model_name, policy=policy, options=options, steps=steps, full_steps=full,
        psnr_mean=psnr.mean().item(), psnr_worst=psnr.min().item(), ssim_mean=ssim.mean().item(),
        accuracy=metrics.class_accuracy(images.clamp(-1, 1), labels, classifier),
        frechet=metrics.frechet_distance(features, real_features),
    )


def measure_fidelity(
    model_name: str,
    policies: dict[str, tuple[str, dict]],
    steps: int = 50,
    per_class: int = 4,
    seed: int = 0,
    lowering: str = "eager",
) -> list[FidelityRow]:
    """``policies``: row label -> (preset name, overrides). Returns rows, each followed by its baseline."""
    model = load_reference_model(model_name)
    classifier = load_classifier()
    labels = class_labels(per_class)
    real, _ = digits_tensors("test")
    with torch.no_grad():
        real_features = classifier.features(real)
    reference = sample(model, labels, steps, seed)
    score = lambda *a: _score(model_name, *a, reference, labels, classifier, real_features)  # noqa: E731
    rows = [score("uncached", {}, steps, steps, reference)]
    for label, (policy, overrides) in tqdm(policies.items(), desc=f"{model_name}: policies"):
        backend = c4d_backend(policy, lowering=lowering, **overrides)
        call = torch.compile(model.transformer, backend=backend)
        images = sample(model, labels, steps, seed, transformer_call=call)
        full = backend.stats().full_steps
        rows.append(score(label, backend.policy.options(), steps, full, images))
        baseline = sample(model, labels, full, seed)
        rows.append(score(f"uncached, {full} steps", {}, full, full, baseline))
        torch._dynamo.reset()
    return rows


def markdown(rows: list[FidelityRow]) -> str:
    lines = [
        "| model | policy | steps (full) | PSNR mean / worst dB | SSIM | class acc. | Fréchet |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.policy} | {r.steps} ({r.full_steps}) | {r.psnr_mean:.2f} / {r.psnr_worst:.2f} | "
            f"{r.ssim_mean:.3f} | {100 * r.accuracy:.1f} % | {r.frechet:.2f} |"
        )
    return "\n".join(lines)
