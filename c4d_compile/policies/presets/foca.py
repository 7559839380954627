"""FoCa, forecast then calibrate (arXiv 2508.16211); the reading is documented in forecasters/foca.py."""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import FoCa
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule

FOCA = register(
    Policy(
        name="foca",
        region=Region.BRANCH,
        forecaster=FoCa(),
        schedule=SpreadSchedule(interval=5),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=5, warmup=3), "variable": "step"}),
        description="forecast-then-calibrate (BDF2 + Heun) of every residual branch",
        source="FoCa, arXiv 2508.16211 (paper: FLUX.1-dev N=5, 4.16x FLOPs)",
    )
)
