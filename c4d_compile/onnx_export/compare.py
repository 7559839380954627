"""The exported model against the torch path over one sampling loop, and its onnxruntime speed.

The reference is the backend itself (eager lowering, same policy and step count): every step of the
exported program must give what the compiled model gives. Speed is one generation on onnxruntime,
cached and with the full variant at every step, alternated, medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..backend import c4d_backend
from .runner import load_exported


@dataclass(frozen=True)
class ExportCheck:
    steps: int
    max_error: float  # exported vs torch, the largest absolute difference of any output at any step
    seconds_cached: float  # one generation on onnxruntime, median
    seconds_uncached: float  # the same with the full variant at every step
    calls: dict[str, int]  # variant kind -> calls in one cached generation

    @property
    def speedup(self) -> float:
        return self.seconds_uncached / self.seconds_cached

    def summary(self) -> str:
        return (f"{self.steps} steps, variants {self.calls}: max |exported - torch| {self.max_error:.1e}; "
                f"onnxruntime {self.seconds_uncached:.3f} s uncached, {self.seconds_cached:.3f} s cached "
                f"({self.speedup:.2f}x)")


def _loop(model, kwargs: dict, timestep_key: str, timesteps: Sequence[torch.Tensor]) -> list:
    outs = []
    for t in timesteps:
        with torch.no_grad():
            out = model(**{**kwargs, timestep_key: t.to(kwargs[timestep_key].dtype)})
        outs.append(out if isinstance(out, (tuple, list)) else (out,))
    return outs


def check_export(out_dir: str | Path, model: torch.nn.Module, kwargs: dict[str, Any], timestep_key: str,
                 timesteps: Sequence[torch.Tensor], policy: str, *, repeats: int = 3, **overrides: Any) -> ExportCheck:
    cached, uncached = load_exported(out_dir), load_exported(out_dir, cached=False)
    backend = c4d_backend(policy, lowering="eager", num_steps=len(timesteps), **overrides)
    torch._dynamo.reset()
    reference = _loop(torch.compile(model, backend=backend, fullgraph=True), kwargs, timestep_key, timesteps)
    torch._dynamo.reset()
    exported = _loop(cached, kwargs, timestep_key, timesteps)
    calls = dict(cached.calls)
    error = max(float((a - b).abs().max()) for ra, rb in zip(reference, exported) for a, b in zip(ra, rb))
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for runner in (uncached, cached):
            runner.reset()
            started = time.perf_counter()
            _loop(runner, kwargs, timestep_key, timesteps)
            times[runner.cached].append(time.perf_counter() - started)
    return ExportCheck(len(timesteps), error, statistics.median(times[True]), statistics.median(times[False]), calls)
