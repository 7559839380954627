"""DuCa (arXiv 2412.18911): FORA-style reuse with conservative and aggressive cached steps.

Inside each interval of N steps: the full step, then alternately a conservative step (the token-local
branches recomputed on a random fraction R of the tokens: the PARTIAL variant) and an aggressive one
(every cached branch reused). v2 of the paper selects the tokens at random, finding importance scores
no better. Paper defaults on DiT with DDIM-50: N = 3, R = 0.05.
"""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Reuse
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule
from ..tokens import TokenSubset

DUCA = register(
    Policy(
        name="duca",
        region=Region.BRANCH,
        forecaster=Reuse(),
        schedule=SpreadSchedule(interval=3),
        tokens=TokenSubset(token_ratio=0.05, partial_every=2),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=3, warmup=1), "variable": "step"}),
        description="reuse every branch; every other cached step recomputes the token-local ones on 5% of the "
                    "tokens",
        source="DuCa, arXiv 2412.18911 (DiT DDIM-50: N=3, R=0.05, random tokens as in v2)",
    )
)
