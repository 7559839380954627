"""Record the trajectory of the cached features over uncached generations.

The backend runs with every step full; each FULL call hands the recorder the newest value of every
cached feature, which it keeps as a fixed sample of at most ``max_elements`` elements per feature
(evenly strided over the flattened tensor, float64, on the CPU): enough to estimate the squared
errors the search needs, and bounded memory on a large model. Per (generation, context), the
recorder keeps the step indices, the timestep values and the samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Trajectory:
    """One context of one generation: per recorded step, its index, timestep values and feature samples."""

    steps: list[int] = field(default_factory=list)
    keys: list[tuple] = field(default_factory=list)
    first_step: int = 0
    first_key: tuple = ()
    samples: list[list[torch.Tensor]] = field(default_factory=list)  # [step][feature] -> 1-D float64
    sampler_timesteps: tuple[float, ...] = ()  # the sampler's grid of the generation, when the caller said it

    def matrix(self, feature: int) -> torch.Tensor:
        """(steps, elements) of one feature."""
        return torch.stack([row[feature] for row in self.samples])


def sampler_grid(clock) -> tuple[float, ...]:
    """The sampler's timesteps of the generation a clock is in, when the caller gave them (``enable_cache`` does)."""
    return tuple(clock.scope.timesteps) if clock.scope is not None else ()


def common_grid(grids) -> list[float]:
    """The sampler grid every recorded generation ran, for a calibration file; empty when they differ or are unknown
    (a file without one is resampled by step position, or not checked against the run's grid)."""
    grids = set(grids)
    return list(grids.pop()) if len(grids) == 1 else []


class TrajectoryRecorder:
    def __init__(self, max_elements: int = 16384):
        self.max_elements = max_elements
        self.trajectories: dict[tuple, Trajectory] = {}
        self.fingerprints: list[dict] = []

    def __call__(self, plan, generation: int, context: str, clock, step: int, key: tuple, values,
                 signal: float | None = None) -> None:
        if plan.fingerprint not in self.fingerprints:
            self.fingerprints.append(plan.fingerprint)
        traj = self.trajectories.get((generation, context))
        if traj is None:
            traj = self.trajectories[(generation, context)] = Trajectory(
                first_step=clock.first_step, first_key=clock.first_key, sampler_timesteps=sampler_grid(clock))
        traj.steps.append(step)
        traj.keys.append(key)
        traj.samples.append([self._sample(v) for v in values])

    def _sample(self, value: torch.Tensor) -> torch.Tensor:
        flat = value.detach().reshape(-1)
        stride = max(1, flat.numel() // self.max_elements)
        return flat[::stride][: self.max_elements].to("cpu", torch.float64)
