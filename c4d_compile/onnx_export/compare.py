"""The exported model against the torch path along one sampling trajectory, and its onnxruntime speed.

The reference is the backend itself (eager lowering, same policy and step count). Both run the same sampler
(``bench.speed.generate``: Euler over the config's timesteps) from the same starting latent, each feeding its
own outputs back into the latent it reads next, so a difference at one step reaches every later step as it
would in a real generation: with the inputs held fixed, errors could not compound and a check would see less
than a user gets. Reported: the largest difference of the model output at any step, and of the final latent.
Speed is one generation on onnxruntime, cached and with the full variant at every step, alternated, medians.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..bench.speed import generate
from ..compiler.backend import c4d_backend
from ..zoo.tiny_model import TinyModel
from .runner import load_exported


@dataclass(frozen=True)
class ExportCheck:
    steps: int
    max_error: float  # exported vs torch along the trajectory: the largest |difference| of the output, any step
    final_error: float  # the largest |difference| of the final latent
    seconds_cached: float  # one generation on onnxruntime, median
    seconds_uncached: float  # the same with the full variant at every step
    calls: dict[str, int]  # variant kind -> calls in one cached generation

    @property
    def speedup(self) -> float:
        return self.seconds_uncached / self.seconds_cached

    def summary(self) -> str:
        return (f"{self.steps} steps along the sampling trajectory, variants {self.calls}: "
                f"max |exported - torch| {self.max_error:.1e} (output, any step), {self.final_error:.1e} "
                f"(final latent); onnxruntime {self.seconds_uncached:.3f} s uncached, {self.seconds_cached:.3f} s "
                f"cached ({self.speedup:.2f}x)")


def trajectory(call, spec: TinyModel, inputs: dict[str, Any], steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One generation of ``steps``: the final latent and every step's model output."""
    outputs: list[torch.Tensor] = []
    final = generate(call, spec, inputs, steps, outputs)
    return final, outputs


def check_export(out_dir: str | Path, model: torch.nn.Module, spec: TinyModel, inputs: dict[str, Any], steps: int,
                 policy: str, *, repeats: int = 3, **overrides: Any) -> ExportCheck:
    """``out_dir`` (exported from ``model`` with ``policy`` and ``overrides`` for ``steps``) against the torch
    backend, both sampling from ``inputs`` with the latent and timestep keys of ``spec``."""
    cached, uncached = load_exported(out_dir), load_exported(out_dir, cached=False)
    backend = c4d_backend(policy, lowering="eager", num_steps=steps, **overrides)
    torch._dynamo.reset()
    final, reference = trajectory(torch.compile(model, backend=backend, fullgraph=True), spec, inputs, steps)
    torch._dynamo.reset()
    exported_final, exported = trajectory(cached, spec, inputs, steps)
    calls = dict(cached.calls)
    error = max(float((a - b).abs().max()) for a, b in zip(reference, exported, strict=True))
    final_error = float((final - exported_final).abs().max())
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for runner in (uncached, cached):
            runner.reset()
            started = time.perf_counter()
            generate(runner, spec, inputs, steps)
            times[runner.cached].append(time.perf_counter() - started)
    return ExportCheck(steps, error, final_error, statistics.median(times[True]), statistics.median(times[False]),
                       calls)
