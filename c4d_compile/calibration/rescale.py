"""Fit TeaCache's rescaling polynomial on the user's own model (arXiv 2411.19108).

TeaCache thresholds an accumulated *estimate of the output change*, obtained from the cheap input
change by a polynomial fitted offline; its authors ship coefficients per model. Here they are fitted
on the model at hand: one generation runs with every step full while the PROBE measures the signal
of every call, and each call's signal ``x`` is paired with the relative L1 change ``y`` of the cached
features (what a cached step reuses) since the previous call of the same context. ``numpy.polyfit``
of degree 4 maps ``x`` to ``y`` (highest power first, as ``numpy.poly1d`` and TeaCache write it), so
the threshold reads as "accumulated relative change of the cached features".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidValueError
from ..policies import Policy
from ..policies.schedules import write_rescale

DEGREE = 4


@dataclass(frozen=True)
class RescaleCalibration:
    rescale: tuple[float, ...]
    pairs: int  # (signal, feature change) pairs the polynomial was fitted on
    policy: Policy
    path: Path | None

    def overrides(self) -> dict[str, Any]:
        """Options that use this polynomial: ``c4d_backend("teacache", **cal.overrides())``."""
        return {"rescale": str(self.path) if self.path else self.rescale}


class ChangeRecorder:
    """Per (generation, context): each full call's signal and the relative L1 change of the cached features."""

    def __init__(self) -> None:
        self.previous: dict[tuple, list[torch.Tensor]] = {}
        self.pairs: list[tuple[float, float]] = []
        self.fingerprints: list[dict] = []

    def __call__(self, plan, generation: int, context: str, clock, step: int, key: tuple, values,
                 signal: float | None = None) -> None:
        if plan.fingerprint not in self.fingerprints:
            self.fingerprints.append(plan.fingerprint)
        now = [v.detach().float() for v in values]
        before = self.previous.get((generation, context))
        self.previous[(generation, context)] = now
        if before is None or signal is None:
            return
        num = sum(float((a - b).abs().sum()) for a, b in zip(now, before))
        den = sum(float(b.abs().sum()) for b in before)
        self.pairs.append((signal, num / max(den, 1e-30)))


def calibrate_rescale(model: Any, run: Callable, searched: Policy, out: str | Path | None,
                      record) -> RescaleCalibration:
    recorder = ChangeRecorder()
    record(model, run, searched.with_overrides(threshold=0.0, rescale=(), last_steps_full=0), recorder)  # all full
    if len(recorder.pairs) <= DEGREE:
        raise InvalidValueError("run", run, f"generations of more than {DEGREE + 1} steps (a degree-{DEGREE} fit "
                                f"needs {DEGREE + 1} pairs; recorded {len(recorder.pairs)})")
    x, y = np.array(recorder.pairs).T
    coefficients = tuple(float(c) for c in np.polyfit(x, y, DEGREE))
    path = None
    if out is not None:
        residual = float(np.sqrt(np.mean((np.polyval(coefficients, x) - y) ** 2)))
        path = write_rescale(out, {
            "rescale": list(coefficients), "signal": searched.schedule.signal.value, "policy": searched.name,
            "pairs": len(recorder.pairs), "rms_error": residual, "fingerprint": recorder.fingerprints[0],
        })
    return RescaleCalibration(coefficients, len(recorder.pairs), searched, path)
