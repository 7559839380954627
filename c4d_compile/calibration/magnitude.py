"""Record MagCache's magnitude ratios on the user's own model (arXiv 2506.09045).

One uncached generation is run with every step full; at each step the recorder takes the per-token L2
norm (over the channel dim) of every cached stack residual and the ratio to the previous step's norm,
averaged over the tokens: ``gamma_s = mean_tokens |R_s| / |R_{s-1}|`` (``gamma_0 = 1``). Several
generations or guidance contexts are averaged into one curve. The curve goes to a small JSON file that
``ratios=`` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidValueError
from ..policies import Policy
from ..policies.schedules import IntervalSchedule, write_ratios
from .record import common_grid, sampler_grid


@dataclass(frozen=True)
class RatiosCalibration:
    ratios: tuple[float, ...]
    num_steps: int
    policy: Policy
    path: Path | None

    def overrides(self) -> dict[str, Any]:
        """Options that use these ratios: ``c4d_backend("magcache", **cal.overrides())``."""
        return {"ratios": str(self.path) if self.path else self.ratios}


class NormRecorder:
    """Per (generation, context): the per-token norms of the cached features at every full step."""

    def __init__(self) -> None:
        self.norms: dict[tuple, list[torch.Tensor]] = {}
        self.grids: dict[tuple, tuple[float, ...]] = {}  # the sampler's timesteps of each generation, when known
        self.fingerprints: list[dict] = []

    def __call__(self, plan, generation: int, context: str, clock, step: int, key: tuple, values,
                 signal: float | None = None) -> None:
        if plan.fingerprint not in self.fingerprints:
            self.fingerprints.append(plan.fingerprint)
        tokens = [v.detach().float().reshape(-1, v.shape[-1]).norm(dim=-1) for v in values]
        self.norms.setdefault((generation, context), []).append(torch.cat(tokens).cpu())
        self.grids.setdefault((generation, context), sampler_grid(clock))

    def curve(self) -> list[float]:
        curves = []
        for norms in self.norms.values():
            ratios = [1.0] + [float((b / a.clamp_min(1e-12)).mean()) for a, b in zip(norms, norms[1:])]
            curves.append(ratios)
        lengths = {len(c) for c in curves}
        if len(lengths) != 1:
            raise InvalidValueError("recorded generations", sorted(lengths), "generations of one step count")
        return [sum(values) / len(values) for values in zip(*curves)]


def calibrate_ratios(model: Any, run: Callable, searched: Policy, out: str | Path | None, record) -> RatiosCalibration:
    recorder = NormRecorder()
    record(model, run, searched.with_overrides(schedule=IntervalSchedule(interval=1)), recorder)
    if not recorder.norms:
        raise InvalidValueError("run", run, "a callable that runs at least one generation through the model")
    ratios = recorder.curve()
    path = None
    if out is not None:
        path = write_ratios(out, {
            "ratios": ratios, "num_steps": len(ratios), "sampler_timesteps": common_grid(recorder.grids.values()),
            "policy": searched.name, "region": searched.region.value,
            "fingerprint": recorder.fingerprints[0],
            "recorded": {"generations": len({g for g, _ in recorder.norms}),
                         "contexts": sorted({c for _, c in recorder.norms})},
        })
    return RatiosCalibration(tuple(ratios), len(ratios), searched, path)
