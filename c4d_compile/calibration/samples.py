"""The final sample a run produced, and how far a cached run's is from the uncached one's.

``run`` returns what it generated: a tensor (latents or images), a numpy array, a diffusers pipeline
output (``.images`` / ``.frames``: tensors, arrays or PIL images), or a list / tuple of those when it
runs several generations. The calibration compares the cached run's sample with the uncached run's
by the mean squared error over every element; the PSNR it reports takes the uncached sample's own
range as the peak, so on images in [-1, 1] it is the PSNR the bench reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidValueError

_EXPECTED = ("the final sample of the generations it ran: a tensor or numpy array, a diffusers pipeline output "
             "(.images / .frames), or a list of those, e.g. lambda pipe: pipe(prompt, output_type='pt').images")


def final_sample(value: Any) -> torch.Tensor:
    """Everything ``run`` returned, as one flat float64 CPU tensor (its elements in a fixed order)."""
    parts = list(_tensors(value))
    if not parts:
        raise InvalidValueError("run", type(value).__name__, _EXPECTED)
    return torch.cat([p.detach().to("cpu", torch.float64).reshape(-1) for p in parts])


def _tensors(value: Any):
    if value is None:
        return
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, np.ndarray):
        yield torch.from_numpy(np.asarray(value, dtype=np.float64))
    elif hasattr(value, "images") or hasattr(value, "frames"):  # a diffusers pipeline output
        yield from _tensors(getattr(value, "images", None) if hasattr(value, "images") else value.frames)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif hasattr(value, "size") and hasattr(value, "mode"):  # a PIL image
        yield torch.from_numpy(np.asarray(value, dtype=np.float64))
    else:
        raise InvalidValueError("run", type(value).__name__, _EXPECTED)


@dataclass(frozen=True)
class FinalError:
    """Distance of a cached run's final sample from the uncached run's."""

    reference: torch.Tensor  # the uncached run's final sample (``final_sample``)

    @property
    def peak(self) -> float:
        return float(self.reference.max() - self.reference.min()) or 1.0

    def mse(self, sample: torch.Tensor) -> float:
        if sample.shape != self.reference.shape:
            raise InvalidValueError("run", f"a sample of {sample.numel()} elements",
                                    f"the same generations every time it is called ({self.reference.numel()} "
                                    "elements the first time): fixed prompts, seeds and sizes")
        return float(((sample - self.reference) ** 2).mean())

    def psnr(self, mse: float) -> float:
        """dB, with the uncached sample's range as the peak; inf for an exact match."""
        return self.psnr_for(self.peak, mse)

    @staticmethod
    def psnr_for(peak: float, mse: float) -> float:
        return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)
