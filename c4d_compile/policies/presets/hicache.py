"""HiCache: scaled-Hermite forecasts (arXiv 2508.16984)."""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Hermite
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule

HICACHE = register(
    Policy(
        name="hicache",
        region=Region.BRANCH,
        forecaster=Hermite(order=2, sigma=0.6),
        schedule=SpreadSchedule(interval=5),
        paper=MappingProxyType(
            {"schedule": IntervalSchedule(interval=7, warmup=3), "variable": "step", "order": 2, "sigma": 0.5}
        ),
        description="scaled-Hermite forecast of every residual branch",
        source="HiCache, arXiv 2508.16984 (paper: FLUX.1-dev N=7, O=2, sigma=0.5, 5.55x FLOPs)",
    )
)
