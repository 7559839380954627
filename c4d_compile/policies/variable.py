"""The variable forecasts are made in: the step index, or the sampler's own timestep.

Samplers of real pipelines space their timesteps unevenly (flow matching with a time shift,
DDIM/DPM grids). ``Variable.TIMESTEP`` places each step at its timestep, rescaled so that one unit is
one average step of the generation so far:

    u_j = s_0 + (s - s_0) * (t_j - t_0) / (t - t_0)          s: the current step, t: its timestep

where (s_0, t_0) is the first step this context saw in the generation. On an even grid u_j = j, so
both variables agree; forecasters that are not scale-free (the Hermite basis) keep their meaning
in steps. ``Variable.STEP`` (the default) is the step index, as every reference implementation uses.

Why the index is the default: on the trained reference models sampled on a Flux-style shifted grid
(shift 3), with the full steps spread over the run, forecasting in the index was better than in the
timestep for every forecaster but order-1 output forecasts, and much better for order >= 2 at long
intervals (5 of 50 steps computed: 33 dB against 22-31 dB), where a polynomial in the timestep
extrapolates across the grid's largest steps. The timestep is exact only for features linear in it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class Variable(str, enum.Enum):
    TIMESTEP = "timestep"
    STEP = "step"


def coordinates(
    variable: Variable, step: int, time: float, first_step: int, first_time: float, steps: Sequence[int],
    times: Sequence[float],
) -> tuple[float, list[float]]:
    """(coordinate of the current step, coordinates of the given past steps) in the chosen variable."""
    if variable is Variable.STEP or time == first_time or step == first_step:
        return float(step), [float(s) for s in steps]
    scale = (step - first_step) / (time - first_time)
    return float(step), [first_step + (t - first_time) * scale for t in times]
