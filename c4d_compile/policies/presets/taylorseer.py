"""TaylorSeer (arXiv 2503.06923) and TaylorSeer-Lite (Cache4Diffusion; HunyuanImage-2.1 "fast")."""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Taylor
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule

TAYLORSEER = register(
    Policy(
        name="taylorseer",
        region=Region.BRANCH,
        forecaster=Taylor(order=1),
        schedule=SpreadSchedule(interval=5),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=6, warmup=3), "variable": "step", "order": 1}),
        description="Taylor forecast of every residual branch (attention / MLP outputs, pre-gate)",
        source="TaylorSeer, arXiv 2503.06923 (paper: FLUX.1-dev reference N=6, O=1, W=3, 4.99x FLOPs)",
    )
)

TAYLORSEER_LITE = register(
    Policy(
        name="taylorseer-lite",
        region=Region.OUTPUT,
        forecaster=Taylor(order=2),
        schedule=SpreadSchedule(interval=5),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=5, warmup=3), "variable": "step", "order": 2}),
        description="Taylor forecast of the model output; every block skipped on cached steps",
        source="TaylorSeer-Lite, Cache4Diffusion HunyuanImage-2.1 'fast' mode: N=5, O=2, W=3 (arXiv 2503.06923)",
    )
)
