"""What ``c4d bench`` runs: a transformer, a sampling loop around it, and how outputs are scored.

A workload hides whether the model is a trained reference model (images of digits, scored by PSNR,
SSIM, class accuracy and a Fréchet distance) or a random-weight speed config (a latent, scored by
PSNR only: random weights say nothing about semantic quality). Every method in the matrix, c4d's
and the peers', is handed the same workload, so they see the same steps, seeds and inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import InvalidValueError
from ..reference import metrics
from ..reference.data import digits_tensors
from ..reference.registry import REFERENCE_MODELS, load_classifier, load_reference_model
from ..reference.sampling import class_labels, sample
from ..zoo.tiny_diffusers import TINY_MODELS, get_tiny_model
from .speed import generate

TransformerCall = Callable[..., Any]


@dataclass
class Scores:
    psnr_mean: float
    psnr_worst: float
    ssim_mean: float | None = None
    accuracy: float | None = None
    frechet: float | None = None


@dataclass
class Workload:
    """One model of the matrix. ``run(call, steps)`` samples with ``call`` standing in for the transformer."""

    name: str
    kind: str  # "reference" (trained, fidelity) or "random" (speed)
    transformer: nn.Module
    default_steps: int
    run: Callable[[TransformerCall, int], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor], Scores]
    # Multiplier taking the ``timestep`` kwarg to the 0..1000 scale that peers' timestep windows assume.
    timestep_scale: float = 1.0
    # run(call, steps) on seeds the workload never scores: what calibrated schedules are searched on
    calibration_run: Callable[[TransformerCall, int], object] | None = None
    _plain: dict[str, TransformerCall] = field(default_factory=dict, repr=False)

    def plain_compiled(self, lowering: str) -> TransformerCall:
        """The transformer under ``torch.compile(backend=lowering)``, compiled once per workload: every
        uncached and fewer-steps row shares it (a new torch.compile object per row would recompile)."""
        if lowering not in self._plain:
            self._plain[lowering] = torch.compile(self.transformer, backend=lowering)
        return self._plain[lowering]


CALIBRATION_SEED = 1000  # the reference workloads score seed 0..; calibration records this seed, never scored


def _reference_workload(name: str, per_class: int, seed: int, shift: float) -> Workload:
    model = load_reference_model(name)
    classifier = load_classifier()
    labels = class_labels(per_class)
    with torch.no_grad():
        real_features = classifier.features(digits_tensors("test")[0])
    sample(model, labels[:1], 1, seed, shift=shift)  # a grid this model cannot sample fails here, not mid-run

    def run(call: TransformerCall, steps: int) -> torch.Tensor:
        return sample(model, labels, steps, seed, transformer_call=call, shift=shift)

    def calibration_run(call: TransformerCall, steps: int) -> torch.Tensor:
        return sample(model, class_labels(1), steps, CALIBRATION_SEED, transformer_call=call, shift=shift)

    def score(images: torch.Tensor, reference: torch.Tensor) -> Scores:
        with torch.no_grad():
            psnr = metrics.psnr(images, reference)
            features = classifier.features(images.clamp(-1, 1))
        return Scores(
            psnr_mean=psnr.mean().item(), psnr_worst=psnr.min().item(),
            ssim_mean=metrics.ssim(images, reference).mean().item(),
            accuracy=metrics.class_accuracy(images.clamp(-1, 1), labels, classifier),
            frechet=metrics.frechet_distance(features, real_features) if labels.numel() >= 2 else None,
        )

    grid = "" if shift == 1.0 else f", shift {shift:g}"
    return Workload(name=f"{name} (trained{grid})", kind="reference", transformer=model.transformer,
                    default_steps=50, run=run, score=score, timestep_scale=model.timestep_scale,
                    calibration_run=calibration_run)


# Sampler steps of the random-weight configs: FluxPipeline's default of 28 for the Flux speed config (the
# spine figure's setting), 50 for the others.
_RANDOM_STEPS = {"flux-bench": 28, "flux": 28}


def _random_workload(name: str, seed: int) -> Workload:
    spec = get_tiny_model(name)
    model = spec.build()
    inputs = spec.make_inputs(seed=seed)

    def run(call: TransformerCall, steps: int) -> torch.Tensor:
        return generate(call, spec, inputs, steps)

    calibration_inputs = spec.make_inputs(seed=seed + CALIBRATION_SEED)

    def score(result: torch.Tensor, reference: torch.Tensor) -> Scores:
        # PSNR per batch item over the latent, peak = the reference item's range.
        err = ((result.double() - reference.double()) ** 2).flatten(1).mean(1)
        peak = reference.double().flatten(1)
        peak = peak.max(1).values - peak.min(1).values
        psnr = 10 * torch.log10(peak**2 / err)
        return Scores(psnr_mean=psnr.mean().item(), psnr_worst=psnr.min().item())

    return Workload(name=name, kind="random", transformer=model, default_steps=_RANDOM_STEPS.get(name, 50),
                    run=run, score=score,
                    timestep_scale=1000.0 if spec.timestep_kind == "sigma" else 1.0,
                    calibration_run=lambda call, steps: generate(call, spec, calibration_inputs, steps))


BENCH_MODELS = (*REFERENCE_MODELS, "flux-bench", "wan")  # the default matrix
VALID_MODELS = (*REFERENCE_MODELS, *sorted(TINY_MODELS))


def load_workload(name: str, per_class: int = 4, seed: int = 0, shift: float = 1.0) -> Workload:
    """A trained reference model (``dit``, ``flux``, ``dit-eps``) sampled on the grid of ``shift`` (the
    Flux/SD3 time shift; flow models only), or any tiny zoo name: its random-weight config."""
    if name in REFERENCE_MODELS:
        return _reference_workload(name, per_class, seed, shift)
    if shift != 1.0:
        raise InvalidValueError("shift", shift, f"1.0 for {name!r} (only the trained flow models take a grid shift)")
    if name in TINY_MODELS:
        return _random_workload(name, seed)
    raise InvalidValueError("model", name, f"one of {', '.join(VALID_MODELS)}")
