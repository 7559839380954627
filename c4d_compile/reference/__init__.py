"""Small *trained* diffusion transformers shipped with c4d-compile, for judging caching on fidelity.

Random-weight models exercise graph capture but say nothing about image quality: their outputs are
noise whatever the cache does. These models are trained (in minutes, on a CPU) to generate 16x16
handwritten digits (scikit-learn's ``load_digits``), conditioned on the class: "dit" and "flux" with
rectified flow (Euler sampling), "dit-eps" as DiT itself is trained, predicting DDPM noise and a learned
variance (DDIM sampling through diffusers' DDIMScheduler, as DiTPipeline does). A shipped digit
classifier and metrics (PSNR, SSIM, class accuracy, Fréchet distance on the classifier's features) then
measure how far a cached sampling run drifts from the uncached one.

    model = load_reference_model("flux")              # or "dit", "dit-eps"
    images = sample(model, labels, num_steps=20, seed=0)
    cached = sample(model, labels, 20, seed=0, transformer_call=torch.compile(model.transformer, backend=...))

``python -m c4d_compile.reference.train {dit,flux,dit-eps,classifier}`` reproduces the weights under ``weights/``.
Needs the optional extras diffusers, safetensors, scikit-learn, torchmetrics and scipy; they are imported
lazily, so importing this package is cheap.
"""

from __future__ import annotations

from .registry import REFERENCE_MODELS, UnknownReferenceModelError, load_classifier, load_reference_model
from .sampling import sample

__all__ = [
    "REFERENCE_MODELS",
    "UnknownReferenceModelError",
    "load_classifier",
    "load_reference_model",
    "sample",
]
