"""ToCa (arXiv 2410.05317): FORA-style reuse, and every cached step recomputes the token-local branches for
the tokens that matter most and have waited longest.

ToCa ranks tokens by the attention they receive plus how many cached steps ago they were recomputed
(λ3 = 0.25 over its interval N). A fused attention kernel (SDPA, FlashAttention) never writes the attention
map, so the importance here is the size of each token's cached token-local branch outputs at the last
full step (``compiler/passes/token_scores.py``); the staleness term is ToCa's. Paper defaults on FLUX: N = 4,
R = 0.1, the first 3 steps full.
"""

from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Reuse
from ..registry import register
from ..schedules import IntervalSchedule, SpreadSchedule
from ..tokens import Selection, TokenSubset

TOCA = register(
    Policy(
        name="toca",
        region=Region.BRANCH,
        forecaster=Reuse(),
        schedule=SpreadSchedule(interval=4),
        tokens=TokenSubset(token_ratio=0.1, selection=Selection.SCORE, staleness_weight=0.25 / 4),
        paper=MappingProxyType({"schedule": IntervalSchedule(interval=4, warmup=3), "variable": "step"}),
        description="reuse every branch; every cached step recomputes the token-local ones on the 10% of tokens "
                    "with the largest cached outputs plus staleness",
        source="ToCa, arXiv 2410.05317 (FLUX: N=4, R=0.1, λ3=0.25; importance from branch outputs, not attention)",
    )
)
