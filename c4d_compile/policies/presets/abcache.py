"""AB-Cache: extrapolation of the model output from the last computed ones (arXiv 2504.10540)."""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import AdamsBashforth
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule

ABCACHE = register(
    Policy(
        name="abcache",
        region=Region.OUTPUT,
        forecaster=AdamsBashforth(order=3),
        schedule=SpreadSchedule(interval=5),
        paper=MappingProxyType(
            {"schedule": IntervalSchedule(interval=6, warmup=5), "variable": "step", "order": 2, "binomial": True}
        ),
        description="polynomial extrapolation of the model output from the last computed outputs",
        source="AB-Cache, arXiv 2504.10540 (paper code: FLUX.1-dev full on steps 0-4 then every 6th, binomial weights)",
    )
)
