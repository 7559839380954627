"""FORA (arXiv 2407.01425) and the stack-residual reuse of TeaCache / MagCache on a fixed schedule."""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Reuse
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule

FORA = register(
    Policy(
        name="fora",
        region=Region.BRANCH,
        forecaster=Reuse(),
        schedule=SpreadSchedule(interval=3),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=3, warmup=1), "variable": "step"}),
        description="reuse every residual branch (attention / MLP outputs)",
        source="FORA, arXiv 2407.01425 (paper: N=3, first step full)",
    )
)

STACK_REUSE = register(
    Policy(
        name="stack-reuse",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=SpreadSchedule(interval=3),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=3, warmup=1), "variable": "step"}),
        description="reuse the residual of the whole block stack",
        source="TeaCache/MagCache cache region (arXiv 2411.19108, 2506.09045) on FORA's schedule (arXiv 2407.01425)",
    )
)
