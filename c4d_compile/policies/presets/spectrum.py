"""Spectrum: a ridge-regressed Chebyshev fit of the stack's output over the stored full steps
(CVPR 2026, arXiv 2603.01623; code github.com/hanjq17/Spectrum). The forecast is documented in
forecasters/spectrum.py, the paper's growing interval in schedules/growing.py.

The paper forecasts the output of the last block (FLUX: its image tokens, before ``norm_out``) and
skips every block on cached steps. The ``stack`` region caches the residual of the whole block stack,
that output minus the stack's input, and adds it to the input of the cached step: the blocks are
skipped the same way, but the input term is the current one, not a fit of the past ones (the weights
do not sum to one, so the two differ by ``x_now - sum_j w_j x_j``).
"""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Spectrum
from ..registry import register
from ..schedules import GrowingIntervalSchedule, SpreadSchedule

SPECTRUM = register(
    Policy(
        name="spectrum",
        region=Region.STACK,
        forecaster=Spectrum(degree=4, ridge=0.1, history=8),
        schedule=SpreadSchedule(interval=5),
        paper=MappingProxyType(
            {
                "schedule": GrowingIntervalSchedule(warmup=5, start=2.0, growth=0.75),
                "variable": "step",
                "degree": 4,
                "ridge": 0.1,
                "blend": 1.0,
                "span": 50.0,
                "history": 14,  # every full step of the paper's 50-step run (the code keeps up to 100)
            }
        ),
        description="ridge-regressed Chebyshev forecast of the block stack's residual from the stored full steps",
        source="Spectrum, arXiv 2603.01623 (paper: FLUX.1-dev M=4, lambda=0.1, warm-up 5, N=2, alpha=0.75: "
        "14 of 50 steps full)",
    )
)
